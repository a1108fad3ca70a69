from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from stage_data import ml100k_view
from standin import StandIn

from recbole_hnlm.llm.backends import OllamaChat
from recbole_hnlm.llm.concurrency import RetryPolicy
from recbole_hnlm.stages.common import LLMSettings
from recbole_hnlm.stages.profiles import embed_profile_folder, generate_profiles, read_profiles

FAST = RetryPolicy(retries=2, base=0.001, cap=0.01)
SETTINGS = LLMSettings(llm_backend="ollama", llm_concurrency=3, item_noun="movie")


class ListEmbedder:
    name, model = "fake", "fake"

    def embed(self, texts):
        return np.array([[len(t), 1.0, 0.5] for t in texts], dtype=np.float32)


def test_profiles_end_to_end_and_cached_rerun(small_view, tmp_path):
    with StandIn() as server:
        backend = OllamaChat(server.url, "m", retry=FAST, max_concurrency=3)
        server.faults.extend(["500", "garbage"])
        meta = generate_profiles(
            small_view, backend, SETTINGS, tmp_path, embedder=ListEmbedder(), progress=False
        )
        first_calls = server.calls["/api/chat"]
        out = tmp_path / "profiles"
        items, users = read_profiles(out / "items.jsonl"), read_profiles(out / "users.jsonl")
        assert set(items) == set(small_view.items) and set(users) == set(small_view.histories)
        assert all(r["status"] == "ok" and r["summarization"].startswith("Profile") for r in items.values())
        item_report, user_report = meta["reports"]
        assert item_report["counts"]["ok"] == len(items) and user_report["counts"]["ok"] == len(users)
        assert first_calls == len(items) + len(users) + 2  # two retried faults
        # user prompts see the item profiles and the titles of the training history only
        user_bodies = [b for b in server.bodies if "INTERACTED MOVIES" in b["messages"][-1]["content"]]
        assert (
            len(user_bodies) == len(users)
            and '"description": "Profile' in user_bodies[0]["messages"][-1]["content"]
        )
        assert np.load(out / "item_embeddings.npy").shape == (len(items), 3)
        assert (out / "item_tokens.txt").read_text().split() == list(items)
        saved = json.loads((out / "meta.json").read_text())
        assert saved["dataset_fingerprint"] == "fp-test" and len(saved["config_fingerprint"]) == 16

        meta2 = generate_profiles(small_view, backend, SETTINGS, tmp_path, progress=False)
        assert server.calls["/api/chat"] == first_calls  # everything came from the cache
        assert meta2["reports"][0]["cached"] == len(items)
        # the rerun generated nothing, and still reports what its (cached) answers cost
        for first, again in zip(meta["reports"], meta2["reports"], strict=True):
            assert again["prompt_tokens"] == again["completion_tokens"] == 0 < first["prompt_tokens"]
            assert again["cached_prompt_tokens"] == first["prompt_tokens"]
            assert again["cached_completion_tokens"] == first["completion_tokens"]
            assert again["cached_request_seconds"] == pytest.approx(first["request_seconds"], abs=0.01)
            assert first["request_seconds"] > 0 and again["request_seconds"] == 0
            assert again["cache_lines_dropped"] == 0

        # a corrupt line and a kill's partial last line: dropped, counted in the report, nothing re-sent
        with open(tmp_path / "llm_cache" / "profiles.jsonl", "ab") as handle:
            handle.write(b'{"key": "x", "value"\n{"key": "partial')
        meta3 = generate_profiles(small_view, backend, SETTINGS, tmp_path, progress=False)
        assert server.calls["/api/chat"] == first_calls
        assert [r["cache_lines_dropped"] for r in meta3["reports"]] == [2, 2]
        assert [r["sent"] for r in meta3["reports"]] == [0, 0]  # the summary says none was sent again
        assert [r["sent"] > 0 for r in meta["reports"]] == [True, True]


def test_embedding_a_folder_written_without_embeddings(small_view, tmp_path):
    """RLMRec's input added later: same profile text, one vector per usable profile, failed ones left out."""
    with StandIn() as server:
        backend = OllamaChat(server.url, "m", retry=FAST, max_concurrency=3)
        generate_profiles(small_view, backend, SETTINGS, tmp_path, progress=False)
    out = tmp_path / "profiles"
    assert not (out / "item_embeddings.npy").exists()
    users_file = out / "users.jsonl"
    records = [json.loads(line) for line in users_file.read_text().splitlines()]
    records[0].update(status="failed", summarization=None)  # a profile that never parsed
    users_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = {name: (out / name).read_text() for name in ("items.jsonl", "users.jsonl")}

    embed_profile_folder(out, ListEmbedder())
    assert {name: (out / name).read_text() for name in before} == before
    items = read_profiles(out / "items.jsonl")
    vectors = np.load(out / "item_embeddings.npy")
    assert (out / "item_tokens.txt").read_text().split() == list(items)
    assert vectors[:, 0].tolist() == [len(r["summarization"]) for r in items.values()]
    user_tokens = (out / "user_tokens.txt").read_text().split()
    assert user_tokens == [r["token"] for r in records[1:]]
    assert np.load(out / "user_embeddings.npy").shape == (len(records) - 1, 3)
    assert json.loads((out / "meta.json").read_text())["embedder"] == {"name": "fake", "model": "fake"}


