"""Throughput and peak memory of ``recbole-hnlm prepare`` on a synthetic Amazon-2018-style reviews dump.

    python -m benchmarks.prepare_throughput [--lines 1000000] [--tracemalloc]

Writes a gzip reviews file (power-law users and items, ratings 1-5, times 2012-2019, ~200-character
reviews) and a metadata file into a temp folder, then runs the toys preparation (rating >= 4,
2015-2018 window, 10-core). Side by side in the same run it times the floor of any pure-Python reader:
gunzip + ``json.loads`` of every line. Peak memory: the process's max RSS (the file is generated in a
child process so it does not count) and, with ``--tracemalloc``, Python's peak allocations (slower).
Results go to ``benchmarks/results/prepare_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_results  # noqa: E402
from recbole_hnlm.data.prepare import PrepareConfig, prepare_dataset  # noqa: E402
from recbole_hnlm.data.prepare.readers import open_lines  # noqa: E402

WORDS = [
    "fun",
    "toy",
    "kids",
    "great",
    "gift",
    "quality",
    "price",
    "love",
    "play",
    "son",
    "daughter",
    "broke",
    "small",
    "big",
    "easy",
    "pieces",
    "box",
]


def generate(folder: str, lines: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = max(lines // 10, 10), max(lines // 50, 10)
    users = np.minimum(rng.zipf(1.6, lines), n_users) - 1
    items = np.minimum(rng.zipf(1.4, lines), n_items) - 1
    users = rng.permutation(n_users)[users]
    items = rng.permutation(n_items)[items]
    ratings = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], lines, p=[0.05, 0.05, 0.1, 0.2, 0.6])
    times = rng.integers(1325376000, 1546300800, lines)  # 2012-01-01 .. 2019-01-01
    words = np.asarray(WORDS)
    text_ids = rng.integers(0, len(WORDS), (4096, 36))
    texts = [" ".join(words[row]) for row in text_ids]
    with gzip.open(Path(folder) / "Toys_and_Games.json.gz", "wt", compresslevel=1) as out:
        for k in range(lines):
            rec = {
                "overall": ratings[k],
                "verified": True,
                "reviewTime": "01 1, 2016",
                "reviewerID": f"A{users[k]:012d}",
                "asin": f"B{items[k]:09d}",
                "reviewerName": "Someone",
                "reviewText": texts[k % 4096],
                "summary": "Five Stars",
                "unixReviewTime": int(times[k]),
            }
            out.write(json.dumps(rec) + "\n")
    with open(Path(folder) / "meta_Toys_and_Games.json", "w") as out:
        for i in range(n_items):
            rec = {
                "asin": f"B{i:09d}",
                "title": f"Toy {i}",
                "category": ["Toys & Games", "Dolls"],
                "brand": "X",
            }
            out.write(json.dumps(rec) + "\n")


def bare_json_loop(path: Path) -> float:
    start = time.perf_counter()
    for raw in open_lines(path):
        json.loads(raw)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure Python's peak allocations")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        t0 = time.perf_counter()
        child = mp.get_context("spawn").Process(target=generate, args=(tmp, args.lines))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit("generation failed")
        gen_s = time.perf_counter() - t0
        reviews = Path(tmp) / "Toys_and_Games.json.gz"
        raw = [reviews, Path(tmp) / "meta_Toys_and_Games.json"]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if args.tracemalloc:
            tracemalloc.start()
        t0 = time.perf_counter()
        card = prepare_dataset(raw, Path(tmp) / "out", PrepareConfig.for_dataset("toys"), verbose=False)
        prep_s = time.perf_counter() - t0
        traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
        if args.tracemalloc:
            tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        bare_s = bare_json_loop(reviews)
        result = {
            "lines": args.lines,
            "input_gzip_bytes": reviews.stat().st_size,
            "generate_s": round(gen_s, 2),
            "prepare_s": round(prep_s, 2),
            "prepare_lines_per_s": round(args.lines / prep_s),
            "bare_gunzip_json_loads_s": round(bare_s, 2),
            "bare_lines_per_s": round(args.lines / bare_s),
            "prepare_over_bare": round(prep_s / bare_s, 2),
            "peak_rss_mib_before_prepare": round(rss_before / 1024, 1),
            "peak_rss_mib_after_prepare": round(rss_after / 1024, 1),
            "tracemalloc_peak_mib": round(traced_peak / 2**20, 1) if traced_peak is not None else None,
            "output": {k: card[k] for k in ("users", "items", "interactions", "density")},
            "steps": card["steps"],
            "machine": {
                **machine(),
                "numpy": np.__version__,
                "note": "shared machine; other jobs may have run at the same time",
            },
        }
    m = result["machine"]
    md = [
        "# prepare throughput (synthetic Amazon-2018-style reviews, toys filters)",
        "",
        f"machine: {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']} ({m['note']})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| raw lines (gzip {result['input_gzip_bytes'] / 2**20:.1f} MiB) | {args.lines:,} |",
        f"| prepare wall time | {prep_s:.1f} s |",
        f"| prepare throughput | {result['prepare_lines_per_s']:,} lines/s |",
        f"| bare gunzip + json.loads, same file | {bare_s:.1f} s ({result['bare_lines_per_s']:,} lines/s) |",
        f"| prepare / bare (same run) | {result['prepare_over_bare']}x |",
        f"| peak RSS before / after prepare | {result['peak_rss_mib_before_prepare']} / "
        f"{result['peak_rss_mib_after_prepare']} MiB |",
        *([f"| tracemalloc peak | {result['tracemalloc_peak_mib']} MiB |"] if args.tracemalloc else []),
        f"| output users / items / interactions | {card['users']:,} / {card['items']:,} / "
        f"{card['interactions']:,} |",
        "",
    ]
    write_results("prepare_throughput", result, "\n".join(md), Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
