"""Reading plugin settings from a RecBole ``Config`` or a dict: a leaf module, importable from anywhere.

Kept apart from :mod:`recbole_hnlm.config` (RecBole's ``Config`` and the model registry) so that the
negatives, stages and data modules that read settings import nothing above them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """``config[key]``, or ``default`` when the key is missing or None (a RecBole ``Config`` or a dict)."""
    try:
        value = config[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


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


DEFAULT_ARTIFACT_DIR = "artifacts"


def dataset_artifacts(config: Any, dataset: str | None = None, root: Any = None) -> Path:
    """``<artifact_dir>/<dataset>``, the folder of a dataset's artefacts: the one place it is computed.

    ``root`` (a stage's ``--artifact_dir``) overrides the config's ``artifact_dir``, ``dataset`` the config's
    dataset; an unset or empty root is ``artifacts``."""
    base = root if root is not None else config_value(config, "artifact_dir")
    return Path(base or DEFAULT_ARTIFACT_DIR) / str(dataset if dataset is not None else config["dataset"])
