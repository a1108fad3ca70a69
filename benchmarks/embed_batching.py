"""Embedding throughput: our batched, length-sorted inference vs one query per forward pass.

The reference HNLMRec inference script embeds one (user, item) query per forward pass. This benchmark
embeds the same real ml-100k queries (item text + the user's recent titles, as the pipeline builds them
without LLM profiles) with the same model and LoRA adapter both ways, in one run, and reports the ratio
and the largest difference between the two sets of vectors.

    python -m benchmarks.embed_batching [--model all-MiniLM-L6-v2] [--n 256] [--batch_size 64]

Writes benchmarks/results/embed_batching.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` when run as a file

from benchmarks.common import machine, write_results


def queries(n: int, seed: int) -> list[str]:
    import recbole_hnlm  # noqa: F401
    from recbole_hnlm.config import make_config
    from recbole_hnlm.stages.common import training_view
    from recbole_hnlm.stages.inference import training_pairs
    from recbole_hnlm.stages.supervision import QueryBuilder, SupervisionSettings

    config = make_config("HNLMLightGCN", "ml-100k", config_dict={"state": "ERROR", "show_progress": False})
    view = training_view(config)
    builder = QueryBuilder.build(view, None, SupervisionSettings(hnlm_use_profiles=False))
    users, items = training_pairs(view)
    pick = np.random.default_rng(seed).choice(len(users), size=n, replace=False)
    return [builder.query(users[k], items[k]) for k in pick]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from recbole_hnlm.llm.embedding_model import EmbedderSpec, EmbeddingModel

    texts = queries(args.n, args.seed)
    torch.manual_seed(args.seed)
    model = EmbeddingModel.create(EmbedderSpec.for_model(args.model))
    with torch.no_grad():  # a non-trivial adapter, as after fine-tuning
        for name, param in model.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    model.embed(texts[:8], batch_size=8)  # warm-up
    lengths = [len(r) for r in model.tokenize(texts)]

    start = time.perf_counter()
    single = model.embed_one_by_one(texts)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = model.embed(texts, batch_size=args.batch_size)
    batched_s = time.perf_counter() - start

    result = {
        "benchmark": "embed_batching",
        "model": args.model,
        "spec": model.spec.as_dict(),
        "queries": args.n,
        "query_tokens": {"mean": float(np.mean(lengths)), "min": min(lengths), "max": max(lengths)},
        "batch_size": args.batch_size,
        "one_per_forward": {"seconds": round(single_s, 3), "queries_per_s": round(args.n / single_s, 1)},
        "batched_sorted": {"seconds": round(batched_s, 3), "queries_per_s": round(args.n / batched_s, 1)},
        "speedup": round(single_s / batched_s, 2),
        "max_abs_diff": float(np.abs(single - batched).max()),
        "machine": machine(),
    }
    m = result["machine"]
    md = [
        "# Embedding throughput: batched vs one query per forward pass",
        "",
        f"Model {args.model} + LoRA adapter, {args.n} real ml-100k queries "
        f"(mean {result['query_tokens']['mean']:.0f} tokens, max {result['query_tokens']['max']}), "
        f"{m['torch_threads']} torch threads on {m['processor']} ({m['cpu_count']} logical CPUs), "
        f"torch {m['torch']}, {m['date']}. Both ways ran in the same process, one after the other.",
        "",
        "| method | seconds | queries/s |",
        "|---|---:|---:|",
        f"| one query per forward pass (reference code) | {single_s:.2f} | {args.n / single_s:.1f} |",
        f"| batched ({args.batch_size}), sorted by length (ours) | {batched_s:.2f} | "
        f"{args.n / batched_s:.1f} |",
        "",
        f"**Speed-up: {result['speedup']}x** (target >= 5x). Largest difference between the two sets of "
        f"vectors: {result['max_abs_diff']:.2e}.",
        "",
        "The host is a shared 2-vCPU VM; other jobs may run at the same time, so absolute numbers are "
        "noisy. The ratio is measured in one run.",
        "",
    ]
    write_results("embed_batching", result, "\n".join(md))


if __name__ == "__main__":
    main()
