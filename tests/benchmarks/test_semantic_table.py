"""The semantic table's same-budget comparison: each arm against DNS(M,2) at its own candidate count."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.semantic_table import EARLY_BUDGETS, pool_size, same_budget_dns, summarise


def cell(label: str, sampler: str, seed: int, test: float, resolved: dict[str, object] | None) -> dict:
    inputs: dict[str, object] = {"config_files": {}, "store_meta": None}
    if resolved is not None:
        inputs["resolved"] = {key: json.dumps(value) for key, value in resolved.items()}
    return {
        "label": label,
        "sampler": sampler,
        "model": "MF",
        "k": seed - 2020,
        "seed": seed,
        "inputs": inputs,
        "test_result": {"ndcg@20": test, "recall@20": test},
        "best_valid_result": {"ndcg@20": test},
        "best_epoch": 9,
        "epochs_trained": 30,
        "epoch_cap": 300,
        "fit_seconds": 1.0,
    }


@pytest.mark.parametrize(
    ("sampler", "resolved", "expected"),
    [
        ("dnsmn", {"dnsmn_candidates": None, "neg_candidates": 16}, 16),  # own key unset: neg_candidates
        ("dnsmn", {"dnsmn_candidates": 64, "neg_candidates": 16}, 64),
        ("aligndns", {"aligndns_candidates": 32, "neg_candidates": 16}, 32),
        ("semdns", {"semdns_candidates": None, "neg_candidates": 16, "semdns_k": 16}, 32),  # + text slots
        ("guarddns", {"guarddns_candidates": 20, "neg_candidates": 16}, 20),
        ("rns", {"neg_candidates": 16}, None),  # no candidate pool
    ],
)
def test_pool_size_reads_the_resolved_config(sampler: str, resolved: dict, expected: int | None) -> None:
    assert pool_size(cell("arm", sampler, 2020, 0.1, resolved)) == expected


def test_pool_size_of_a_cell_without_resolved_config_comes_from_its_label() -> None:
    assert pool_size(cell("dnsmn32", "dnsmn", 2020, 0.1, None)) == 32 == EARLY_BUDGETS["dnsmn32"]
    assert pool_size(cell("aligndns16", "aligndns", 2020, 0.1, None)) == 16
    assert pool_size(cell("unheard-of", "aligndns", 2020, 0.1, None)) is None


def test_same_budget_dns_maps_each_m_to_its_plain_dns_arm_and_skips_the_oracle() -> None:
    arms = {
        "dnsmn": {0: cell("dnsmn", "dnsmn", 2020, 0.1, {"neg_candidates": 16})},
        "dnsmn64": {0: cell("dnsmn64", "dnsmn", 2020, 0.1, {"dnsmn_candidates": 64})},
        "dnsmn32-oracle": {0: cell("dnsmn32-oracle", "dnsmn", 2020, 0.1, {"dnsmn_candidates": 32})},
        "aligndns64": {0: cell("aligndns64", "aligndns", 2020, 0.1, {"aligndns_candidates": 64})},
    }
    assert same_budget_dns(arms) == {16: "dnsmn", 64: "dnsmn64"}


def test_summary_pairs_each_arm_with_dns_at_its_own_budget(tmp_path: Path) -> None:
    folder = tmp_path / "toys" / "cells"
    folder.mkdir(parents=True)
    cells = (
        [
            cell("dnsmn64", "dnsmn", seed, test, {"dnsmn_candidates": 64})
            for seed, test in ((2020, 0.20), (2021, 0.22))
        ]
        + [
            cell("aligndns64", "aligndns", seed, test, {"aligndns_candidates": 64})
            for seed, test in ((2020, 0.22), (2021, 0.22))
        ]
        + [cell("aligndns", "aligndns", 2020, 0.30, {"aligndns_candidates": 32})]
    )  # no DNS at 32
    for c in cells:
        (folder / f"{c['label']}-{c['seed']}.json").write_text(json.dumps(c))
    rows = summarise(tmp_path)["datasets"]["toys"]["MF"]
    gain = rows["aligndns64"]["vs_same_budget"]
    assert gain["ref"] == "dnsmn64" and gain["n"] == 2
    assert math.isclose(gain["gain"], 0.44 / 0.42 - 1)  # mean 0.22 against mean 0.21
    assert "vs_same_budget" not in rows["dnsmn64"]  # not against itself
    assert "vs_same_budget" not in rows["aligndns"]
