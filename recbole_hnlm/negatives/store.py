"""The semantic-negative store: one on-disk format written by every producer and read by training.

Layout of a store folder::

    meta.json     format, version, dim, count, producer, dataset name + fingerprint, config fingerprint
    keys.tsv      ``user_token<TAB>item_token`` per row (header line first): original dataset tokens
    vectors.npy   float16 ``[count, dim]`` matrix, row r = the negative embedding of keys row r

Rows are keyed by the *original* tokens of training interactions, so a store survives re-indexing;
``bind`` maps them once to RecBole's internal ids and builds a sorted int64 key index, after which a
batch lookup is one ``searchsorted`` and one gather (no Python loop per sample). ``vectors.npy`` is
opened as a memory map, so a store larger than RAM still works.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recbole_hnlm.data.fingerprint import dataset_fingerprint
from recbole_hnlm.io import atomic_directory, config_fingerprint

STORE_FORMAT = "recbole-hnlm/semantic-negatives"
STORE_VERSION = 1
META_FILE = "meta.json"
KEYS_FILE = "keys.tsv"
VECTORS_FILE = "vectors.npy"
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_SHOW = 5  # how many offending rows an error message lists


class StoreError(ValueError):
    """A store is malformed, inconsistent, or does not belong to the dataset it is used with."""


@dataclass(frozen=True)
class StoreMeta:
    dim: int
    count: int
    producer: str
    dataset: str
    dataset_fingerprint: str
    config_fingerprint: str
    created: str
    details: dict[str, Any] = field(default_factory=dict)
    format: str = STORE_FORMAT
    version: int = STORE_VERSION


def _token(value: Any) -> str:
    """A token as messages show it: ``'7'``, also for a numpy string (whose repr is ``np.str_('7')``)."""
    return repr(str(value))


def _describe_rows(rows: np.ndarray, users: Sequence[str], items: Sequence[str]) -> str:
    shown = ", ".join(f"row {int(r)} ({_token(users[r])}, {_token(items[r])})" for r in rows[:_SHOW])
    more = f" and {len(rows) - _SHOW} more" if len(rows) > _SHOW else ""
    return shown + more


def write_store(
    path: str | Path,
    user_tokens: Sequence[str],
    item_tokens: Sequence[str],
    vectors: np.ndarray,
    *,
    producer: str,
    dataset: str,
    dataset_fingerprint: str,
    config: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> StoreMeta:
    """Validate and atomically write a store; returns its metadata.

    Raises :class:`StoreError` for mismatched lengths, a non-2-D matrix, NaN/inf or float16-overflowing
    values, duplicate (user, item) keys, or tokens containing tabs/newlines.
    """
    vectors = np.asarray(vectors)
    users = [str(u) for u in user_tokens]
    items = [str(i) for i in item_tokens]
    if vectors.ndim != 2:
        raise StoreError(f"vectors must be a 2-D [count, dim] matrix, got shape {vectors.shape}")
    if not (len(users) == len(items) == vectors.shape[0]):
        raise StoreError(
            f"length mismatch: {len(users)} user tokens, {len(items)} item tokens, {vectors.shape[0]} vectors"
        )
    if vectors.shape[1] == 0:
        raise StoreError("vectors have dimension 0")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise StoreError(f"{bad.size} vectors contain NaN or inf: {_describe_rows(bad, users, items)}")
    over = np.flatnonzero((np.abs(vectors) > _FLOAT16_MAX).any(axis=1))
    if over.size:
        raise StoreError(
            f"{over.size} vectors exceed the float16 range (|x| > {_FLOAT16_MAX:g}): "
            f"{_describe_rows(over, users, items)}"
        )
    for name, tokens in (("user", users), ("item", items)):
        odd = [k for k, t in enumerate(tokens) if "\t" in t or "\n" in t or "\r" in t or t == ""]
        if odd:
            raise StoreError(
                f"{len(odd)} {name} tokens are empty or contain tabs/newlines, e.g. row {odd[0]}"
            )
    keys = pd.DataFrame({"user": users, "item": items})
    duplicated = np.flatnonzero(keys.duplicated().to_numpy())
    if duplicated.size:
        raise StoreError(
            f"{duplicated.size} duplicate (user, item) keys: {_describe_rows(duplicated, users, items)}"
        )

    meta = StoreMeta(
        dim=int(vectors.shape[1]),
        count=int(vectors.shape[0]),
        producer=producer,
        dataset=dataset,
        dataset_fingerprint=dataset_fingerprint,
        config_fingerprint=config_fingerprint(dict(config or {})),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        details=dict(details or {}),
    )
    with atomic_directory(path, STORE_FORMAT) as tmp:
        np.save(tmp / VECTORS_FILE, vectors.astype(np.float16))
        keys.to_csv(tmp / KEYS_FILE, sep="\t", index=False, header=["user_token", "item_token"])
        (tmp / META_FILE).write_text(json.dumps(asdict(meta), indent=2, sort_keys=True) + "\n")
    return meta


class SemanticNegativeStore:
    """A store opened from disk: metadata, keys, and a float16 memory map of the vectors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / META_FILE
        if not meta_file.is_file():
            raise StoreError(f"{meta_file}: not a semantic-negative store (missing {META_FILE})")
        try:
            raw = json.loads(meta_file.read_text())
        except json.JSONDecodeError as err:
            raise StoreError(f"{meta_file}: invalid JSON at line {err.lineno}: {err.msg}") from err
        if raw.get("format") != STORE_FORMAT:
            raise StoreError(
                f"{meta_file}: field 'format' is {raw.get('format')!r}, expected {STORE_FORMAT!r}"
            )
        if raw.get("version") != STORE_VERSION:
            raise StoreError(
                f"{meta_file}: field 'version' is {raw.get('version')!r}, expected {STORE_VERSION}"
            )
        missing = [f for f in StoreMeta.__dataclass_fields__ if f not in raw]
        if missing:
            raise StoreError(f"{meta_file}: missing field(s) {missing}")
        self.meta = StoreMeta(**{k: raw[k] for k in StoreMeta.__dataclass_fields__})

        try:
            self.vectors = np.load(self.path / VECTORS_FILE, mmap_mode="r")
        except (OSError, ValueError, EOFError) as err:  # an empty file raises EOFError
            raise StoreError(
                f"{self.path / VECTORS_FILE}: cannot be read as a .npy matrix ({type(err).__name__}: {err})"
            ) from err
        if self.vectors.dtype != np.float16 or self.vectors.ndim != 2:
            raise StoreError(
                f"{self.path / VECTORS_FILE}: expected a 2-D float16 matrix, "
                f"got {self.vectors.dtype} with shape {self.vectors.shape}"
            )
        if self.vectors.shape[1] != self.meta.dim:
            raise StoreError(
                f"{self.path / VECTORS_FILE}: vectors have dimension {self.vectors.shape[1]}, "
                f"but {META_FILE} field 'dim' says {self.meta.dim}"
            )
        try:
            keys = pd.read_csv(self.path / KEYS_FILE, sep="\t", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
            raise StoreError(
                f"{self.path / KEYS_FILE}: not a 2-column 'user_token<TAB>item_token' table ({err})"
            ) from err
        if list(keys.columns) != ["user_token", "item_token"]:
            raise StoreError(f"{self.path / KEYS_FILE}: header must be 'user_token<TAB>item_token'")
        if not (len(keys) == self.vectors.shape[0] == self.meta.count):
            raise StoreError(
                f"{self.path}: {KEYS_FILE} has {len(keys)} rows, {VECTORS_FILE} has {self.vectors.shape[0]}, "
                f"{META_FILE} field 'count' says {self.meta.count}"
            )
        self.user_tokens: np.ndarray = keys["user_token"].to_numpy()
        self.item_tokens: np.ndarray = keys["item_token"].to_numpy()
        repeats = np.flatnonzero(keys.duplicated(keep="first").to_numpy())
        if repeats.size:
            first = keys.reset_index().groupby(["user_token", "item_token"])["index"].transform("min")
            shown = ", ".join(
                f"row {int(r)} (line {int(r) + 2}) "
                f"({_token(self.user_tokens[r])}, {_token(self.item_tokens[r])}) "
                f"repeats row {int(first.iloc[r])}"
                for r in repeats[:_SHOW]
            )
            more = f" and {repeats.size - _SHOW} more" if repeats.size > _SHOW else ""
            raise StoreError(
                f"{self.path / KEYS_FILE}: {repeats.size} duplicate (user, item) keys: {shown}{more}; "
                "each training pair has one vector"
            )

    @property
    def dim(self) -> int:
        return self.meta.dim

    def __len__(self) -> int:
        return self.meta.count

    def check_finite(self, chunk_rows: int = 65536) -> None:
        """Raise :class:`StoreError` naming the rows whose vectors contain NaN or inf."""
        bad: list[np.ndarray] = []
        for start in range(0, len(self), chunk_rows):
            block = np.asarray(self.vectors[start : start + chunk_rows])
            rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
            if rows.size:
                bad.append(rows + start)
        if bad:
            rows = np.concatenate(bad)
            raise StoreError(
                f"{self.path / VECTORS_FILE}: {rows.size} rows contain NaN or inf: "
                f"{_describe_rows(rows, self.user_tokens, self.item_tokens)}"
            )

    def bind(self, dataset: Any) -> BoundNegativeStore:
        """Map the keys to ``dataset``'s internal ids, after checking the store was built for it."""
        return BoundNegativeStore(self, dataset)


class BoundNegativeStore:
    """A store bound to one RecBole dataset: vectorised (internal user, item) -> row lookup."""

    def __init__(self, store: SemanticNegativeStore, dataset: Any) -> None:
        self.store = store
        expected = dataset_fingerprint(dataset)
        meta = store.meta
        if meta.dataset != dataset.dataset_name or meta.dataset_fingerprint != expected:
            raise StoreError(
                f"{store.path}: built for dataset {meta.dataset!r} (fingerprint {meta.dataset_fingerprint}), "
                f"but this run uses {dataset.dataset_name!r} (fingerprint {expected}). Rebuild the store "
                "for this dataset, or check data_path and the dataset's filter settings."
            )
        store.check_finite()
        uid_index = self._token_ids(dataset, dataset.uid_field, store.user_tokens, "user")
        iid_index = self._token_ids(dataset, dataset.iid_field, store.item_tokens, "item")
        self.n_items = int(dataset.item_num)
        keys = uid_index * self.n_items + iid_index
        self._order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._order]
        # A torch view of the (memory-mapped) float16 matrix: torch's row gather is faster than NumPy
        # fancy indexing, and converting after the gather touches only the batch's rows.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only memmap: we never write through it
            self._vectors = torch.from_numpy(store.vectors)

    def _token_ids(self, dataset: Any, field_name: str, tokens: np.ndarray, what: str) -> np.ndarray:
        mapping = dataset.field2token_id[field_name]
        ids = np.fromiter((mapping.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
        unknown = np.flatnonzero(ids < 0)
        if unknown.size:
            shown = ", ".join(f"{_token(tokens[r])} (line {r + 2})" for r in unknown[:_SHOW])
            raise StoreError(
                f"{self.store.path / KEYS_FILE}: {unknown.size} {what} tokens are not in dataset "
                f"{dataset.dataset_name!r}: {shown}"
            )
        return ids

    @property
    def dim(self) -> int:
        return self.store.dim

    def rows(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Store row of each (internal user id, internal item id) pair; -1 where the pair is absent."""
        keys = np.asarray(user_ids, dtype=np.int64) * self.n_items + np.asarray(item_ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted_keys, keys)
        pos = np.minimum(pos, len(self._sorted_keys) - 1)
        found = self._sorted_keys[pos] == keys if len(self._sorted_keys) else np.zeros(keys.shape, dtype=bool)
        return np.where(found, self._order[pos] if len(self._order) else -1, -1)

    def gather(self, rows: np.ndarray) -> torch.Tensor:
        """float32 ``[len(rows), dim]`` tensor of the given rows; rows < 0 give zero vectors."""
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        present = rows >= 0
        # index_select, not advanced indexing: several times faster for a batch of rows on the CPU
        out = torch.index_select(self._vectors, 0, rows.clamp(min=0)).float()
        if not bool(present.all()):
            out[~present] = 0.0
        return out
