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
import contextlib
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import recbole_hnlm  # noqa: F401  (compat shims + model registry: also in every Ray worker running a trial)
from recbole_hnlm import methods
from recbole_hnlm.config import PROPERTIES_DIR, make_config
from recbole_hnlm.io import atomic_write_json, atomic_write_text
from recbole_hnlm.quick_start import (
    _plain,
    ensure_store,
    sampler_overrides,
    train_and_evaluate,
)
from recbole_hnlm.ray_compat import report
from recbole_hnlm.registry import resolve_model_name
from recbole_hnlm.tune_cli import (
    HYPEROPT_ALGOS,
    TOOLS,
    configure_parser,  # noqa: F401  (recbole-hnlm tune)
    tool_name,
)

PARAM_KINDS = ("choice", "uniform", "quniform", "loguniform")


class ParamsFileError(ValueError):
    """A params file line that is not ``name choice|uniform|quniform|loguniform values``."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str
    values: tuple  # choice: the options; uniform/loguniform: (lo, hi); quniform: (lo, hi, q)


# --------------------------------------------------------------------------------------------------
# search spaces
# --------------------------------------------------------------------------------------------------


def resolve_params_file(path: str | os.PathLike) -> Path:
    """``path`` as given, else the plugin's ``properties/hyper/<name>[.hyper]``."""
    given = Path(path)
    if given.is_file():
        return given.resolve()
    hyper = PROPERTIES_DIR / "hyper"
    for candidate in (hyper / given.name, hyper / f"{given.name}.hyper"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in hyper.glob("*.hyper")))
    raise FileNotFoundError(f"params file {str(path)!r} not found (shipped in properties/hyper/: {shipped})")


def parse_params_file(path: str | os.PathLike) -> list[ParamSpec]:
    """Read a RecBole params file (RecBole's own syntax; ``#`` comments and blank lines are allowed here)."""
    path = Path(path)
    specs: list[ParamSpec] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}, line {number}"
        parts = line.split()
        if len(parts) < 3:
            raise ParamsFileError(f"{where}: expected 'name kind values', got {raw.strip()!r}")
        name, kind, text = parts[0], parts[1], "".join(parts[2:])
        if kind not in PARAM_KINDS:
            raise ParamsFileError(f"{where}: unknown kind {kind!r} (use one of {', '.join(PARAM_KINDS)})")
        if name in seen:
            raise ParamsFileError(f"{where}: parameter {name!r} appears twice")
        seen.add(name)
        try:
            if kind == "choice":
                import ast

                values = ast.literal_eval(text)
                if not isinstance(values, list) or not values:
                    raise ValueError("choice needs a non-empty [list]")
                values = tuple(values)
            else:
                values = tuple(float(v) for v in text.split(","))
                expected = 3 if kind == "quniform" else 2
                if len(values) != expected:
                    raise ValueError(f"{kind} needs {expected} comma-separated numbers")
                if values[0] >= values[1]:
                    raise ValueError(f"low ({values[0]}) must be below high ({values[1]})")
        except (ValueError, SyntaxError) as err:
            raise ParamsFileError(f"{where}: {name} {kind}: {err}") from err
        specs.append(ParamSpec(name, kind, values))
    if not specs:
        raise ParamsFileError(f"{path}: no parameters")
    return specs


def ray_space(specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Ray Tune search space; ``loguniform lo,hi`` keeps RecBole's meaning (bounds in log space)."""
    from ray import tune

    space: dict[str, Any] = {}
    for spec in specs:
        if spec.kind == "choice":
            space[spec.name] = tune.choice(list(spec.values))
        elif spec.kind == "uniform":
            space[spec.name] = tune.uniform(*spec.values)
        elif spec.kind == "quniform":
            space[spec.name] = tune.quniform(*spec.values)
        else:
            space[spec.name] = tune.loguniform(math.exp(spec.values[0]), math.exp(spec.values[1]))
    return space


def hyperopt_params_dict(specs: Sequence[ParamSpec]) -> dict[str, dict[str, Any]]:
    """RecBole ``HyperTuning(params_dict=...)`` form: ``{kind: {name: values}}``."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        out.setdefault(spec.kind, {})[spec.name] = list(spec.values)
    return out


# --------------------------------------------------------------------------------------------------
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
    sampler = sampler or ("hnlm" if negatives else "rns")
    merged = {**(overrides or {}), **sampler_overrides(sampler, negatives)}
    files = [str(Path(f).resolve()) for f in (config_files or [])]
    with _keep_env("CUDA_VISIBLE_DEVICES"):
        config = make_config(model_name, dataset, files or None, merged)
        if methods.kind_of(sampler) == methods.STORE and not negatives:  # as `train`: build the store once
            merged.update(sampler_overrides(sampler, str(ensure_store(sampler, config))))
            config = make_config(model_name, dataset, files or None, merged)
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
# results
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
