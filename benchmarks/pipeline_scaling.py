"""The semantic pipeline's cold cost by stage at fractions of a dataset, its fitted growth, and a projection.

    python -m benchmarks.pipeline_scaling --dataset toys [--data_path ../shared/data] [--fractions 0.25,0.5,1]
        [--epochs 2] [--text_fields "['keywords']"] [--workers 1,8,64] [--design mix|default]

For each fraction f, in one process on one thread:

- the dataset cut to a seeded f share of its users, each with all its interactions (the ``.item`` and
  ``.user`` files cut to what remains), written under a temporary data path with the dataset's own name,
  so that its yaml (filters, split, text fields) applies;
- ``--design mix`` (the paper's mix mode, ``--sampler=hnlm-mix``): the HNLM store pipeline run cold in
  factored mode in a fresh artifact folder: CF supervision, LoRA fine-tuning, inference; each stage's
  seconds are read from the ``pipeline-hnlm.json`` it writes; ``--design default`` (``--sampler=hnlm``,
  item-anchored alignment): the item vectors embedded cold, its only stage before training;
- ``--epochs`` epochs of HNLM-LightGCN with that design, after one warm-up epoch: seconds per epoch.

Growth: per stage, the exponent b of seconds ≈ a·n^b, fitted by least squares on log-log over the
fractions, n being the stage's own size: interactions for supervision (CF training and mining) and for a
training epoch, users for fine-tuning (one triple per user), users + items for factored inference, items
for the item vectors.

Projection (stated as such, not measured): at 10M and 100M interactions, with as many users and items per
interaction as the measured dataset has, each stage's fit evaluated at its size; fine-tuning is one job,
inference splits over W workers (Ray actors of one such core each, each at the measured rate), and an
epoch's time is per epoch. No GPU rate is projected: none was measured.

Results merge per dataset into ``benchmarks/results/pipeline_scaling.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` when run as a file

import recbole_hnlm  # noqa: F401
from benchmarks.common import PROTOCOL, RESULTS, SHARED_DATA, epoch_runner, machine, write_results
from recbole_hnlm.config import make_config
from recbole_hnlm.llm.cpu_runtime import inference_precision
from recbole_hnlm.pipeline import ensure_hnlm_store, ensure_item_vectors
from recbole_hnlm.quick_start import sampler_overrides

NAME = "pipeline_scaling"
# each design's stages before training, then its training epoch
STAGES = {
    "mix": ("supervision", "finetune", "inference", "epoch"),
    "default": ("item_vectors", "epoch"),
}
# the size each stage's time follows (see the docstring)
SIZE_OF = {
    "supervision": "interactions",
    "finetune": "users",
    "inference": "users+items",
    "item_vectors": "items",
    "epoch": "interactions",
}
TARGETS = (10_000_000, 100_000_000)
# stages projected linearly in their size instead of fitted (see project)
LINEAR = frozenset({"item_vectors"})


def read_atomic(path: Path) -> tuple[str, list[str]]:
    """An atomic file's header line and data lines (text, newline stripped)."""
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n")
        return header, [line.rstrip("\n") for line in handle if line.strip()]


def column(header: str, prefix: str, path: Path) -> int:
    """The index of the header's ``prefix:type`` column (an error naming the file when it has none)."""
    names = [name.split(":", 1)[0] for name in header.split("\t")]
    if prefix not in names:
        raise ValueError(f"{path}: no {prefix!r} column in header {header!r}")
    return names.index(prefix)


def cut_users(source: Path, target: Path, dataset: str, fraction: float, seed: int = 2020) -> dict[str, int]:
    """Write ``target/<dataset>/`` with a seeded ``fraction`` of ``source/<dataset>/``'s users, each with all
    its interactions, and the item and user rows they keep. Returns the raw counts written."""
    folder = target / dataset
    folder.mkdir(parents=True, exist_ok=True)
    inter_path = source / dataset / f"{dataset}.inter"
    header, lines = read_atomic(inter_path)
    user_col, item_col = column(header, "user_id", inter_path), column(header, "item_id", inter_path)
    rows = [line.split("\t") for line in lines]
    users = sorted({row[user_col] for row in rows})
    chosen = np.random.default_rng(seed).permutation(len(users))[: max(1, round(fraction * len(users)))]
    kept_users = {users[k] for k in chosen}
    kept_rows = [(line, row) for line, row in zip(lines, rows) if row[user_col] in kept_users]
    kept = [line for line, _ in kept_rows]
    kept_items = {row[item_col] for _, row in kept_rows}
    (folder / f"{dataset}.inter").write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    for suffix, ids, field in (("item", kept_items, "item_id"), ("user", kept_users, "user_id")):
        path = source / dataset / f"{dataset}.{suffix}"
        if path.is_file():
            side_header, side_lines = read_atomic(path)
            k = column(side_header, field, path)
            chosen_lines = [line for line in side_lines if line.split("\t")[k] in ids]
            (folder / f"{dataset}.{suffix}").write_text(
                "\n".join([side_header, *chosen_lines]) + "\n", encoding="utf-8"
            )
    return {"users": len(kept_users), "items": len(kept_items), "interactions": len(kept)}


