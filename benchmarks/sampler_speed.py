"""Epoch time of each in-loss hard sampler on HNLM-LightGCN vs uniform-sampling RecBole LightGCN.

Also RecBole's own ``dynamic`` DNS (which re-runs the full propagation per batch inside the dataloader).
Same dataset, split, batch size (4096), 64-d, 2 layers, one thread, the same M = 16 candidates for every
hard sampler; epochs interleaved (the first round is dropped). Writes
``benchmarks/results/sampler_speed.{json,md}``. Targets: DNS, DNS(M,N), AHNS <= 1.3x; MixGCF, DENS <= 1.6x.

``--text`` adds the text-driven samplers at a candidate budget of 2M, each against DNS(2M, 2), the
same-size uniform pool (target <= 1.3x of it): semdns (M uniform + M text neighbours), guarddns (2M drawn,
M dropped) and aligndns (2M, steered); and the default design, aligndns at M itself, against DNS(M, 2)
(``hnlm`` runs it at M = ``hnlm_candidates``, 16). Their item vectors are built first when missing (the
embedded sentence embedder), outside the timing.

    python -m benchmarks.sampler_speed [--data_path ../shared/data] [--epochs 3] [--candidates 16]
        [--text [--text_fields keywords]]        (the toys stand-in's only text is its keywords)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

import recbole_hnlm  # noqa: F401
from benchmarks.common import PROTOCOL, SHARED_DATA, epoch_runner, interleaved_epochs, machine, write_results
from recbole_hnlm import methods
from recbole_hnlm.config import make_config
from recbole_hnlm.pipeline import ensure_item_vectors

TARGETS = {"rns": None, "dns": 1.3, "dnsmn": 1.3, "ahns": 1.3, "mixgcf": 1.6, "dens": 1.6}
# The timed hard samplers, in the table's order; each must be a hard method of the catalogue.
HARD = [name for name in TARGETS if methods.kind_of(name) == methods.HARD and name != "rns"]
OWN_DEFAULT_M = {"dens": 6, "ahns": 32}  # the reference code's n_negs, our yaml defaults
TEXT = ("semdns", "guarddns", "aligndns")  # timed with --text, against DNS(2M, 2)
DEFAULT_AT_M = "hnlm-M"  # with --text: the default design (aligndns) at M itself, against DNS(M, 2)
TEXT_TARGET = 1.3
LABELS = {
    "LightGCN": "RecBole LightGCN, uniform (baseline)",
    "LightGCN-dynamic": "RecBole LightGCN, dynamic DNS",
    "rns": "HNLM-LightGCN, rns",
    "dns": "HNLM-LightGCN, DNS",
    "dnsmn": "HNLM-LightGCN, DNS(M,N=2)",
    "ahns": "HNLM-LightGCN, AHNS",
    "mixgcf": "HNLM-LightGCN, MixGCF",
    "dens": "HNLM-LightGCN, DENS",
    "dnsmn-2M": "HNLM-LightGCN, DNS(2M,N=2): the text samplers' same-size pool",
    "semdns": "HNLM-LightGCN, semdns (M uniform + M text neighbours)",
    "guarddns": "HNLM-LightGCN, guarddns (2M drawn, M dropped by text)",
    "aligndns": "HNLM-LightGCN, aligndns (2M, steered by g(text))",
    DEFAULT_AT_M: "HNLM-LightGCN, hnlm: aligndns at M (the default when M = hnlm_candidates), vs DNS(M,2)",
}


def text_runners(dataset: str, base: dict, m: int, text_fields: list[str] | None) -> dict:
    """Epoch runners of DNS(2M, 2) and the text samplers at a budget of 2M candidates (item vectors built
    first, untimed)."""
    fields = {"text_fields": text_fields} if text_fields else {}
    vectors = ensure_item_vectors(make_config("HNLMLightGCN", dataset, config_dict={**base, **fields}))
    text = {**base, "item_vectors": str(vectors)}
    settings = {
        "dnsmn-2M": {"neg_sampler": "dnsmn", "dnsmn_candidates": 2 * m},
        "semdns": {"neg_sampler": "semdns", "semdns_candidates": m, "semdns_k": m},
        "guarddns": {"neg_sampler": "guarddns", "guarddns_candidates": 2 * m, "guarddns_drop": m},
        "aligndns": {"neg_sampler": "aligndns", "aligndns_candidates": 2 * m},
        DEFAULT_AT_M: {"neg_sampler": "aligndns", "aligndns_candidates": m},
    }
    return {name: epoch_runner("HNLMLightGCN", dataset, {**text, **c}) for name, c in settings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", default=str(SHARED_DATA))
    parser.add_argument("--dataset", default="toys")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per contender (after 1 warm-up)")
    parser.add_argument("--candidates", type=int, default=16, help="M for every hard sampler")
    parser.add_argument("--text", action="store_true", help="also the text samplers, against DNS(2M, 2)")
    parser.add_argument("--text_fields", help="comma-separated item text columns (default: the dataset's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workdir = tempfile.mkdtemp(prefix="sampler-speed-")
    os.chdir(workdir)  # RecBole writes log/ and saved/ here

    base = {**PROTOCOL, "data_path": args.data_path}
    m = args.candidates
    runners = {
        "LightGCN": epoch_runner("LightGCN", args.dataset, base),
        "LightGCN-dynamic": epoch_runner(
            "LightGCN",
            args.dataset,
            {
                **base,
                "train_neg_sample_args": {
                    "distribution": "uniform",
                    "sample_num": 1,
                    "dynamic": True,
                    "candidate_num": m,
                },
            },
        ),
    }
    for sampler in ["rns", *HARD]:
        overrides = {"neg_sampler": sampler, "neg_candidates": m, f"{sampler}_candidates": m}
        runners[sampler] = epoch_runner("HNLMLightGCN", args.dataset, {**base, **overrides})
    for sampler, own_m in OWN_DEFAULT_M.items():
        if own_m != m:  # also at the sampler's own default M (properties/overall.yaml)
            overrides = {"neg_sampler": sampler, f"{sampler}_candidates": own_m}
            runners[f"{sampler}-M{own_m}"] = epoch_runner("HNLMLightGCN", args.dataset, {**base, **overrides})
    if args.text:
        fields = args.text_fields.split(",") if args.text_fields else None
        runners.update(text_runners(args.dataset, base, m, fields))
    before = machine()
    times = interleaved_epochs(runners, epochs=args.epochs, warmup=1)
    baseline = statistics.mean(times["LightGCN"])
    plugin_rns = statistics.mean(times["rns"])  # the plugin's own backbone: what a sampler itself costs
    rows = []
    for name, values in times.items():
        mean = statistics.mean(values)
        sampler, _, own_m = name.partition("-M")
        target = TARGETS.get(sampler)
        label = LABELS.get(name) or f"{LABELS[sampler]} (own default M = {own_m})"
        row = {
            "name": name,
            "label": label,
            "epoch_seconds": values,
            "mean_seconds": mean,
            "ratio": mean / baseline,
            "ratio_to_plugin_rns": mean / plugin_rns,
            "target": target,
            "meets_target": None if target is None else mean / baseline <= target,
        }
        if name in (*TEXT, DEFAULT_AT_M):  # the text samplers' yardstick: the same-size uniform pool
            ratio = mean / statistics.mean(times["dnsmn" if name == DEFAULT_AT_M else "dnsmn-2M"])
            row.update(ratio_to_same_size_dns=ratio, target=TEXT_TARGET, meets_target=ratio <= TEXT_TARGET)
        rows.append(row)
    payload = {
        "benchmark": "sampler_speed",
        "dataset": args.dataset,
        "protocol": {**PROTOCOL, "candidates_M": m, "dnsmn_n": 2, "timed_epochs": args.epochs, "warmup": 1},
        "machine_before": before,
        "machine_after": machine(),
        "results": rows,
    }
    lines = [
        "# Sampler speed: epoch time relative to uniform-sampling RecBole LightGCN",
        "",
        f"Dataset `{args.dataset}`, LightGCN 64-d, 2 layers, batch 4096, M = {m} candidates, one thread; "
        f"{args.epochs} timed epochs per contender after one warm-up round, interleaved.",
        f"Machine: {before['processor']}, {before['cpu_count']} cores, torch {before['torch']}, "
        f"{before['date']}; load average before {tuple(round(x, 2) for x in before['load_average'])}, "
        f"after {tuple(round(x, 2) for x in payload['machine_after']['load_average'])}.",
        "HNLM-LightGCN multiplies by the adjacency as CSR (`recbole_hnlm/models/graph.py`), RecBole's "
        "LightGCN by COO; `ratio` (the targets' yardstick) is against RecBole's uniform LightGCN, and "
        "`vs HNLM rns` is what each sampler itself adds to the plugin's backbone.",
        "",
        "| contender | s/epoch | ratio | vs HNLM rns | vs DNS at the same pool | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        target = (
            ""
            if row["target"] is None
            else f"<= {row['target']}x " + ("ok" if row["meets_target"] else "MISSED")
        )
        same_size = row.get("ratio_to_same_size_dns")
        lines.append(
            f"| {row['label']} | {row['mean_seconds']:.2f} | {row['ratio']:.2f}x | "
            f"{row['ratio_to_plugin_rns']:.2f}x | "
            f"{'' if same_size is None else f'{same_size:.2f}x'} | {target} |"
        )
    write_results("sampler_speed", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
