"""Raw dump -> RecBole atomic files, in two streaming passes over the reviews.

Pass 1 parses every review line, applies the rating and date filters, and keeps only integer codes
(user, item), rating, time and the line's position. Duplicates are dropped (per user and item the
earliest review wins; ties go to the earlier file and line) and the k-core is iterated to its fixed
point. Pass 2 re-reads only the surviving lines for their review text, spilling it to a temp file so
memory stays bounded by the ID arrays (``text_passes``). The metadata files are then streamed for the
surviving items. Every output file (``.inter``, split files, ``.item``, the card) is staged under a temp
name and all are renamed into place together at the end (``atomic.StagedFiles``): a failure at any point
leaves the previous complete dataset, and nothing else in the folder is touched.
"""

from __future__ import annotations

import json
import os
import sys
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recbole_hnlm.data.datasets import get_spec

from .atomic import StagedFiles, fmt_number, header, row
from .card import build_card, card_markdown, previous_files
from .kcore import kcore_mask
from .readers import (
    BAD_VALUE,
    MISSING_FIELD,
    SOURCE_FORMATS,
    LineReader,
    _key,
    _number,
    date_to_seconds,
)
from .split_files import SPLIT_NAMES, split_labels
from .text_passes import INTER_COLUMNS, read_metadata, write_inter


@dataclass
class PrepareConfig:
    """What to prepare and how; ``None`` filters are off. Dates are UTC, the window is ``[start, end)``."""

    name: str
    source: str
    min_rating: float | None = None
    start: str | None = None
    end: str | None = None
    k_core: int = 0
    split_files: bool = False
    seed: int = 2020
    strict: bool = False

    @classmethod
    def for_dataset(cls, name: str, source: str | None = None, **overrides: Any) -> PrepareConfig:
        """The registry's defaults for ``name`` (see ``datasets.py``), with ``overrides`` on top."""
        spec = get_spec(name)
        base: dict[str, Any] = {"name": name, "source": source}
        if spec is not None and spec.source is not None:
            base.update(
                source=source or spec.source,
                min_rating=spec.min_rating,
                start=spec.start,
                end=spec.end,
                k_core=spec.k_core,
                split_files=spec.split_files,
            )
        base.update({k: v for k, v in overrides.items() if v is not None})
        if not base.get("source"):
            raise ValueError(f"no raw source known for dataset '{name}': pass --source")
        return cls(**base)

    def filters(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("strict")
        return out


class EmptyDatasetError(ValueError):
    """The raw reviews gave no interaction (empty or unreadable file, or filters that drop everything)."""


@dataclass
class _Rows:
    user: array = field(default_factory=lambda: array("q"))
    item: array = field(default_factory=lambda: array("q"))
    rating: array = field(default_factory=lambda: array("d"))
    time: array = field(default_factory=lambda: array("d"))
    file: array = field(default_factory=lambda: array("q"))
    line: array = field(default_factory=lambda: array("q"))


def classify_raw(paths: list[Path], source: str) -> tuple[list[Path], list[Path]]:
    """Split ``--raw`` paths into review files and metadata files by name."""
    reviews: list[Path] = []
    meta: list[Path] = []
    for path in paths:
        low = path.name.lower()
        if source == "yelp":
            if "business" in low:
                meta.append(path)
            elif "review" in low:
                reviews.append(path)
            else:
                raise ValueError(
                    f"cannot tell what {path.name} holds: Yelp files must be named like "
                    "yelp_academic_dataset_review.json or yelp_academic_dataset_business.json"
                )
        elif low.startswith("meta"):
            meta.append(path)
        else:
            reviews.append(path)
    if not reviews:
        raise ValueError("no review file among --raw (metadata files are named meta_*/ *business*)")
    return reviews, meta


def _field(rec: dict, name: str) -> Any:
    value = rec[name]
    if value is None:
        raise KeyError(name)
    return value


def _ranks(names: list[str]) -> np.ndarray:
    """rank[code] = position of names[code] in sorted order."""
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(names), dtype=np.int64)
    return rank


def _progress(total: int | None, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit=" lines", disable=None, file=sys.stderr, mininterval=1.0)


