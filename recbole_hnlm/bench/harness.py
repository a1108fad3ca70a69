"""``recbole-hnlm bench``: the benchmark grid (models x samplers x seeds), its tables, tests and plots.

Every cell ``(model, sampler, seed k)`` is one :func:`~recbole_hnlm.quick_start.run_hnlm` run with seed
``base_seed + k`` (RecBole's seed drives both the random split and training, so cell k of every sampler
shares the same split: the runs are paired by seed). A finished cell is cached as
``<out>/<dataset>/cells/<model>-<label>-seed<k>.json`` (written atomically, with a fingerprint of the
settings that made it); a rerun skips finished cells, so an interrupted grid resumes where it stopped.

From the cells it writes ``<out>/<dataset>/table.md``, ``results.json`` and ``bars.png``: Recall@10/20 and
NDCG@10/20 as mean ± std over seeds, the relative gain over RNS, and a paired test (t-test or Wilcoxon
over seeds) of every sampler against the best baseline of that model and metric. ``--analyses`` adds the
per-group metrics and false-negative shares of :mod:`recbole_hnlm.bench.groups` (``groups.md``/``.png``,
``false_negatives.md``/``.png``) from the cells' checkpoints.

Samplers are written ``label:sampler`` when one sampler appears twice (``hnlm-mix@toys:hnlm-mix``); a
store-based sampler (``hnlm-mix``, ``prompt``) takes its store from ``--negatives [label=]PATH``
(``{seed}`` in PATH is replaced by the cell's seed), or else from :mod:`recbole_hnlm.pipeline`, which
builds what is missing. A label ``hnlm-mix@SRC`` with no store uses the embedder fine-tuned on dataset
SRC (pipeline key ``hnlm_embedder``): the generalisation setting, gathered in ``generalisation.md``.

``--cached_only`` trains nothing: the tables summarise the finished cells (each row says over how many
seeds) and list the cells that are missing; for a grid run in parts, or on several machines (each cell
records the machine it ran on). ``--run_seeds`` trains only the missing cells of the seeds it names, so
processes on separate cores can share one grid.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from recbole_hnlm.bench.adopt import adopt_cells, parse_pins
from recbole_hnlm.bench.analyses import ANALYSIS_VERSION, analyse_cells, analyses_markdown, plot_analyses
from recbole_hnlm.bench.arms import STORE_SAMPLERS, Arm, parse_arm_config, parse_arms, parse_negatives
from recbole_hnlm.bench.cells import (
    CELL_VERSION,
    StoreResolver,
    _json_safe,
    cell_inputs,
    cell_key,
    cell_machines,
    cell_path,
    finished_cell,
    inputs_changed,
    machine_info,
    read_cell,
    run_cell,
    split_note,
)
from recbole_hnlm.bench.report import (
    _bar_panels,
    generalisation_markdown,
    summarise,
    table_markdown,
)
from recbole_hnlm.bench.settings import METRICS, BenchSettings, normalise_data_path
from recbole_hnlm.bench.significance import METHODS
from recbole_hnlm.io import atomic_write_json, atomic_write_text

# The bench is split by concern (arms, settings, cells, report, analyses); this module keeps the grid run and
# the command line, and the names tests and scripts import from it.
__all__ = [
    "ANALYSIS_VERSION",
    "CELL_VERSION",
    "METRICS",
    "STORE_SAMPLERS",
    "Arm",
    "BenchSettings",
    "StoreResolver",
    "_bar_panels",
    "_json_safe",
    "analyse_cells",
    "analyses_markdown",
    "cell_inputs",
    "cell_key",
    "cell_machines",
    "cell_path",
    "configure_parser",
    "finished_cell",
    "generalisation_markdown",
    "inputs_changed",
    "machine_info",
    "normalise_data_path",
    "parse_arm_config",
    "parse_arms",
    "parse_negatives",
    "parse_seeds",
    "plot_analyses",
    "read_cell",
    "run",
    "run_bench",
    "run_cell",
    "settings_from_args",
    "split_note",
    "summarise",
    "table_markdown",
]


# --- the whole grid ------------------------------------------------------------------------------------
def run_bench(
    settings: BenchSettings, runner: Callable[..., dict[str, Any] | None] | None = None
) -> dict[str, Any]:
    """Run (or reuse) every cell, then write table.md, results.json, bars.png (and the analyses)."""
    if settings.test not in METHODS:
        raise ValueError(f"--test must be one of {', '.join(METHODS)}, got {settings.test!r}")
    if settings.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {settings.seeds}")
    seeds = settings.seed_values
    outside = sorted(set(settings.run_seeds or []) - set(seeds))
    if outside:
        raise ValueError(f"--run_seeds {outside} are not among the grid's seeds {seeds}")
    stores = StoreResolver(settings)
    cells = []
    missing: list[str] = []
    started = time.perf_counter()
    for k, seed in enumerate(seeds):  # seed outermost: an interrupted grid has finished whole seeds
        for model in settings.models:
            for arm in settings.arms:
                if settings.trains(seed):
                    cells.append(run_cell(settings, model, arm, k, stores, runner))
                    continue
                cell = finished_cell(settings, model, arm, k)
                if cell is None:
                    missing.append(f"{model}/{arm.label}/seed {seed}")
                else:
                    cells.append(cell)
    if missing:
        print(f"[bench] {len(missing)} cell(s) not run: {', '.join(missing)}", flush=True)
    summary = summarise(cells, settings.models, settings.arms, settings.baseline, settings.test)
    folder = settings.folder
    payload = {
        "settings": settings.describe(),
        "machine": machine_info(),
        "summary": summary,
        "missing_cells": missing,
        "cells": [{k: v for k, v in c.items() if k not in ("checkpoint", "run_dir")} for c in cells],
        "seconds": time.perf_counter() - started,
    }
    table = table_markdown(summary, settings, missing=missing, machines=cell_machines(cells))
    general = generalisation_markdown(summary, settings, settings.plot_metric)
    from recbole_hnlm.bench.plots import grouped_bars

    grouped_bars(_bar_panels(summary, METRICS), folder / "bars.png", f"{settings.dataset}: test metrics", "")
    if settings.analyses:
        analysis = analyse_cells(settings, cells)
        payload["analyses"] = analysis
        groups_md, fn_md = analyses_markdown(analysis, settings)
        atomic_write_text(folder / "groups.md", groups_md)
        atomic_write_text(folder / "false_negatives.md", fn_md)
        plot_analyses(analysis, settings)
    if general:
        atomic_write_text(folder / "generalisation.md", general)
    atomic_write_text(folder / "table.md", table)
    atomic_write_json(folder / "results.json", _json_safe(payload))
    print(table)
    print(
        f"[bench] wrote {folder / 'table.md'}, {folder / 'results.json'}, {folder / 'bars.png'}", flush=True
    )
    return payload


# --- command line --------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (ml-100k is embedded)")
    parser.add_argument("--models", default="LightGCN,MF", help="comma-separated backbones")
    parser.add_argument(
        "--samplers",
        default="rns,dns",
        help="comma-separated samplers, each 'sampler' or 'label:sampler' (e.g. rns,dnsmn,hnlm,hnlm-mix)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="runs per cell: seeds base_seed .. base_seed+seeds-1"
    )
    parser.add_argument("--base_seed", type=int, default=2020)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per cell (default: config)")
    parser.add_argument("--data_path", default=None, help="folder holding <dataset>/ (or the dataset folder)")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (<out>/<dataset>/...)")
    parser.add_argument("--runs_dir", default="runs/bench", help="where the cells' runs and checkpoints go")
    parser.add_argument(
        "--negatives",
        action="append",
        default=[],
        help="store of a store-based sampler: PATH or label=PATH (repeatable; {seed} in PATH: the seed)",
    )
    parser.add_argument(
        "--arm_config",
        action="append",
        default=[],
        help="one arm's config override: LABEL:KEY=VALUE (repeatable), e.g. prompt:semantic_missing=random",
    )
    parser.add_argument("--config_files", default=None, help="RecBole yaml config files, space separated")
    parser.add_argument("--baseline", default="rns", help="the label gains are relative to")
    parser.add_argument("--test", default="ttest", choices=METHODS, help="paired test over seeds")
    parser.add_argument(
        "--analyses",
        action="store_true",
        help="also group metrics and false-negative shares (from checkpoints)",
    )
    parser.add_argument("--fn_batches", type=int, default=4, help="training batches per false-negative check")
    parser.add_argument("--plot_metric", default="ndcg@20", help="metric of the group tables and plots")
    parser.add_argument(
        "--name",
        default=None,
        help="tables go to <out>/<name>/ (default: the dataset; cells stay per dataset)",
    )
    parser.add_argument(
        "--cached_only",
        action="store_true",
        help="train nothing: tables from the finished cells, listing the missing ones",
    )
    parser.add_argument(
        "--adopt_pinned",
        action="append",
        default=[],
        help="KEY=VALUE (repeatable): a yaml default moved and the arms that ran under VALUE now pin it "
        "(--arm_config LABEL:KEY=VALUE); their finished cells keep their results under the pinned key",
    )
    parser.add_argument(
        "--run_seeds",
        default=None,
        help="comma-separated seeds whose missing cells run here; the others' are only read (one grid "
        "split between processes, e.g. --run_seeds 2020 beside --run_seeds 2021,2022)",
    )
    parser.epilog = (
        "Any other --key=value is a RecBole/plugin config override for every cell, e.g. --embedding_size=32."
    )


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    arms = parse_arms(args.samplers)
    return BenchSettings(
        dataset=args.dataset,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        arms=arms,
        seeds=args.seeds,
        base_seed=args.base_seed,
        epochs=args.epochs,
        data_path=args.data_path,
        out=args.out,
        runs_dir=args.runs_dir,
        negatives=parse_negatives(args.negatives, arms),
        config_files=args.config_files.split() if args.config_files else None,
        overrides=dict(getattr(args, "overrides", None) or {}),
        arm_overrides=parse_arm_config(args.arm_config, arms),
        baseline=args.baseline,
        test=args.test,
        analyses=args.analyses,
        fn_batches=args.fn_batches,
        plot_metric=args.plot_metric,
        name=args.name,
        cached_only=args.cached_only,
        run_seeds=parse_seeds(args.run_seeds),
    )


def parse_seeds(text: str | None) -> list[int] | None:
    """``--run_seeds 2020,2021`` -> [2020, 2021]; an entry that is not an integer is an error naming it."""
    if text is None:
        return None
    seeds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--run_seeds: {part!r} is not an integer seed") from None
    return seeds


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    pins = parse_pins(args.adopt_pinned)
    if pins:
        adopted = adopt_cells(settings, pins)
        print(f"[bench] adopted {len(adopted)} cell(s) under {pins}: {', '.join(adopted) or '-'}", flush=True)
    run_bench(settings)
    return 0