def base_config(data_path: Path, work: Path, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        **PROTOCOL,
        **extra,
        "data_path": str(data_path),
        "artifact_dir": str(work / "artifacts"),
        "hnlm_store_mode": "factored",
        "hnlm_infer_threads": 1,
    }


def epoch_seconds(dataset: str, config_dict: dict[str, Any], epochs: int) -> list[float]:
    """Seconds of ``epochs`` HNLM-LightGCN epochs after one warm-up epoch (first-touch allocations)."""
    run_epoch = epoch_runner("HNLMLightGCN", dataset, config_dict)
    run_epoch()
    times = []
    for _ in range(epochs):
        begin = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - begin)
    return times


def measure_default(
    dataset: str, data_path: Path, work: Path, extra: dict[str, Any], epochs: int
) -> dict[str, Any]:
    """The default design's cold cost: the item vectors, then HNLM-LightGCN's seconds per epoch with it."""
    base = {**base_config(data_path, work, extra), **sampler_overrides("hnlm", None)}
    config = make_config("HNLMLightGCN", dataset, config_dict=base)
    start = time.perf_counter()
    vectors = ensure_item_vectors(config)
    built = time.perf_counter() - start
    times = epoch_seconds(dataset, {**base, "item_vectors": str(vectors)}, epochs)
    return {
        # the item vectors come from the sentence-transformers model, which runs fp32:
        # hnlm_embedder_precision is the mix mode's fine-tuned embedder's
        "precision": "fp32",
        "stages_seconds": {"item_vectors": round(built, 1), "epoch": round(statistics.median(times), 2)},
        "epoch_seconds": [round(t, 2) for t in times],
        "pipeline_seconds": round(built, 1),
    }


