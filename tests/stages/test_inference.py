"""Batched inference of the fine-tuned embedder into a store: batch invariance, resumable chunks."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch
from hnlm_tiny import save_tiny

from recbole_hnlm.llm.embedding_model import MINILM, EmbedderSpec, EmbeddingModel
from recbole_hnlm.llm.prompts import ItemRecord
from recbole_hnlm.negatives.store import SemanticNegativeStore
from recbole_hnlm.stages.common import TrainingView
from recbole_hnlm.stages.inference import InterruptedForTest, infer_store, training_pairs

torch.set_num_threads(1)
GENRES = ["action", "comedy", "drama", "horror", "romance", "thriller", "western", "musical"]


def fake_view(n_users: int = 12, n_items: int = 20) -> TrainingView:
    items = {
        f"i{k}": ItemRecord(f"i{k}", {"title": f"{GENRES[k % 8]} movie {k}", "genre": GENRES[(k * 3) % 8]})
        for k in range(n_items)
    }
    rng = np.random.default_rng(0)
    histories = {
        f"u{u}": [f"i{k}" for k in rng.choice(n_items, size=3 + u % 5, replace=False)] for u in range(n_users)
    }
    histories["u0"].append(histories["u0"][0])  # a repeated interaction: one store row
    return TrainingView("toy", "fp-toy", items, histories, {}, None)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A tiny causal adapter with non-zero LoRA weights, saved as finetune saves it."""
    folder = tmp_path_factory.mktemp("inference")
    base = save_tiny(folder / "causal", "causal")
    model = EmbeddingModel.create(EmbedderSpec.for_model(str(base), query_max_len=48))
    with torch.no_grad():
        for name, param in model.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    info = {
        "dataset": "toy",
        "fingerprint": "adapter-fp",
        "supervision_settings": {"hnlm_use_profiles": False},
    }
    model.save(folder / "adapter", info=info)
    return folder / "adapter"


def texts(n: int = 40) -> list[str]:
    return [" ".join(GENRES[(k + j) % 8] for j in range(1 + (k * 5) % 17)) for k in range(n)]


@pytest.mark.parametrize("kind", ["causal", "encoder"])
def test_batch_size_does_not_change_vectors(tmp_path, kind):
    base = save_tiny(tmp_path / kind, kind)
    model = EmbeddingModel.create(EmbedderSpec.for_model(str(base)))
    with torch.no_grad():
        for name, param in model.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    one, many = model.embed(texts(), batch_size=1), model.embed(texts(), batch_size=32)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_batch_size_does_not_change_vectors_real_minilm():
    model = EmbeddingModel.create(EmbedderSpec.for_model(MINILM))
    sample = texts(24)
    np.testing.assert_allclose(
        model.embed(sample, batch_size=1), model.embed(sample, batch_size=32), atol=1e-5
    )


def test_store_has_every_training_pair_once(tmp_path, adapter):
    view = fake_view()
    store = SemanticNegativeStore(
        infer_store({"hnlm_use_profiles": False}, tmp_path, adapter, view=view, chunk_size=8, progress=False)
    )
    users, items = training_pairs(view)
    keys = list(zip(store.user_tokens.tolist(), store.item_tokens.tolist()))
    assert sorted(keys) == sorted(zip(users, items)) and len(set(keys)) == len(keys)
    assert store.meta.producer == "hnlmrec-finetuned" and store.meta.dataset_fingerprint == "fp-toy"
    model = EmbeddingModel.load(adapter)
    from recbole_hnlm.stages.supervision import QueryBuilder, SupervisionSettings

    builder = QueryBuilder.build(view, None, SupervisionSettings(hnlm_use_profiles=False))
    direct = model.embed([builder.query(u, i) for u, i in keys[:5]], batch_size=1)
    np.testing.assert_allclose(np.asarray(store.vectors[:5], dtype=np.float32), direct, atol=2e-3)  # float16


def test_interrupted_inference_resumes_without_duplicates(tmp_path, adapter):
    view = fake_view()
    config = {"hnlm_use_profiles": False}
    reference = SemanticNegativeStore(
        infer_store(config, tmp_path / "ref", adapter, view=view, chunk_size=8, progress=False)
    )
    root = tmp_path / "run"
    with pytest.raises(InterruptedForTest):
        infer_store(config, root, adapter, view=view, chunk_size=8, progress=False, fail_after_chunks=2)
    chunk_dir = root / "negatives" / "hnlm.chunks"
    assert len(list(chunk_dir.glob("chunk-*.npy"))) == 2
    assert not (root / "negatives" / "hnlm").exists()  # no half-written store
    store = SemanticNegativeStore(infer_store(config, root, adapter, view=view, chunk_size=8, progress=False))
    assert store.meta.details["chunks_resumed"] == 2 and not chunk_dir.exists()
    keys = list(zip(store.user_tokens.tolist(), store.item_tokens.tolist()))
    assert len(keys) == len(set(keys)) == len(reference)
    assert keys == list(zip(reference.user_tokens.tolist(), reference.item_tokens.tolist()))
    np.testing.assert_array_equal(np.asarray(store.vectors), np.asarray(reference.vectors))


