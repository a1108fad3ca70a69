"""Reading plugin settings from a RecBole ``Config`` or a dict: a leaf module, importable from anywhere.

Kept apart from :mod:`recbole_hnlm.config` (RecBole's ``Config`` and the model registry) so that the
negatives, stages and data modules that read settings import nothing above them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

OVERALL_YAML = Path(__file__).resolve().parent / "properties" / "overall.yaml"


@lru_cache(maxsize=1)
def _overall_defaults() -> dict[str, Any]:
    # Read once per process; callers get copies of mutable values (default_of), never this dict.
    loaded = yaml.safe_load(OVERALL_YAML.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{OVERALL_YAML}: expected a yaml mapping of config keys")
    return loaded


def overall_keys() -> frozenset[str]:
    """Every key ``properties/overall.yaml`` declares."""
    return frozenset(_overall_defaults())


def default_of(key: str) -> Any:
    """The default of plugin config key ``key``: its value in ``properties/overall.yaml``, the one place
    a default is written (Python code reads it from here instead of repeating it).

    A key the yaml lacks is a ``KeyError`` naming it: a typo must not become a silent None."""
    defaults = _overall_defaults()
    if key not in defaults:
        raise KeyError(f"config key {key!r} has no default in {OVERALL_YAML.name}")
    value = defaults[key]
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


# RecBole's own default seed (its overall.yaml, not ours): what a run without ``seed`` trains and splits with
RECBOLE_SEED = 2020

_YAML_DEFAULT = object()  # config_value's "no fallback given": read the yaml's default instead


def _holds(config: Any, key: str) -> bool:
    try:
        return key in config
    except TypeError:  # no config at all (None), or an object without membership
        return False


def config_value(config: Any, key: str, default: Any = _YAML_DEFAULT) -> Any:
    """``config[key]`` from a RecBole ``Config`` or a dict.

    With ``default``: that value when the key is missing or None. Without it: the key's
    ``properties/overall.yaml`` default when the config does not hold the key (a plain dict, or the config
    of a model that is not the plugin's), and None when the config sets the key to None (``~`` often means
    something: "all", "unset"). A key the yaml lacks reads None when missing.
    """
    value = config[key] if _holds(config, key) else None
    if value is not None:
        return value
    if default is not _YAML_DEFAULT:
        return default
    if _holds(config, key):
        return None
    return default_of(key) if key in _overall_defaults() else None


def setting(config: Any, key: str) -> Any:
    """``config[key]``, or its ``properties/overall.yaml`` default when the key is missing or None: for
    keys where None means nothing but "unset" (a count, a weight, a mode)."""
    return config_value(config, key, default_of(key))


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def as_flag(value: Any, key: str) -> bool:
    """A yes/no setting from yaml or the command line (``--key=false`` arrives as a string); anything that
    is not clearly one or the other is an error naming the key, never a silent False."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"config key {key!r}: expected true or false, got {value!r}")


def settings_values(settings: type, lookup: Callable[[str], Any]) -> dict[str, Any]:
    """The fields of the settings dataclass ``settings`` that ``lookup(name)`` finds (not None), each as
    its default's type: a yes/no field through :func:`as_flag` (``bool("false")`` is True), a number
    through ``int``/``float``, anything else as it is. Absent fields keep their defaults."""
    values: dict[str, Any] = {}
    for name, spec in settings.__dataclass_fields__.items():
        value = lookup(name)
        if value is None:
            continue
        default = spec.default
        if isinstance(default, bool):
            value = as_flag(value, name)
        elif isinstance(default, (int, float)):
            value = type(default)(value)
        values[name] = value
    return values


DEFAULT_ARTIFACT_DIR = default_of("artifact_dir")  # also what an empty artifact_dir means


def dataset_artifacts(config: Any, dataset: str | None = None, root: Any = None) -> Path:
    """``<artifact_dir>/<dataset>``, the folder of a dataset's artefacts: the one place it is computed.

    ``root`` (a stage's ``--artifact_dir``) overrides the config's ``artifact_dir``, ``dataset`` the config's
    dataset; an unset or empty root is ``artifacts``."""
    base = root if root is not None else config_value(config, "artifact_dir")
    return Path(base or DEFAULT_ARTIFACT_DIR) / str(dataset if dataset is not None else config["dataset"])
