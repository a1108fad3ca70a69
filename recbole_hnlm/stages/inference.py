"""HNLMRec step 3c: the fine-tuned embedder's query embedding of every training interaction -> a store.

For each distinct training pair (u, i) the query text (the same :class:`QueryBuilder` the supervision
used, with the text settings saved in the adapter) is embedded with the adapter; that embedding *is* the
semantic hard negative of (u, i). No text is generated per interaction, and queries run in batches of
similar length (sorted by token count), not one per forward pass as in the reference code.

Resumable: the length-sorted queries are cut into chunks of ``hnlm_infer_chunk`` rows; each finished
chunk is saved (atomically) under ``negatives/<name>.chunks/`` with a manifest fingerprinting the run;
a rerun skips finished chunks. The store (producer ``hnlmrec-finetuned``) is then written atomically and
the chunks removed. The store's lock is held from the reuse check on, so a second run building the same
store waits, then reuses it, and never loses chunks to the other run's cleanup. ``--embedder PATH``
embeds with an adapter fine-tuned on another dataset (the paper's generalisation experiment); the store
is then ``negatives/hnlm-from-<that dataset>``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from recbole_hnlm.config_values import setting
from recbole_hnlm.io import artefact_lock, atomic_write_json, check_replaceable, fingerprint
from recbole_hnlm.llm.cpu_runtime import embedding_threads, infer_int8, infer_threads, inference_precision
from recbole_hnlm.llm.embedding_model import EmbeddingModel, read_adapter_info
from recbole_hnlm.stages.common import training_view
from recbole_hnlm.stages.query_text import QueryBuilder
from recbole_hnlm.stages.store_modes import with_mode
from recbole_hnlm.stages.supervision_settings import SupervisionSettings

PRODUCER = "hnlmrec-finetuned"
TEXT_KEYS = ("hnlm_use_profiles", "hnlm_query_user_words", "hnlm_item_profile_words", "hnlm_query_cf_dims")


class InterruptedForTest(RuntimeError):
    """Raised by ``fail_after_chunks`` to simulate a crash mid-way."""


def training_pairs(view: Any) -> tuple[list[str], list[str]]:
    """Every distinct training (user, item) token pair, users in view order, items in history order."""
    users: list[str] = []
    items: list[str] = []
    for user, history in view.histories.items():
        for item in dict.fromkeys(history):
            users.append(user)
            items.append(item)
    return users, items


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def store_name(adapter_info: Mapping[str, Any], dataset: str, mode: str) -> str:
    """The store's folder under ``negatives/``: the factored store has its own, so the two modes never
    replace each other's store (both stay for a comparison)."""
    source = adapter_info.get("dataset")
    name = "hnlm" if source in (None, dataset) else f"hnlm-from-{source}"
    return with_mode(name, mode)


def adapter_queries(
    config: Any, root: Path, adapter_info: Mapping[str, Any], view: Any
) -> tuple[SupervisionSettings, QueryBuilder]:
    """The query text settings the adapter was fine-tuned with (the config fills the others) and the
    builder of those queries: inference must embed the texts the adapter learnt from."""
    trained = adapter_info.get("supervision_settings") or {}
    text_settings = SupervisionSettings.resolve(config, {k: v for k, v in trained.items() if k in TEXT_KEYS})
    builder = QueryBuilder.build(view, root / "profiles", text_settings)
    if text_settings.hnlm_query_cf_dims > 0:
        builder.attach_cf(root / "supervision", text_settings.hnlm_query_cf_dims)
    return text_settings, builder


def store_identity(
    view: Any,
    adapter_info: Mapping[str, Any],
    text_settings: Any,
    builder: QueryBuilder,
    int8: bool,
    precision: str = "fp32",
) -> list[Any]:
    """What a store's vectors depend on (its fingerprint's parts): data, adapter, query text, arithmetic."""
    return [
        view.dataset_fingerprint,
        adapter_info.get("fingerprint"),
        adapter_info.get("spec"),
        {k: getattr(text_settings, k) for k in TEXT_KEYS},
        builder.profiles_fingerprint,
        # int8 changes the vectors (slightly), so it is part of the store's identity; threads are not
        *([{"int8": True}] if int8 else []),  # fp32 stores keep the fingerprint they had
        *([{"precision": precision}] if precision != "fp32" else []),
    ]


class StorePlan(NamedTuple):
    """What a store build settles before any embedding: the adapter, the training view, the query texts,
    the store folder and the fingerprint a reusable store there must carry."""

    adapter_dir: Path
    info: Mapping[str, Any]
    view: Any
    text_settings: SupervisionSettings
    builder: QueryBuilder
    out: Path
    int8: bool
    precision: str
    key: str


def plan_store(
    config: Any,
    root: Path,
    adapter_dir: str | Path,
    view: Any,
    out: Path | None,
    mode: str,
    mode_identity: Sequence[Any] = (),
) -> StorePlan:
    """The :class:`StorePlan` of a ``mode`` store (pair or factored); ``mode_identity`` adds what only that
    mode's vectors depend on to the fingerprint (nothing for pair stores, which keep the one they had)."""
    adapter_dir = Path(adapter_dir)
    info = read_adapter_info(adapter_dir)
    view = view if view is not None else training_view(config)
    text_settings, builder = adapter_queries(config, root, info, view)
    out = out or root / "negatives" / store_name(info, view.dataset, mode)
    int8, precision = infer_int8(config), inference_precision(config)
    identity = store_identity(view, info, text_settings, builder, int8, precision)
    key = fingerprint([*identity, *mode_identity])
    return StorePlan(adapter_dir, info, view, text_settings, builder, out, int8, precision, key)


