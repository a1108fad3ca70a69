"""The factored store's inference stage on a real dataset, against the per-pair stage it replaces.

In one process, on the dataset's default split and with the same embedder:

- the factored stage itself (``infer_factored_store``: |U| + |I| encodings, the composition, the atomic
  write), timed end to end;
- the per-pair rate on a random sample of the pair queries (``--sample``; the full per-pair stage is not
  run), from which the full per-pair time is estimated, beside the README's one-thread 66 queries/s;
- how close the composed h(u, i) is to the pair query's own embedding on that sample, for several item
  weights w (cosine), with the cosine to another random pair's embedding as the chance level.

Without ``--adapter`` the embedder is a fresh LoRA adapter on the base model (B = 0: the base model's
embeddings, merged for inference like a fine-tuned one), which costs the same per text; the cosines then
describe the base model, not a fine-tuned adapter.

    python -m benchmarks.factored_store [--dataset ml-100k] [--adapter DIR] [--sample 1500] [--threads 1]

Writes benchmarks/results/factored_store.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` when run as a file

from benchmarks.common import machine, write_results

WEIGHTS = (0.3, 0.5, 0.7)
README_PAIR_RATE = 66.0  # queries/s of the per-pair stage on one thread, idle 2-core machine (README)


def fresh_adapter(folder: Path, config) -> Path:
    """A LoRA adapter that is still the base model, saved as finetune saves one."""
    from recbole_hnlm.llm.embedding_model import EmbeddingModel
    from recbole_hnlm.stages.finetune import FinetuneSettings

    model = EmbeddingModel.create(FinetuneSettings.resolve(config).spec())
    info = {"dataset": config["dataset"], "fingerprint": "untrained", "supervision_settings": {}}
    model.save(folder, info=info)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--adapter", default=None, help="a fine-tuned adapter (default: a fresh one)")
    parser.add_argument("--sample", type=int, default=1500, help="pair queries embedded for the pair rate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import recbole_hnlm  # noqa: F401
    from recbole_hnlm.config import make_config
    from recbole_hnlm.llm.cpu_runtime import embedding_threads
    from recbole_hnlm.llm.embedding_model import EmbeddingModel, read_adapter_info
    from recbole_hnlm.negatives.store import SemanticNegativeStore
    from recbole_hnlm.stages.common import training_view
    from recbole_hnlm.stages.inference import adapter_queries, training_pairs
    from recbole_hnlm.stages.inference_factored import compose, factor_pairs, infer_factored_store

    settings = {"state": "ERROR", "show_progress": False, "hnlm_infer_threads": args.threads}
    config = make_config("HNLMLightGCN", args.dataset, config_dict=settings)
    view = training_view(config)
    users, items = training_pairs(view)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        adapter = Path(args.adapter) if args.adapter else fresh_adapter(root / "adapter", config)
        start = time.perf_counter()
        store = SemanticNegativeStore(infer_factored_store(config, root, adapter, view=view, progress=False))
        factored_seconds = time.perf_counter() - start
        details = store.meta.details

        # the pair queries of a sample, embedded by the same merged model
        _, builder = adapter_queries(config, root, read_adapter_info(adapter), view)
        model = EmbeddingModel.load(adapter).for_inference()
        pick = np.random.default_rng(args.seed).choice(
            len(users), size=min(args.sample, len(users)), replace=False
        )
        queries = [builder.query(users[k], items[k]) for k in pick]
        with embedding_threads(args.threads):
            start = time.perf_counter()
            pair_vectors = model.embed(queries, batch_size=64)
            pair_seconds = time.perf_counter() - start
            sample_users, sample_items, user_rows, item_rows = factor_pairs(
                [users[k] for k in pick], [items[k] for k in pick]
            )
            parts = model.embed(
                [builder.user_part(u) for u in sample_users] + [builder.item_part(i) for i in sample_items]
            )
    n_users = len(sample_users)
    closeness = {}
    for weight in WEIGHTS:
        h = compose(parts[:n_users], parts[n_users:], user_rows, item_rows, weight)
        sims = (h * pair_vectors).sum(1)
        closeness[str(weight)] = {"mean": float(sims.mean()), "p10": float(np.quantile(sims, 0.1))}
    shuffled = pair_vectors[np.random.default_rng(args.seed + 1).permutation(len(pair_vectors))]
    chance = float((pair_vectors * shuffled).sum(1).mean())

    pair_rate = len(queries) / pair_seconds
    encodings = details["encodings"]["users"] + details["encodings"]["items"]
    payload = {
        "machine": machine(),
        "dataset": args.dataset,
        "adapter": str(args.adapter) if args.adapter else "fresh (base model)",
        "threads": args.threads,
        "pairs": len(users),
        # the stage's own details, less where its adapter lay (a temporary folder: a path of this machine)
        "factored": {
            "encodings": encodings,
            "seconds": round(factored_seconds, 1),
            **{k: v for k, v in details.items() if k != "adapter_dir"},
        },
        "pair_sample": {
            "queries": len(queries),
            "seconds": round(pair_seconds, 2),
            "rate": round(pair_rate, 1),
        },
        "pair_estimate_seconds": {
            "at_sampled_rate": round(len(users) / pair_rate, 1),
            "at_readme_rate": round(len(users) / README_PAIR_RATE, 1),
        },
        "cosine_to_pair_vector": closeness,
        "cosine_chance": chance,
    }
    rows = "\n".join(f"| {w} | {c['mean']:.3f} | {c['p10']:.3f} |" for w, c in closeness.items())
    command = (
        f"python -m benchmarks.factored_store --dataset {args.dataset} --threads {args.threads} "
        f"--sample {len(queries)}"
    )
    pair_full = len(users) / pair_rate
    lines = [
        f"# Factored store vs per-pair inference ({args.dataset})",
        "",
        f"`{command}` ({payload['adapter']} adapter), load average {payload['machine']['load_average']} at "
        f"the end, {payload['machine']['date']}.",
        "",
        "| | encodings | seconds | |",
        "|---|---:|---:|---|",
        f"| factored stage (end to end, store written) | {encodings:,} | {factored_seconds:.1f} | measured |",
        f"| per-pair stage at this run's sampled rate ({pair_rate:.1f} q/s) | {len(users):,} | "
        f"{pair_full:.0f} | estimated |",
        f"| per-pair stage at the README's one-thread rate (66 q/s) | {len(users):,} | "
        f"{len(users) / README_PAIR_RATE:.0f} | estimated |",
        "",
        f"Speed-up over the per-pair stage at the sampled rate: {pair_full / factored_seconds:.0f}x.",
        "",
        "Cosine of the composed h(u, i) = normalise(w item + (1 - w) user) to the pair query's own embedding "
        f"({len(queries)} sampled pairs; another random pair's embedding: {chance:.3f}):",
        "",
        "| w | mean | 10th percentile |",
        "|---|---:|---:|",
        rows,
        "",
    ]
    markdown = "\n".join(lines)
    write_results("factored_store", payload, markdown)


if __name__ == "__main__":
    main()