def test_cached_store_is_reused_and_other_chunks_are_discarded(tmp_path, adapter):
    view = fake_view()
    config = {"hnlm_use_profiles": False}
    with pytest.raises(InterruptedForTest):
        infer_store(config, tmp_path, adapter, view=view, chunk_size=5, progress=False, fail_after_chunks=1)
    # a different chunk size is a different run: its chunks must not be mixed in
    out = infer_store(config, tmp_path, adapter, view=view, chunk_size=8, progress=False)
    assert SemanticNegativeStore(out).meta.details["chunks_resumed"] == 0
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert infer_store(config, tmp_path, adapter, view=view, chunk_size=8, progress=False) == out
    assert (out / "meta.json").stat().st_mtime_ns == stamp


def test_infer_out_refuses_a_foreign_folder_before_embedding(tmp_path, adapter):
    from recbole_hnlm.io import ForeignPathError

    out = tmp_path / "thesis"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "plot.png").write_bytes(b"\x89PNG")
    (out / "draft.md").write_text("# draft\n")
    (out / "meta.json").write_text('{"title": "not a store"}\n')
    before = {str(p): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))}
    with pytest.raises(ForeignPathError, match=re.escape(str(out))):
        infer_store(
            {"hnlm_use_profiles": False}, tmp_path, adapter, view=fake_view(), out=out, progress=False
        )
    assert {str(p): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))} == before
    assert not (tmp_path / "thesis.chunks").exists()


def test_a_second_run_building_the_same_store_waits_then_reuses_it(tmp_path, adapter, monkeypatch):
    # Two runs of the same store: before the lock, each embedded, and the finisher's cleanup removed
    # the other's chunk folder (FileNotFoundError). Now the second waits for the store, then reuses it.
    from recbole_hnlm.stages import inference

    view = fake_view()
    loads = []
    first_started = threading.Event()
    load = inference.EmbeddingModel.load

    def counted_load(path):
        loads.append(threading.current_thread().name)
        first_started.set()
        time.sleep(0.5)  # the second run arrives while the first is embedding
        return load(path)

    monkeypatch.setattr(inference.EmbeddingModel, "load", staticmethod(counted_load))
    results, errors = {}, []

    def build(name):
        try:
            config = {"hnlm_use_profiles": False}
            results[name] = infer_store(config, tmp_path, adapter, view=view, chunk_size=4, progress=False)
        except BaseException as exc:  # reported below
            errors.append(exc)

    first = threading.Thread(target=build, args=("first",), name="first")
    second = threading.Thread(target=build, args=("second",), name="second")
    first.start()
    assert first_started.wait(60)
    second.start()
    first.join(120)
    second.join(120)
    assert errors == []
    assert loads == ["first"]  # the second run reused the first's store instead of embedding again
    assert results["first"] == results["second"]
    assert not results["first"].with_name(results["first"].name + ".chunks").exists()
    assert len(SemanticNegativeStore(results["first"])) == len(training_pairs(view)[0])


def test_int8_is_its_own_store_and_threads_are_restored(tmp_path, adapter, monkeypatch):
    from recbole_hnlm.llm import cpu_runtime

    seen = []
    monkeypatch.setattr(cpu_runtime, "usable_cpus", lambda: 3)  # the affinity, when no count is set
    real = cpu_runtime.torch.set_num_threads
    monkeypatch.setattr(cpu_runtime.torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    view, before = fake_view(), torch.get_num_threads()
    fp32 = SemanticNegativeStore(
        infer_store({"hnlm_use_profiles": False}, tmp_path, adapter, view=view, progress=False)
    )
    assert seen[0] == 3 and torch.get_num_threads() == before
    config = {"hnlm_use_profiles": False, "hnlm_infer_int8": True, "hnlm_infer_threads": 1}
    int8 = SemanticNegativeStore(infer_store(config, tmp_path, adapter, view=view, progress=False))
    assert seen[2] == 1 and torch.get_num_threads() == before
    assert int8.meta.details["fingerprint"] != fp32.meta.details["fingerprint"]  # rebuilt, not reused
    a, b = np.asarray(fp32.vectors, dtype=np.float32), np.asarray(int8.vectors, dtype=np.float32)
    assert a.shape == b.shape and not np.array_equal(a, b)
