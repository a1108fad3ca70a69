"""RecBole 1.2.1 on today's numpy / scipy / torch / Ray: the only place for shims.

Each fix names the failure it prevents (see the project notes, ``recbole.md`` §2):

* E2/E3/E7 - numpy 2 removed aliases that ray 2.6.3 (``np.bool8``) and RecBole (``np.float_``,
  and ``np.float`` in ``Dataset._fill_nan`` when a pickled config skips RecBole's own alias hack) read.
* E5 - scipy >= 1.13 removed ``dok_matrix._update``, used by LightGCN/NGCF to build the adjacency.
* E4 - torch >= 2.6 loads with ``weights_only=True``, which refuses RecBole checkpoints: they pickle the
  whole ``Config`` with protocol 4, whose opcodes torch's weights-only unpickler does not read at all.
  :func:`load_checkpoint` reads them with an allow-listing unpickler instead: torch's own weights-only
  globals plus exactly what a RecBole or plugin checkpoint holds (the ``Config`` classes, RecBole's enums,
  numpy scalars and dtypes, the model classes of RecBole and the plugin, yaml's ``FullLoader``). Anything
  else (``os.system``, ``subprocess``, ``builtins.eval``, ...) is refused, naming the file and the global.
  ``torch.load`` itself is left alone; only RecBole's own call sites (the trainer's resume and
  best-model reload, ``load_data_and_model``, the pretrained-model loads of a few stock models) use it.
* E8 - RecBole's ``sequential_recommender/sine.py`` calls ``torch.autograd.set_detect_anomaly(True)`` when
  it is imported, and the E4 patch imports that package (for S3Rec's checkpoint load): anomaly mode then
  checked every backward of every model in the process, ~1.8x a LightGCN epoch on toys and no change to
  any result. The patch restores the anomaly state the process had before.

``apply()`` is idempotent and runs on ``import recbole_hnlm``. Ray workers and DDP children import the
package too, so they get the same fixes.
"""

from __future__ import annotations

import os
import pickle
import types
import warnings
from typing import Any

import numpy as np

_NUMPY_ALIASES = {
    "bool8": np.bool_,
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "string_": np.bytes_,
    "float": float,
    "int": int,
    "bool": bool,
    "object": object,
    "str": str,
    "long": int,
    "unicode": str,
    "complex": complex,
}

_applied = False


def _patch_numpy() -> None:
    for name, value in _NUMPY_ALIASES.items():
        # numpy 2 raises AttributeError for removed names; hasattr would warn on deprecated ones.
        if name not in np.__dict__:
            setattr(np, name, value)


def _patch_scipy() -> None:
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):

        def _update(self, data: dict) -> None:
            self._dict.update(data)

        sp.dok_matrix._update = _update


# Besides tensors (torch's own weights-only allow-list covers those), this is every global that the
# checkpoints of RecBole 1.2.1 and of this plugin pickle, recorded from one checkpoint of each backbone.
_CHECKPOINT_GLOBALS = frozenset(
    {
        "recbole.config.configurator.Config",
        "recbole_hnlm.config.HNLMConfig",
        "recbole.utils.enum_type.ModelType",
        "recbole.utils.enum_type.InputType",
        "recbole.utils.enum_type.EvaluatorType",
        "recbole.utils.enum_type.FeatureType",
        "recbole.utils.enum_type.FeatureSource",
        "yaml.loader.FullLoader",  # the Config's yaml_loader attribute (a class, never called with data)
        "numpy.dtype",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy.ndarray",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "pathlib.WindowsPath",
        "pathlib.PureWindowsPath",
    }
)
# The Config names its model class; any recommender class of RecBole or of the plugin may appear.
_MODEL_MODULES = ("recbole.model.", "recbole_hnlm.models.")
# RecBole's modules that call ``torch.load`` on a checkpoint: the trainer (resume, best-model reload) and
# the stock models that load a pretrained checkpoint.
_RECBOLE_CHECKPOINT_READERS = (
    "recbole.trainer.trainer",
    "recbole.model.general_recommender.convncf",
    "recbole.model.general_recommender.nais",
    "recbole.model.general_recommender.neumf",
    "recbole.model.general_recommender.ract",
    "recbole.model.sequential_recommender.s3rec",
    "recbole.model.context_aware_recommender.kd_dagfm",
)


