"""The item-vectors format: one text embedding per item, the space the semantic candidate pool searches.

Layout of an item-vectors folder (written atomically by :func:`write_item_vectors`)::

    meta.json     format, dataset + fingerprint, embedder, config fingerprint, count, dim, fallbacks
    tokens.txt    one item token per line
    vectors.npy   float32 [count, dim], rows L2-normalised

:mod:`recbole_hnlm.stages.item_vectors` builds one; :func:`load_item_vectors` aligns it with a dataset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_hnlm.config_values import config_value
from recbole_hnlm.io import atomic_directory

ITEM_VECTORS_FORMAT = "recbole-hnlm/item-vectors"
TOKENS_FILE = "tokens.txt"
VECTORS_FILE = "vectors.npy"
META_FILE = "meta.json"


class ItemVectorsError(ValueError):
    """An item-vectors folder is missing, malformed, or does not cover the dataset it is used with."""


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == ITEM_VECTORS_FORMAT else None


def write_item_vectors(
    folder: Path, tokens: Sequence[str], vectors: np.ndarray, meta: dict[str, Any]
) -> Path:
    """Write an item-vectors folder atomically (rows normalised; NaN/inf or a shape mismatch are errors)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(tokens):
        raise ItemVectorsError(f"{folder}: {len(tokens)} tokens but vectors of shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ItemVectorsError(f"{folder}: the embedder returned NaN or inf for some items")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    with atomic_directory(folder, ITEM_VECTORS_FORMAT) as tmp:
        (tmp / TOKENS_FILE).write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
        np.save(tmp / VECTORS_FILE, vectors)
        full = {"format": ITEM_VECTORS_FORMAT, "count": len(tokens), "dim": int(vectors.shape[1]), **meta}
        (tmp / META_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(folder)


def load_item_vectors(folder: str | Path, dataset: Any) -> torch.Tensor:
    """``[dataset.item_num, dim]`` float32 rows aligned with RecBole's internal item ids (row 0, [PAD], zero).

    Raises :class:`ItemVectorsError` naming the folder when it is not an item-vectors folder, when its
    files disagree, or when items of the dataset have no vector.
    """
    folder = Path(folder)
    meta = read_meta(folder)
    if meta is None:
        raise ItemVectorsError(
            f"{folder}: not an item-vectors folder (no {META_FILE} with format "
            f"{ITEM_VECTORS_FORMAT!r}); build one with `recbole-hnlm item-vectors`"
        )
    tokens = (folder / TOKENS_FILE).read_text(encoding="utf-8").splitlines()
    try:
        vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ItemVectorsError(f"{folder / VECTORS_FILE}: cannot read ({err})") from err
    if vectors.ndim != 2 or vectors.shape[0] != len(tokens) or vectors.shape[0] != meta.get("count"):
        raise ItemVectorsError(
            f"{folder}: {TOKENS_FILE} has {len(tokens)} lines, {VECTORS_FILE} shape {vectors.shape}, "
            f"{META_FILE} count {meta.get('count')}: the folder is inconsistent"
        )
    if not np.isfinite(vectors).all():
        raise ItemVectorsError(f"{folder / VECTORS_FILE}: contains NaN or inf")
    row_of = {t: r for r, t in enumerate(tokens)}
    names = dataset.field2id_token[dataset.iid_field]
    missing = [str(t) for t in names[1:] if str(t) not in row_of]
    if missing:
        raise ItemVectorsError(
            f"{folder}: {len(missing)} of {len(names) - 1} items of dataset {dataset.dataset_name!r} have no "
            f"vector, e.g. {missing[:5]}; the folder was built for another dataset"
        )
    table = np.zeros((len(names), vectors.shape[1]), dtype=np.float32)
    table[1:] = vectors[[row_of[str(t)] for t in names[1:]]]
    return torch.from_numpy(table)


def configured_item_vectors(config: Any, dataset: Any) -> torch.Tensor:
    """:func:`load_item_vectors` of the folder config key ``item_vectors`` names; unset is an error that
    says how to make one."""
    folder = config_value(config, "item_vectors")
    if not folder:
        raise ValueError(
            f"config key 'item_vectors' is unset: {config_value(config, 'neg_sampler')} needs item text "
            "vectors (`recbole-hnlm item-vectors --dataset D` writes them; run_hnlm builds them when unset)"
        )
    return load_item_vectors(folder, dataset)


def text_permutation(rows: int, seed: int) -> torch.Tensor:
    """``[rows]`` item id -> the item whose text stands in for it: a seeded shuffle of the real items that
    keeps [PAD] (row 0) in place. The text samplers' permutation control reads item k's text from item
    ``perm[k]``: the same vectors and the same structure, no longer tied to the item."""
    perm = torch.arange(rows)
    perm[1:] = 1 + torch.randperm(rows - 1, generator=torch.Generator().manual_seed(seed))
    return perm
