"""`recbole-hnlm tune --tool ray`: the Ray Tune trainable (ASHA) and the run, on Ray 2.6.3 and current 2.x."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import recbole_hnlm  # noqa: F401  (compat shims + model registry: also in every Ray worker running a trial)
from recbole_hnlm.config import make_config
from recbole_hnlm.quick_start import (
    _plain,
    train_and_evaluate,
)
from recbole_hnlm.ray_compat import report
from recbole_hnlm.tune_cli import (
    configure_parser,  # noqa: F401  (recbole-hnlm tune)
)
from recbole_hnlm.tune_job import TuneJob, _float_dict, summarise
from recbole_hnlm.tune_params import (
    parse_params_file,
    ray_space,
)

# Ray version differences
# --------------------------------------------------------------------------------------------------


def ray_version() -> tuple[int, int]:
    import ray

    major, minor = ray.__version__.split(".")[:2]
    return int(major), int(minor)


def trial_dir() -> Path:
    """The running trial's folder (``tune.get_context()`` on new Ray, ``air.session`` on 2.6.3)."""
    from ray import tune

    getter = getattr(tune, "get_context", None)
    if getter is not None:
        with contextlib.suppress(Exception):
            return Path(getter().get_trial_dir())
    from ray.air import session

    return Path(session.get_trial_dir())


def storage_kwargs(path: Path) -> dict[str, str]:
    """``storage_path`` on Ray >= 2.7 (``local_dir`` raises there); ``local_dir`` on 2.6.3."""
    return {"storage_path": str(path)} if ray_version() >= (2, 7) else {"local_dir": str(path)}


# --------------------------------------------------------------------------------------------------
# Ray Tune
# --------------------------------------------------------------------------------------------------


def hnlm_trainable(config: dict[str, Any], job: dict[str, Any]) -> None:
    """One Ray Tune trial: train with per-epoch validation reports, then test the best checkpoint once."""
    import torch

    torch.set_num_threads(max(1, int(job["cpus_per_trial"])))
    # RecBole 1.2.1 on today's pandas/torch repeats known, harmless deprecation notices in every trial
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*torch.sparse.SparseTensor.*")
    checkpoints = trial_dir() / "checkpoints"
    overrides = {
        "state": "WARNING",
        **job["overrides"],
        **config,
        "epochs": job["max_epochs"],
        "show_progress": False,
        "checkpoint_dir": str(checkpoints),
        # RecBole exports gpu_id as CUDA_VISIBLE_DEVICES: keep the GPUs Ray gave this trial (none: CPU)
        "gpu_id": os.environ.get("CUDA_VISIBLE_DEVICES", "") if job["gpus_per_trial"] > 0 else "",
    }
    hnlm_config = make_config(job["model"], job["dataset"], job["config_files"] or None, overrides)
    bigger = bool(hnlm_config["valid_metric_bigger"])
    state: dict[str, Any] = {"best": None, "epoch": 0}

    def on_validation(epoch_idx: int, valid_score: float) -> None:
        score = float(valid_score)
        best = state["best"]
        if best is None or (score > best if bigger else score < best):
            state["best"] = score
        state["epoch"] = epoch_idx + 1
        report({"valid_score": score, "best_valid_score": state["best"], "epoch": epoch_idx + 1})

    start = time.perf_counter()
    result = train_and_evaluate(hnlm_config, saved=True, verbose=False, callback_fn=on_validation)
    best = float(result["best_valid_score"])
    final = {
        "valid_score": best,
        "best_valid_score": best,
        "epoch": state["epoch"],
        "finished": True,
        "trial_seconds": time.perf_counter() - start,
        **{f"valid/{k}": v for k, v in _float_dict(result["best_valid_result"]).items()},
        **{f"test/{k}": v for k, v in _float_dict(result["test_result"]).items()},
    }
    if result.get("checkpoint"):
        with contextlib.suppress(OSError):
            os.remove(result["checkpoint"])  # only needed for the test evaluation above
    report(final)


def _split_metrics(last: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: float(v) for k, v in last.items() if k.startswith(prefix)}


def _ray_trial_row(trial: Any, names: Sequence[str]) -> dict[str, Any]:
    last = dict(trial.last_result or {})
    status = str(trial.status)
    if status == "ERROR":
        outcome = "error"
    elif last.get("finished"):
        outcome = "completed"
    elif last:
        outcome = "stopped early"
    else:
        outcome = status.lower()
    row: dict[str, Any] = {
        "trial": str(trial.trial_id),
        "status": outcome,
        "params": {n: _plain(trial.config.get(n)) for n in names},
        "epochs": int(last.get("epoch", 0)),
        "best_valid_score": float(last["best_valid_score"]) if "best_valid_score" in last else None,
        "valid_result": _split_metrics(last, "valid/"),
        "test_result": _split_metrics(last, "test/"),
    }
    if outcome == "error":
        error_file = getattr(trial, "error_file", None)
        message = ""
        if error_file and Path(error_file).is_file():
            message = Path(error_file).read_text(errors="replace").strip().splitlines()[-1]
        row["error"] = message or "see the trial's error.txt"
    return row


def run_ray(job: TuneJob) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from recbole_hnlm.ray_compat import init_ray

    specs = parse_params_file(job.params_file)
    names = [s.name for s in specs]
    started = init_ray(job.ray_address, num_cpus=job.num_cpus)
    try:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric="valid_score",
            mode=job.mode,
            # one report per validation epoch, plus the final test report: trials end by themselves
            max_t=job.max_epochs + 1,
            grace_period=job.grace_period,
            reduction_factor=job.reduction_factor,
        )
        resources = {"cpu": job.cpus_per_trial, "gpu": job.gpus_per_trial}
        extra: dict[str, Any] = storage_kwargs(Path(job.output_dir))
        if ray_version() < (2, 7):  # newer Ray prints its own trial table
            extra["progress_reporter"] = tune.CLIReporter(
                parameter_columns=names, metric_columns=["epoch", "valid_score", "best_valid_score"]
            )
        analysis = tune.run(
            tune.with_parameters(hnlm_trainable, job=asdict(job)),
            name="ray",
            config=ray_space(specs),
            num_samples=job.samples,
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=job.seed),
            resources_per_trial=resources,
            raise_on_failed_trial=False,
            verbose=1,
            **extra,
        )
        rows = [_ray_trial_row(t, names) for t in analysis.trials]
        # trials ASHA stopped never reached their own clean-up; checkpoints were only for the test epoch
        folders = list(Path(job.output_dir).glob("ray/*/checkpoints"))
        for trial in analysis.trials:
            folders += [Path(p) / "checkpoints" for p in (getattr(trial, "local_path", None),) if p]
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        if started:
            import ray

            ray.shutdown()
    return summarise(job, rows)


# --------------------------------------------------------------------------------------------------
