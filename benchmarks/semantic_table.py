"""The converged, controlled comparison of the semantic samplers, from the cached cells of
``benchmarks/run_semantic_grid.sh``: every arm against uniform sampling (rns), DNS(16,2) and the
same-budget uniform pool (DNS(M,2) at the arm's own candidate count M), paired by seed, with each cell's
best epoch against the epoch cap.

    python benchmarks/semantic_table.py [--out benchmarks/results/converged]

Writes ``<out>/semantic.md`` and ``<out>/semantic.json``. Test metrics are reported once per cell (the
checkpoint best on validation NDCG@20); validation NDCG@20 is shown beside them, since defaults are chosen
on it and never on test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, machine, write_results
from recbole_hnlm.bench.significance import mean_std, paired_test, relative_gain

METRIC = "ndcg@20"
REFERENCES = ("rns", "dnsmn")  # uniform, DNS(16,2); the same-budget DNS(M,2) is found per arm (pool_size)
# each text arm's own controls: the same design with no text read (cf) or with another item's text (perm)
CONTROLS = {
    "aligndns": ("aligndns-cf", "aligndns-perm"),
    "aligndns-both": ("aligndns-cf", "aligndns"),  # text added to e_i: against e_i alone, and text alone
    "aligndns16": ("aligndns16-cf",),
    "aligndns64": ("aligndns64-cf",),
    "aligndns-center": ("aligndns-center-cf", "aligndns"),  # centred e_i alone; the uncentred text
    "aligndns16-center": ("aligndns16",),  # the default's centring at M = 16 and 64: against uncentred
    "aligndns64-center": ("aligndns64-center-cf", "aligndns64"),
    "semdns": ("semdns-perm",),
    "guarddns": ("guarddns-inv",),
    "guardq90": ("guardq90-perm",),
}


def read_cells(folder: Path) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """``model -> label -> k -> cell`` for every finished cell of one dataset."""
    cells: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith(".analysis.json"):
            continue
        cell = json.loads(path.read_text())
        cells[cell["model"]][cell["label"]][int(cell["k"])] = cell
    return cells


# The candidate count M of the arms whose earliest cells predate cells recording their resolved config
# (run_semantic_grid.sh's ARM_CONFIG on the yaml defaults of the time); a recorded config takes precedence.
EARLY_BUDGETS = {
    **dict.fromkeys(("dnsmn", "dnsmn-oracle", "aligndns16", "aligndns16-cf"), 16),
    **dict.fromkeys(("guardq80", "guardq90", "guardq95", "guardq90-perm"), 20),
    **dict.fromkeys(("dnsmn32", "semdns", "semdns-perm", "guarddns", "guarddns-inv"), 32),
    **dict.fromkeys(("aligndns", "aligndns-cf", "aligndns-perm", "aligndns-pos", "aligndns-far"), 32),
}


def pool_size(cell: dict[str, Any]) -> int | None:
    """The candidates a cell's sampler scores per row (its budget M), from the cell's resolved config: a
    sampler's own ``<name>_candidates`` or else ``neg_candidates``; semdns adds its ``semdns_k`` text slots.
    None for a sampler without a candidate pool (rns)."""
    sampler = cell["sampler"]
    if sampler not in ("dnsmn", "semdns", "guarddns", "aligndns"):
        return None
    resolved = cell.get("inputs", {}).get("resolved")
    if resolved is None:
        return EARLY_BUDGETS.get(cell["label"])

    def number(key: str) -> int | None:
        value = json.loads(resolved.get(key, "null"))
        return None if value is None else int(value)

    own = number(f"{sampler}_candidates")
    size = own if own is not None else number("neg_candidates")
    if size is not None and sampler == "semdns":
        size += number("semdns_k") or 0
    return size


def same_budget_dns(arms: dict[str, dict[int, dict[str, Any]]]) -> dict[int, str]:
    """``M -> label`` of the DNS(M,2) arm (sampler dnsmn, no other setting) at each candidate count."""
    found: dict[int, str] = {}
    for label, runs in arms.items():
        cell = next(iter(runs.values()))
        if cell["sampler"] == "dnsmn" and "oracle" not in label and (m := pool_size(cell)) is not None:
            found.setdefault(m, label)
    return found


def text_pick_share(report: dict[str, Any]) -> float | None:
    """The share of a text arm's picks that text decided: from semdns's semantic slots, or the aligndns
    picks that differ from DNS(M,N)'s on the same candidates; None for an arm without text."""
    for key in ("semantic_pick_share", "text_changed_pick_share"):
        if report.get(key) is not None:
            return report[key]
    return None


def arm_row(
    runs: dict[int, dict[str, Any]],
    refs: dict[str, dict[int, dict[str, Any]]],
    controls: dict[str, dict[int, dict[str, Any]]],
    budget_ref: tuple[str, dict[int, dict[str, Any]]] | None,
) -> dict[str, Any]:
    seeds = sorted(runs)
    test = [runs[k]["test_result"][METRIC] for k in seeds]
    valid = [runs[k]["best_valid_result"][METRIC] for k in seeds]
    caps = {runs[k].get("epoch_cap") for k in seeds}
    best = [runs[k].get("best_epoch") for k in seeds]
    shares = [text_pick_share(runs[k].get("sampler_report", {})) for k in seeds]
    row: dict[str, Any] = {
        "n": len(seeds),
        "seeds": [runs[k]["seed"] for k in seeds],
        "test": mean_std(test),
        "valid": mean_std(valid),
        "recall@20": mean_std([runs[k]["test_result"]["recall@20"] for k in seeds]),
        "best_epochs": best,
        "epochs_trained": [runs[k].get("epochs_trained") for k in seeds],
        "epoch_cap": caps.pop() if len(caps) == 1 else sorted(c for c in caps if c),
        "semantic_pick_share": None if None in shares else sum(shares) / len(shares),
        "fit_seconds": mean_std([runs[k]["fit_seconds"] for k in seeds])[0],
    }
    for name, ref in refs.items():
        gain = paired_gain(runs, ref)
        if gain is not None:
            row[f"vs_{name}"] = gain
    if budget_ref is not None:
        gain = paired_gain(runs, budget_ref[1])
        if gain is not None:
            row["vs_same_budget"] = {**gain, "ref": budget_ref[0]}
    row["vs_controls"] = {name: g for name, ref in controls.items() if (g := paired_gain(runs, ref))}
    return row


