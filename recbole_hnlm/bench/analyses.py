"""The grid's per-group and false-negative analyses (from the cells' checkpoints), as markdown and plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recbole_hnlm.bench.cells import (
    cell_path,
    read_cell,
)
from recbole_hnlm.bench.settings import BenchSettings
from recbole_hnlm.bench.significance import mean_std
from recbole_hnlm.io import atomic_write_json, fingerprint

# Bumped when the analyses' definitions change, so cached ``*.analysis.json`` files are recomputed.
# 2: checkpoints are reloaded on the training split (split_seed), not on a split drawn from the seed.
ANALYSIS_VERSION = 2


# --- analyses ------------------------------------------------------------------------------------------
def analyse_cells(settings: BenchSettings, cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Group metrics and false-negative shares per cell (cached beside it), then mean ± std over seeds."""
    from recbole_hnlm.bench.groups import analyse_checkpoint

    per: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        path = cell_path(settings, cell["model"], cell["label"], cell["k"]).with_suffix(".analysis.json")
        key = fingerprint([cell["key"], ANALYSIS_VERSION, settings.fn_batches])
        cached = read_cell(path, key)
        if cached is None:
            if not cell.get("checkpoint") or not Path(cell["checkpoint"]).is_file():
                print(f"[bench] no checkpoint for {path.name}; skipped in the analyses", flush=True)
                continue
            print(f"[bench] analysing {path.name} ...", flush=True)
            cached = {
                "key": key,
                **analyse_checkpoint(cell["checkpoint"], fn_batches=settings.fn_batches),
            }
            atomic_write_json(path, cached)
        per.setdefault((cell["model"], cell["label"]), []).append(cached)
    out: dict[str, Any] = {}
    for (model, label), runs in per.items():
        entry: dict[str, Any] = {"groups": {}, "false_negatives": {}, "n": len(runs)}
        for axis in ("items", "users"):
            for group in runs[0]["groups"][axis]:
                for metric in runs[0]["groups"][axis][group]:
                    if metric == "n_users":
                        continue
                    vals = [r["groups"][axis][group][metric] for r in runs]
                    entry["groups"].setdefault(f"{axis}:{group}", {})[metric] = mean_std(vals)
        for kind in ("selected", "semantic"):
            shares = [
                r["false_negatives"][kind]["share"]
                for r in runs
                if r["false_negatives"][kind]["share"] is not None
            ]
            if shares:
                entry["false_negatives"][kind] = mean_std(shares)
        entry["false_negatives"]["synthetic"] = runs[0]["false_negatives"]["synthetic"]
        entry["sizes"] = runs[0]["groups"]["sizes"]
        out.setdefault(model, {})[label] = entry
    return out


def analyses_markdown(analysis: dict[str, Any], settings: BenchSettings) -> tuple[str, str]:
    metric = settings.plot_metric
    groups = ["items:all", "items:head", "items:tail", "users:sparse", "users:active"]
    g_lines = [
        f"# {settings.dataset}: {metric} by item-popularity and user-activity group (test split)",
        "",
        "Head: the 20% most-interacted items in training; tail: the rest (the metric counts only the "
        "positives in the group, on one full ranking over all items). Sparse users: the 25% with the "
        "fewest training interactions. Mean ± std over the n seeds whose checkpoints were analysed.",
        "",
    ]
    f_lines = [
        f"# {settings.dataset}: share of negatives that are false negatives",
        "",
        "A negative is false when the user interacts with it in the validation or test split; "
        f"{settings.fn_batches} training batches per checkpoint. Synthetic negatives (MixGCF, DENS) and "
        "adapted semantic negatives count as their nearest item (cosine) in the final item "
        "embeddings. Mean ± std over the n seeds whose checkpoints were analysed.",
        "",
        "| model | sampler | n | selected negative | adapted semantic negative |",
        "|---|---|---|---|---|",
    ]
    for model, rows in analysis.items():
        first = next(iter(rows.values()))["sizes"]
        g_lines += [
            f"## {model}",
            "",
            f"{first['head_items']} head items of {first['items']} "
            f"({100 * first['head_share_of_training']:.0f}% of training interactions); "
            f"{first['sparse_users']} sparse users of {first['users']} "
            f"(at most {first['sparse_max_interactions']} training interactions).",
            "",
            "| sampler | n | " + " | ".join(groups) + " |",
            "|" + "---|" * (len(groups) + 2),
        ]
        for label, entry in rows.items():
            vals = [entry["groups"].get(g, {}).get(metric, (math.nan, math.nan)) for g in groups]
            g_lines.append(
                f"| {label} | {entry['n']} | " + " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in vals) + " |"
            )
            fn = entry["false_negatives"]
            sel = fn.get("selected")
            sem = fn.get("semantic")
            sel_text = "n/a" if sel is None else f"{100 * sel[0]:.2f}% ± {100 * sel[1]:.2f}"
            if sel is not None and fn.get("synthetic"):
                sel_text += " (nearest item)"
            sem_text = "-" if sem is None else f"{100 * sem[0]:.2f}% ± {100 * sem[1]:.2f}"
            f_lines.append(f"| {model} | {label} | {entry['n']} | {sel_text} | {sem_text} |")
        g_lines.append("")
    return "\n".join(g_lines) + "\n", "\n".join(f_lines) + "\n"


def plot_analyses(analysis: dict[str, Any], settings: BenchSettings) -> None:
    from recbole_hnlm.bench.plots import grouped_bars

    metric = settings.plot_metric
    groups = ["items:head", "items:tail", "users:sparse", "users:active"]
    panels = {
        model: {
            g: {lbl: e["groups"].get(g, {}).get(metric, (math.nan, 0.0)) for lbl, e in rows.items()}
            for g in groups
        }
        for model, rows in analysis.items()
    }
    grouped_bars(panels, settings.folder / "groups.png", f"{settings.dataset}: {metric} by group", metric)
    fn_panels = {
        model: {
            kind: {lbl: e["false_negatives"][kind] for lbl, e in rows.items() if kind in e["false_negatives"]}
            for kind in ("selected", "semantic")
        }
        for model, rows in analysis.items()
    }
    grouped_bars(
        fn_panels,
        settings.folder / "false_negatives.png",
        f"{settings.dataset}: false-negative share",
        "share",
    )
