"""The embedder's CPU runtime: threads from the affinity, the merged/int8 inference model, FLOP counts."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import yaml
from hnlm_tiny import save_tiny

from recbole_hnlm.config import PROPERTIES_DIR
from recbole_hnlm.llm import cpu_runtime
from recbole_hnlm.llm.cpu_runtime import (
    embedding_threads,
    encoder_flops,
    gemm_peak_gflops,
    infer_int8,
    infer_threads,
    inference_precision,
    resolve_precision,
    usable_cpus,
)
from recbole_hnlm.llm.embedding_model import EmbedderSpec, EmbeddingModel

TEXTS = [
    " ".join(["action", "comedy", "space", "robots", "love"][: 1 + k % 5] * (1 + k % 3)) for k in range(12)
]


def test_threads_follow_the_affinity_and_are_restored():
    before = torch.get_num_threads()
    with embedding_threads(None) as threads:
        assert threads == usable_cpus() == len(os.sched_getaffinity(0))
        assert torch.get_num_threads() == threads
    assert torch.get_num_threads() == before


def test_a_users_thread_count_wins(monkeypatch):
    monkeypatch.setattr(cpu_runtime, "usable_cpus", lambda: 7)
    with embedding_threads(1) as threads:
        assert threads == 1 and torch.get_num_threads() == 1
    assert infer_threads({"hnlm_infer_threads": 3}) == 3


def test_the_new_keys_default_in_the_plugin_yaml_only():
    defaults = yaml.safe_load((PROPERTIES_DIR / "overall.yaml").read_text())
    assert defaults["hnlm_infer_threads"] is None  # ~ = the affinity
    assert defaults["hnlm_infer_int8"] is False
    assert infer_threads({"hnlm_infer_threads": None}) is None
    assert infer_int8({"hnlm_infer_int8": True}) is True
    assert infer_int8({"hnlm_infer_int8": False}) is False


@pytest.mark.parametrize("kind", ["encoder", "causal"])
def test_the_merged_model_embeds_like_the_adapter(tmp_path, kind):
    torch.manual_seed(0)
    model = EmbeddingModel.create(EmbedderSpec.for_model(str(save_tiny(tmp_path / kind, kind))))
    with torch.no_grad():
        for name, param in model.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    reference = model.embed(TEXTS, batch_size=4)
    merged = model.for_inference()
    assert not any("lora" in name for name, _ in merged.model.named_parameters())
    np.testing.assert_allclose(merged.embed(TEXTS, batch_size=4), reference, atol=2e-5)
    assert merged.dim == model.dim


def test_int8_quantises_the_linear_layers_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model = EmbeddingModel.create(EmbedderSpec.for_model(str(save_tiny(tmp_path / "enc", "encoder"))))
    reference = model.embed(TEXTS, batch_size=4)
    int8 = model.for_inference(int8=True)
    assert not any(type(m) is torch.nn.Linear for m in int8.model.modules())
    vectors = int8.embed(TEXTS, batch_size=4)
    assert vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (
        float((vectors * reference).sum(1).min()) > 0.9
    )  # a random tiny model: loose, the bench checks 0.99


def test_precision_auto_follows_the_cpus_bf16_and_bad_values_name_the_key(monkeypatch):
    assert yaml.safe_load((PROPERTIES_DIR / "overall.yaml").read_text())["hnlm_embedder_precision"] == "auto"
    monkeypatch.setattr(cpu_runtime, "native_bf16", lambda: True)
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("fp32") == "fp32"
    # int8 inference runs its Linear layers in int8: auto then means fp32, an explicit bf16 is refused later
    assert inference_precision({"hnlm_embedder_precision": "auto", "hnlm_infer_int8": True}) == "fp32"
    assert inference_precision({"hnlm_embedder_precision": "auto", "hnlm_infer_int8": False}) == "bf16"
    monkeypatch.setattr(cpu_runtime, "native_bf16", lambda: False)
    assert resolve_precision("auto") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="hnlm_embedder_precision"):
        resolve_precision("fp16")


def test_bf16_embeds_close_to_fp32_and_refuses_int8_with_it(tmp_path):
    torch.manual_seed(0)
    spec = EmbedderSpec.for_model(str(save_tiny(tmp_path / "enc", "encoder")))
    model = EmbeddingModel.create(spec)
    reference = model.embed(TEXTS, batch_size=4)
    bf16 = EmbeddingModel(spec, model.model, model.tokenizer, precision="bf16")
    vectors = bf16.embed(TEXTS, batch_size=4)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # pooled in fp32
    cosine = (vectors * reference).sum(1)
    assert cosine.min() > 0.99 and not np.array_equal(vectors, reference)  # bf16 did run, and stayed close
    with pytest.raises(ValueError, match="exclude each other"):
        model.for_inference(int8=True, precision="bf16")
    with pytest.raises(ValueError, match="'fp32' or 'bf16'"):
        EmbeddingModel(spec, model.model, model.tokenizer, precision="auto")


def test_encoder_flops_count_weights_twice_per_token_plus_attention():
    from transformers import BertConfig, LlamaConfig

    bert = BertConfig(hidden_size=8, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    per_layer = 4 * 8 * 8 + 2 * 8 * 32  # q, k, v, o + the two MLP matrices
    expected = 2 * 2 * per_layer * (3 + 5) + 2 * 4 * 8 * (3 * 3 + 5 * 5)
    assert encoder_flops(bert, [3, 5]) == expected
    llama = LlamaConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2
    )
    per_layer = 2 * 8 * 8 + 2 * 8 * 4 + 3 * 8 * 16  # q, o full; k, v at half the heads; gated MLP
    assert encoder_flops(llama, [2]) == 2 * per_layer * 2 + 4 * 2 * 2 * 8


def test_gemm_peak_reports_each_shape_and_the_best():
    rates = gemm_peak_gflops(16, 8, 32, repeats=2)
    assert set(rates) == {"proj", "mlp_up", "mlp_down", "peak"}
    assert rates["peak"] == max(rates["proj"], rates["mlp_up"], rates["mlp_down"]) > 0
