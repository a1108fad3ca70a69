"""Writing and reading RecBole atomic files that hold free text.

RecBole 1.2.1 reads atomic files with ``pandas.read_csv(sep="\\t", engine="python")`` and the default CSV
quoting, so a text value that starts with ``"`` would swallow the tabs and lines after it. The writer
therefore (1) puts every record on one line (text is cleaned to single spaces, see ``clean_text``) and
(2) quotes a value holding a double quote the CSV way (the value wrapped in quotes, inner quotes doubled),
which both RecBole and :func:`read_atomic` read back exactly. Other readers must use the same
CSV dialect (tab separated, double-quote quoting).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

DIALECT: dict[str, Any] = {
    "delimiter": "\t",
    "quotechar": '"',
    "doublequote": True,
    "quoting": csv.QUOTE_MINIMAL,
    "lineterminator": "\n",
}


def fmt_number(value: float) -> str:
    """Shortest stable text for a rating or a timestamp (``5``, ``4.5``, ``1514764800.123``)."""
    return format(float(value), ".15g")


@contextlib.contextmanager
def atomic_text_file(path: Path) -> Iterator[TextIO]:
    """Stream text into a temp file beside ``path``; rename it over ``path`` only if the body succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def header(columns: list[tuple[str, str]]) -> list[str]:
    return [f"{name}:{ftype}" for name, ftype in columns]


def writer(handle: TextIO) -> Any:
    return csv.writer(handle, **DIALECT)


def read_atomic(path: str | os.PathLike) -> pd.DataFrame:
    """Read an atomic file as strings, columns named without their ``:type`` suffix, text kept verbatim.

    Unlike RecBole's loader, values such as ``NA`` or ``None`` stay strings; empty fields are empty strings.
    """
    frame = pd.read_csv(
        path,
        sep="\t",
        quotechar='"',
        doublequote=True,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        engine="c",
    )
    frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
    return frame