DRIVER = """
import sys
sys.path.insert(0, {conftest_dir!r})
from stage_data import ml100k_view
from stage_data import ml100k_view

from recbole_hnlm.llm.backends import OllamaChat
from recbole_hnlm.stages.common import LLMSettings
from recbole_hnlm.stages.profiles import generate_profiles
from pathlib import Path
view = ml100k_view(n_users=30, n_items_per_user=4)
settings = LLMSettings(llm_backend="ollama", llm_concurrency=4, item_noun="movie")
backend = OllamaChat(sys.argv[1], "m", max_concurrency=4)
generate_profiles(view, backend, settings, Path(sys.argv[2]), progress=False)
"""


def _run_driver(script: Path, url: str, root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, str(script), url, str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_mid_run_then_resume(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(conftest_dir=str(Path(__file__).resolve().parent)))
    with StandIn(delay=0.05) as server:
        reference = tmp_path / "reference"  # the uninterrupted run, in-process (same code as the driver)
        view = ml100k_view(n_users=30, n_items_per_user=4)
        settings = LLMSettings(llm_backend="ollama", llm_concurrency=4, item_noun="movie")
        generate_profiles(
            view, OllamaChat(server.url, "m", max_concurrency=4), settings, reference, progress=False
        )
        expected_items = read_profiles(reference / "profiles" / "items.jsonl")
        expected_users = read_profiles(reference / "profiles" / "users.jsonl")

        killed = tmp_path / "killed"
        cache = killed / "llm_cache" / "profiles.jsonl"
        proc = _run_driver(script, server.url, killed)
        deadline = time.time() + 60
        while time.time() < deadline and (not cache.exists() or len(cache.read_bytes().splitlines()) < 20):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        done_before = len(cache.read_bytes().splitlines())
        assert 20 <= done_before < len(expected_items) + len(expected_users)
        assert not (killed / "profiles").exists()  # no half-written output folder

        calls_before = server.calls["/api/chat"]
        assert _run_driver(script, server.url, killed).wait(timeout=120) == 0
        resent = server.calls["/api/chat"] - calls_before

    items = read_profiles(killed / "profiles" / "items.jsonl")
    users = read_profiles(killed / "profiles" / "users.jsonl")
    assert items == expected_items and users == expected_users
    lines = (killed / "profiles" / "items.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["token"] for x in lines}) == len(expected_items)
    keys = [json.loads(x)["key"] for x in cache.read_text().splitlines()]
    reference_keys = [
        json.loads(x)["key"] for x in (reference / "llm_cache" / "profiles.jsonl").read_text().splitlines()
    ]
    assert len(keys) == len(set(keys)) and set(keys) == set(reference_keys)  # every request once, none lost
    assert resent <= len(expected_items) + len(expected_users) - done_before + 4  # only in-flight work redone


def test_records_that_failed_at_the_server_are_retried_on_rerun(small_view, tmp_path):
    """A server failing every 7th request leaves failed profiles; the pipeline's rerun against the healthy
    server sends exactly those again (counted), unless retrying is off."""
    from recbole_hnlm.pipeline import ensure_profiles
    from recbole_hnlm.stages.cli import configure_profiles

    def reports():
        return json.loads((tmp_path / "profiles" / "meta.json").read_text())["reports"]

    with StandIn() as server:
        config = {"llm_backend": "ollama", "llm_base_url": server.url, "llm_model": "m"}
        config.update(llm_concurrency=1, llm_retries=0, item_noun="movie")
        server.faults.extend((["none"] * 6 + ["500"]) * 30)
        ensure_profiles(config, tmp_path, small_view, progress=False)
        failed = sum(r["failed_at_server"] for r in reports())
        assert failed > 0 and failed == sum(r["counts"]["failed"] for r in reports())
        server.faults.clear()
        sent = server.calls["/api/chat"]

        ensure_profiles({**config, "llm_retry_failed": False}, tmp_path, small_view, progress=False)
        assert server.calls["/api/chat"] == sent  # kept as they are: nothing sent

        ensure_profiles(config, tmp_path, small_view, progress=False)
        resent = server.calls["/api/chat"] - sent
        assert resent >= failed
        assert all(r["counts"]["failed"] == 0 and r["failed_at_server"] == 0 for r in reports())
        assert (
            reports()[0]["retried_failed"] > 0 and reports()[0]["recovered"] == reports()[0]["retried_failed"]
        )

        ensure_profiles(config, tmp_path, small_view, progress=False)
        assert server.calls["/api/chat"] == sent + resent  # nothing failed any more: reused

    parser = argparse.ArgumentParser()
    configure_profiles(parser)
    assert parser.parse_args(["--no_retry_failed"]).llm_retry_failed is False
    assert parser.parse_args([]).llm_retry_failed is None  # the config decides


def test_the_stage_announces_its_generations_an_estimate_and_how_to_skip_it(small_view, tmp_path, capsys):
    from recbole_hnlm.stages.profiles import CPU_PROFILES_PER_SECOND, profiles_estimate

    line = profiles_estimate(1682, 943, LLMSettings())  # ml-100k on the default, embedded llama.cpp
    minutes = round(2625 / CPU_PROFILES_PER_SECOND / 60)
    assert "2,625 LLM generations (1,682 items + 943 users)" in line and f"about {minutes} min" in line
    assert "hnlm_use_profiles: False" in line and "profile_embeddings: PATH" in line
    assert "--max_items" in line and "not sent again" in line
    assert "time depends on the ollama model" in profiles_estimate(2, 3, SETTINGS)
    with StandIn() as server:
        backend = OllamaChat(server.url, "m", retry=FAST, max_concurrency=3)
        generate_profiles(small_view, backend, SETTINGS, tmp_path, progress=False, max_items=2)
    printed = capsys.readouterr().out
    first = printed.splitlines()[0]  # before any generation's report
    assert first.startswith(f"[profiles] {2 + len(small_view.histories)} LLM generations (2 items")
