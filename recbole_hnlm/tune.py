"""``recbole-hnlm tune``: hyper-parameter search with Ray Tune (ASHA early stopping) or RecBole's hyperopt.

Search spaces are RecBole params files (``properties/hyper/*.hyper``), one parameter per line::

    learning_rate loguniform -8,-4          # exp(uniform(-8, -4)), as RecBole/hyperopt read it
    semantic_alpha uniform 0.05,0.5
    adapter_hidden_sizes choice [[128],[256],[256,128]]
    neg_candidates quniform 8,64,8

``--tool ray`` (default) runs each trial as a Ray Tune function trainable. The trainable reports the
validation score after every validation epoch (RecBole's ``trainer.fit(callback_fn=...)``), so the ASHA
scheduler can stop poor trials early; a trial that trains to the end reloads its best-validation
checkpoint, evaluates on test once and reports that too. It returns None (a returned dict would be a
metric-less extra result, RecBole's E9). It works on the Ray RecBole pins (2.6.3) and on current 2.x:
reporting, storage and worker set-up are picked by the installed version.

``--tool hyperopt`` runs RecBole's own ``HyperTuning`` (exhaustive / random / bayes) in this process
with the plugin's :func:`~recbole_hnlm.quick_start.objective_function`.

Both write ``results.json`` and ``results.md`` (best configuration, then every trial) atomically into the
output folder, and print the table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import recbole_hnlm  # noqa: F401  (compat shims + model registry: also in every Ray worker running a trial)
from recbole_hnlm.io import atomic_write_json, atomic_write_text
from recbole_hnlm.ray_compat import report
from recbole_hnlm.tune_cli import (
    configure_parser,
)
from recbole_hnlm.tune_hyperopt import HyperoptObjective, run_hyperopt
from recbole_hnlm.tune_job import TuneJob, _float_dict, _keep_env, prepare_job, summarise
from recbole_hnlm.tune_params import (
    PARAM_KINDS,
    ParamsFileError,
    ParamSpec,
    hyperopt_params_dict,
    parse_params_file,
    ray_space,
    resolve_params_file,
)
from recbole_hnlm.tune_ray import (
    _ray_trial_row,
    _split_metrics,
    hnlm_trainable,
    ray_version,
    run_ray,
    storage_kwargs,
    trial_dir,
)

# Split by concern: tune_params (spaces), tune_job (the job), tune_ray and tune_hyperopt (the two tools); this
# module keeps the results, the entry point and the names callers import from it.
__all__ = [
    "PARAM_KINDS",
    "HyperoptObjective",
    "ParamSpec",
    "ParamsFileError",
    "TuneJob",
    "_float_dict",
    "_fmt",
    "_keep_env",
    "_ray_trial_row",
    "_split_metrics",
    "configure_parser",
    "hnlm_trainable",
    "hyperopt_params_dict",
    "parse_params_file",
    "prepare_job",
    "ray_space",
    "ray_version",
    "report",
    "resolve_params_file",
    "results_markdown",
    "run",
    "run_hyperopt",
    "run_ray",
    "storage_kwargs",
    "summarise",
    "trial_dir",
    "tune",
    "write_results",
]


# results
# --------------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_markdown(summary: dict[str, Any]) -> str:
    metric = summary["valid_metric"]
    best = summary["best"]
    lines = [f"# Tuning {summary['model']} on {summary['dataset']} ({summary['tool']})", ""]
    lines.append(f"Selection: {summary['selection']}; space: `{Path(summary['params_file']).name}`; ")
    lines.append(
        f"trials: {len(summary['trials'])} ({', '.join(f'{v} {k}' for k, v in summary['counts'].items())})."
    )
    lines.append("")
    if best is None:
        lines += ["**No trial produced a validation score.**", ""]
    else:
        lines += [f"## Best configuration ({best['trial']})", ""]
        lines += [f"- `{k}`: {_fmt(v)}" for k, v in best["params"].items()]
        lines.append(f"- best valid {metric}: {_fmt(best['best_valid_score'])}")
        if best["test_result"]:
            lines.append("- test: " + ", ".join(f"{k} {v:.4f}" for k, v in best["test_result"].items()))
        lines.append("")
    names = list(summary["trials"][0]["params"]) if summary["trials"] else []
    test_names = sorted({k for r in summary["trials"] for k in r["test_result"]})
    header = ["trial", *names, "status", "epochs", f"valid {metric}", *(f"test {t}" for t in test_names)]
    lines += ["## Trials", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["trials"]:
        cells = [row["trial"], *(_fmt(row["params"][n]) for n in names), row["status"], _fmt(row["epochs"])]
        cells.append(_fmt(row["best_valid_score"]))
        cells += [_fmt(row["test_result"].get(t)) for t in test_names]
        lines.append("| " + " | ".join(cells) + " |")
    errors = [r for r in summary["trials"] if r.get("error")]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {r['trial']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def write_results(summary: dict[str, Any], output_dir: str | os.PathLike) -> tuple[Path, Path]:
    out = Path(output_dir)
    json_path, md_path = out / "results.json", out / "results.md"
    atomic_write_json(json_path, summary)
    atomic_write_text(md_path, results_markdown(summary))
    return json_path, md_path


def tune(job: TuneJob) -> dict[str, Any]:
    """Run the search, write ``results.json``/``results.md`` into ``job.output_dir``; returns the summary."""
    Path(job.output_dir).mkdir(parents=True, exist_ok=True)
    summary = run_ray(job) if job.tool == "ray" else run_hyperopt(job)
    write_results(summary, job.output_dir)
    return summary


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    job = prepare_job(
        args.model,
        args.dataset,
        args.params,
        sampler=args.sampler,
        negatives=args.negatives,
        config_files=args.config_files.split() if args.config_files else None,
        overrides=dict(getattr(args, "overrides", {}) or {}),
        output=args.output,
        tool=args.tool,
        samples=args.samples,
        max_epochs=args.max_epochs,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        algo=args.algo,
        early_stop=args.early_stop,
        seed=args.seed,
    )
    summary = tune(job)
    print()
    print(results_markdown(summary))
    print(f"results: {Path(job.output_dir) / 'results.json'}")
    return 0 if summary["best"] is not None else 1
