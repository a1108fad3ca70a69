"""Search spaces for `recbole-hnlm tune`: RecBole params files, as Ray Tune and hyperopt spaces."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import recbole_hnlm  # noqa: F401  (compat shims + model registry: also in every Ray worker running a trial)
from recbole_hnlm.config import PROPERTIES_DIR
from recbole_hnlm.tune_cli import (
    configure_parser,  # noqa: F401  (recbole-hnlm tune)
)

PARAM_KINDS = ("choice", "uniform", "quniform", "loguniform")


class ParamsFileError(ValueError):
    """A params file line that is not ``name choice|uniform|quniform|loguniform values``."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str
    values: tuple  # choice: the options; uniform/loguniform: (lo, hi); quniform: (lo, hi, q)


# --------------------------------------------------------------------------------------------------
# search spaces
# --------------------------------------------------------------------------------------------------


def resolve_params_file(path: str | os.PathLike) -> Path:
    """``path`` as given, else the plugin's ``properties/hyper/<name>[.hyper]``."""
    given = Path(path)
    if given.is_file():
        return given.resolve()
    hyper = PROPERTIES_DIR / "hyper"
    for candidate in (hyper / given.name, hyper / f"{given.name}.hyper"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in hyper.glob("*.hyper")))
    raise FileNotFoundError(f"params file {str(path)!r} not found (shipped in properties/hyper/: {shipped})")


def parse_params_file(path: str | os.PathLike) -> list[ParamSpec]:
    """Read a RecBole params file (RecBole's own syntax; ``#`` comments and blank lines are allowed here)."""
    path = Path(path)
    specs: list[ParamSpec] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}, line {number}"
        parts = line.split()
        if len(parts) < 3:
            raise ParamsFileError(f"{where}: expected 'name kind values', got {raw.strip()!r}")
        name, kind, text = parts[0], parts[1], "".join(parts[2:])
        if kind not in PARAM_KINDS:
            raise ParamsFileError(f"{where}: unknown kind {kind!r} (use one of {', '.join(PARAM_KINDS)})")
        if name in seen:
            raise ParamsFileError(f"{where}: parameter {name!r} appears twice")
        seen.add(name)
        try:
            if kind == "choice":
                import ast

                values = ast.literal_eval(text)
                if not isinstance(values, list) or not values:
                    raise ValueError("choice needs a non-empty [list]")
                values = tuple(values)
            else:
                values = tuple(float(v) for v in text.split(","))
                expected = 3 if kind == "quniform" else 2
                if len(values) != expected:
                    raise ValueError(f"{kind} needs {expected} comma-separated numbers")
                if values[0] >= values[1]:
                    raise ValueError(f"low ({values[0]}) must be below high ({values[1]})")
        except (ValueError, SyntaxError) as err:
            raise ParamsFileError(f"{where}: {name} {kind}: {err}") from err
        specs.append(ParamSpec(name, kind, values))
    if not specs:
        raise ParamsFileError(f"{path}: no parameters")
    return specs


def ray_space(specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Ray Tune search space; ``loguniform lo,hi`` keeps RecBole's meaning (bounds in log space)."""
    from ray import tune

    space: dict[str, Any] = {}
    for spec in specs:
        if spec.kind == "choice":
            space[spec.name] = tune.choice(list(spec.values))
        elif spec.kind == "uniform":
            space[spec.name] = tune.uniform(*spec.values)
        elif spec.kind == "quniform":
            space[spec.name] = tune.quniform(*spec.values)
        else:
            space[spec.name] = tune.loguniform(math.exp(spec.values[0]), math.exp(spec.values[1]))
    return space


def hyperopt_params_dict(specs: Sequence[ParamSpec]) -> dict[str, dict[str, Any]]:
    """RecBole ``HyperTuning(params_dict=...)`` form: ``{kind: {name: values}}``."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        out.setdefault(spec.kind, {})[spec.name] = list(spec.values)
    return out


# --------------------------------------------------------------------------------------------------
