"""Train and evaluate a plugin model end to end: ``run_hnlm`` and ``objective_function``.

``run_hnlm`` is RecBole's ``run_recbole`` with the plugin's extras: ``--sampler`` chooses where negatives
come from, each run gets its own output folder (checkpoint + ``result.json`` with config, seed and the
store's missing-pair count), and test metrics are computed once, with the checkpoint that was best on
validation.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from logging import getLogger
from pathlib import Path
from typing import Any

from recbole.utils import get_model, init_seed

from recbole_hnlm import compat, methods
from recbole_hnlm.config import HNLMConfig, install, make_config
from recbole_hnlm.config_values import config_value
from recbole_hnlm.distributed import DDPOptions, check_gpu_ids, launch
from recbole_hnlm.io import atomic_write_json
from recbole_hnlm.negatives.samplers import sampler_class
from recbole_hnlm.registry import resolve_model_name
from recbole_hnlm.run_logging import init_run_logger
from recbole_hnlm.training import (  # noqa: F401  (re-exported: public paths)
    ValidationTrace,
    sampler_report,
    split_data,
    train_and_evaluate,
)

compat.apply()


def sampler_overrides(sampler: str, negatives: str | None) -> dict[str, Any]:
    """Config entries that ``--sampler`` / ``--negatives`` stand for.

    The catalogue (:mod:`recbole_hnlm.methods`) says which: the hard methods (``rns``, ``dns``, ..., and
    ``hnlm``, the default design ``aligndns``) set ``neg_sampler`` (a store passed with ``--negatives``
    still mixes in); the store methods ``hnlm-mix`` and ``prompt`` use a store (``run_hnlm`` builds it
    when none is given) and keep the configured ``neg_sampler`` as the negative the semantic one is mixed
    with (uniform by default; e.g. ``--neg_sampler=dns`` composes both). The alignment methods
    ``rlmrec-con``/``rlmrec-gen`` set ``alignment`` (profile embeddings from ``profile_embeddings``) and
    keep the configured negatives.
    """
    overrides = methods.method(sampler).config()  # the catalogue: neg_sampler, alignment or nothing
    if negatives:
        overrides["semantic_negatives"] = str(Path(negatives).resolve())
    return overrides


def design_settings(sampler: str, config: HNLMConfig) -> dict[str, Any]:
    """What an alias sets of its method's config (:attr:`methods.Method.design`, e.g. ``hnlm``'s pool
    size) for the keys this run does not give itself, on the command line, in ``config_dict`` or in a
    config file."""
    given = {**config.file_config_dict, **config.variable_config_dict, **config.cmd_config_dict}
    return {
        key: config_value(config, source)
        for key, source in methods.method(sampler).design
        if key not in given
    }


def ensure_store(sampler: str, config: HNLMConfig) -> Path:
    """Build (or reuse) the store a semantic sampler needs, running whatever pipeline stage is missing."""
    from recbole_hnlm.pipeline import ensure_hnlm_store, ensure_prompt_store

    return ensure_hnlm_store(config) if sampler == methods.MIX_MODE else ensure_prompt_store(config)


@dataclass
class RunConfig:
    """A built run: its config, the overrides that rebuild it (what DDP ranks and Ray trials receive: they
    build their own config), and its store as given or as the pipeline returned it (None: no store)."""

    config: HNLMConfig
    overrides: dict[str, Any]
    store: str | None = None


def build_run_config(
    model_name: str,
    dataset: str,
    sampler: str,
    negatives: str | None = None,
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The one way ``train``, ``tune`` and the bench build a run.

    ``sampler`` and ``negatives`` become config entries (:func:`sampler_overrides`) over ``overrides``.
    Then what the method reads and nobody gave is made (each pipeline step reuses its cache) and the config
    is rebuilt with it: a store method's store, a text sampler's item vectors (and, for ``semdns_query:
    store``, its store); an alignment's profile embeddings go to the default folder it reads.
    """
    merged = {**(overrides or {}), **sampler_overrides(sampler, negatives)}
    config = make_config(model_name, dataset, config_files, merged)
    design = design_settings(sampler, config)
    if design:
        merged.update(design)
        config = make_config(model_name, dataset, config_files, merged)
    store = negatives
    if methods.kind_of(sampler) == methods.STORE and not negatives:
        store = str(ensure_store(sampler, config))
        merged.update(sampler_overrides(sampler, store))
        config = make_config(model_name, dataset, config_files, merged)
    if sampler_class(config["neg_sampler"]).needs_item_vectors:
        from recbole_hnlm.pipeline import text_sampler_inputs

        made = text_sampler_inputs(config)  # item vectors (and a store for semdns_query: store)
        if made:
            merged.update(made)
            config = make_config(model_name, dataset, config_files, merged)
    if methods.kind_of(sampler) == methods.ALIGNMENT and not config["profile_embeddings"]:
        from recbole_hnlm.pipeline import ensure_profile_embeddings

        ensure_profile_embeddings(config)  # the default folder the alignment reads
    return RunConfig(config, merged, store)


