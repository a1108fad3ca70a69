"""Where aligndns's steering points: g(text(i)) against the mean item and against e_i, per checkpoint.

For each converged checkpoint of the fixed split, g is fitted as the run's own sampler fits it (a ridge map
from its item vectors' first ``aligndns_dims`` principal directions to the final CF item embeddings of the
training items, ``aligndns_ridge``) and, averaged over those items:

* R², the share of the item embeddings' variance g explains;
* cos(g(text(i)), ē) and cos(e_i, ē), ē the mean item embedding: how much of the steering direction is the
  catalogue's common direction rather than the item's own;
* cos(g(text(i)) − ḡ, e_i − ē): how well the centred text placement (``aligndns_center``) points at the
  item's own place.

    python -m benchmarks.steering_geometry RUN_A.pth RUN_B.pth ...   (from the folder the runs ran in)

Each run's own item vectors are read (its config's ``item_vectors``).

Writes ``benchmarks/results/steering_geometry.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.nn.functional as F

from benchmarks.common import machine, write_results
from recbole_hnlm.negatives.text_alignment import TextAlignedDNSNegatives
from recbole_hnlm.quick_start import load_data_and_model
from recbole_hnlm.stages.supervision import cf_embeddings


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over rows of cos(a_r, b_r); a one-row ``b`` is compared with every row of ``a``."""
    return round(float(F.cosine_similarity(a, b.expand_as(a), dim=1).mean()), 3)


def geometry(checkpoint: str) -> dict:
    config, model, dataset, train_data, _, _ = load_data_and_model(checkpoint)
    model.eval()
    with torch.no_grad():
        item_e = torch.from_numpy(cf_embeddings(model, dataset)[1]).double()
    # g exactly as the run's sampler sets it up (its item vectors, aligndns_dims, aligndns_ridge, items)
    sampler = TextAlignedDNSNegatives(config, int(config["embedding_size"]))
    sampler.bind(train_data._dataset)
    text_map, items = sampler.text_map, sampler.fit_rows
    r2 = text_map.fit(item_e)
    placed, own = text_map(items).double(), item_e[items]
    mean_item = own.mean(dim=0, keepdim=True)
    return {
        "checkpoint": Path(checkpoint).name,
        "dataset": config["dataset"],
        "model": config["model"],
        "neg_sampler": config["neg_sampler"],
        "aligndns_center": bool(config["aligndns_center"]),  # None: a run from before the key (uncentred)
        "aligndns_candidates": config["aligndns_candidates"],
        "seed": config["seed"],
        "items": len(items),
        "r2": round(r2, 3),
        "cos_g_mean": mean_cosine(placed, mean_item),
        "cos_e_mean": mean_cosine(own, mean_item),
        "cos_g_e": mean_cosine(placed, own),
        "cos_centred_g_e": mean_cosine(placed - placed.mean(dim=0, keepdim=True), own - mean_item),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [geometry(c) for c in args.checkpoints]
    lines = [
        "# Where aligndns's steering points",
        "",
        "Written by `benchmarks/steering_geometry.py`. g fitted on each checkpoint's final item embeddings "
        "as the sampler fits it; means over the training items. ē: the mean item embedding.",
        "",
        "| dataset | model | sampler | M | centred | seed | R² | cos(ĝ, ē) | cos(e_i, ē) | cos(ĝ, e_i) "
        "| cos(ĝ − mean ĝ, e_i − ē) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['neg_sampler']} | {r['aligndns_candidates']} | "
            f"{'yes' if r['aligndns_center'] else 'no'} | {r['seed']} | "
            f"{r['r2']} | {r['cos_g_mean']} | {r['cos_e_mean']} | {r['cos_g_e']} | {r['cos_centred_g_e']} |"
        )
    payload = {"benchmark": "steering_geometry", "rows": rows, "machine": machine()}
    write_results("steering_geometry", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
