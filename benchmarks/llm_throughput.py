"""LLM-stage throughput, side by side in one run (ratios, not absolute timings).

1. Item profiles for N real ml-1m items (titles, years, genres) through the local llama.cpp server
   (xllamacpp + the embedded SmolLM2 GGUF, JSON-schema constrained): one request at a time vs
   ``--slots`` requests in flight. Optionally (``--transformers N``) the same prompts through the
   transformers backend, batched.
2. Embeddings of the generated profiles with the embedded all-MiniLM-L6-v2: one batched call vs one
   text per call.

Writes ``benchmarks/results/llm_throughput.{json,md}``. Usage::

    python -m benchmarks.llm_throughput --data ../shared/data --items 200 --slots 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` when run as a file

from benchmarks.common import SHARED_DATA, machine, write_results
from recbole_hnlm.data.text import dataset_dir, load_item_text
from recbole_hnlm.llm.backends import GenerationParams, LlamaCppChat, TransformersChat
from recbole_hnlm.llm.concurrency import bounded_map
from recbole_hnlm.llm.embedders import SentenceTransformerEmbedder
from recbole_hnlm.llm.parsing import generate_structured, profile_task
from recbole_hnlm.llm.prompts import ItemRecord, PromptBudget, item_profile_messages
from recbole_hnlm.stages.common import LLMSettings

# the profile stage's schema at the plugin's defaults (LLMSettings mirrors overall.yaml, tested)
PROFILE_TASK = profile_task(LLMSettings.profile_summary_chars, LLMSettings.profile_reasoning_chars)


def run_profiles(backend, prompts, params, workers: int) -> dict:
    start = time.perf_counter()
    outcomes = [
        o
        for _, o in bounded_map(
            lambda m: generate_structured(backend, m, PROFILE_TASK, params, max_repairs=0),
            prompts,
            max_workers=workers,
        )
    ]
    seconds = time.perf_counter() - start
    tokens = sum(o.completion_tokens for o in outcomes)
    statuses = {s: sum(o.status == s for o in outcomes) for s in ("ok", "repaired", "fallback", "failed")}
    return {
        "requests": len(prompts),
        "workers": workers,
        "seconds": round(seconds, 2),
        "profiles_per_s": round(len(prompts) / seconds, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "statuses": statuses,
        "summaries": [(o.value or {}).get("summarization") for o in outcomes],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA))
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--max_tokens", type=int, default=160)
    parser.add_argument("--transformers", type=int, default=0, help="also run N prompts through transformers")
    parser.add_argument("--embed_texts", type=int, default=200, help="texts for the embedding comparison")
    args = parser.parse_args()

    info = machine()
    texts = load_item_text(dataset_dir(args.data, "ml-1m"), "ml-1m", ["movie_title", "release_year", "genre"])
    tokens = sorted(texts, key=int)[: args.items]
    budget = PromptBudget()
    prompts = [item_profile_messages(ItemRecord(t, texts[t]), budget, "movie") for t in tokens]
    params = GenerationParams(max_tokens=args.max_tokens)

    backend = LlamaCppChat(max_concurrency=args.slots)
    generate_structured(backend, prompts[0], PROFILE_TASK, params)  # warm-up
    sequential = run_profiles(backend, prompts, params, workers=1)
    concurrent = run_profiles(backend, prompts, params, workers=args.slots)
    backend.close()
    summaries = [s for s in concurrent.pop("summaries") if s]
    # the generated profiles, topped up with real item descriptions to --embed_texts texts
    extra = [", ".join(texts[t].values()) for t in sorted(texts, key=int)[: args.embed_texts]]
    summaries = (summaries + extra)[: args.embed_texts]
    sequential.pop("summaries")
    result = {
        "machine": info,
        "items": len(prompts),
        "llamacpp_sequential": sequential,
        "llamacpp_concurrent": concurrent,
        "concurrency_ratio": round(concurrent["profiles_per_s"] / sequential["profiles_per_s"], 2),
    }
    if args.transformers:
        start = time.perf_counter()
        local = TransformersChat(max_concurrency=8)
        result["transformers_load_seconds"] = round(time.perf_counter() - start, 1)
        batch = run_profiles(local, prompts[: args.transformers], params, workers=8)
        batch.pop("summaries")
        result["transformers_batched"] = batch
        local.close()

    embedder = SentenceTransformerEmbedder()
    embedder.embed(summaries[:8])  # warm-up
    start = time.perf_counter()
    embedder.embed(summaries)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for text in summaries:
        embedder.embed([text])
    single = time.perf_counter() - start
    result["embedding"] = {
        "texts": len(summaries),
        "batched_texts_per_s": round(len(summaries) / batched, 1),
        "one_per_call_texts_per_s": round(len(summaries) / single, 1),
        "ratio": round(single / batched, 2),
    }
    result["machine"]["load_average_at_end"] = machine()["load_average"]

    seq, con, emb = sequential, concurrent, result["embedding"]
    ratio = result["concurrency_ratio"]
    lines = [
        "# LLM-stage throughput",
        "",
        f"Machine: {info['processor']}, {info['cpu_count']} cores, Python {info['python']}; "
        f"load average at start {info['load_average']} (shared machine: compare ratios, not absolutes).",
        "",
        f"Item profiles, {len(prompts)} real ml-1m items, SmolLM2-135M Q4_1 via llama.cpp (xllamacpp), "
        f"JSON-schema constrained, max_tokens {args.max_tokens}:",
        "",
        "| mode | profiles/s | tokens/s | statuses |",
        "|---|---|---|---|",
        f"| sequential (1 in flight) | {seq['profiles_per_s']} | {seq['tokens_per_s']} | {seq['statuses']} |",
        f"| concurrent ({args.slots} slots) | {con['profiles_per_s']} | {con['tokens_per_s']} "
        f"| {con['statuses']} |",
    ]
    if "transformers_batched" in result:
        tb = result["transformers_batched"]
        lines.append(
            f"| transformers batched (8), {tb['requests']} items | {tb['profiles_per_s']} "
            f"| {tb['tokens_per_s']} | {tb['statuses']} |"
        )
    lines += [
        "",
        f"Concurrency ratio (concurrent / sequential profiles per second): **{ratio}x**",
        "",
        f"Embeddings (all-MiniLM-L6-v2, {emb['texts']} profiles): "
        f"batched {emb['batched_texts_per_s']} texts/s vs "
        f"one per call {emb['one_per_call_texts_per_s']} texts/s: **{emb['ratio']}x**",
        "",
    ]
    write_results("llm_throughput", result, "\n".join(lines))


if __name__ == "__main__":
    main()