def measure(dataset: str, data_path: Path, work: Path, extra: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The cold factored pipeline's per-stage seconds and HNLM-LightGCN's seconds per epoch on its store."""
    base = base_config(data_path, work, extra)
    config = make_config("HNLMLightGCN", dataset, config_dict=base)
    start = time.perf_counter()
    store = ensure_hnlm_store(config, progress=False)
    pipeline_seconds = time.perf_counter() - start
    log = json.loads((work / "artifacts" / dataset / "pipeline-hnlm.json").read_text())
    stages = {row["stage"]: row["seconds"] for row in log["stages"]}
    meta = json.loads((Path(store) / "meta.json").read_text())
    times = epoch_seconds(dataset, {**base, **sampler_overrides("hnlm-mix", str(store))}, epochs)
    return {
        "cf_model": str(config["hnlm_cf_model"]),
        "precision": inference_precision(config),
        "stages_seconds": {**stages, "epoch": round(statistics.median(times), 2)},
        "epoch_seconds": [round(t, 2) for t in times],
        "pipeline_seconds": round(pipeline_seconds, 1),
        "store_count": meta.get("count"),
        "store_report": meta.get("details", {}).get("report"),
    }


def fit_growth(sizes: list[float], seconds: list[float]) -> dict[str, float]:
    """seconds ≈ a·size^b by least squares on log-log: ``{"a": a, "b": b}`` (2+ sizes)."""
    if len(sizes) < 2:
        raise ValueError(f"a growth fit needs two sizes or more, got {len(sizes)}")
    b, log_a = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return {"a": float(math.exp(log_a)), "b": float(b)}


def stage_sizes(counts: dict[str, int]) -> dict[str, float]:
    return {
        "interactions": counts["interactions"],
        "users": counts["users"],
        "items": counts["items"],
        "users+items": counts["users"] + counts["items"],
    }


def project(points: list[dict[str, Any]], workers: list[int], design: str = "mix") -> dict[str, Any]:
    """Each stage's fit, and its value at the target interaction counts (users and items per interaction as
    in the largest measured point); the mix mode's inference divided over each worker count."""
    stages = STAGES[design]
    top = max(points, key=lambda p: p["counts"]["interactions"])
    largest = top["counts"]
    fits = {}
    for stage in stages:
        if stage in LINEAR:
            # the user fractions keep most items, so a fit over them reads noise: one text per item is linear
            # by construction, at the largest point's rate (its fixed costs included: an upper bound)
            size = stage_sizes(largest)[SIZE_OF[stage]]
            fits[stage] = {"a": top["stages_seconds"][stage] / size, "b": 1.0, "assumed": True}
            continue
        sizes = [stage_sizes(p["counts"])[SIZE_OF[stage]] for p in points]
        fits[stage] = fit_growth(sizes, [max(p["stages_seconds"][stage], 0.05) for p in points])
    projections = []
    for target in TARGETS:
        scale = target / largest["interactions"]
        counts = {k: largest[k] * scale for k in ("users", "items", "interactions")}
        sizes = stage_sizes(counts)
        seconds = {s: fits[s]["a"] * sizes[SIZE_OF[s]] ** fits[s]["b"] for s in stages}
        projection = {
            "interactions": target,
            "users": round(counts["users"]),
            "items": round(counts["items"]),
            "seconds": {s: round(v, 1) for s, v in seconds.items()},
        }
        if "inference" in seconds:
            projection["inference_seconds_on_workers"] = {
                str(w): round(seconds["inference"] / w, 1) for w in workers
            }
        projections.append(projection)
    return {"fits": fits, "projections": projections}


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# Semantic pipeline: cold cost by stage against dataset size",
        "",
        "Written by `benchmarks/pipeline_scaling.py` (its docstring has the method). Factored store, one CPU",
        "thread, each fraction a seeded share of the users with all their interactions, run cold in a fresh",
        "artifact folder. *epoch*: one HNLM-LightGCN training epoch on the store (median). b: the fitted",
        "exponent of seconds ≈ a·n^b, n the stage's size (supervision and epoch: interactions; fine-tuning:",
        "users; inference: users + items). RecBole's LightGCN propagates the whole graph for every batch, so",
        "an epoch costs (|R| / batch) × O(|R|): quadratic in the interactions. *miner*: the supervision's CF",
        "backbone (`hnlm_cf_model`, `hnlm_cf_epochs` epochs); a LightGCN miner is quadratic too, BPR linear.",
        "*embedder*: the arithmetic of fine-tuning and inference (`hnlm_embedder_precision`; points measured",
        "before it existed ran fp32). Sections marked *default design* time `--sampler=hnlm` (item-anchored",
        "alignment) instead: its one stage before training embeds each item's text once (b against items).",
    ]
    for name, entry in payload["datasets"].items():
        m = entry["machine"]
        lines += [
            "",
            f"## {name}",
            "",
            f"Machine: {m.get('processor')}, {m.get('cpu_count')} CPUs, one used (`taskset`), load average "
            f"{', '.join(f'{x:.1f}' for x in m.get('load_average') or ())}, {m.get('date')}."
            + (f" {entry['note']}" if entry.get("note") else ""),
            "",
        ]
        lines += design_section(entry)
    return "\n".join(lines) + "\n"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def point_row(point: dict[str, Any], design: str) -> list[str]:
    """One measured fraction: its counts, then the design's own columns (:data:`POINT_HEADERS`)."""
    c, s = point["counts"], point["stages_seconds"]
    counts = [f"{point['fraction']:.0%}", f"{c['users']:,}", f"{c['items']:,}", f"{c['interactions']:,}"]
    if design == "default":
        return [*counts, point["precision"], f"{s['item_vectors']:.1f}", f"{s['epoch']:.2f}"]
    return [
        *counts,
        point["cf_model"],
        point.get("precision", "fp32"),
        *(f"{s[stage]:.1f}" for stage in ("supervision", "finetune", "inference")),
        f"{s['epoch']:.2f}",
        f"{point['pipeline_seconds']:.1f}",
    ]


COUNT_HEADERS = ["fraction", "users", "items", "interactions"]
STORE_HEADERS = ["supervision s", "fine-tuning s", "inference s", "epoch s", "store total s"]
POINT_HEADERS = {
    "mix": [*COUNT_HEADERS, "miner", "embedder", *STORE_HEADERS],
    "default": [*COUNT_HEADERS, "embedder", "item vectors s", "epoch s"],
}
PROJECTED = {"mix": ("supervision", "finetune"), "default": ("item_vectors",)}
STAGE_LABEL = {"finetune": "fine-tuning", "item_vectors": "item vectors"}
PROJECTION_NOTE = {
    "mix": "interaction, this machine's one-core rates; inference split over W workers of one core each.",
    "default": "interaction, this machine's one-core rates.",
}


