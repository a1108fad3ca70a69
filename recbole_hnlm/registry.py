"""The plugin's models: a plain table, filled by the :func:`register_model` decorator in each model file.

This module imports nothing of the package; :func:`recbole_hnlm.config.install` imports
:mod:`recbole_hnlm.models` (which fills the table) and hooks every entry into RecBole's lookups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type
    backbone: str | None  # RecBole model whose yaml supplies the backbone defaults (None: plugin-only)
    uses_plugin_loader: bool = True


_MODELS: dict[str, ModelSpec] = {}

# What ``--model`` accepts on the plugin's command line: backbone names map to their HNLM variants.
MODEL_ALIASES = {
    "MF": "HNLMBPR",
    "BPR": "HNLMBPR",
    "LightGCN": "HNLMLightGCN",
    "NGCF": "HNLMNGCF",
    "SGL": "HNLMSGL",
    "SimGCL": "HNLMSimGCL",
}


def register_model(backbone: str | None, *, uses_plugin_loader: bool = True) -> Callable[[type], type]:
    """Class decorator: ``@register_model(backbone="LightGCN")`` lists the class under its own name."""

    def register(cls: type) -> type:
        _MODELS[cls.__name__] = ModelSpec(cls.__name__, cls, backbone, uses_plugin_loader)
        return cls

    return register


def registered_models() -> dict[str, ModelSpec]:
    """The models registered so far (all of them once :mod:`recbole_hnlm.models` is imported)."""
    return dict(_MODELS)


def model_backbones() -> dict[str, str | None]:
    return {name: spec.backbone for name, spec in registered_models().items()}


def resolve_model_name(name: str) -> str:
    """Map a command-line model name (``LightGCN``, ``MF``, ``HNLMLightGCN``) to a registered model."""
    models = registered_models()
    resolved = MODEL_ALIASES.get(name, name)
    if resolved not in models:
        known = sorted(set(MODEL_ALIASES) | set(models))
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(known)}")
    return resolved
