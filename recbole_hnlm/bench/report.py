"""The bench tables: mean ± std over seeds, gains over RNS, paired tests, as markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from recbole_hnlm import methods
from recbole_hnlm.bench.arms import Arm
from recbole_hnlm.bench.cells import (
    split_note,
)
from recbole_hnlm.bench.settings import METRICS, BenchSettings
from recbole_hnlm.bench.significance import LEVEL, mean_std, paired_test, relative_gain


# --- summary ------------------------------------------------------------------------------------------------
def summarise(
    cells: Sequence[dict[str, Any]],
    models: Sequence[str],
    arms: Sequence[Arm],
    baseline: str = "rns",
    test: str = "ttest",
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """``{model: {label: {metric: {mean, std, values, seeds, gain, best_baseline, test}}}}`` from the cells.

    The best baseline of a model and metric is the classic sampler (no text: not ``hnlm``, ``hnlm-mix``,
    ``prompt`` or a text sampler) with the highest mean; each other sampler is tested against it, paired on
    the seeds both have.
    """
    by_cell = {(c["model"], c["label"], c["seed"]): c for c in cells}
    summary: dict[str, Any] = {}
    for model in models:
        rows: dict[str, Any] = {}
        for arm in arms:
            seeds = sorted(s for (m, lbl, s) in by_cell if m == model and lbl == arm.label)
            if not seeds:
                continue
            row: dict[str, Any] = {"sampler": arm.sampler, "baseline": arm.is_baseline, "metrics": {}}
            for metric in metrics:
                values = [by_cell[(model, arm.label, s)]["test_result"][metric] for s in seeds]
                mean, std = mean_std(values)
                row["metrics"][metric] = {"mean": mean, "std": std, "values": values, "seeds": seeds}
            row["missing_semantic_pairs"] = max(
                by_cell[(model, arm.label, s)]["missing_semantic_pairs"] for s in seeds
            )
            rows[arm.label] = row
        for metric in metrics:
            ref = rows.get(baseline, {}).get("metrics", {}).get(metric, {}).get("mean")
            baselines = [lbl for lbl, r in rows.items() if r["baseline"]]
            best = max(baselines, key=lambda lbl: rows[lbl]["metrics"][metric]["mean"], default=None)
            for label, row in rows.items():
                entry = row["metrics"][metric]
                entry["gain_vs_" + baseline] = (
                    relative_gain(entry["mean"], ref) if ref is not None else math.nan
                )
                entry["best_baseline"] = best
                if best is None or label == best:
                    entry["test"] = None
                    continue
                other = rows[best]["metrics"][metric]
                shared = [s for s in entry["seeds"] if s in other["seeds"]]
                a = [entry["values"][entry["seeds"].index(s)] for s in shared]
                b = [other["values"][other["seeds"].index(s)] for s in shared]
                entry["test"] = paired_test(a, b, test).as_dict()
        summary[model] = rows
    return summary


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}%"


def _p(test: dict[str, Any] | None, is_best: bool) -> str:
    if test is None:  # the best baseline itself, or no baseline among the samplers to test against
        return "(best)" if is_best else "n/a"
    p = test.get("pvalue")
    if p is None:
        return "n/a"
    mark = "*" if p < LEVEL else ""
    return f"{p:.3f}{mark}"


def table_markdown(
    summary: dict[str, Any],
    settings: BenchSettings,
    metrics: Sequence[str] = METRICS,
    missing: Sequence[str] = (),
    machines: dict[str, int] | None = None,
) -> str:
    base = settings.baseline
    test_name = "t-test" if settings.test == "ttest" else "Wilcoxon signed-rank test"
    lines = [
        f"# {settings.dataset}: test metrics, mean ± std over {settings.seeds} seed(s)",
        "",
        f"Seeds {settings.base_seed}..{settings.base_seed + settings.seeds - 1} ({split_note(settings)}, "
        "shared by every sampler). Gain: relative to the mean of "
        f"`{base}`"
        + ("" if base in {a.label for a in settings.arms} else " (not among these samplers: no gains)")
        + f". p: two-sided paired {test_name} "
        f"over seeds against the best baseline of that model and metric (* p < {LEVEL}; `(best)` marks that "
        "baseline). Epochs: "
        + (str(settings.epochs) if settings.epochs is not None else "config default")
        + ". n: the seeds a row averages.",
        "",
    ]
    if machines:
        lines += [
            "Cells ran on: "
            + "; ".join(f"{name} ({n} cell{'s' if n != 1 else ''})" for name, n in machines.items())
            + ".",
            "",
        ]
    if missing:
        lines += [f"Not run ({len(missing)} cells, left out of the means): " + ", ".join(missing) + ".", ""]
    for model, rows in summary.items():
        lines += [f"## {model}", ""]
        header = (
            ["sampler", "n"]
            + [m for m in metrics]
            + [f"gain {m}" for m in metrics]
            + [f"p {m}" for m in metrics]
        )
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for label, row in rows.items():
            ms = row["metrics"]
            cells = [f"{ms[m]['mean']:.4f} ± {ms[m]['std']:.4f}" for m in metrics]
            gains = [_pct(ms[m].get("gain_vs_" + base)) for m in metrics]
            ps = [_p(ms[m]["test"], label == ms[m]["best_baseline"]) for m in metrics]
            name = label if label == row["sampler"] else f"{label} ({row['sampler']})"
            if row["missing_semantic_pairs"]:
                name += f" [{row['missing_semantic_pairs']} pairs w/o store]"
            n = str(len(ms[metrics[0]]["values"]))
            lines.append("| " + " | ".join([name, n, *cells, *gains, *ps]) + " |")
        best = {m: next(iter(rows.values()))["metrics"][m]["best_baseline"] for m in metrics} if rows else {}
        if any(best.values()):
            lines += ["", "Best baseline: " + ", ".join(f"{m} `{b}`" for m, b in best.items()), ""]
        else:
            lines += ["", "Best baseline: none (no baseline sampler among these rows)", ""]
    return "\n".join(lines) + "\n"


def generalisation_markdown(summary: dict[str, Any], settings: BenchSettings, metric: str) -> str | None:
    """Rows ``hnlm-mix@SRC`` (embedder fine-tuned on SRC) beside in-domain ``hnlm-mix`` and ``rns``."""
    xfer = [a for a in settings.arms if a.source_dataset]
    if not xfer:
        return None
    lines = [
        f"# Generalisation on {settings.dataset}: embedder fine-tuned on another dataset ({metric})",
        "",
        "| model | sampler | embedder from | "
        + metric
        + f" | gain vs `{settings.baseline}` | gain vs in-domain hnlm-mix |",
        "|---|---|---|---|---|---|",
    ]
    for model, rows in summary.items():
        home = rows.get(methods.MIX_MODE, {}).get("metrics", {}).get(metric, {}).get("mean")
        for arm in settings.arms:
            if arm.label not in rows or (arm.sampler != methods.MIX_MODE and arm.label != settings.baseline):
                continue
            e = rows[arm.label]["metrics"][metric]
            source = arm.source_dataset or (settings.dataset if arm.sampler == methods.MIX_MODE else "-")
            vs_home = relative_gain(e["mean"], home) if home is not None and arm.source_dataset else math.nan
            lines.append(
                f"| {model} | {arm.label} | {source} | {e['mean']:.4f} ± {e['std']:.4f} | "
                f"{_pct(e.get('gain_vs_' + settings.baseline))} | {_pct(vs_home)} |"
            )
    return "\n".join(lines) + "\n"


def _bar_panels(summary: dict[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    return {
        model: {
            m: {lbl: (r["metrics"][m]["mean"], r["metrics"][m]["std"]) for lbl, r in rows.items()}
            for m in metrics
        }
        for model, rows in summary.items()
    }
