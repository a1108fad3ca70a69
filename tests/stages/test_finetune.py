"""LoRA fine-tuning of the embedder: objective, learning on a tiny set, save/load, resume."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hnlm_tiny import save_tiny

from recbole_hnlm.llm.embedding_model import EmbedderSpec, EmbeddingModel, read_spec
from recbole_hnlm.stages.finetune import (
    FinetuneSettings,
    finetune,
    pairwise_contrastive_loss,
    similarity_gap,
)

torch.set_num_threads(1)

GENRES = ["action", "comedy", "drama", "horror", "romance", "thriller", "western", "musical"]
PARTNER = {g: GENRES[(k + 3) % len(GENRES)] for k, g in enumerate(GENRES)}


def triples(n: int, seed: int) -> list[dict[str, str]]:
    """Queries about genre g whose 'hard negative' is always PARTNER[g]: a mapping the model can learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = GENRES[rng.integers(len(GENRES))]
        extra = GENRES[rng.integers(len(GENRES))]
        out.append(
            {
                "query": f"item {g} movie user likes {g} and {extra}",
                "positive": f"{PARTNER[g]} film",
                "negative": f"{g} film",
            }
        )
    return out


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "causal", "causal")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "encoder", "encoder")


def fast_settings(model: str, **kw) -> FinetuneSettings:
    base = dict(
        hnlm_embedder_model=model,
        hnlm_ft_epochs=6,
        hnlm_ft_batch_size=16,
        hnlm_ft_lr=5e-2,
        hnlm_ft_tau=0.1,
        hnlm_ft_eval_fraction=0.0,
        hnlm_ft_save_steps=0,
        hnlm_lora_dropout=0.0,
        hnlm_query_max_len=32,
        hnlm_passage_max_len=16,
        hnlm_embedder_precision="fp32",  # the thresholds below are fp32's; bf16 has its own test
    )
    base.update(kw)
    return FinetuneSettings(**base)


def test_pairwise_loss_matches_definition():
    g = torch.Generator().manual_seed(0)
    q, p, n = (torch.nn.functional.normalize(torch.randn(4, 6, generator=g), dim=-1) for _ in range(3))
    tau = 0.07
    expected = torch.stack(
        [-torch.log(torch.sigmoid(((q[b] @ p[b]) - (q[b] @ n[k])) / tau)) for b in range(4) for k in range(4)]
    ).mean()
    assert torch.allclose(pairwise_contrastive_loss(q, p, n, tau), expected, atol=1e-6)


def test_finetune_lowers_loss_and_moves_queries_toward_hard_negatives(tmp_path, tiny_encoder):
    train, held = triples(64, seed=1), triples(24, seed=2)
    settings = fast_settings(str(tiny_encoder))
    log = finetune(train, tmp_path / "embedder", settings, progress=False)
    losses = log["losses"]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])
    tuned = EmbeddingModel.load(tmp_path / "embedder")
    fresh = EmbeddingModel.create(settings.spec())  # LoRA B starts at zero: the base model
    before, after = similarity_gap(fresh, held), similarity_gap(tuned, held)
    assert after > before + 0.2, (before, after)
    assert after > 0  # held-out queries now sit closer to their hard negative than to their item


def test_bf16_mixed_precision_learns_the_mapping_too_and_changes_the_fingerprint(tmp_path, tiny_encoder):
    train, held = triples(64, seed=1), triples(24, seed=2)
    settings = fast_settings(str(tiny_encoder), hnlm_embedder_precision="bf16")
    assert settings.hnlm_embedder_precision == "bf16"
    log = finetune(train, tmp_path / "embedder", settings, progress=False)
    assert np.mean(log["losses"][-4:]) < 0.7 * np.mean(log["losses"][:4])
    fresh = EmbeddingModel.create(settings.spec())
    before = similarity_gap(fresh, held)
    after = similarity_gap(EmbeddingModel.load(tmp_path / "embedder"), held)
    assert after > before + 0.1 and after > 0, (before, after)  # bf16 rounding: a looser margin than fp32's
    fp32 = fast_settings(str(tiny_encoder))
    assert fp32.as_dict() != settings.as_dict()  # the adapter's fingerprint says which arithmetic trained it


def test_auto_precision_is_resolved_when_the_settings_are_made(monkeypatch, tiny_encoder):
    from recbole_hnlm.llm import cpu_runtime

    monkeypatch.setattr(cpu_runtime, "native_bf16", lambda: False)
    assert fast_settings(str(tiny_encoder), hnlm_embedder_precision="auto").hnlm_embedder_precision == "fp32"
    monkeypatch.setattr(cpu_runtime, "native_bf16", lambda: True)
    assert fast_settings(str(tiny_encoder), hnlm_embedder_precision="auto").hnlm_embedder_precision == "bf16"
    with pytest.raises(ValueError, match="hnlm_embedder_precision"):
        fast_settings(str(tiny_encoder), hnlm_embedder_precision="half")


