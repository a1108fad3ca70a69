"""Writing RecBole atomic files that hold free text.

RecBole 1.2.1 reads atomic files with ``pandas.read_csv(sep="\\t", engine="python")`` and pandas'
default CSV quoting, while the plugin's text readers use ``quoting=QUOTE_NONE``. Both read a line the
same way as long as no value contains a tab or a line break and no value *starts* with a double quote
(that would open a quoted field for RecBole). The writer guarantees this: text is cleaned to single
spaces (``clean_text``) and a leading ``"`` becomes the typographic ``“``; quotes inside a value stay.
IDs never hold whitespace or quotes (lines with such IDs are skipped as ``bad_value``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TextIO

from recbole_hnlm.io import atomic_open


def fmt_number(value: float) -> str:
    """Shortest stable text for a rating or a timestamp (``5``, ``4.5``, ``1514764800.123``)."""
    return format(float(value), ".15g")


def atomic_value(text: str) -> str:
    """A cleaned text value made safe for both RecBole's quoting reader and a QUOTE_NONE reader."""
    return "\u201c" + text[1:] if text.startswith('"') else text


def row(values: tuple[str, ...] | list[str]) -> str:
    return "\t".join(values) + "\n"


def header(columns: list[tuple[str, str]]) -> list[str]:
    return [f"{name}:{ftype}" for name, ftype in columns]


def atomic_text_file(path: Path) -> contextlib.AbstractContextManager[TextIO]:
    """Stream text into a temp file beside ``path``; rename it over ``path`` only if the body succeeds."""
    return atomic_open(path, "w", encoding="utf-8", newline="\n")


def write_text_file(path: Path, text: str) -> None:
    with atomic_text_file(path) as handle:
        handle.write(text)
