"""The inference stage's store modes (``hnlm_store_mode``) and the store folder names that carry them.

Kept apart from the stages so that reading a mode costs no model import: the pipeline checks the mode before
any stage runs, and the bench tells from a cached cell's store folder which mode built it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recbole_hnlm.config_values import setting

PAIR = "pair"
FACTORED = "factored"
STORE_MODES = (PAIR, FACTORED)


def store_mode(config: Any) -> str:
    """``hnlm_store_mode``, checked: anything but a known mode is an error naming the key and the modes."""
    mode = str(setting(config, "hnlm_store_mode")).strip().lower()
    if mode not in STORE_MODES:
        raise ValueError(
            f"config key 'hnlm_store_mode': expected one of {', '.join(STORE_MODES)}, "
            f"got {setting(config, 'hnlm_store_mode')!r}"
        )
    return mode


def with_mode(name: str, mode: str) -> str:
    """A store folder name for ``mode``: the pair store keeps ``name``, another mode adds ``-<mode>`` (so the
    modes never replace each other's store)."""
    return name if mode == PAIR else f"{name}-{mode}"


def store_mode_of(folder: str | Path) -> str:
    """The mode whose :func:`with_mode` name ``folder`` has."""
    name = Path(folder).name
    return next((mode for mode in STORE_MODES if mode != PAIR and name.endswith(f"-{mode}")), PAIR)
