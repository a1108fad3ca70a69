"""How the embedder runs on a CPU: thread count, an inference-only model, and the arithmetic it costs.

- :func:`embedding_threads` sets torch's intra-op threads for one stage and restores them after: by default
  one per CPU this process may run on (``os.sched_getaffinity``), which is what a container or ``taskset``
  grants, where ``os.cpu_count()`` and torch's own default count the whole host.
- :func:`inference_model` folds the LoRA adapter into the base weights (one matmul per projection instead of
  three) and, optionally, quantises the ``Linear`` layers to int8 (dynamic quantisation).
- :func:`resolve_precision` / :func:`inference_precision` resolve ``hnlm_embedder_precision``: ``auto`` is
  bf16 matmuls where the CPU multiplies bf16 natively (AVX512-BF16 or AMX), where they run at about twice
  the fp32 rate, else fp32.
- :func:`encoder_flops` / :func:`gemm_peak_gflops`: the work a batch of texts costs from the model's
  shapes, and the machine's own matmul rate at those shapes, so a throughput can be stated as a fraction of
  what the CPU can do (``benchmarks/embed_batching.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from recbole_hnlm.config_values import config_value


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def infer_threads(config: Any) -> int | None:
    """``hnlm_infer_threads``: the user's thread count for the embedder, None = follow the affinity."""
    value = config_value(config, "hnlm_infer_threads")
    return int(value) if value else None


def infer_int8(config: Any) -> bool:
    """``hnlm_infer_int8``: quantise the embedder's Linear layers to int8 for inference."""
    return bool(config_value(config, "hnlm_infer_int8"))


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles). Elsewhere torch emulates
    bf16 matmuls, slower than fp32, so ``auto`` keeps fp32 there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(value: str) -> str:
    """A ``hnlm_embedder_precision`` value resolved to what runs: ``fp32`` or ``bf16`` (``auto``:
    :func:`native_bf16`). bf16 is mixed precision: weights, pooling and the loss stay fp32, the matmuls run
    in bf16 (torch autocast)."""
    if value not in PRECISIONS:
        raise ValueError(f"config key 'hnlm_embedder_precision' must be one of {PRECISIONS}, got {value!r}")
    if value == "auto":
        return "bf16" if native_bf16() else "fp32"
    return str(value)


def inference_precision(config: Any) -> str:
    """``hnlm_embedder_precision`` of ``config`` resolved for store inference: ``auto`` is fp32 when
    ``hnlm_infer_int8`` quantises the Linear layers (they run int8), an explicit bf16 with int8 is refused."""
    value = config_value(config, "hnlm_embedder_precision")
    if infer_int8(config) and value == "auto":
        return "fp32"
    return resolve_precision(value)


@contextmanager
def embedding_threads(requested: int | None = None) -> Iterator[int]:
    """torch intra-op threads = ``requested`` (a user's setting wins) or :func:`usable_cpus`, restored after.

    Restored because the same process trains next, and the training protocol sets its own thread count."""
    threads = int(requested) if requested else usable_cpus()
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def merge_adapter(model: nn.Module) -> nn.Module:
    """A peft model with its LoRA weights added into the base layers (inference only); others unchanged."""
    merge = getattr(model, "merge_and_unload", None)
    return merge() if callable(merge) else model


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.Linear`` replaced by a dynamically quantised int8 one (activations are
    quantised per batch at run time, weights once here)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    # per output channel: per-tensor scales cost ~0.1 of cosine to fp32 on MiniLM (0.85 vs 0.95 at worst)
    return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def inference_model(model: nn.Module, *, int8: bool = False) -> nn.Module:
    """The adapter merged into the weights, then int8 if asked; in eval mode with no gradients."""
    model = merge_adapter(model).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return quantize_int8(model) if int8 else model


def encoder_shapes(config: Any) -> dict[str, int]:
    """Hidden size, feed-forward size, layers and, when the model declares them, key/value heads."""
    hidden = int(config.hidden_size)
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    return {
        "hidden": hidden,
        "intermediate": int(config.intermediate_size),
        "layers": int(config.num_hidden_layers),
        "heads": heads,
        "kv_heads": int(getattr(config, "num_key_value_heads", heads) or heads),
        # gated MLPs (Llama, Qwen2: gate, up and down) have three projections, BERT's two
        "mlp_mats": 3 if str(getattr(config, "hidden_act", "")).lower() in ("silu", "swish") else 2,
    }


def linear_params_per_token(shapes: dict[str, int]) -> int:
    """Weights every token multiplies through in one layer stack (projections + MLP), biases left out."""
    h, i = shapes["hidden"], shapes["intermediate"]
    kv = h * shapes["kv_heads"] // shapes["heads"]
    attention = h * h * 2 + h * kv * 2  # q and o: h x h; k and v: h x kv
    return shapes["layers"] * (attention + shapes["mlp_mats"] * h * i)


def encoder_flops(config: Any, lengths: Sequence[int]) -> float:
    """FLOPs of running sequences of ``lengths`` tokens (padded ones included if passed so): 2 per weight per
    token, plus the attention scores and the weighted sum (2·2·L²·h per sequence and layer)."""
    shapes = encoder_shapes(config)
    per_token = 2 * linear_params_per_token(shapes)
    attention = sum(4 * n * n * shapes["hidden"] for n in lengths) * shapes["layers"]
    return float(per_token * sum(lengths) + attention)


def gemm_peak_gflops(
    tokens: int, hidden: int, intermediate: int, *, repeats: int = 20, dtype: torch.dtype = torch.float32
) -> dict[str, float]:
    """The best rate of the encoder's three matmul shapes at ``tokens`` rows, in GFLOP/s (best of
    ``repeats``, after one warm-up): ``[t, h]x[h, h]`` (a projection), ``[t, h]x[h, i]`` and ``[t, i]x[i, h]``
    (the MLP). Run with the same thread count as the embedding it is compared with."""
    shapes = {
        "proj": (hidden, hidden),
        "mlp_up": (hidden, intermediate),
        "mlp_down": (intermediate, hidden),
    }
    rates: dict[str, float] = {}
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for name, (k, n) in shapes.items():
            a = torch.randn(tokens, k, generator=generator, dtype=dtype)
            b = torch.randn(k, n, generator=generator, dtype=dtype)
            torch.mm(a, b)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                torch.mm(a, b)
                best = min(best, time.perf_counter() - start)
            rates[name] = 2.0 * tokens * k * n / best / 1e9
    rates["peak"] = max(rates.values())
    return rates
