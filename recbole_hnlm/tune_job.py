"""One tuning job for `recbole-hnlm tune`: its settings, validated (and its store built) in the driver."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import recbole_hnlm  # noqa: F401  (compat shims + model registry: also in every Ray worker running a trial)
from recbole_hnlm import methods
from recbole_hnlm.quick_start import _plain, build_run_config
from recbole_hnlm.registry import resolve_model_name
from recbole_hnlm.tune_cli import (
    TOOLS,
    configure_parser,  # noqa: F401  (recbole-hnlm tune)
    tool_name,
)
from recbole_hnlm.tune_params import (
    ParamsFileError,
    parse_params_file,
    resolve_params_file,
)

# the job
# --------------------------------------------------------------------------------------------------


@dataclass
class TuneJob:
    model: str  # registered plugin model (HNLMLightGCN)
    dataset: str
    params_file: str
    tool: str = "ray"
    samples: int = 8
    max_epochs: int = 10
    grace_period: int = 1
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    ray_address: str | None = None
    num_cpus: int | None = None
    algo: str = "random"
    early_stop: int = 10
    seed: int | None = None
    config_files: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    output_dir: str = ""
    valid_metric: str = ""
    bigger: bool = True

    @property
    def mode(self) -> str:
        return "max" if self.bigger else "min"


@contextlib.contextmanager
def _keep_env(name: str) -> Iterator[None]:
    """RecBole's ``Config`` sets CUDA_VISIBLE_DEVICES; the driver must not pass that on to Ray."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def prepare_job(
    model: str,
    dataset: str,
    params_file: str,
    *,
    sampler: str | None = None,
    negatives: str | None = None,
    config_files: Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
    output: str | None = None,
    **options: Any,
) -> TuneJob:
    """Validate everything in the driver (model, space, config, paths) before any trial starts.

    Relative paths (config files, ``data_path``) are made absolute: Ray runs trials in their own folders.
    """
    model_name = resolve_model_name(model)
    if "tool" in options:  # RecBole spells the tools Ray and Hyperopt
        options["tool"] = tool_name(options["tool"])
    params_path = resolve_params_file(params_file)
    specs = parse_params_file(params_path)
    sampler = sampler or (methods.MIX_MODE if negatives else "rns")
    files = [str(Path(f).resolve()) for f in (config_files or [])]
    with _keep_env("CUDA_VISIBLE_DEVICES"):  # as `train`: the store (or other input) is built once, here
        run = build_run_config(model_name, dataset, sampler, negatives, files or None, overrides)
    config, merged = run.config, run.overrides
    unknown = [s.name for s in specs if s.name not in config.final_config_dict]
    if unknown:
        raise ParamsFileError(
            f"{params_path}: {', '.join(unknown)}: not a config key of {model_name} "
            "(a typo, or a key of another model?)"
        )
    if dataset != "ml-100k":  # RecBole points ml-100k at its own example folder
        merged["data_path"] = str(Path(config["data_path"]).resolve().parent)
    if output is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        tool = options.get("tool", "ray")
        output = str(Path(config["output_dir"]) / dataset / f"tune-{model_name}-{tool}-{stamp}")
    job = TuneJob(
        model=model_name,
        dataset=dataset,
        params_file=str(params_path),
        config_files=files,
        overrides=merged,
        output_dir=str(Path(output).resolve()),
        valid_metric=str(config["valid_metric"]).lower(),
        bigger=bool(config["valid_metric_bigger"]),
        **options,
    )
    if job.tool not in TOOLS:
        raise ValueError(f"--tool must be one of {', '.join(TOOLS)}, got {job.tool!r}")
    if job.samples < 1 or job.max_epochs < 1:
        raise ValueError("--samples and --max-epochs must be >= 1")
    return job


def _float_dict(values: dict[str, Any] | None) -> dict[str, float]:
    return {str(k): float(v) for k, v in (values or {}).items()}


# --------------------------------------------------------------------------------------------------


def summarise(job: TuneJob, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The best trial (validation score; completed trials first) and every trial, as one record."""
    scored = [r for r in rows if r["best_valid_score"] is not None]
    completed = [r for r in scored if r["status"] == "completed"]
    pool = completed or scored
    best = None
    if pool:
        best = (max if job.bigger else min)(pool, key=lambda r: r["best_valid_score"])
    try:
        import ray

        ray_version_text = ray.__version__
    except ImportError:  # pragma: no cover - ray is an optional extra
        ray_version_text = None
    return {
        "tool": job.tool,
        "model": job.model,
        "dataset": job.dataset,
        "params_file": job.params_file,
        "selection": f"best validation {job.valid_metric} ({job.mode})",
        "valid_metric": job.valid_metric,
        "mode": job.mode,
        "samples": job.samples,
        "max_epochs": job.max_epochs,
        "scheduler": (
            {"name": "ASHA", "grace_period": job.grace_period, "reduction_factor": job.reduction_factor}
            if job.tool == "ray"
            else {"name": f"hyperopt-{job.algo}", "early_stop": job.early_stop}
        ),
        "resources_per_trial": {"cpu": job.cpus_per_trial, "gpu": job.gpus_per_trial},
        "fixed_overrides": _plain(job.overrides),
        "ray_version": ray_version_text,
        "counts": {s: sum(r["status"] == s for r in rows) for s in ("completed", "stopped early", "error")},
        "best": best,
        "trials": rows,
    }