def store_is_current(out: Path, key: str) -> bool:
    """Whether ``out`` already holds a readable store written under fingerprint ``key`` (then it is reused;
    an unreadable or foreign one is rebuilt, after ``check_replaceable`` says it may be)."""
    from recbole_hnlm.negatives.store import SemanticNegativeStore, StoreError

    if not (out / "meta.json").is_file():
        return False
    try:
        return SemanticNegativeStore(out).meta.details.get("fingerprint") == key
    except StoreError:
        return False


def infer_store(
    config: Any,
    root: Path,
    adapter_dir: str | Path,
    *,
    view: Any = None,
    out: Path | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
    force: bool = False,
    fail_after_chunks: int | None = None,
) -> Path:
    """Embed every training pair's query with the adapter in ``adapter_dir``; returns the store folder."""
    from recbole_hnlm.negatives.store import STORE_FORMAT, write_store

    adapter_dir, info, view, text_settings, builder, out, int8, precision, key = plan_store(
        config, root, adapter_dir, view, out, "pair"
    )
    batch_size = int(batch_size or setting(config, "hnlm_infer_batch_size"))
    chunk_size = int(chunk_size or setting(config, "hnlm_infer_chunk"))
    with artefact_lock(out):  # a concurrent run waits, then reuses the store this one writes
        if not force and store_is_current(out, key):
            return out
        check_replaceable(out, STORE_FORMAT)  # before the embedding work, not only when the store is written
        start = time.perf_counter()
        users, items = training_pairs(view)
        model = EmbeddingModel.load(adapter_dir).for_inference(int8=int8, precision=precision)
        rows = model.tokenize([builder.query(u, i) for u, i in zip(users, items)], "query")
        order = np.argsort([len(r) for r in rows], kind="stable")
        chunks = [order[s : s + chunk_size] for s in range(0, len(order), chunk_size)]
        chunk_dir = out.with_name(out.name + ".chunks")
        manifest = {"fingerprint": key, "rows": len(rows), "chunk_size": chunk_size, "dim": model.dim}
        manifest_file = chunk_dir / "manifest.json"
        if chunk_dir.exists() and (
            not manifest_file.is_file() or json.loads(manifest_file.read_text()) != manifest
        ):
            shutil.rmtree(chunk_dir)  # chunks of another run: never mix them in
        chunk_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(manifest_file, manifest)

        def chunk_file(c: int) -> Path:
            return chunk_dir / f"chunk-{c:06d}.npy"

        done = [c for c in range(len(chunks)) if chunk_file(c).is_file()]
        resumed = len(done)
        bar = tqdm(
            total=len(rows),
            initial=sum(len(chunks[c]) for c in done),
            desc="hnlm inference",
            unit="query",
            disable=not progress,
        )
        written = 0
        try:
            # threads follow the CPUs this process may use (or hnlm_infer_threads); restored for training
            with embedding_threads(infer_threads(config)):
                for c, index in enumerate(chunks):
                    if chunk_file(c).is_file():
                        continue
                    vectors = model.embed_ids(
                        [rows[k] for k in index], batch_size=batch_size, progress=bar.update
                    )
                    _save_npy(chunk_file(c), vectors.astype(np.float32))
                    written += 1
                    if fail_after_chunks is not None and written >= fail_after_chunks:
                        raise InterruptedForTest(f"stopped after {written} chunks (fail_after_chunks)")
        finally:
            bar.close()
        matrix = np.zeros((len(rows), model.dim), dtype=np.float32)
        filled = np.zeros(len(rows), dtype=bool)
        for c, index in enumerate(chunks):
            part = np.load(chunk_file(c))
            if part.shape != (len(index), model.dim):
                raise ValueError(f"{chunk_file(c)}: shape {part.shape}, expected {(len(index), model.dim)}")
            matrix[index] = part
            filled[index] = True
        if not filled.all():  # cannot happen unless the chunk files were tampered with
            raise ValueError(f"{chunk_dir}: {int((~filled).sum())} rows have no vector")
        seconds = time.perf_counter() - start
        write_store(
            out,
            users,
            items,
            matrix,
            producer=PRODUCER,
            dataset=view.dataset,
            dataset_fingerprint=view.dataset_fingerprint,
            config={"adapter": info.get("fingerprint"), **{k: getattr(text_settings, k) for k in TEXT_KEYS}},
            details={
                "fingerprint": key,
                "adapter_dir": str(adapter_dir),
                "adapter_dataset": info.get("dataset"),
                "spec": info.get("spec"),
                "text_fallbacks": dict(builder.fallbacks),
                "chunks": len(chunks),
                "chunks_resumed": resumed,
                "batch_size": batch_size,
                "precision": "int8" if int8 else precision,
                "seconds": round(seconds, 1),
            },
        )
        shutil.rmtree(chunk_dir, ignore_errors=True)
        print(
            f"[inference] {len(rows)} training pairs embedded (dim {model.dim}, {resumed} chunks resumed, "
            f"{seconds:.1f} s) -> {out}; text fallbacks {dict(builder.fallbacks)}"
        )
        return out
