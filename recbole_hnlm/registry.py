"""Explicit registry of the plugin's models and trainers, hooked into RecBole's own lookups.

RecBole finds a model by module path (``recbole.model.<category>.<lowercase name>``), a trainer by the
attribute ``recbole.trainer.<Model>Trainer``, and a train dataloader through
``recbole.data.utils.get_dataloader``. :func:`install` plugs each registered model into exactly those
three places and swaps the plugin's :class:`~recbole_hnlm.config.HNLMConfig` into RecBole's quick start,
so stock ``run_recbole``, ``objective_function`` and ``load_data_and_model`` work with plugin models.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from recbole_hnlm import compat

compat.apply()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type
    backbone: str | None  # RecBole model whose yaml supplies the backbone defaults (None: plugin-only)
    uses_plugin_loader: bool = True


_MODELS: dict[str, ModelSpec] = {}
_installed = False

# What ``--model`` accepts on the plugin's command line: backbone names map to their HNLM variants.
MODEL_ALIASES = {
    "MF": "HNLMBPR",
    "BPR": "HNLMBPR",
    "LightGCN": "HNLMLightGCN",
    "NGCF": "HNLMNGCF",
    "SGL": "HNLMSGL",
    "SimGCL": "HNLMSimGCL",
}


def register_model(cls: type, backbone: str | None, *, uses_plugin_loader: bool = True) -> type:
    _MODELS[cls.__name__] = ModelSpec(cls.__name__, cls, backbone, uses_plugin_loader)
    return cls


def _load_models() -> None:
    # Importing the package registers every model (see recbole_hnlm/models/__init__.py).
    import recbole_hnlm.models  # noqa: F401


def registered_models() -> dict[str, ModelSpec]:
    _load_models()
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


def install() -> None:
    """Hook every registered model into RecBole's model, trainer, dataloader and config lookups."""
    global _installed
    if _installed:
        return
    import recbole.data.utils as data_utils
    import recbole.quick_start.quick_start as quick_start
    import recbole.trainer

    from recbole_hnlm.config import HNLMConfig
    from recbole_hnlm.negatives.dataloader import HNLMTrainDataLoader
    from recbole_hnlm.trainer import HNLMTrainer

    models = registered_models()
    for spec in models.values():
        module = sys.modules[spec.cls.__module__]
        sys.modules[f"recbole.model.general_recommender.{spec.name.lower()}"] = module
        setattr(recbole.trainer, f"{spec.name}Trainer", HNLMTrainer)

    stock_get_dataloader = data_utils.get_dataloader

    def get_dataloader(config, phase):
        spec = models.get(config["model"])
        if phase == "train" and spec is not None and spec.uses_plugin_loader:
            return HNLMTrainDataLoader
        return stock_get_dataloader(config, phase)

    data_utils.get_dataloader = get_dataloader
    quick_start.Config = HNLMConfig
    _installed = True
