"""Keeping finished cells when a yaml default moves.

A cell's key holds its overrides, not the defaults it resolved. When a default moves (say
``aligndns_center`` from False to True), the arms whose cells ran under the old value must say so: the
grid pins the old value on them (``--arm_config LABEL:aligndns_center=False``). That pin is a new override,
so it changes their keys and the finished cells no longer match, though they ran exactly that config.

``--adopt_pinned KEY=OLD`` (repeatable) is the migration: the caller's word that each KEY was OLD by
default when the cells ran. A cell is adopted, its key rewritten to the pinned arm's, only when

* its arm pins exactly these values,
* its recorded key is the one the arm had without those pins (nothing else about it differs), and
* it did not record a resolved value for a pinned key (such a cell is judged by its record instead).

Adoption only ever renames a key; the cell's results are untouched and it records what it adopted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from recbole_hnlm.bench.arms import Arm
from recbole_hnlm.bench.cells import cell_key, cell_keys, cell_path, read_cell
from recbole_hnlm.bench.settings import BenchSettings
from recbole_hnlm.io import atomic_write_json


def parse_pins(values: list[str] | None) -> dict[str, str]:
    """``--adopt_pinned KEY=VALUE`` (repeatable) -> {KEY: VALUE}, values as --arm_config spells them."""
    pins: dict[str, str] = {}
    for value in values or []:
        key, equals, setting = value.partition("=")
        if not (equals and key):
            raise ValueError(f"--adopt_pinned {value!r}: write KEY=VALUE (the value the key had by default)")
        pins[key] = setting
    return pins


def _without_pins(settings: BenchSettings, label: str, pins: dict[str, str]) -> BenchSettings:
    own = {k: v for k, v in settings.arm_overrides.get(label, {}).items() if k not in pins}
    return dataclasses.replace(settings, arm_overrides={**settings.arm_overrides, label: own})


def adopt_cell(settings: BenchSettings, model: str, arm: Arm, k: int, pins: dict[str, str]) -> bool:
    """Rewrite one finished cell's key to its pinned arm's (see the module docstring); True if it did."""
    if not pins or any(settings.arm_overrides.get(arm.label, {}).get(key) != v for key, v in pins.items()):
        return False
    path = cell_path(settings, model, arm.label, k)
    cell = read_cell(path)
    if cell is None:
        return False
    resolved: dict[str, Any] = (cell.get("inputs") or {}).get("resolved") or {}
    if any(key in resolved for key in pins):
        return False
    seed = settings.base_seed + k
    store = settings.given_store(arm.label, seed)
    if store is None and arm.needs_store:
        store = cell.get("negatives")
    # the pins are arm overrides, so the pinned and unpinned keys differ: a cell already under the pinned
    # key (adopted before, or run since) fails this test and is left to run_bench's own checks
    if cell.get("key") not in cell_keys(_without_pins(settings, arm.label, pins), model, arm, seed, store):
        return False
    cell["key"] = cell_key(settings, model, arm, seed, store)
    cell["adopted_pins"] = {**(cell.get("adopted_pins") or {}), **pins}
    atomic_write_json(path, cell)
    return True


def adopt_cells(settings: BenchSettings, pins: dict[str, str]) -> list[str]:
    """:func:`adopt_cell` over the whole grid; the names of the cells adopted."""
    adopted = []
    for k in range(settings.seeds):
        for model in settings.models:
            for arm in settings.arms:
                if adopt_cell(settings, model, arm, k, pins):
                    adopted.append(cell_path(settings, model, arm.label, k).name)
    return adopted
