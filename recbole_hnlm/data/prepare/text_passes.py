"""The text passes of ``prepare``: the review text of the surviving lines (pass 2, written into the
``.inter``) and the metadata rows of the surviving items."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .atomic import atomic_value, fmt_number, header, row
from .readers import BAD_VALUE, MISSING_FIELD, LineReader, _key, clean_text

INTER_COLUMNS = [
    ("user_id", "token"),
    ("item_id", "token"),
    ("rating", "float"),
    ("timestamp", "float"),
    ("review", "token"),
]


def write_inter(
    handle: TextIO,
    review_paths: list[Path],
    source: Any,
    columns: tuple[np.ndarray, ...],
    uname: np.ndarray,
    iname: np.ndarray,
    folder: Path,
) -> None:
    """Pass 2: the ``.inter`` rows (``columns`` = user, item, rating, time, file, line codes) with the review
    text of their lines, which is spilled to a scratch file in file/line order first."""
    u, it, r, t, f, ln = columns
    n = u.size
    with tempfile.TemporaryDirectory(prefix=".prepare-", dir=folder) as scratch:
        spill_path = Path(scratch) / "reviews.bin"
        offsets = np.zeros(n, dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        with open(spill_path, "wb") as spill:
            pos = 0
            for fidx, path in enumerate(review_paths):
                sel = np.flatnonzero(f == fidx)
                if not sel.size:
                    continue
                sel = sel[np.argsort(ln[sel], kind="stable")]
                wanted_lines = ln[sel].tolist()
                reader = LineReader(path, source, strict=True)
                got = 0
                for k, (line_no, rec) in enumerate(reader.records(iter(wanted_lines))):
                    if line_no != wanted_lines[k]:
                        raise RuntimeError(f"{path.name} changed while it was being prepared")
                    data = atomic_value(clean_text(rec.get(source.text_field))).encode("utf-8")
                    offsets[sel[k]] = pos
                    lengths[sel[k]] = len(data)
                    spill.write(data)
                    pos += len(data)
                    got += 1
                if got != len(wanted_lines):
                    raise RuntimeError(f"{path.name} changed while it was being prepared")
        with open(spill_path, "rb") as spill:
            handle.write(row(header(INTER_COLUMNS)))
            for k in range(n):
                spill.seek(offsets[k])
                text = spill.read(lengths[k]).decode("utf-8")
                handle.write(row((uname[u[k]], iname[it[k]], fmt_number(r[k]), fmt_number(t[k]), text)))


def read_metadata(
    reader: LineReader, source: Any, needed: set[str], meta_rows: dict[str, tuple[str, ...]]
) -> int:
    """Add the item rows of one metadata file for the ``needed`` items; returns its duplicate lines."""
    duplicates = 0
    for line_no, rec in reader.records():
        key = rec.get(source.item_key)
        if key is None:
            reader.fail(line_no, MISSING_FIELD, f"no field '{source.item_key}'")
            continue
        try:
            key = _key(key)
        except ValueError as exc:
            reader.fail(line_no, BAD_VALUE, str(exc))
            continue
        if key not in needed:
            continue
        if key in meta_rows:
            duplicates += 1
            continue
        meta_rows[key] = tuple(atomic_value(v) for v in source.item_row(rec))
    return duplicates
