"""The markdown page of ``benchmarks/semantic_diagnostics.py``: one table per measure, every dataset."""

from __future__ import annotations

from typing import Any


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# Semantic diagnostics: do text signals find hard negatives or false negatives?",
        "",
        "Written by `benchmarks/semantic_diagnostics.py` (see its docstring for each measure). A held-out",
        "positive (valid or test interaction) offered as a negative is a false negative. Checkpoints:",
        ", ".join(
            f"{n}: {r['checkpoint_model']} trained with {r.get('checkpoint_sampler', 'rns')}"
            for n, r in payload["datasets"].items()
        )
        + ".",
        "",
        "| dataset | training pairs sampled | held-out share: text neighbours of i | uniform | ratio |"
        " training positives among the neighbours |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in payload["datasets"].items():
        t = r["text_neighbours"]
        lines.append(
            f"| {name} | {r['samples']} | {t['heldout_share_text']:.2%} | {t['heldout_share_uniform']:.2%} "
            f"| {t['ratio']:.1f}× | {t['training_positive_share']:.1%} |"
        )
    lines += [
        "",
        "Guard premise: of 32 uniform candidates, the half closest to the user's text taste against the",
        "farthest half, and the held-out share of DNS's top-2 picks (the converged checkpoint's scores).",
        "",
        "| dataset | closest half | farthest half | DNS(32,2) picks | guarddns(32−16,2) | DNS(16,2) picks |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in payload["datasets"].items():
        g = r["guard"]
        picks = g["picks_heldout_share"]
        lines.append(
            f"| {name} | {g['heldout_share_closest_half']:.2%} | {g['heldout_share_farthest_half']:.2%} | "
            f"{picks['dns_all']:.2%} | {picks['guarded']:.2%} | {picks['dns_half']:.2%} |"
        )
    lines += [
        "",
        "Why the per-row guard loses: an item at the user's closeness percentile p is kept with probability",
        "P(Binomial(31, p) < 16), so for each user the closest part of the catalogue is almost never a",
        "negative, whatever its CF score (share of the catalogue kept with probability under 5%):",
        "",
    ]
    lines += [
        f"- {name}: {r['guard']['excluded_catalogue_share']:.0%} of each user's catalogue"
        for name, r in payload["datasets"].items()
        if "excluded_catalogue_share" in r["guard"]
    ]
    vetoes = {n: r["veto"] for n, r in payload["datasets"].items() if "veto" in r}
    if vetoes:
        lines += [
            "",
            "Catalogue veto (guarddns_quantile q): of 20 uniform candidates the first 16 outside the user's",
            "closest 1 − q of the catalogue; the held-out share of DNS(16,2)'s picks with the real text",
            "and with each item's text read from a random other item (control), against DNS on the first",
            "16 drawn:",
            "",
            "| dataset | q | DNS(16,2) picks | veto picks (text) | veto picks (permuted) "
            "| vetoed draws (text) |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in vetoes.items():
            by = {(row["quantile"], row["text"]): row for row in v["rows"]}
            for q in sorted({row["quantile"] for row in v["rows"]}):
                text, perm = by[(q, "text")], by[(q, "permuted")]
                lines.append(
                    f"| {name} | {q} | {v['dns_first_kept']:.2%} | {text['picks_heldout_share']:.2%} | "
                    f"{perm['picks_heldout_share']:.2%} | {text['vetoed_share']:.1%} |"
                )
    embedded = {n: r["embedder"] for n, r in payload["datasets"].items() if "embedder" in r}
    if embedded:
        lines += [
            "",
            "Embedder on triples it was not trained on (j: the checkpoint's top of 32 by e_u·e_m + e_i·e_m):",
            "",
            "| dataset | embedder | gap cos(q,j) − cos(q,i) | gap > 0 | median rank of j | j in top 64 |",
            "|---|---|---|---|---|---|",
        ]
        for name, e in embedded.items():
            for kind in ("fine-tuned", "un-tuned"):
                s = e[kind]
                lines.append(
                    f"| {name} | {kind} | {s['gap_mean']:+.4f} | {s['gap_positive_share']:.1%} | "
                    f"{s['rank_of_j_median']:.0f} of {e['items']} | {s['rank_of_j_top64_share']:.1%} |"
                )
            s = e["text(i)"]
            lines.append(
                f"| {name} | text(i) neighbours (MiniLM) | | | {s['rank_of_j_median']:.0f} of {e['items']} | "
                f"{s['rank_of_j_top64_share']:.1%} |"
            )
    geometry = {n: r["adapter"] for n, r in payload["datasets"].items() if "adapter" in r}
    for name, g in geometry.items():
        lines += [
            "",
            f"Paper's mix mode on {name} (adversarial adapter, α 0.1, λ 0.01), per epoch on two training "
            "batches; a uniform item is a training positive with probability "
            f"{g['uniform_item_is_training_positive']:.2%}:",
            "",
            "| h | epoch | cos(adapter(h), e_u) | cos(adapter(h), e_i) | nearest item: a training positive |",
            "|---|---|---|---|---|",
        ]
        for store in ("text(i)", "random code per user"):
            for row in g[store]:
                if row["epoch"] in (0, 1, 4, 9) or row["epoch"] == g["epochs"] - 1:
                    lines.append(
                        f"| {store} | {row['epoch']} | {row['cos_user']:+.3f} | {row['cos_positive']:+.3f} | "
                        f"{row['nearest_is_training_positive']:.1%} |"
                    )
    return "\n".join(lines) + "\n"
