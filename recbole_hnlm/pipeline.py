"""The default HNLMRec pipeline: run the stages that are missing, reuse the cached ones.

``ensure_hnlm_store(config)``: profiles (stage 1, LLM) -> CF supervision -> LoRA fine-tuning -> inference,
each reused when its artefact's fingerprint matches the dataset and settings, each timed; returns the
store folder for ``semantic_negatives``. ``ensure_prompt_store(config)``: profiles -> prompt-only
negatives (the v1 pipeline). Both print where every artefact is and write ``pipeline.json`` (timings);
what the entry points print is also appended to ``<artifact_dir>/<dataset>/pipeline.log``.
``ensure_profile_embeddings(config)``: the profiles with their embeddings, the RLMRec alignment's input.

Config keys read here (besides each stage's own): ``hnlm_embedder`` (an adapter folder from another
dataset: skip supervision and fine-tuning, the generalisation setting), ``hnlm_use_profiles`` (false: no
LLM profiles, queries from item text and history titles), ``prompt_negatives_mode`` and
``prompt_negatives_k`` (the prompt store: one negative per interaction, or K per user), ``hnlm_store_mode``
(the inference stage: one query per training interaction, or one text per user and per item composed).

Profiles and the prompt store are reused only when they were written for this dataset, this training
split (the LLM reads the users' training histories) and these LLM settings; otherwise they are generated
again, the LLM answers coming from the request cache where the prompts did not change.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recbole_hnlm.config_values import as_flag, config_value, setting
from recbole_hnlm.io import atomic_write_json, config_fingerprint
from recbole_hnlm.run_logging import tee_output
from recbole_hnlm.stages.common import artifact_dir, training_view


def logged(function: Callable[..., Path]) -> Callable[..., Path]:
    """A pipeline entry point ``f(config, ...)`` whose printed output also goes to ``pipeline.log``."""

    @functools.wraps(function)
    def run(config: Any, *args: Any, **kwargs: Any) -> Path:
        with tee_output(artifact_dir(config) / "pipeline.log"):
            return function(config, *args, **kwargs)

    return run


def _stamp(folder: Path) -> int | None:
    """Modification time of an artefact folder's meta file (stages replace folders atomically)."""
    for name in ("meta.json", "embedder.json"):
        if (folder / name).is_file():
            return (folder / name).stat().st_mtime_ns
    return None