def _run_dir(config: HNLMConfig, sampler: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run = Path(config["output_dir"]) / config["dataset"] / f"{config['model']}-{sampler}-{stamp}"
    suffix = 1
    while run.exists():
        suffix += 1
        run = run.with_name(f"{run.name.split('~')[0]}~{suffix}")
    run.mkdir(parents=True)
    return run


@contextlib.contextmanager
def _removed_on_failure(run_dir: Path) -> Iterator[None]:
    """A run that fails or is interrupted leaves no run folder (a log and a checkpoint of an unfinished
    run beside no ``result.json``), nor the dataset's runs folder if that is left empty."""
    try:
        yield
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            run_dir.parent.rmdir()
        raise


def _plain(value: Any) -> Any:
    """JSON-friendly copy of config values and metric dicts (numpy scalars, devices, enums)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float) or hasattr(value, "item"):
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def format_metrics(result: dict[str, float] | None) -> str:
    """A two-row text table of metrics, e.g. ``recall@10  ndcg@10 ...`` (None: not evaluated)."""
    if not result:
        return "(not evaluated: eval_step <= 0 validates no epoch)"
    names = list(result)
    width = max(10, *(len(n) for n in names))
    header = "  ".join(n.rjust(width) for n in names)
    values = "  ".join(f"{float(result[n]):.4f}".rjust(width) for n in names)
    return f"{header}\n{values}"


def run_hnlm(
    model: str = "LightGCN",
    dataset: str = "ml-100k",
    sampler: str = "hnlm",
    negatives: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    ddp: DDPOptions | None = None,
) -> dict[str, Any] | None:
    """Train ``model`` on ``dataset`` with negatives from ``sampler``; returns the result dict.

    ``hnlm`` (the default design, ``aligndns``) and the other text samplers first build (or reuse) the
    item vectors they read; ``hnlm-mix`` / ``prompt`` without ``negatives`` the store, with the default
    pipeline (:mod:`recbole_hnlm.pipeline`); ``rlmrec-*`` without ``profile_embeddings`` likewise the embedded
    profiles. The result (with the config and seed) is also written to
    ``<run folder>/result.json``, and the test metrics are printed as a table. With ``ddp`` (``nproc > 1``
    or ``world_size > 0``) training runs in ``ddp.nproc`` processes here (see
    :mod:`recbole_hnlm.distributed`); a machine without global rank 0 returns None.
    """
    install()
    model_name = resolve_model_name(model)
    run = build_run_config(model_name, dataset, sampler, negatives, config_file_list, config_dict)
    config, merged = run.config, run.overrides
    run_dir = _run_dir(config, sampler)
    config["checkpoint_dir"] = str(run_dir)
    if ddp is not None and ddp.enabled:
        check_gpu_ids(config, merged, ddp.nproc)
        merged["checkpoint_dir"] = str(run_dir)
        with _removed_on_failure(run_dir):
            result = launch(model_name, dataset, config_file_list, merged, ddp, saved=saved)
        if result is None:
            print(f"DDP ranks {ddp.group_offset}..{ddp.group_offset + ddp.nproc - 1} finished")
            return None
    else:
        with _removed_on_failure(run_dir):
            result = train_and_evaluate(config, saved=saved, log_dir=run_dir)
    record = {
        "model": model_name,
        "dataset": config["dataset"],
        "sampler": sampler,
        "neg_sampler": config["neg_sampler"],
        "semantic_negatives": config["semantic_negatives"],
        "seed": config["seed"],
        "valid_metric": config["valid_metric"],
        **{k: _plain(v) for k, v in result.items() if k != "model"},
        "config": _plain(dict(config.final_config_dict)),
    }
    with _removed_on_failure(run_dir):
        atomic_write_json(run_dir / "result.json", record)  # strict JSON: -inf (never validated) is null
    print(f"\n{model_name} on {config['dataset']} (sampler={sampler}, seed={config['seed']})")
    print("best valid:\n" + format_metrics(result["best_valid_result"]))
    print("test:\n" + format_metrics(result["test_result"]))
    print(f"results: {run_dir / 'result.json'}")
    record["run_dir"] = str(run_dir)
    return record


def objective_function(
    config_dict: dict[str, Any] | None = None, config_file_list: list[str] | None = None, saved: bool = True
) -> dict[str, Any]:
    """RecBole's ``objective_function`` contract (for ``HyperTuning``), on the plugin's config."""
    install()
    config = HNLMConfig(config_dict=config_dict, config_file_list=config_file_list, read_command_line=False)
    logger = getLogger()
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    result = train_and_evaluate(config, saved=saved, verbose=False)
    logging.basicConfig(level=logging.ERROR)
    return {
        k: result[k]
        for k in ("model", "best_valid_score", "valid_score_bigger", "best_valid_result", "test_result")
    }


def load_data_and_model(model_file: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    """RecBole's ``load_data_and_model``, with the split rebuilt from ``split_seed`` (RecBole uses ``seed``).

    Returns ``(config, model, dataset, train_data, valid_data, test_data)`` like RecBole's.
    """
    install()
    checkpoint = compat.load_checkpoint(model_file)  # allow-listed unpickling, never plain pickle
    config = checkpoint["config"]
    init_run_logger(config)
    dataset, train_data, valid_data, test_data = split_data(config)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
