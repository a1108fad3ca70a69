"""Adopting finished cells after a yaml default moved and their arms pin the old value."""

from __future__ import annotations

import json

import pytest

from recbole_hnlm.bench.adopt import adopt_cell, adopt_cells, parse_pins
from recbole_hnlm.bench.arms import parse_arms
from recbole_hnlm.bench.cells import cell_inputs, cell_key, cell_path, finished_cell
from recbole_hnlm.bench.settings import BenchSettings
from recbole_hnlm.io import atomic_write_json

TINY = {"embedding_size": 16, "show_progress": False, "state": "ERROR"}


def _settings(tmp_path, pins: dict[str, str] | None = None) -> BenchSettings:
    """A grid of arm `steered` (aligndns) and `plain` (dnsmn); `pins` go on `steered` only."""
    return BenchSettings(
        dataset="ml-100k",
        models=["MF"],
        arms=parse_arms("steered:aligndns,plain:dnsmn"),
        seeds=2,
        out=str(tmp_path / "results"),
        runs_dir=str(tmp_path / "runs"),
        overrides=dict(TINY),
        arm_overrides={"steered": {"aligndns_beta": "-0.5", **(pins or {})}},
    )


def _finish(settings: BenchSettings, label: str, k: int, **extra) -> dict:
    """Write a finished cell as the grid wrote it under ``settings`` (no resolved record)."""
    arm = next(a for a in settings.arms if a.label == label)
    cell = {
        "key": cell_key(settings, "MF", arm, settings.base_seed + k, None),
        "label": label,
        "inputs": cell_inputs(settings, None),
        "test_result": {"ndcg@20": 0.25 + k},
        **extra,
    }
    atomic_write_json(cell_path(settings, "MF", label, k), cell)
    return cell


def test_cells_that_ran_under_the_old_default_are_adopted_under_the_pinned_key(tmp_path):
    before = _settings(tmp_path)
    for k in range(2):
        _finish(before, "steered", k)
        _finish(before, "plain", k)
    after = _settings(tmp_path, {"aligndns_center": "False"})
    steered = after.arms[0]
    assert finished_cell(after, "MF", steered, 0) is None  # the pin changed the key

    adopted = adopt_cells(after, {"aligndns_center": "False"})
    assert adopted == ["MF-steered-seed0.json", "MF-steered-seed1.json"]  # plain pins nothing
    for k in range(2):
        cell = finished_cell(after, "MF", steered, k)
        assert cell is not None and cell["test_result"] == {"ndcg@20": 0.25 + k}  # results untouched
        assert cell["adopted_pins"] == {"aligndns_center": "False"}
    assert finished_cell(after, "MF", after.arms[1], 0) is not None  # never touched, still finished
    assert adopt_cells(after, {"aligndns_center": "False"}) == []  # idempotent


def test_a_cell_is_not_adopted_when_anything_but_the_pin_differs_or_it_recorded_the_key(tmp_path):
    before = _settings(tmp_path)
    _finish(before, "steered", 0)
    # the arm now also changes beta: not the same run, so no adoption
    moved = _settings(tmp_path, {"aligndns_center": "False"})
    moved.arm_overrides["steered"]["aligndns_beta"] = "-1.0"
    assert not adopt_cell(moved, "MF", moved.arms[0], 0, {"aligndns_center": "False"})
    # pins the arm does not carry (or carries with another value) adopt nothing
    after = _settings(tmp_path, {"aligndns_center": "False"})
    assert not adopt_cell(after, "MF", after.arms[0], 0, {"aligndns_center": "True"})
    assert not adopt_cell(after, "MF", after.arms[0], 0, {"aligndns_dims": "32"})
    # a cell that recorded the pinned key's resolved value is judged by that record, not adopted
    resolved = {"aligndns_center": "true"}
    path = cell_path(before, "MF", "steered", 0)
    cell = json.loads(path.read_text())
    atomic_write_json(path, {**cell, "inputs": {**cell["inputs"], "resolved": resolved}})
    assert not adopt_cell(after, "MF", after.arms[0], 0, {"aligndns_center": "False"})
    # a missing cell adopts nothing
    assert not adopt_cell(after, "MF", after.arms[0], 1, {"aligndns_center": "False"})


def test_pins_parse_as_key_value_and_a_bad_one_names_itself():
    assert parse_pins(["aligndns_center=False", "a=1"]) == {"aligndns_center": "False", "a": "1"}
    assert parse_pins(None) == {}
    with pytest.raises(ValueError, match="'aligndns_center': write KEY=VALUE"):
        parse_pins(["aligndns_center"])


def test_the_bench_command_adopts_before_it_reads_the_grid(tmp_path, monkeypatch, capsys):
    import argparse

    from recbole_hnlm.bench import harness

    before = _settings(tmp_path)
    _finish(before, "steered", 0)
    parser = argparse.ArgumentParser()
    harness.configure_parser(parser)
    grid = ["--dataset", "ml-100k", "--models", "MF", "--samplers", "steered:aligndns,plain:dnsmn"]
    where = ["--out", str(tmp_path / "results"), "--runs_dir", str(tmp_path / "runs")]
    arms = ["--arm_config", "steered:aligndns_beta=-0.5", "--arm_config", "steered:aligndns_center=False"]
    args = parser.parse_args(
        [*grid, "--seeds", "2", *where, "--cached_only", *arms, "--adopt_pinned", "aligndns_center=False"]
    )
    args.overrides = dict(TINY)
    seen = []
    monkeypatch.setattr(harness, "run_bench", lambda settings: seen.append(settings))
    assert harness.run(args) == 0
    assert (
        "adopted 1 cell(s) under {'aligndns_center': 'False'}: MF-steered-seed0.json"
        in capsys.readouterr().out
    )
    assert finished_cell(seen[0], "MF", seen[0].arms[0], 0) is not None