class StageLog:
    """Per-stage status (built / reused), seconds and artefact path; printed as a table at the end."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, artefact: Path, body: Callable[[], Path]) -> Path:
        before = _stamp(artefact)
        start = time.perf_counter()
        print(f"[pipeline] {name} ...", flush=True)
        path = Path(body())
        seconds = time.perf_counter() - start
        status = "reused" if before is not None and before == _stamp(path) else "built"
        self.rows.append({"stage": name, "status": status, "seconds": round(seconds, 1), "path": str(path)})
        print(f"[pipeline] {name}: {status} in {seconds:.1f} s -> {path}", flush=True)
        return path

    def table(self) -> str:
        lines = [f"{'stage':<14} {'status':<7} {'seconds':>8}  artefact"]
        lines += [f"{r['stage']:<14} {r['status']:<7} {r['seconds']:>8.1f}  {r['path']}" for r in self.rows]
        return "\n".join(lines)


def _llm_settings(config: Any) -> Any:
    from recbole_hnlm.stages.common import LLMSettings

    return LLMSettings.resolve(config, argparse.Namespace())


def _retry_failed(settings: Any) -> bool:
    return as_flag(settings.llm_retry_failed, "llm_retry_failed")


def _failed_at_server(report: dict[str, Any]) -> int:
    """Records of a stage report that failed at the server (reports written before the count existed:
    every failed record, so a folder from then is rebuilt once, from the cache plus the retried records)."""
    return int(report.get("failed_at_server", report.get("counts", {}).get("failed", 0)))


def ensure_profiles(config: Any, root: Path, view: Any, *, progress: bool = True) -> Path:
    """``<root>/profiles``: reused when written for this dataset, split and LLM settings, else generated."""
    from recbole_hnlm.stages.profiles import (
        ProfilesMismatchError,
        ProfilesMissingError,
        checked_profiles_meta,
        generate_profiles,
        profile_settings_fingerprint,
    )

    folder = root / "profiles"
    settings = _llm_settings(config)
    try:
        meta = checked_profiles_meta(folder, view)
        if meta.get("config_fingerprint") == profile_settings_fingerprint(settings):
            failed = sum(_failed_at_server(r) for r in meta.get("reports", []))
            if not (failed and _retry_failed(settings)):
                return folder
            print(
                f"[pipeline] {folder}: {failed} records failed at the server, sending them again", flush=True
            )
    except (ProfilesMissingError, ProfilesMismatchError):
        pass
    backend = settings.backend()
    try:
        generate_profiles(view, backend, settings, root, progress=progress)
    finally:
        backend.close()
    return folder


@logged
def ensure_profile_embeddings(config: Any, *, progress: bool = True) -> Path:
    """``<artifact_dir>/<dataset>/profiles`` with its embeddings (RLMRec's input), making what is missing."""
    from recbole_hnlm.stages.profiles import embed_profile_folder

    root = artifact_dir(config)
    folder = ensure_profiles(config, root, training_view(config), progress=progress)
    if not all((folder / f"{kind}_embeddings.npy").is_file() for kind in ("item", "user")):
        embed_profile_folder(folder, _llm_settings(config).make_embedder())
    return folder


@logged
def ensure_hnlm_store(config: Any, *, progress: bool = True) -> Path:
    """The fine-tuned-embedder store for ``config``'s dataset, running whatever stage is missing."""
    from recbole_hnlm.stages.finetune import ensure_embedder
    from recbole_hnlm.stages.inference_modes import build_store, store_folder
    from recbole_hnlm.stages.store_modes import store_mode
    from recbole_hnlm.stages.supervision import build_supervision

    mode = store_mode(config)  # a bad mode fails here, before the stages that come ahead of inference
    root = artifact_dir(config)
    log = StageLog()
    total = time.perf_counter()
    view = training_view(config)
    external = config_value(config, "hnlm_embedder")
    if as_flag(setting(config, "hnlm_use_profiles"), "hnlm_use_profiles"):
        log.run("profiles", root / "profiles", lambda: ensure_profiles(config, root, view, progress=progress))
    if external:
        adapter = Path(external)
        if not (adapter / "embedder.json").is_file():
            raise FileNotFoundError(f"config key 'hnlm_embedder': {adapter / 'embedder.json'} not found")
    else:
        log.run(
            "supervision",
            root / "supervision",
            lambda: build_supervision(config, root, view=view, progress=progress),
        )
        adapter = log.run(
            "finetune", root / "embedder", lambda: ensure_embedder(config, root, progress=progress)
        )
    from recbole_hnlm.llm.embedding_model import read_adapter_info

    store_dir = store_folder(root, read_adapter_info(adapter), view, mode)
    if not (store_dir / "meta.json").is_file():
        print(inference_estimate(view, mode), flush=True)
    store = log.run(
        "inference", store_dir, lambda: build_store(config, root, adapter, view=view, progress=progress)
    )
    _finish(root, "hnlm", log, time.perf_counter() - total)
    return store


# Queries per second of the inference stage with the default embedder (all-MiniLM-L6-v2, 64-token queries)
# on one CPU thread: 80,808 ml-100k queries in 20.4 min on an idle 2-core machine (README, "Time on a
# 2-core CPU").
CPU_QUERIES_PER_SECOND = 66.0


def inference_estimate(view: Any, mode: str) -> str:
    """What the inference stage is about to do, a time estimate, and how to skip it (printed before it starts:
    in pair mode it embeds one query per training interaction, the pipeline's long stage on a CPU)."""
    from recbole_hnlm.stages.inference_modes import encodings

    texts, pairs = encodings(view, mode)
    minutes = texts / CPU_QUERIES_PER_SECOND / 60
    if mode == "pair":
        what = f"{texts:,} queries, one per training interaction"
        after = (
            "It resumes where it stopped if interrupted. --hnlm_store_mode=factored embeds one text per user "
            "and one per item instead. "
        )
    else:
        what = f"{texts:,} texts ({mode}: one per user and one per item) for {pairs:,} training interactions"
        after = ""
    return (
        f"[pipeline] inference: {what}; about {minutes:.1f} min on one CPU thread "
        f"(~{CPU_QUERIES_PER_SECOND:.0f} queries/s measured), much less on a GPU. {after}To skip it: "
        "--negatives PATH (an existing store), or a sampler without a store (--sampler=dnsmn, semdns, "
        "guarddns, aligndns, rns)"
    )


def ensure_item_vectors(config: Any, embedder: Any = None) -> Path:
    """The item text vectors of ``config``'s dataset under ``embedder`` (default: the configured sentence
    embedder), semdns's search space: one embedding per item, reused across splits and seeds."""
    from recbole_hnlm.stages import item_vectors

    root = artifact_dir(config)
    log = StageLog()
    total = time.perf_counter()
    embedder = embedder if embedder is not None else _llm_settings(config).make_embedder()
    folder = item_vectors.item_vectors_dir(root, embedder.model)
    vectors = log.run(
        "item_vectors",
        folder,
        lambda: item_vectors.ensure_item_vectors(training_view(config), embedder, folder),
    )
    _finish(root, "item-vectors", log, time.perf_counter() - total)
    return vectors


def run_item_vectors(args: argparse.Namespace) -> int:
    """``recbole-hnlm item-vectors``: the dataset's item vectors, under a sentence embedder or an adapter."""
    from recbole_hnlm.stages.common import stage_config
    from recbole_hnlm.stages.item_vectors import AdapterPassageEmbedder

    config = stage_config(args)
    embedder = AdapterPassageEmbedder(args.adapter) if args.adapter else None
    print(f"item vectors: {ensure_item_vectors(config, embedder)}")
    return 0


def text_sampler_inputs(config: Any) -> dict[str, str]:
    """The config entries the text samplers (semdns, guarddns, aligndns) need and ``config`` leaves unset,
    made when missing: the item vectors, and for semdns with ``semdns_query: store`` the fine-tuned
    embedder's store with the items embedded by that same embedder (h and the items must share one space)."""
    from recbole_hnlm.stages.finetune import EMBEDDER_DIR
    from recbole_hnlm.stages.item_vectors import AdapterPassageEmbedder

    if config_value(config, "item_vectors"):
        return {}
    if config_value(config, "semdns_query") != "store":
        return {"item_vectors": str(ensure_item_vectors(config).resolve())}
    if config_value(config, "semdns_store"):
        raise ValueError(
            "semdns_store is set but item_vectors is not: point item_vectors at the item vectors of the "
            "embedder that wrote the store (`recbole-hnlm item-vectors --adapter ADAPTER`)"
        )
    store = ensure_hnlm_store(config)
    adapter = config_value(config, "hnlm_embedder") or artifact_dir(config) / EMBEDDER_DIR
    vectors = ensure_item_vectors(config, AdapterPassageEmbedder(adapter))
    return {"semdns_store": str(store.resolve()), "item_vectors": str(vectors.resolve())}


def ensure_prompt_store(config: Any, *, progress: bool = True) -> Path:
    """The prompt-only store (an LLM names one hard negative per interaction) of ``config``'s dataset."""
    from recbole_hnlm.negatives.store import SemanticNegativeStore, StoreError
    from recbole_hnlm.stages.prompt_negatives import generate_negatives, negatives_config

    root = artifact_dir(config)
    log = StageLog()
    total = time.perf_counter()
    view = training_view(config)
    log.run("profiles", root / "profiles", lambda: ensure_profiles(config, root, view, progress=progress))
    store_dir = root / "negatives" / "prompt"

    def negatives() -> Path:
        settings = _llm_settings(config)
        mode = setting(config, "prompt_negatives_mode")
        k = int(setting(config, "prompt_negatives_k"))
        try:
            meta = SemanticNegativeStore(store_dir).meta
            if (
                meta.dataset_fingerprint == view.dataset_fingerprint
                and meta.details.get("split_fingerprint") == view.split_fingerprint
                and meta.config_fingerprint == config_fingerprint(negatives_config(settings, mode, k))
            ):
                failed = _failed_at_server(meta.details.get("report", {}))
                if not (failed and _retry_failed(settings)):
                    return store_dir
                print(
                    f"[pipeline] {store_dir}: {failed} records failed at the server, sending them again",
                    flush=True,
                )
        except StoreError:
            pass
        backend = settings.backend()
        try:
            generate_negatives(
                view, backend, settings.make_embedder(), settings, root, mode=mode, k=k, progress=progress
            )
        finally:
            backend.close()
        return store_dir

    store = log.run("negatives", store_dir, negatives)
    _finish(root, "prompt", log, time.perf_counter() - total)
    return store


def _finish(root: Path, name: str, log: StageLog, seconds: float) -> None:
    atomic_write_json(root / f"pipeline-{name}.json", {"stages": log.rows, "seconds": round(seconds, 1)})
    print(f"[pipeline] {name} store ready in {seconds:.1f} s\n{log.table()}", flush=True)
