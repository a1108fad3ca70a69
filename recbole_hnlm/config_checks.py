"""Checks on a built config, before a run writes anything.

* :func:`check_run_settings`: run arguments that cannot train (``--epochs=0``, ``--epochs=abc``, a batch
  size of 0, ...) are a :class:`RunSettingsError` naming the key and the value.
* :func:`unknown_keys` / :func:`warn_unknown_keys`: a key that neither RecBole nor the plugin knows (a typo
  such as ``--semantic_alpah=0.5``, which would train with the default) is a warning naming the closest
  known key. Not an error: RecBole users pass keys of their own models.
* :func:`load_yaml_file`: a config file read as RecBole reads it, whose syntax errors name the file, line
  and column instead of ``<unicode string>``.
"""

from __future__ import annotations

import difflib
import math
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
RECBOLE_PROPERTIES_DIR = Path(__import__("recbole").__file__).resolve().parent / "properties"

# (key, smallest allowed value); None: any whole number (RecBole reads eval_step <= 0 as "never validate")
WHOLE_NUMBERS = (
    ("epochs", 1),
    ("train_batch_size", 1),
    ("eval_batch_size", 1),
    ("stopping_step", 1),
    ("eval_step", None),
    ("seed", None),
)
POSITIVE_NUMBERS = ("learning_rate",)

# Keys RecBole sets or reads at run time without listing them in a yaml file (DDP and the quick start).
RECBOLE_RUNTIME_KEYS = frozenset(
    {"model", "dataset", "config_files", "local_rank", "nproc", "world_size", "offset", "ip", "port"}
)


class RunSettingsError(ValueError):
    """A run argument with which no model could be trained (or evaluated) sensibly."""


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_run_settings(config: Any) -> None:
    """Raise :class:`RunSettingsError` listing every run argument of ``config`` that cannot train.

    Keys the config does not hold (None) are left to RecBole's defaults.
    """
    problems = []
    for key, least in WHOLE_NUMBERS:
        value = config[key]
        if value is None:
            continue
        if not _is_whole(value):
            problems.append(f"{key!r} must be a whole number, got {value!r}")
        elif least is not None and value < least:
            problems.append(f"{key!r} must be at least {least}, got {value!r}")
    for key in POSITIVE_NUMBERS:
        value = config[key]
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value <= 0:
            problems.append(f"{key!r} must be a number > 0, got {value!r}")
    if problems:
        raise RunSettingsError("invalid run settings: config key " + "; config key ".join(problems))


def load_yaml_file(path: str | Path, loader: Any) -> Any:
    """``yaml.load`` of the file at ``path``; a syntax error is a ``ValueError`` naming file, line, column."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = " ".join(part for part in (err.context, err.problem) if part)
        raise ValueError(f"{where}: yaml syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: yaml error: {err}") from None


def _yaml_keys(path: Path) -> set[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(key) for key in data} if isinstance(data, dict) else set()


@lru_cache(maxsize=1)
def plugin_keys() -> frozenset[str]:
    """Every key of the plugin's property files (overall, every model, every dataset)."""
    files = [PROPERTIES_DIR / "overall.yaml"]
    files += sorted((PROPERTIES_DIR / "model").glob("*.yaml"))
    files += sorted((PROPERTIES_DIR / "dataset").glob("*.yaml"))
    files += [RECBOLE_PROPERTIES_DIR / "dataset" / "sample.yaml", RECBOLE_PROPERTIES_DIR / "overall.yaml"]
    return frozenset(key for file in files if file.is_file() for key in _yaml_keys(file))


def known_keys(config: Any) -> set[str]:
    """Keys this config's model and dataset take: its internal layers (RecBole's overall, model, sample and
    dataset yaml, the backbone's yaml, the plugin's files), RecBole's argument lists, the keys RecBole
    computes itself, and every key of the plugin's property files."""
    known = set(config.internal_config_dict) | plugin_keys() | RECBOLE_RUNTIME_KEYS
    for names in config.parameters.values():
        known.update(names)
    known.update(set(config.final_config_dict) - set(config.external_config_dict))
    return known


def unknown_keys(config: Any) -> dict[str, str | None]:
    """Externally set keys (config files, dict, command line) that nobody knows -> the closest known key."""
    known = known_keys(config)
    unknown = sorted(str(key) for key in config.external_config_dict if key not in known)
    return {key: next(iter(difflib.get_close_matches(key, known, n=1, cutoff=0.6)), None) for key in unknown}


def describe_unknown(unknown: dict[str, str | None]) -> str:
    """``2 unknown config keys (ignored by RecBole and the plugin): 'a' (did you mean 'b'?), 'c'``."""
    parts = [f"{key!r} (did you mean {near!r}?)" if near else repr(key) for key, near in unknown.items()]
    noun = "key" if len(unknown) == 1 else "keys"
    head = f"{len(unknown)} unknown config {noun} (read by neither RecBole nor the plugin)"
    return f"{head}: " + ", ".join(parts)


_warned: set[str] = set()


def warn_unknown_keys(config: Any) -> dict[str, str | None]:
    """Print a warning (to stderr, once per key and process) about the unknown keys; returns them all."""
    unknown = unknown_keys(config)
    fresh = {key: near for key, near in unknown.items() if key not in _warned}
    if fresh:
        _warned.update(fresh)
        print(f"WARNING: {describe_unknown(fresh)}", file=sys.stderr)
    return unknown