def prepare_dataset(
    raw: list[str | os.PathLike], out: str | os.PathLike, config: PrepareConfig, verbose: bool = True
) -> dict[str, Any]:
    """Prepare ``<out>/<name>/`` from raw files; returns the dataset card (also saved beside the files)."""
    source = SOURCE_FORMATS.get(config.source)
    if source is None:
        raise ValueError(f"unknown source '{config.source}'; expected one of {sorted(SOURCE_FORMATS)}")
    paths = [Path(p) for p in raw]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"raw file not found: {p}")
    review_paths, meta_paths = classify_raw(paths, config.source)
    if len({p.name for p in paths}) != len(paths):
        raise ValueError("two --raw files share a name; the card identifies inputs by file name")
    folder = Path(out) / config.name
    t0 = time.perf_counter()

    start = date_to_seconds(config.start) if config.start else -np.inf
    end = date_to_seconds(config.end) if config.end else np.inf
    uf, itf, rf, tf = source.review_fields
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    rows = _Rows()
    skips: dict[str, Counter[str]] = {}
    inputs: list[dict[str, str]] = []
    n_valid = n_rating = 0
    bar = _progress(None, "prepare: reviews") if verbose else None

    # ---- pass 1: IDs, ratings, times, line positions
    for fidx, path in enumerate(review_paths):
        reader = LineReader(path, source, config.strict, digest=True)
        skips[path.name] = reader.skips
        for line_no, rec in reader.records():
            if bar is not None and not line_no & 0xFFFF:
                bar.update(0x10000)
            try:
                uid = _field(rec, uf)
                if uid not in users:  # IDs already seen are valid
                    uid = _key(uid)
                iid = _field(rec, itf)
                if iid not in items:
                    iid = _key(iid)
                rating = _number(_field(rec, rf))
                ts = source.time_of(_field(rec, tf))
            except KeyError as exc:
                reader.fail(line_no, MISSING_FIELD, f"no field {exc}")
                continue
            except (ValueError, TypeError, OverflowError) as exc:
                reader.fail(line_no, BAD_VALUE, str(exc))
                continue
            n_valid += 1
            if config.min_rating is not None and rating < config.min_rating:
                reader.skips["below_min_rating"] += 1
                continue
            n_rating += 1
            if not start <= ts < end:
                reader.skips["out_of_window"] += 1
                continue
            u = users.get(uid)
            if u is None:
                u = users[uid] = len(users)
            i = items.get(iid)
            if i is None:
                i = items[iid] = len(items)
            rows.user.append(u)
            rows.item.append(i)
            rows.rating.append(rating)
            rows.time.append(ts)
            rows.file.append(fidx)
            rows.line.append(line_no)
        inputs.append({"role": "reviews", "file": path.name, "sha256": reader.sha256})
    if bar is not None:
        bar.close()

    u = np.frombuffer(rows.user, dtype=np.int64)
    it = np.frombuffer(rows.item, dtype=np.int64)
    r = np.frombuffer(rows.rating, dtype=np.float64)
    t = np.frombuffer(rows.time, dtype=np.float64)
    f = np.frombuffer(rows.file, dtype=np.int64)
    ln = np.frombuffer(rows.line, dtype=np.int64)
    n_window = u.size

    def sizes(mask_u: np.ndarray, mask_i: np.ndarray, n: int) -> dict[str, int]:
        return {
            "interactions": int(n),
            "users": int(np.unique(mask_u).size),
            "items": int(np.unique(mask_i).size),
        }

    rating_step = f"rating >= {config.min_rating}" if config.min_rating is not None else "rating (no filter)"
    steps: list[dict[str, Any]] = [
        {"step": "valid reviews", "interactions": n_valid},
        {"step": rating_step, "interactions": n_rating},
        {"step": f"date in [{config.start}, {config.end})", **sizes(u, it, n_window)},
    ]

    # ---- dedupe: per (user, item) keep the earliest review (ties: earlier file, then line)
    order = np.lexsort((ln, f, t, it, u))
    first = np.ones(order.size, dtype=bool)
    if order.size:
        first[1:] = (u[order][1:] != u[order][:-1]) | (it[order][1:] != it[order][:-1])
    keep = np.sort(order[first])
    duplicates = int(n_window - keep.size)
    u, it, r, t, f, ln = u[keep], it[keep], r[keep], t[keep], f[keep], ln[keep]
    steps.append({"step": "dedupe (user, item): earliest kept", **sizes(u, it, u.size)})

    # ---- k-core to its fixed point
    mask, passes = kcore_mask(u, it, config.k_core)
    u, it, r, t, f, ln = u[mask], it[mask], r[mask], t[mask], f[mask], ln[mask]
    kstep = f"{config.k_core}-core" if config.k_core > 1 else "no k-core"
    steps.append({"step": kstep, "passes": passes, **sizes(u, it, u.size)})

    # ---- deterministic order: user id, time, item id (string order of the raw ids)
    user_names = list(users)
    item_names = list(items)
    urank, irank = _ranks(user_names), _ranks(item_names)
    final = np.lexsort((irank[it], t, urank[u]))
    u, it, r, t, f, ln = u[final], it[final], r[final], t[final], f[final], ln[final]
    n = u.size
    if n == 0:  # before anything is written: an empty dataset must not replace or sit beside a real one
        counts = "; ".join(f"{s['step']}: {s['interactions']}" for s in steps)
        raise EmptyDatasetError(
            f"{', '.join(str(p) for p in review_paths)}: 0 interactions left after the filters ({counts})"
        )

    # ---- every file is staged and renamed into place together at the end (the card last): a failure
    # (say, a truncated metadata file) leaves the previous complete dataset, and the folder's other files
    card_json, card_md = f"{config.name}.card.json", f"{config.name}.card.md"
    stale = [name for name in previous_files(folder / card_json) if name.startswith(f"{config.name}.")]
    with StagedFiles(folder, last=[card_json, card_md]) as staged:
        uname = np.asarray(user_names, dtype=object)
        iname = np.asarray(item_names, dtype=object)
        inter_name = f"{config.name}.inter"
        with staged.open(inter_name) as handle:
            write_inter(handle, review_paths, source, (u, it, r, t, f, ln), uname, iname, folder)
        outputs = [inter_name]

        # ---- benchmark split files (IDs, rating, time) when the dataset's yaml loads them
        split_counts: dict[str, int] = {}
        if config.split_files:
            labels = split_labels(urank[u], config.seed)
            for j, part in enumerate(SPLIT_NAMES):
                sel = np.flatnonzero(labels == j)
                with staged.open(f"{config.name}.{part}.inter") as handle:
                    handle.write(row(header(INTER_COLUMNS[:4])))
                    for k in sel:
                        handle.write(row((uname[u[k]], iname[it[k]], fmt_number(r[k]), fmt_number(t[k]))))
                split_counts[part] = int(sel.size)
                outputs.append(f"{config.name}.{part}.inter")

        # ---- .item from the metadata, for the surviving items only
        needed = {item_names[c] for c in np.unique(it).tolist()}
        meta_rows: dict[str, tuple[str, ...]] = {}
        meta_duplicates = 0
        for path in meta_paths:
            reader = LineReader(path, source, config.strict, digest=True)
            skips[path.name] = reader.skips
            meta_duplicates += read_metadata(reader, source, needed, meta_rows)
            inputs.append({"role": "metadata", "file": path.name, "sha256": reader.sha256})
        item_columns = header([("item_id", "token"), *source.item_columns])
        if meta_paths:
            blank = ("",) * len(source.item_columns)
            with staged.open(f"{config.name}.item") as handle:
                handle.write(row(item_columns))
                for key in sorted(needed):
                    handle.write(row((key, *meta_rows.get(key, blank))))
            outputs.append(f"{config.name}.item")

        n_items = len(needed)
        card = build_card(
            config,
            inputs=inputs,
            steps=steps,
            sizes=(int(np.unique(u).size), n_items, int(n)),
            duplicates=duplicates,
            skips=skips,
            metadata={
                "files": [p.name for p in meta_paths],
                "items_without_metadata": (n_items - len(meta_rows)) if meta_paths else n_items,
                "duplicate_metadata_lines": meta_duplicates,
            },
            split_counts=split_counts,
            columns={"inter": header(INTER_COLUMNS), "item": item_columns if meta_paths else None},
            files=outputs,
        )
        staged.write_text(card_json, json.dumps(card, indent=2, sort_keys=True) + "\n")
        markdown = card_markdown(card)
        staged.write_text(card_md, markdown)
        # outputs of the previous prepare this one does not write (split files, an .item) go with it
        for name in [*stale, *(f"{config.name}.{part}.inter" for part in SPLIT_NAMES)]:
            staged.remove(name)
    if verbose:
        print(markdown)
        print(f"prepared {folder} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return card


__all__ = ["EmptyDatasetError", "PrepareConfig", "card_markdown", "classify_raw", "prepare_dataset"]
