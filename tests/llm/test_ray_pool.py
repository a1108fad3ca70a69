"""LLM stages over Ray actors: the same records and the same cache/resume behaviour as one process.

The backend is the real ``OllamaChat`` built inside each actor, talking to the stdlib stand-in server of
``standin.py`` (deterministic answers, fault injection) on 127.0.0.1.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from standin import StandIn

from recbole_hnlm.llm.backends import OllamaChat
from recbole_hnlm.llm.concurrency import LLMServerError, RetryPolicy
from recbole_hnlm.llm.ray_pool import RayChatBackend, RayEmbedder, chat_backend_from_args
from recbole_hnlm.stages.common import LLMSettings
from recbole_hnlm.stages.profiles import generate_profiles

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from stage_data import ml100k_view

FAST = RetryPolicy(retries=2, base=0.001, cap=0.01)
SETTINGS = LLMSettings(llm_backend="ollama", llm_concurrency=2, item_noun="movie")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from recbole_hnlm.ray_compat import init_ray

    started = init_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def view():
    return ml100k_view(n_users=6, n_items_per_user=4)


def _ollama(url: str):
    return functools.partial(OllamaChat, url, "m", retry=FAST, max_concurrency=2)


def _outputs(root: Path) -> tuple[str, str]:
    out = root / "profiles"
    return (out / "items.jsonl").read_text(), (out / "users.jsonl").read_text()


def test_two_actors_write_the_same_profiles_and_resume_from_a_partial_cache(local_ray, view, tmp_path):
    with StandIn() as server:
        single = _ollama(server.url)()
        meta_single = generate_profiles(view, single, SETTINGS, tmp_path / "single", progress=False)
        total = server.calls["/api/chat"]
        assert total == len(view.items) + len(view.histories)

        pooled = RayChatBackend(_ollama(server.url), num_actors=2)
        try:
            assert (pooled.name, pooled.model) == (single.name, single.model)  # same cache keys
            assert pooled.max_concurrency == 4
            server.faults.extend(["500", "garbage"])  # retried by OllamaChat inside the actors
            meta_ray = generate_profiles(view, pooled, SETTINGS, tmp_path / "ray", progress=False)
            stats = pooled.actor_stats()
            assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "single")
            assert meta_ray["backend"] == meta_single["backend"]
            assert meta_ray["config_fingerprint"] == meta_single["config_fingerprint"]
            # both actors served requests, in processes other than this one
            assert len({s["pid"] for s in stats}) == 2 and all(s["calls"] > 0 for s in stats)
            assert sum(s["calls"] for s in stats) == total
            assert server.calls["/api/chat"] == 2 * total + 2

            # resume: a cache cut after k answers plus half a line, as a kill mid-write leaves it
            cache = tmp_path / "single" / "llm_cache" / "profiles.jsonl"
            resumed = tmp_path / "resumed"
            (resumed / "llm_cache").mkdir(parents=True)
            lines = cache.read_bytes().splitlines(keepends=True)
            keep = len(lines) // 2
            (resumed / "llm_cache" / "profiles.jsonl").write_bytes(b"".join(lines[:keep]) + lines[keep][:25])
            before = server.calls["/api/chat"]
            meta_resumed = generate_profiles(view, pooled, SETTINGS, resumed, progress=False)
        finally:
            pooled.close()
        assert server.calls["/api/chat"] - before == total - keep  # only the missing requests were sent
        assert sum(r["cached"] for r in meta_resumed["reports"]) == keep
        assert _outputs(resumed) == _outputs(tmp_path / "single")
        assert len((resumed / "llm_cache" / "profiles.jsonl").read_text().splitlines()) == total


def test_server_down_in_an_actor_is_the_backends_own_error(local_ray):
    with StandIn() as server:
        url = server.url
    pooled = RayChatBackend(_ollama(url), num_actors=1)  # the server is gone: nothing answers
    try:
        with pytest.raises(LLMServerError, match="cannot reach"):
            pooled.check()
    finally:
        pooled.close()


class _LengthEmbedder:
    name, model = "fake", "length"

    def embed(self, texts):
        return np.array([[len(t), float(sum(map(ord, t)) % 7)] for t in texts], dtype=np.float32)


def test_ray_embedder_keeps_input_order(local_ray):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import test modules
    texts = [f"text number {k}" * (k % 3 + 1) for k in range(11)]
    pooled = RayEmbedder(_LengthEmbedder, num_actors=2, chunk_size=3)
    try:
        assert (pooled.name, pooled.model) == ("fake", "length")
        np.testing.assert_array_equal(pooled.embed(texts), _LengthEmbedder().embed(texts))
        assert sum(s["calls"] for s in pooled.actor_stats()) == 4  # ceil(11 / 3) chunks
    finally:
        pooled.close()


def test_without_ray_actors_the_factory_is_used_directly():
    import argparse

    backend = chat_backend_from_args(_ollama("http://127.0.0.1:9"), argparse.Namespace(ray_actors=0))
    assert isinstance(backend, OllamaChat)
