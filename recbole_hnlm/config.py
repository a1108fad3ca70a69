"""RecBole ``Config`` with the plugin's property files layered in (RecBole-GNN's pattern).

Internal priority, lowest first: RecBole's own chain (overall, model, sample, dataset yaml), then for a
plugin model its backbone's RecBole yaml and the plugin's ``properties/overall.yaml`` and
``properties/model/<Model>.yaml``, then the plugin's ``properties/dataset/<dataset>.yaml`` for any model.
External settings (config files < config dict < ``--key=value`` on the command line) still win.

It also lifts RecBole's hard-coded NCCL backend: distributed runs without CUDA use gloo on the CPU; and
:func:`install` hooks the registered models (:mod:`recbole_hnlm.registry`) into RecBole's own lookups.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from recbole.config import Config

from recbole_hnlm import compat, ddp
from recbole_hnlm.config_checks import check_run_settings, load_yaml_file, warn_unknown_keys
from recbole_hnlm.config_values import FALSE_WORDS, TRUE_WORDS, as_flag, config_value, settings_values
from recbole_hnlm.registry import model_backbones, registered_models

compat.apply()

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
RECBOLE_PROPERTIES_DIR = Path(__import__("recbole").__file__).resolve().parent / "properties"


__all__ = [
    "FALSE_WORDS",
    "PROPERTIES_DIR",
    "TRUE_WORDS",
    "HNLMConfig",
    "as_flag",
    "config_value",
    "install",
    "make_config",
    "plugin_backbones",
    "settings_values",
]


def plugin_backbones() -> dict[str, str | None]:
    """Plugin model name -> the RecBole model whose yaml supplies its backbone defaults."""
    install()
    return model_backbones()


class HNLMConfig(Config):
    """RecBole Config that also reads the plugin's ``properties/`` files.

    ``read_command_line=False`` stops RecBole from parsing ``sys.argv`` (the plugin's own command line
    parses it and passes the ``--key=value`` overrides as ``config_dict``; RecBole would otherwise also
    read ``--model=LightGCN`` as a config entry).
    """

    def __init__(self, *args: Any, read_command_line: bool = True, **kwargs: Any) -> None:
        self._read_command_line = read_command_line
        super().__init__(*args, **kwargs)
        check_run_settings(self)
        self.unknown_keys = warn_unknown_keys(self)  # key -> closest known key; warned once per process

    def _load_cmd_line(self) -> dict[str, Any]:
        return super()._load_cmd_line() if self._read_command_line else {}

    def _load_config_files(self, file_list: list[str] | None) -> dict[str, Any]:
        loaded: dict[str, Any] = {}
        for file in file_list or []:
            loaded.update(load_yaml_file(file, self.yaml_loader) or {})
        return loaded

    def _update_internal_config_dict(self, file: str) -> dict[str, Any] | None:
        loaded = load_yaml_file(file, self.yaml_loader)
        if loaded is not None:
            self.internal_config_dict.update(loaded)
        return loaded

    def _load_internal_config_dict(self, model: str, model_class: Any, dataset: str) -> None:
        super()._load_internal_config_dict(model, model_class, dataset)
        backbones = plugin_backbones()
        if model in backbones:
            backbone = backbones[model]
            layers = [PROPERTIES_DIR / "overall.yaml", PROPERTIES_DIR / "model" / f"{model}.yaml"]
            if backbone:
                # The backbone's defaults: RecBole's own yaml, or the plugin's for backbones RecBole lacks.
                backbone_files = [RECBOLE_PROPERTIES_DIR / "model", PROPERTIES_DIR / "model"]
                layers[:0] = [folder / f"{backbone}.yaml" for folder in backbone_files]
            for file in layers:
                if file.is_file():
                    self._update_internal_config_dict(str(file))
        dataset_file = PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"
        if dataset_file.is_file():
            loaded = self._update_internal_config_dict(str(dataset_file))
            # Dataset keys take part in RecBole's dataset-cache signature; register them as RecBole does.
            self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    def _init_device(self) -> None:
        distributed = "local_rank" in self.final_config_dict
        if not distributed or self._use_cuda_for_ddp():
            super()._init_device()
            return
        # RecBole hard-codes backend="nccl" and cuda devices; on CPU-only machines use gloo.
        cfg = self.final_config_dict
        torch.distributed.init_process_group(
            backend="gloo",
            rank=cfg["local_rank"] + cfg["offset"],
            world_size=cfg["world_size"],
            init_method=f"tcp://{cfg['ip']}:{cfg['port']}",
        )
        cfg["device"] = torch.device("cpu")
        cfg["single_spec"] = False
        if cfg["local_rank"] != 0:
            cfg["state"] = "error"
            cfg["show_progress"] = False
            cfg["verbose"] = False

    def _use_cuda_for_ddp(self) -> bool:
        return ddp.use_cuda(self.final_config_dict)


def make_config(
    model: str,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    *,
    read_command_line: bool = False,
) -> HNLMConfig:
    """Build the plugin's config (registers the plugin first, so plugin model names resolve)."""
    install()
    return HNLMConfig(
        model=model,
        dataset=dataset,
        config_file_list=config_file_list,
        config_dict=config_dict,
        read_command_line=read_command_line,
    )


_installed = False


def install() -> None:
    """Hook every registered model into RecBole's model, trainer, dataloader and config lookups (idempotent).

    RecBole finds a model by module path (``recbole.model.<category>.<lowercase name>``), a trainer by the
    attribute ``recbole.trainer.<Model>Trainer``, and a train dataloader through
    ``recbole.data.utils.get_dataloader``; each registered model is plugged into exactly those three places,
    and :class:`HNLMConfig` replaces RecBole's ``Config`` in its quick start, so stock ``run_recbole``,
    ``objective_function`` and ``load_data_and_model`` work with plugin models. Importing
    :mod:`recbole_hnlm.models` fills the registry (each model file registers its class).
    """
    global _installed
    if _installed:
        return
    import recbole.data.utils as data_utils
    import recbole.quick_start.quick_start as quick_start
    import recbole.trainer

    import recbole_hnlm.models  # noqa: F401  (each model file registers its class)
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