def design_section(entry: dict[str, Any]) -> list[str]:
    """An entry's measured points, and with two or more its fitted exponents and projection."""
    design = entry.get("design", "mix")  # entries written before designs were named are the mix mode's
    lines = table(POINT_HEADERS[design], [point_row(p, design) for p in entry["points"]])
    if len(entry["points"]) < 2:  # one size fits no growth: no exponents, no projection
        return [*lines, "", "One size measured: no growth fitted, nothing projected."]
    fits = entry["projection"]["fits"]
    exponents = ", ".join(
        f"{STAGE_LABEL.get(s, s)} b = {fits[s]['b']:.2f}"
        + (" (linear by construction)" if fits[s].get("assumed") else "")
        for s in STAGES[design]
    )
    workers = entry["workers"] if design == "mix" else []
    headers = ["interactions", "users", "items", *(STAGE_LABEL.get(s, s) for s in PROJECTED[design])]
    headers += [f"inference on {w}" for w in workers] + ["epoch"]
    rows = []
    for p in entry["projection"]["projections"]:
        s = p["seconds"]
        # by the worker list: the JSON's keys come back sorted as strings ("1", "64", "8")
        on_workers = [duration(p["inference_seconds_on_workers"][str(w)]) for w in workers]
        stages = [duration(s[stage]) for stage in PROJECTED[design]]
        counts = [f"{p['interactions']:,}", f"{p['users']:,}", f"{p['items']:,}"]
        rows.append([*counts, *stages, *on_workers, duration(s["epoch"])])
    return [
        *lines,
        "",
        f"Fitted exponents: {exponents}.",
        "",
        "Projection (not measured): stage times at the target size, this dataset's users and items per",
        PROJECTION_NOTE[design],
        "",
        *table(headers, rows),
    ]


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default=str(SHARED_DATA))
    parser.add_argument("--fractions", default="0.25,0.5,1")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--text_fields", default=None, help="a yaml list, e.g. \"['keywords']\"")
    parser.add_argument("--workers", default="1,8,64", help="worker counts of the inference projection")
    parser.add_argument("--note", default="", help="a sentence on the conditions, printed with the machine")
    parser.add_argument("--label", default=None, help="the entry's name on the page (default: the dataset)")
    parser.add_argument(
        "--design",
        choices=sorted(STAGES),
        default="mix",
        help="mix: the paper's mix mode's store pipeline (hnlm-mix); default: --sampler=hnlm's item vectors",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    extra: dict[str, Any] = {}
    if args.text_fields:
        import yaml

        extra["text_fields"] = yaml.safe_load(args.text_fields)
    work_root = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    os.chdir(work_root)  # RecBole writes log/ folders into the working directory
    points = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        work = work_root / f"f{fraction:g}"
        counts = cut_users(Path(args.data_path), work / "data", args.dataset, fraction)
        print(f"[scaling] {args.dataset} {fraction:.0%}: {counts}", flush=True)
        run = measure_default if args.design == "default" else measure
        result = run(args.dataset, work / "data", work, extra, args.epochs)
        points.append({"fraction": fraction, "counts": counts, **result})
        print(f"[scaling] {fraction:.0%}: {result['stages_seconds']}", flush=True)
    workers = [int(w) for w in args.workers.split(",")]
    path = RESULTS / f"{NAME}.json"
    payload = json.loads(path.read_text()) if path.is_file() else {"datasets": {}}
    payload["datasets"][args.label or args.dataset] = {
        "points": points,
        "workers": workers,
        "design": args.design,
        "projection": project(points, workers, args.design) if len(points) > 1 else None,
        "epochs_timed": args.epochs,
        "note": args.note,
        "machine": machine(),
    }
    write_results(NAME, payload, markdown(payload))


def rewrite(note: str | None = None, dataset: str | None = None) -> None:
    """Re-render the page from the JSON (optionally setting ``dataset``'s note), measuring nothing."""
    path = RESULTS / f"{NAME}.json"
    payload = json.loads(path.read_text())
    if note is not None and dataset is not None:
        payload["datasets"][dataset]["note"] = note
    write_results(NAME, payload, markdown(payload))


if __name__ == "__main__":
    main()
