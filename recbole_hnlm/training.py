"""Train and evaluate one built config: RecBole's dataset -> split -> model -> fit -> test, for every rank.

Below both :mod:`recbole_hnlm.quick_start` (a single process) and :mod:`recbole_hnlm.distributed` (each
DDP rank); the split is the one :func:`split_data` draws under ``split_seed``, shared with reloading a
checkpoint (``quick_start.load_data_and_model``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from logging import getLogger
from pathlib import Path
from typing import Any

from recbole.data import data_preparation
from recbole.utils import get_model, get_trainer, init_seed

from recbole_hnlm import compat
from recbole_hnlm.config import HNLMConfig
from recbole_hnlm.data.splits import split_dataset
from recbole_hnlm.ddp import barrier, share_checkpoint_path
from recbole_hnlm.run_logging import init_run_logger

compat.apply()


def split_data(config: HNLMConfig) -> tuple[Any, Any, Any, Any]:
    """``(dataset, train, valid, test)`` loaders, split under ``split_seed``: training and reloading a
    checkpoint share this, so a reloaded model is always evaluated on the split it was trained on."""
    dataset = split_dataset(config)
    return (dataset, *data_preparation(config, dataset))


class ValidationTrace:
    """RecBole's per-validation ``callback_fn``: remembers the best epoch as RecBole's early stopping judges
    it, and the last epoch validated, then calls ``then`` (e.g. Ray Tune). A tie counts as an improvement
    (``recbole.utils.early_stopping`` compares with ``>=``): RecBole then saves the checkpoint again, so the
    epoch recorded is the one whose checkpoint is tested."""

    def __init__(self, bigger: bool, then: Callable[[int, float], Any] | None = None) -> None:
        self.bigger = bigger
        self.then = then
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.last_epoch: int | None = None

    def __call__(self, epoch_idx: int, valid_score: float) -> Any:
        self.last_epoch = epoch_idx
        better = self.best_score is None or (
            valid_score >= self.best_score if self.bigger else valid_score <= self.best_score
        )
        if better:
            self.best_epoch, self.best_score = epoch_idx, valid_score
        return self.then(epoch_idx, valid_score) if self.then is not None else None


def sampler_report(model: Any, train_data: Any) -> dict[str, Any]:
    """What the negative sampler and the train loader's semantic pool observed during training."""
    sampler = getattr(model, "negative_sampler", None)
    report = dict(sampler.report()) if sampler is not None else {}
    pool = getattr(train_data, "semantic_pool", None)
    if pool is not None:
        report["semantic_pool_redrawn_share"] = pool.redrawn / pool.drawn if pool.drawn else None
    guard = getattr(train_data, "text_guard", None)
    if guard is not None:
        report.update(guard.report())
    return report


def train_and_evaluate(
    config: HNLMConfig,
    *,
    saved: bool = True,
    verbose: bool = True,
    callback_fn: Callable[[int, float], Any] | None = None,
    log_dir: str | Path | None = None,
) -> dict[str, Any]:
    """RecBole's dataset -> split -> model -> fit (validation) -> test pipeline for a built config.

    ``callback_fn(epoch_idx, valid_score)`` is RecBole's per-validation hook (Ray Tune reports through it).
    Under DDP every rank runs this; all of them test the checkpoint global rank 0 saved. The log file and
    TensorBoard folder go to ``log_dir/log`` and ``log_dir/log_tensorboard`` (None: RecBole's ``./log``).
    """
    init_run_logger(config, log_dir)
    logger = getLogger()
    logger.info(config)
    dataset, train_data, valid_data, test_data = split_data(config)
    logger.info(dataset)
    if config["diagnostic_oracle_candidates"]:
        # never for a reported model: the held-out splits shape training (it bounds what a guard can gain)
        excluded = train_data.exclude_from_candidates(valid_data._dataset, test_data._dataset)
        logger.warning(f"diagnostic oracle: {excluded} held-out interactions excluded from the candidates")
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    distributed = not config["single_spec"]
    if distributed:
        share_checkpoint_path(trainer)
    start = time.perf_counter()
    epochs = ValidationTrace(config["valid_metric_bigger"], callback_fn)
    best_valid_score, best_valid_result = trainer.fit(
        train_data,
        valid_data,
        verbose=verbose,
        saved=saved,
        show_progress=config["show_progress"],
        callback_fn=epochs,
    )
    fit_seconds = time.perf_counter() - start
    if distributed:
        barrier()  # rank 0 may still be writing the checkpoint the others load
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "fit_seconds": fit_seconds,
        "best_epoch": epochs.best_epoch,
        "epochs_trained": epochs.last_epoch + 1 if epochs.last_epoch is not None else 0,
        "epoch_cap": config["epochs"],
        "missing_semantic_pairs": getattr(train_data, "missing_pairs", 0),
        "sampler_report": sampler_report(model, train_data),
        "checkpoint": trainer.saved_model_file if saved else None,
    }
