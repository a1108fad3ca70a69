"""HNLMRec step 3c, factored (``hnlm_store_mode: factored``): the store from |U| + |I| encodings.

The pair store embeds ``query(u, i)`` for every training interaction, |R| encodings. That query is made of
the item's lines and the user's lines (:meth:`QueryBuilder.item_part`, :meth:`QueryBuilder.user_part`).
Here each part is embedded once, with the same adapter, query template and pooling, and the vector of a
pair is arithmetic on the two::

    h(u, i) = normalise(w * e_item(i) + (1 - w) * e_user(u)),   w = hnlm_factored_item_weight

so the per-pair cost is a weighted sum and a norm. The store has the pair store's format (training reads
either), its own folder (``negatives/hnlm-factored``), producer ``hnlmrec-finetuned-factored`` and a
fingerprint that includes the mode and w, so neither mode is ever reused for the other.

Not resumable in chunks: ml-100k needs 2,598 encodings (943 users, 1,655 items with training interactions;
the stage took 35 s on one thread of a loaded 2-core machine, ``benchmarks/results/factored_store.md``) and
ml-1m about 9,700 (a few minutes), so a rerun costs about what a resume would save. The store lock, the
reuse check and the atomic write are the pair store's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recbole_hnlm.config_values import setting
from recbole_hnlm.io import artefact_lock, check_replaceable
from recbole_hnlm.llm.cpu_runtime import embedding_threads, infer_threads
from recbole_hnlm.llm.embedding_model import EmbeddingModel
from recbole_hnlm.stages.inference import (
    TEXT_KEYS,
    plan_store,
    store_is_current,
    training_pairs,
)
from recbole_hnlm.stages.store_modes import FACTORED

PRODUCER = "hnlmrec-finetuned-factored"
_COMPOSE_ROWS = 65536  # pairs composed per block: bounds the float32 temporaries on ml-1m's 10^6 pairs


def item_weight(config: Any) -> float:
    """``hnlm_factored_item_weight``, checked: a weight outside [0, 1] is an error naming the key."""
    value = setting(config, "hnlm_factored_item_weight")
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not 0.0 <= weight <= 1.0:  # also refuses NaN
        raise ValueError(
            f"config key 'hnlm_factored_item_weight': expected a weight in [0, 1], got {value!r}"
        )
    return weight


def factor_pairs(
    users: Sequence[str], items: Sequence[str]
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """The distinct users and items of the pairs (first-seen order) and each pair's row in each list."""
    user_row = {u: k for k, u in enumerate(dict.fromkeys(users))}
    item_row = {i: k for k, i in enumerate(dict.fromkeys(items))}
    return (
        list(user_row),
        list(item_row),
        np.fromiter((user_row[u] for u in users), dtype=np.int64, count=len(users)),
        np.fromiter((item_row[i] for i in items), dtype=np.int64, count=len(items)),
    )


def compose(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    user_rows: np.ndarray,
    item_rows: np.ndarray,
    weight: float,
) -> np.ndarray:
    """float32 ``[len(user_rows), dim]``: row k = normalise(w * item_vectors[item_rows[k]] + (1 - w) *
    user_vectors[user_rows[k]]), the unit length the pair store's vectors have (the embedder normalises)."""
    out = np.empty((len(user_rows), user_vectors.shape[1]), dtype=np.float32)
    for start in range(0, len(user_rows), _COMPOSE_ROWS):
        part = slice(start, start + _COMPOSE_ROWS)
        mixed = weight * item_vectors[item_rows[part]] + (1.0 - weight) * user_vectors[user_rows[part]]
        # opposite unit vectors at w = 0.5 would sum to zero: the floor keeps that row finite (zero)
        norms = np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
        out[part] = mixed / norms
    return out


def infer_factored_store(
    config: Any,
    root: Path,
    adapter_dir: str | Path,
    *,
    view: Any = None,
    out: Path | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Embed every training user's and item's part of the query once, compose each training pair's vector;
    returns the store folder."""
    from recbole_hnlm.negatives.store import STORE_FORMAT, write_store

    batch_size = int(batch_size or setting(config, "hnlm_infer_batch_size"))
    weight = item_weight(config)
    mode = {"hnlm_store_mode": FACTORED, "hnlm_factored_item_weight": weight}
    adapter_dir, info, view, text_settings, builder, out, int8, precision, key = plan_store(
        config, root, adapter_dir, view, out, FACTORED, [mode]
    )
    with artefact_lock(out):  # a concurrent run waits, then reuses the store this one writes
        if not force and store_is_current(out, key):
            return out
        check_replaceable(out, STORE_FORMAT)  # before the embedding work, not only when the store is written
        start = time.perf_counter()
        users, items = training_pairs(view)
        distinct_users, distinct_items, user_rows, item_rows = factor_pairs(users, items)
        model = EmbeddingModel.load(adapter_dir).for_inference(int8=int8, precision=precision)
        texts = [builder.user_part(u) for u in distinct_users] + [
            builder.item_part(i) for i in distinct_items
        ]
        rows = model.tokenize(texts, "query")  # the parts are embedded as queries: the pair store's template
        bar = tqdm(total=len(rows), desc="hnlm inference (factored)", unit="text", disable=not progress)
        try:
            with embedding_threads(infer_threads(config)):
                vectors = model.embed_ids(rows, batch_size=batch_size, progress=bar.update)
        finally:
            bar.close()
        encoded = time.perf_counter() - start
        n_users = len(distinct_users)
        matrix = compose(vectors[:n_users], vectors[n_users:], user_rows, item_rows, weight)
        seconds = time.perf_counter() - start
        write_store(
            out,
            users,
            items,
            matrix,
            producer=PRODUCER,
            dataset=view.dataset,
            dataset_fingerprint=view.dataset_fingerprint,
            config={
                "adapter": info.get("fingerprint"),
                **{k: getattr(text_settings, k) for k in TEXT_KEYS},
                **mode,
            },
            details={
                "fingerprint": key,
                "store_mode": FACTORED,
                "item_weight": weight,
                "encodings": {"users": n_users, "items": len(distinct_items)},
                "adapter_dir": str(adapter_dir),
                "adapter_dataset": info.get("dataset"),
                "spec": info.get("spec"),
                "text_fallbacks": dict(builder.fallbacks),
                "batch_size": batch_size,
                "precision": "int8" if int8 else precision,
                "encode_seconds": round(encoded, 1),
                "seconds": round(seconds, 1),
            },
        )
        print(
            f"[inference] factored: {n_users} users + {len(distinct_items)} items embedded, {len(users)} "
            f"training pairs composed (w = {weight}, dim {model.dim}, {seconds:.1f} s) -> {out}; "
            f"text fallbacks {dict(builder.fallbacks)}"
        )
        return out
