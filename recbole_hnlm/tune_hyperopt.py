"""`recbole-hnlm tune --tool hyperopt`: RecBole's own `HyperTuning` with the plugin's objective."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import recbole_hnlm  # noqa: F401  (compat shims + model registry: also in every Ray worker running a trial)
from recbole_hnlm.quick_start import (
    _plain,
)
from recbole_hnlm.tune_cli import (
    HYPEROPT_ALGOS,
    configure_parser,  # noqa: F401  (recbole-hnlm tune)
)
from recbole_hnlm.tune_job import TuneJob, _float_dict, _keep_env, summarise
from recbole_hnlm.tune_params import (
    hyperopt_params_dict,
    parse_params_file,
)

# RecBole HyperTuning (hyperopt)
# --------------------------------------------------------------------------------------------------


class HyperoptObjective:
    """RecBole's ``objective_function(config_dict, config_file_list)`` with the job's fixed settings."""

    def __init__(self, job: TuneJob, names: Sequence[str]) -> None:
        self.job = job
        self.names = list(names)
        self.rows: list[dict[str, Any]] = []

    def __call__(
        self, config_dict: dict[str, Any], config_file_list: list[str] | None = None
    ) -> dict[str, Any]:
        from recbole_hnlm.quick_start import objective_function

        number = len(self.rows) + 1
        merged = {
            "state": "WARNING",
            **self.job.overrides,
            **config_dict,
            "model": self.job.model,
            "dataset": self.job.dataset,
            "epochs": self.job.max_epochs,
            "show_progress": False,
            "checkpoint_dir": str(Path(self.job.output_dir) / "checkpoints" / f"trial-{number}"),
        }
        try:
            with _keep_env("CUDA_VISIBLE_DEVICES"):
                result = objective_function(merged, config_file_list, saved=True)
        except Exception as err:
            self.rows.append(self._row(number, config_dict, "error", error=f"{type(err).__name__}: {err}"))
            raise
        self.rows.append(self._row(number, config_dict, "completed", result=result))
        return result

    def _row(self, number: int, params: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
        result = extra.get("result") or {}
        row = {
            "trial": f"trial-{number}",
            "status": status,
            "params": {n: _plain(params.get(n)) for n in self.names},
            "epochs": None,
            "best_valid_score": float(result["best_valid_score"]) if result else None,
            "valid_result": _float_dict(result.get("best_valid_result")),
            "test_result": _float_dict(result.get("test_result")),
        }
        if "error" in extra:
            row["error"] = extra["error"]
        return row


def run_hyperopt(job: TuneJob) -> dict[str, Any]:
    from recbole.trainer import HyperTuning

    specs = parse_params_file(job.params_file)
    if job.algo not in HYPEROPT_ALGOS:
        raise ValueError(f"--algo must be one of {', '.join(HYPEROPT_ALGOS)}, got {job.algo!r}")
    if job.algo == "exhaustive" and any(s.kind != "choice" for s in specs):
        raise ValueError("--algo exhaustive needs a params file of 'choice' lines only; use random or bayes")
    objective = HyperoptObjective(job, [s.name for s in specs])
    tuner = HyperTuning(
        objective,
        params_dict=hyperopt_params_dict(specs),
        fixed_config_file_list=job.config_files or None,
        algo=job.algo,
        max_evals=job.samples,
        early_stop=job.early_stop,
    )
    with _keep_env("HYPEROPT_FMIN_SEED"):
        if job.seed is not None:
            os.environ["HYPEROPT_FMIN_SEED"] = str(job.seed)  # hyperopt.fmin's seed when none is passed
        tuner.run()
    return summarise(job, objective.rows)


# --------------------------------------------------------------------------------------------------
