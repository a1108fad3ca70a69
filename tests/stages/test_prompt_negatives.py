from __future__ import annotations

import json

import numpy as np
import pytest
from standin import StandIn, default_reply

from recbole_hnlm.llm.backends import OllamaChat
from recbole_hnlm.llm.concurrency import RetryPolicy
from recbole_hnlm.negatives.store import SemanticNegativeStore
from recbole_hnlm.stages.common import LLMSettings
from recbole_hnlm.stages.profiles import ProfilesMissingError, generate_profiles
from recbole_hnlm.stages.prompt_negatives import generate_negatives

FAST = RetryPolicy(retries=2, base=0.001, cap=0.01)
SETTINGS = LLMSettings(llm_backend="ollama", llm_concurrency=3, item_noun="movie", llm_max_repairs=1)


class HashEmbedder:
    name, model = "hash", "hash-4"

    def embed(self, texts):
        return np.array([[len(t), sum(map(ord, t)) % 7, 1.0, -1.0] for t in texts], dtype=np.float32)


# movies of the small view's histories (Toy Story and GoldenEye are not among them)
NONE_TITLE, GARBAGE_TITLE, ECHO_TITLE = "Contact", "Scream", "Air Force One"


def picky_reply(messages, schema):
    """Per interaction: "None" for Contact, garbage for Scream (even after repair), the placeholder for
    Air Force One, a name otherwise."""
    first_user = next(m["content"] for m in messages if m["role"] == "user")
    if '"hard_negative_item"' in json.dumps(schema or {}):
        if f'"{NONE_TITLE}"' in first_user:
            return json.dumps({"hard_negative_item": "None", "reasoning": "nothing fits"})
        if f'"{GARBAGE_TITLE}"' in first_user:
            return "I cannot answer in JSON, sorry."
        if f'"{ECHO_TITLE}"' in first_user:
            return json.dumps({"hard_negative_item": "<the movie's name, or None>", "reasoning": "r"})
    return default_reply(messages, schema)


def test_requires_profiles(small_view, tmp_path):
    with pytest.raises(ProfilesMissingError, match="run `recbole-hnlm profiles`"):
        generate_negatives(small_view, None, HashEmbedder(), SETTINGS, tmp_path, progress=False)


@pytest.mark.parametrize("mode", ["interaction", "user"])
def test_negatives_store_and_counts(small_view, tmp_path, mode):
    with StandIn(reply=picky_reply) as server:
        backend = OllamaChat(server.url, "m", retry=FAST, max_concurrency=3)
        generate_profiles(small_view, backend, SETTINGS, tmp_path, progress=False)
        report = generate_negatives(
            small_view, backend, HashEmbedder(), SETTINGS, tmp_path, mode=mode, k=2, progress=False
        )
        calls = server.calls["/api/chat"]
        sent = server.bodies[-1]["format"]["properties"]["reasoning"]
        assert sent == {"type": "string", "maxLength": SETTINGS.negative_reasoning_chars}
        again = generate_negatives(
            small_view, backend, HashEmbedder(), SETTINGS, tmp_path, mode=mode, k=2, progress=False
        )
        assert server.calls["/api/chat"] == calls and again["rows"] == report["rows"]  # all cached

    store = SemanticNegativeStore(tmp_path / "negatives" / "prompt")
    pairs = {(u, i) for u, items in small_view.histories.items() for i in items}
    keys = set(zip(store.user_tokens.tolist(), store.item_tokens.tolist()))
    assert keys <= pairs and len(store) == report["rows"] and store.dim == 4
    assert store.meta.producer == "prompt_negatives" and store.meta.dataset_fingerprint == "fp-test"
    names = [json.loads(x) for x in (tmp_path / "negatives" / "prompt.names.jsonl").read_text().splitlines()]
    assert len(names) == len(store)
    if mode == "interaction":
        by_title = {
            title: {(u, i) for u, i in pairs if small_view.items[i].title == title}
            for title in (NONE_TITLE, GARBAGE_TITLE, ECHO_TITLE)
        }
        assert all(by_title.values())  # each case occurs in the view
        none, garbage, echo = (len(by_title[t]) for t in (NONE_TITLE, GARBAGE_TITLE, ECHO_TITLE))
        assert report["total"] == len(pairs)
        assert report["skipped"] == {"none_answer": none, "template_echo": echo}
        assert report["counts"]["failed"] == garbage
        assert len(store) == len(pairs) - none - garbage - echo  # no row for None, failures or echoes
        assert not keys & set().union(*by_title.values())
    else:
        assert report["total"] == len(small_view.histories) and len(store) == len(pairs)
        per_user = {}
        for row in names:
            per_user.setdefault(row["user"], set()).add(row["negative"])
        assert all(len(v) <= 2 for v in per_user.values())
    saved = json.loads((tmp_path / "negatives" / "prompt.report.json").read_text())
    assert saved["rows"] == len(store) and "config_fingerprint" in saved


def test_template_echoes_never_become_negatives(small_view, tmp_path):
    """Users who watched the first user's first movie answer only placeholders; the others one name."""
    first = small_view.histories[next(iter(small_view.histories))][0]
    marker = json.dumps(small_view.items[first].title)
    echoed = {u for u, items in small_view.histories.items() if first in items}

    def echo_reply(messages, schema):
        if "hard_negative_items" not in json.dumps(schema or {}):
            return default_reply(messages, schema)
        placeholder = "<name, at most 20 words>"
        names = [placeholder] * 2 if marker in messages[-1]["content"] else [placeholder, "Heat"]
        return json.dumps({"hard_negative_items": names, "reasoning": "r"})

    with StandIn(reply=echo_reply) as server:
        backend = OllamaChat(server.url, "m", retry=FAST, max_concurrency=3)
        generate_profiles(small_view, backend, SETTINGS, tmp_path, progress=False)
        report = generate_negatives(
            small_view, backend, HashEmbedder(), SETTINGS, tmp_path, mode="user", k=2, progress=False
        )
    rows = [json.loads(x) for x in (tmp_path / "negatives" / "prompt.names.jsonl").read_text().splitlines()]
    lost = sum(len(set(small_view.histories[u])) for u in echoed)
    assert 0 < len(echoed) < len(small_view.histories)
    assert {row["negative"] for row in rows} == {"Heat"} and not echoed & {row["user"] for row in rows}
    assert report["skipped"] == {
        "template_echo": lost,
        "template_echo_names": 2 * len(echoed) + len(small_view.histories) - len(echoed),
    }
    assert len(rows) == sum(len(set(items)) for items in small_view.histories.values()) - lost


def test_the_command_reads_mode_and_k_from_the_config_unless_given():
    import argparse

    from recbole_hnlm.stages.cli import configure_negatives
    from recbole_hnlm.stages.prompt_negatives import mode_and_k

    parser = argparse.ArgumentParser()
    configure_negatives(parser)
    unset = parser.parse_args([])
    assert mode_and_k(unset, {}) == {"mode": "interaction", "k": 3}  # overall.yaml's defaults
    config = {"prompt_negatives_mode": "user", "prompt_negatives_k": 5}
    assert mode_and_k(unset, config) == {"mode": "user", "k": 5}
    given = parser.parse_args(["--mode", "interaction", "--k", "2"])
    assert mode_and_k(given, config) == {"mode": "interaction", "k": 2}