class CheckpointRefusedError(pickle.UnpicklingError):
    """A checkpoint pickles an object that no RecBole or recbole-hnlm checkpoint holds."""


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles only the allow-listed globals: nothing in the file can name a function to call."""

    def find_class(self, module: str, name: str) -> Any:
        from torch._weights_only_unpickler import _get_allowed_globals

        full = f"{module}.{name}"
        torch_safe = _get_allowed_globals()
        if full in torch_safe:
            return torch_safe[full]
        if full in _CHECKPOINT_GLOBALS:
            return super().find_class(module, name)
        if module.startswith(_MODEL_MODULES) and name.isidentifier():
            from recbole.model.abstract_recommender import AbstractRecommender

            try:
                found = super().find_class(module, name)
            except (ImportError, AttributeError):
                found = None
            if isinstance(found, type) and issubclass(found, AbstractRecommender):
                return found
        raise CheckpointRefusedError(
            f"refusing to unpickle the global {full!r}: RecBole and recbole-hnlm checkpoints hold no such "
            "object (only tensors, the Config, RecBole's enums, numpy scalars and recommender classes)"
        )


def _load_restricted(file: Any, **kwargs: Any) -> Any:
    return _CheckpointUnpickler(file, **kwargs).load()


# What ``torch.load(pickle_module=...)`` needs of a pickle module.
_CHECKPOINT_PICKLE = types.SimpleNamespace(
    __name__="recbole_hnlm.compat.checkpoint_pickle", Unpickler=_CheckpointUnpickler, load=_load_restricted
)


def load_checkpoint(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
    """``torch.load`` for RecBole and plugin checkpoints: the allow-listing unpickler, never plain pickle.

    ``weights_only=True`` keeps torch's own loader (plain weights need no more); any other value is
    ignored: the allow-list is the restriction. Refusals raise :class:`CheckpointRefusedError` naming the
    file and the global.
    """
    import torch

    if kwargs.pop("weights_only", None) is True:
        return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
    kwargs.pop("pickle_module", None)
    try:
        return torch.load(
            f, map_location=map_location, weights_only=False, pickle_module=_CHECKPOINT_PICKLE, **kwargs
        )
    except CheckpointRefusedError as err:
        where = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", repr(f))
        raise CheckpointRefusedError(f"{where}: {err}") from None


class _CheckpointTorch(types.ModuleType):
    """``torch`` as RecBole's checkpoint readers see it: torch itself, except that ``load`` is
    :func:`load_checkpoint`. ``torch.load`` everywhere else is untouched."""

    def __init__(self, torch_module: types.ModuleType) -> None:
        super().__init__(torch_module.__name__, torch_module.__doc__)
        self._torch = torch_module
        self.load = load_checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)


def recbole_load_data_and_model(model_file: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    """RecBole's ``recbole.quick_start.load_data_and_model``, reading the file with :func:`load_checkpoint`.

    RecBole's own imports ``torch`` inside the function, so its ``torch.load`` cannot be redirected; this
    does the same steps in the same order: config from the checkpoint, dataset, split, model, weights.
    """
    from logging import getLogger

    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_logger, init_seed

    checkpoint = load_checkpoint(model_file)
    config = checkpoint["config"]
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data


def _patch_recbole_checkpoint_loads() -> None:
    import importlib

    import recbole.quick_start
    import recbole.quick_start.quick_start
    import torch

    readers = _CheckpointTorch(torch)
    anomaly = torch.is_anomaly_enabled()  # E8: s3rec's package imports sine.py, which switches it on
    for name in _RECBOLE_CHECKPOINT_READERS:
        module = importlib.import_module(name)
        if getattr(module, "torch", None) is torch:
            module.torch = readers
    torch.autograd.set_detect_anomaly(anomaly)
    recbole.quick_start.load_data_and_model = recbole_load_data_and_model
    recbole.quick_start.quick_start.load_data_and_model = recbole_load_data_and_model


def apply() -> None:
    """Install every shim once (safe to call repeatedly, in any process)."""
    global _applied
    if _applied:
        return
    _patch_numpy()
    _patch_scipy()
    _patch_recbole_checkpoint_loads()
    # thop (a RecBole dependency) and ray 2.6.3 warn on import about deprecated APIs; not actionable.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="thop")
    _applied = True