def paired_gain(runs: dict[int, dict[str, Any]], ref: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Mean test gain of ``runs`` over ``ref`` on the seeds both have, with the paired test's p."""
    common = [k for k in sorted(runs) if k in ref]
    if not common:
        return None
    a = [runs[k]["test_result"][METRIC] for k in common]
    b = [ref[k]["test_result"][METRIC] for k in common]
    return {
        "gain": relative_gain(sum(a) / len(a), sum(b) / len(b)),
        "p": paired_test(a, b).pvalue,
        "n": len(common),
    }


def summarise(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {"metric": METRIC, "datasets": {}}
    for folder in sorted(p for p in out.iterdir() if (p / "cells").is_dir()):
        cells = read_cells(folder / "cells")
        per_model = {}
        for model, arms in sorted(cells.items()):
            refs = {name: arms[name] for name in REFERENCES if name in arms}
            dns_at = same_budget_dns(arms)
            per_model[model] = {}
            for label, runs in arms.items():
                budget = dns_at.get(pool_size(next(iter(runs.values()))))  # type: ignore[arg-type]
                per_model[model][label] = arm_row(
                    runs,
                    refs,
                    {c: arms[c] for c in CONTROLS.get(label, ()) if c in arms},
                    None if budget in (None, label) else (budget, arms[budget]),
                )
        summary["datasets"][folder.name] = per_model
    return summary


def _pct(gain: dict[str, Any] | None) -> str:
    if not gain or gain["gain"] is None or math.isnan(gain["gain"]):
        return ""
    p = gain["p"]
    star = "*" if p is not None and not math.isnan(p) and p < 0.05 else ""
    shown = "n/a" if p is None or math.isnan(p) else f"{p:.3f}"
    return f"{gain['gain']:+.1%}{star} (p {shown})"


def _same_budget(gain: dict[str, Any] | None) -> str:
    return f"{gain['ref']}: {_pct(gain)}" if gain else ""


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Semantic samplers, converged and controlled",
        "",
        "Written by `benchmarks/semantic_table.py` from the cells of `benchmarks/run_semantic_grid.sh`. "
        "Every cell early-stopped on validation NDCG@20 (validation every 5 epochs); *best epochs* are the "
        "epochs (0-based) whose checkpoint was tested, *cap* the epoch limit: a best epoch near the cap "
        "would mean an under-trained arm. One fixed split (split_seed 2020); seeds vary initialisation and "
        "sampling and pair the arms. Gains are on mean test NDCG@20; p: two-sided paired t-test over seeds "
        "(* p < 0.05; n/a with one seed). *vs same-M DNS*: the arm against DNS(M,2) with the same number "
        "of candidates M (semdns: M uniform + K text slots), the same-size uniform pool a text arm must "
        "beat (dnsmn = DNS(16,2), dnsmn32, dnsmn64). *Text-driven picks*: semdns's picks from its "
        "semantic slots; aligndns's picks that differ from DNS(M,2)'s on the same candidates. *vs its "
        "controls*: the arm against the same design reading no text (-cf), another item's text (-perm) or "
        "the reversed text signal (-inv): text earns credit only where it beats these. *-oracle* arms "
        "(diagnostic only) never draw a held-out positive as a candidate: their gain over the same DNS is "
        "the most any false-negative guard could add.",
        "",
    ]
    for dataset, models in summary["datasets"].items():
        for model, arms in models.items():
            lines += [
                f"## {dataset} / {model}",
                "",
                "| arm | n | test NDCG@20 | valid NDCG@20 | test R@20 | vs rns | vs dnsmn (16,2) "
                "| vs same-M DNS | vs its controls | text-driven picks | best epochs (cap) |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for label, row in sorted(arms.items(), key=lambda kv: -kv[1]["valid"][0]):
                share = row["semantic_pick_share"]
                lines.append(
                    f"| {label} | {row['n']} | {row['test'][0]:.4f} ± {row['test'][1]:.4f} | "
                    f"{row['valid'][0]:.4f} ± {row['valid'][1]:.4f} | {row['recall@20'][0]:.4f} | "
                    f"{_pct(row.get('vs_rns'))} | {_pct(row.get('vs_dnsmn'))} | "
                    f"{_same_budget(row.get('vs_same_budget'))} | "
                    f"{'; '.join(f'{c}: {_pct(g)}' for c, g in row.get('vs_controls', {}).items())} | "
                    f"{'' if share is None else f'{share:.0%}'} | "
                    f"{', '.join(str(b) for b in row['best_epochs'])} ({row['epoch_cap']}) |"
                )
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(RESULTS / "converged"))
    args = parser.parse_args()
    out = Path(args.out)
    summary = summarise(out)
    summary["machine"] = machine()
    write_results("semantic", summary, markdown(summary), folder=out)


if __name__ == "__main__":
    main()
