"""RecBole ``Config`` with the plugin's property files layered in (RecBole-GNN's pattern).

Internal priority, lowest first: RecBole's own chain (overall, model, sample, dataset yaml), then for a
plugin model its backbone's RecBole yaml and the plugin's ``properties/overall.yaml`` and
``properties/model/<Model>.yaml``, then the plugin's ``properties/dataset/<dataset>.yaml`` for any model.
External settings (config files < config dict < ``--key=value`` on the command line) still win.

It also lifts RecBole's hard-coded NCCL backend: distributed runs without CUDA use gloo on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from recbole.config import Config

from recbole_hnlm import compat
from recbole_hnlm.config_checks import check_run_settings, load_yaml_file, warn_unknown_keys

compat.apply()

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
RECBOLE_PROPERTIES_DIR = Path(__import__("recbole").__file__).resolve().parent / "properties"


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


def plugin_backbones() -> dict[str, str | None]:
    """Plugin model name -> the RecBole model whose yaml supplies its backbone defaults."""
    from recbole_hnlm.registry import model_backbones

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
        backend = self.final_config_dict.get("ddp_backend") or "auto"
        if backend not in ("auto", "nccl", "gloo"):
            raise ValueError(f"config key 'ddp_backend' must be auto, nccl or gloo, got {backend!r}")
        return backend == "nccl" or (backend == "auto" and torch.cuda.is_available())


def make_config(
    model: str,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    *,
    read_command_line: bool = False,
) -> HNLMConfig:
    """Build the plugin's config (registers the plugin first, so plugin model names resolve)."""
    from recbole_hnlm.registry import install

    install()
    return HNLMConfig(
        model=model,
        dataset=dataset,
        config_file_list=config_file_list,
        config_dict=config_dict,
        read_command_line=read_command_line,
    )
