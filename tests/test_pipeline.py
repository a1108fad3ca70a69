"""The default HNLMRec pipeline: cold run builds every stage, warm run reuses them all."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from hnlm_tiny import save_tiny

from recbole_hnlm.negatives.store import SemanticNegativeStore
from tests.conftest import FAST

torch.set_num_threads(1)


def test_pipeline_builds_then_reuses_every_stage(in_tmp, capsys):
    from recbole_hnlm.config import make_config
    from recbole_hnlm.data.splits import interaction_tokens, load_split
    from recbole_hnlm.pipeline import ensure_hnlm_store

    encoder = save_tiny(in_tmp / "tiny-encoder", "encoder")
    settings = {
        "val_interval": {"rating": "[5,5]"},
        "hnlm_use_profiles": False,  # no LLM here; the profile stage has its own tests
        "hnlm_cf_epochs": 1,
        "hnlm_sup_size": 64,
        "hnlm_embedder_model": str(encoder),
        "hnlm_ft_batch_size": 16,
        "hnlm_query_max_len": 48,
        "hnlm_infer_chunk": 4096,
        "hnlm_store_mode": "pair",  # the per-pair store first, then the default factored one beside it
        "embedding_size": 16,
        "state": "ERROR",
        "show_progress": False,
    }
    config = make_config("HNLMLightGCN", "ml-100k", config_dict=settings)
    store_dir = ensure_hnlm_store(config, progress=False)
    store = SemanticNegativeStore(store_dir)
    users, items = interaction_tokens(load_split(config).train)
    assert len(store) == len(set(zip(users.tolist(), items.tolist())))
    assert store.meta.producer == "hnlmrec-finetuned"
    cold = capsys.readouterr().out
    assert "supervision: built" in cold and "finetune: built" in cold and "inference: built" in cold
    # the long stage announces its size, an estimate and how to skip it before it starts, only when it runs
    assert f"[pipeline] inference: {len(store):,} queries, one per training interaction; about" in cold
    assert cold.index("[pipeline] inference: ") < cold.index("inference: built")
    assert "To skip it: --negatives PATH" in cold

    assert ensure_hnlm_store(config, progress=False) == store_dir
    warm = capsys.readouterr().out
    for stage in ("supervision", "finetune", "inference"):
        assert f"{stage}: reused" in warm, warm
    assert "queries, one per training interaction" not in warm
    store.bind(load_split(config).dataset)  # the store belongs to the dataset training will use

    # the factored mode reuses supervision and the adapter, and builds its own store beside the pair store
    factored_config = make_config(
        "HNLMLightGCN", "ml-100k", config_dict={**settings, "hnlm_store_mode": "factored"}
    )
    factored_dir = ensure_hnlm_store(factored_config, progress=False)
    factored = capsys.readouterr().out
    assert "supervision: reused" in factored and "finetune: reused" in factored
    n_texts = len(set(users.tolist())) + len(set(items.tolist()))
    assert f"[pipeline] inference: {n_texts:,} texts (factored: one per user and one per item)" in factored
    assert factored_dir == store_dir.with_name("hnlm-factored") and store_dir.is_dir()
    factored_store = SemanticNegativeStore(factored_dir)
    assert factored_store.meta.producer == "hnlmrec-finetuned-factored" and len(factored_store) == len(store)
    factored_store.bind(load_split(config).dataset)


class WordCountEmbedder:
    """A stand-in text embedder: two features of the text, enough for the alignment to train on."""

    name, model = "word-count", "word-count"

    def embed(self, texts):
        return np.array([[len(t.split()), len(t) / 10.0] for t in texts], dtype=np.float32)


def test_rlmrec_run_embeds_the_profiles_the_pipeline_made(in_tmp, monkeypatch):
    """`--sampler=rlmrec-con`, no `profile_embeddings`: the default profiles folder gets its embeddings."""
    from recbole_hnlm import pipeline
    from recbole_hnlm.config import make_config
    from recbole_hnlm.quick_start import run_hnlm
    from recbole_hnlm.stages.common import training_view
    from recbole_hnlm.stages.profiles import profile_settings_fingerprint, write_profiles

    settings = {**FAST, "artifact_dir": str(in_tmp / "artifacts")}
    view = training_view(make_config("LightGCN", "ml-100k", config_dict=settings))

    def records(tokens):
        text = {t: f"profile {t} " * (int(t) % 3 + 1) for t in tokens}  # 2, 4 or 6 words
        return [{"token": t, "summarization": text[t], "reasoning": "r", "status": "ok"} for t in tokens]

    folder = in_tmp / "artifacts" / "ml-100k" / "profiles"
    real = pipeline._llm_settings(make_config("LightGCN", "ml-100k", config_dict=settings))
    meta = {
        "dataset_fingerprint": view.dataset_fingerprint,
        "split_fingerprint": view.split_fingerprint,
        "config_fingerprint": profile_settings_fingerprint(real),
    }
    write_profiles(folder, records(view.items), records(view.histories), meta=meta)
    # the profiles belong to this split and these settings, so no LLM is asked; only the embedder runs
    llm = SimpleNamespace(make_embedder=WordCountEmbedder, as_dict=real.as_dict)
    monkeypatch.setattr(pipeline, "_llm_settings", lambda config: llm)

    record = run_hnlm("LightGCN", "ml-100k", "rlmrec-con", config_dict=settings, saved=False)
    assert record["config"]["alignment"] == "rlmrec-con"
    assert (folder / "user_tokens.txt").read_text().split() == list(view.histories)
    vectors = np.load(folder / "item_embeddings.npy")
    assert vectors.shape == (len(view.items), 2)
    assert vectors[:, 0].tolist() == [2 * (int(t) % 3 + 1) for t in view.items]


def test_profiles_are_generated_again_for_another_split_or_settings(in_tmp, monkeypatch):
    """Reused only when written for this dataset, split and LLM settings; otherwise the LLM runs again."""
    from recbole_hnlm import pipeline
    from recbole_hnlm.config import make_config
    from recbole_hnlm.stages import profiles
    from recbole_hnlm.stages.common import training_view

    config = make_config("LightGCN", "ml-100k", config_dict={**FAST, "artifact_dir": str(in_tmp / "a")})
    view = training_view(config)
    root = in_tmp / "a" / "ml-100k"
    settings = pipeline._llm_settings(config)
    calls = []
    monkeypatch.setattr(profiles, "generate_profiles", lambda view, backend, *a, **k: calls.append(backend))
    monkeypatch.setattr(type(settings), "backend", lambda self: SimpleNamespace(close=lambda: None))
    good = {
        "dataset_fingerprint": view.dataset_fingerprint,
        "split_fingerprint": view.split_fingerprint,
        "config_fingerprint": profiles.profile_settings_fingerprint(settings),
    }
    for changed, expected_calls in ((None, 0), ("split_fingerprint", 1), ("config_fingerprint", 2)):
        meta = {**good, **({changed: "other"} if changed else {})}
        profiles.write_profiles(root / "profiles", [], [], meta=meta)
        assert pipeline.ensure_profiles(config, root, view, progress=False) == root / "profiles"
        assert len(calls) == expected_calls, changed