def test_max_steps_stops_the_run_on_the_same_steps_a_full_run_takes_first(tmp_path, tiny_encoder):
    data = triples(64, seed=5)  # 4 steps an epoch of 16
    two_epochs = fast_settings(str(tiny_encoder), hnlm_ft_epochs=2)
    full = finetune(data, tmp_path / "full", two_epochs, progress=False)
    assert full["step"] == 8
    for budget in (3, 5):  # inside the first epoch, and across the epoch boundary
        settings = fast_settings(str(tiny_encoder), hnlm_ft_epochs=2, hnlm_ft_max_steps=budget)
        log = finetune(data, tmp_path / f"cut{budget}", settings, progress=False)
        assert log["step"] == len(log["losses"]) == budget
        assert log["losses"] == full["losses"][:budget]  # the same shuffle and dropout seeds, cut short
    with pytest.raises(ValueError, match="hnlm_ft_max_steps"):
        fast_settings(str(tiny_encoder), hnlm_ft_max_steps=0)


def test_adapter_save_load_reproduces_embeddings_exactly(tmp_path, tiny_causal):
    spec = EmbedderSpec.for_model(str(tiny_causal), query_max_len=24)
    model = EmbeddingModel.create(spec)
    with torch.no_grad():
        for name, param in model.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    texts = [t["query"] for t in triples(20, seed=3)]
    model.save(tmp_path / "adapter")
    loaded = EmbeddingModel.load(tmp_path / "adapter")
    assert read_spec(tmp_path / "adapter") == model.spec
    assert loaded.spec.pooling == "last" and loaded.spec.query_template == spec.query_template
    np.testing.assert_array_equal(model.embed(texts, batch_size=8), loaded.embed(texts, batch_size=8))


def test_finetune_resumes_from_checkpoint(tmp_path, tiny_causal):
    data = triples(48, seed=4)
    settings = fast_settings(str(tiny_causal), hnlm_ft_epochs=2, hnlm_ft_save_steps=1)
    finetune(data, tmp_path / "full", settings, progress=False)
    with pytest.raises(KeyboardInterrupt):
        finetune(data, tmp_path / "cut", settings, progress=False, stop_after_steps=4)
    assert (tmp_path / "cut.ckpt" / "state.pt").is_file() and not (tmp_path / "cut").exists()
    log = finetune(data, tmp_path / "cut", settings, progress=False)
    assert log["resumed_from_step"] == 4 and log["step"] == 6
    assert not (tmp_path / "cut.ckpt").exists()
    texts = [t["query"] for t in data[:10]]
    full = EmbeddingModel.load(tmp_path / "full").embed(texts)
    cut = EmbeddingModel.load(tmp_path / "cut").embed(texts)
    np.testing.assert_allclose(full, cut, atol=1e-5)


def test_finetuning_is_seeded_by_the_split_not_the_training_seed():
    assert FinetuneSettings.resolve({"seed": 2022, "split_seed": 2020}).seed == 2020
    assert FinetuneSettings.resolve({"seed": 2022}).seed == 2022


def test_finetune_refuses_a_foreign_out_dir_before_training(tmp_path, tiny_causal):
    from recbole_hnlm.io import ForeignPathError

    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "keep.txt").write_text("keep\n")
    with pytest.raises(ForeignPathError, match=re.escape(str(out)) + r".*embedder\.json"):
        finetune(triples(8, seed=5), out, fast_settings(str(tiny_causal)), progress=False)
    assert (out / "sub" / "keep.txt").read_text() == "keep\n" and sorted(p.name for p in out.iterdir()) == [
        "sub"
    ]
    assert not (tmp_path / "mine.ckpt").exists()


def test_finetune_output_is_marked_and_replaceable(tmp_path, tiny_causal):
    import json

    settings = fast_settings(str(tiny_causal), hnlm_ft_epochs=1)
    data = triples(8, seed=6)
    finetune(data, tmp_path / "emb", settings, progress=False)
    info = json.loads((tmp_path / "emb" / "embedder.json").read_text())
    assert info["format"] == "recbole-hnlm/embedder"
    del info["format"]  # as written before the field existed: still ours
    (tmp_path / "emb" / "embedder.json").write_text(json.dumps(info))
    finetune(data, tmp_path / "emb", settings, progress=False)
    assert json.loads((tmp_path / "emb" / "embedder.json").read_text())["format"] == "recbole-hnlm/embedder"


class _RunsCode:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_state_file_is_refused_not_run(tmp_path, tiny_causal):
    import pickle

    marker = tmp_path / "pwned"
    (tmp_path / "emb.ckpt").mkdir()
    torch.save({"fingerprint": _RunsCode(marker)}, tmp_path / "emb.ckpt" / "state.pt")
    with pytest.raises(pickle.UnpicklingError):
        finetune(triples(8, seed=7), tmp_path / "emb", fast_settings(str(tiny_causal)), progress=False)
    assert not marker.exists()
