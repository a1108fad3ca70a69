"""Streaming readers for the raw dumps: gzip or plain, line by line, with every skipped line counted.

Each source knows how to pull ``(user, item, rating, seconds)`` and the review text out of a review
record, and the item text columns out of a metadata record. Bad lines never stop a run unless
``strict`` is set; then the first one raises :class:`RawFormatError` naming ``file:line``.
"""

from __future__ import annotations

import ast
import calendar
import gzip
import hashlib
import io
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from typing import Any

# Skip reasons that are data errors (strict mode raises on these); filter drops are counted apart.
BAD_ENCODING = "bad_encoding"
BAD_JSON = "bad_json"
MISSING_FIELD = "missing_field"
BAD_VALUE = "bad_value"
ERROR_REASONS = (BAD_ENCODING, BAD_JSON, MISSING_FIELD, BAD_VALUE)


class RawFormatError(ValueError):
    """A malformed raw line in strict mode; the message names the file and 1-based line number."""


def open_lines(path: Path) -> Iterator[bytes]:
    """Yield the raw lines of a gzip (detected by its magic bytes) or plain file."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as raw, io.BufferedReader(raw, buffer_size=1 << 20) as handle:
                yield from handle
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise RawFormatError(f"{path}: truncated or corrupt gzip file ({err})") from err
    else:
        with open(path, "rb", buffering=1 << 20) as handle:
            yield from handle


def clean_text(value: Any) -> str:
    """One line of plain text: lists joined, all whitespace runs (tabs, newlines) to one space, no NULs."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(clean_text(v) for v in value)
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", " ")
    return " ".join(text.split())


def join_unique(values: Any, sep: str = ", ") -> str:
    """Flatten (nested) lists of names, drop empties and repeats (first wins), join with ``sep``."""
    out: list[str] = []
    seen: set[str] = set()

    def walk(v: Any) -> None:
        if v is None:
            return
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
            return
        text = clean_text(v)
        if text and text not in seen:
            seen.add(text)
            out.append(text)

    walk(values)
    return sep.join(out)


def _utc_seconds(text: str) -> float:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS`` as UTC epoch seconds (strict digits and ranges)."""
    text = text.strip()
    if len(text) == 10:
        text += " 00:00:00"
    if len(text) != 19 or text[4] != "-" or text[7] != "-" or text[10] != " ":
        raise ValueError(f"bad date {text!r}")
    y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
    h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 62):
        raise ValueError(f"bad date {text!r}")
    return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))


def date_to_seconds(date: str) -> float:
    return _utc_seconds(date)


def _number(value: Any) -> float:
    """A finite number from a JSON number or numeric string (booleans rejected)."""
    if value is True or value is False or value is None:
        raise ValueError(f"not a number: {value!r}")
    out = float(value)
    if not isfinite(out):
        raise ValueError(f"not finite: {value!r}")
    return out


def _key(value: Any) -> str:
    """An ID as text: a string or integer, outer spaces stripped, no inner whitespace or double quotes."""
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"bad id {value!r}")
        value = str(value)
    text = value.strip()
    if not text or '"' in text or text.split() != [text]:
        raise ValueError(f"bad id {value!r}")
    return text


@dataclass(frozen=True)
class Source:
    """How to read one raw format."""

    name: str
    review_fields: tuple[str, str, str, str]  # user, item, rating, time (in the raw record)
    text_field: str
    time_of: Callable[[Any], float]
    item_key: str  # item id field in the metadata records
    item_columns: tuple[tuple[str, str], ...]  # (column, RecBole type) written to .item
    item_row: Callable[[dict], tuple[str, ...]]
    python_literals: bool = False  # accept Python dict literals (2014 release)


def _unix_seconds(value: Any) -> float:
    return _number(value)


def _unix_millis(value: Any) -> float:
    return _number(value) / 1000.0


def _yelp_time(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("date is not a string")
    return _utc_seconds(value)


_AMAZON_ITEM_COLUMNS = (
    ("title", "token_seq"),
    ("categories", "token_seq"),
    ("brand", "token"),
    ("description", "token"),
)


def _amazon2014_item(rec: dict) -> tuple[str, ...]:
    return (
        clean_text(rec.get("title")),
        join_unique(rec.get("categories")),
        clean_text(rec.get("brand")),
        clean_text(rec.get("description")),
    )


def _amazon2018_item(rec: dict) -> tuple[str, ...]:
    return (
        clean_text(rec.get("title")),
        join_unique(rec.get("category")),
        clean_text(rec.get("brand")),
        clean_text(rec.get("description")),
    )


def _amazon2023_item(rec: dict) -> tuple[str, ...]:
    return (
        clean_text(rec.get("title")),
        join_unique(rec.get("categories")),
        clean_text(rec.get("store")),
        clean_text(rec.get("description")),
    )


def _yelp_item(rec: dict) -> tuple[str, ...]:
    categories = rec.get("categories")
    if isinstance(categories, str):
        categories = categories.split(",")
    return (clean_text(rec.get("name")), clean_text(rec.get("city")), join_unique(categories))


SOURCE_FORMATS: dict[str, Source] = {
    "amazon2014": Source(
        "amazon2014",
        ("reviewerID", "asin", "overall", "unixReviewTime"),
        "reviewText",
        _unix_seconds,
        "asin",
        _AMAZON_ITEM_COLUMNS,
        _amazon2014_item,
        python_literals=True,
    ),
    "amazon2018": Source(
        "amazon2018",
        ("reviewerID", "asin", "overall", "unixReviewTime"),
        "reviewText",
        _unix_seconds,
        "asin",
        _AMAZON_ITEM_COLUMNS,
        _amazon2018_item,
    ),
    "amazon2023": Source(
        "amazon2023",
        ("user_id", "parent_asin", "rating", "timestamp"),
        "text",
        _unix_millis,
        "parent_asin",
        _AMAZON_ITEM_COLUMNS,
        _amazon2023_item,
    ),
    "yelp": Source(
        "yelp",
        ("user_id", "business_id", "stars", "date"),
        "text",
        _yelp_time,
        "business_id",
        (("name", "token_seq"), ("city", "token"), ("categories", "token_seq")),
        _yelp_item,
    ),
}


class LineReader:
    """Iterates ``(line_no, record)`` over one raw file, counting and (in strict mode) raising on bad lines.

    ``wanted`` (a sorted iterator of 1-based line numbers) makes it parse only those lines. The SHA-256 of
    the decompressed content is accumulated in ``sha256`` while reading (when ``digest`` is set).
    """

    def __init__(self, path: Path, source: Source, strict: bool, digest: bool = False) -> None:
        self.path = path
        self.source = source
        self.strict = strict
        self.skips: Counter[str] = Counter()
        self.lines = 0
        self._hash = hashlib.sha256() if digest else None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""

    def fail(self, line_no: int, reason: str, detail: str = "") -> None:
        """Count a bad line, or raise in strict mode (for data errors only)."""
        self.skips[reason] += 1
        if self.strict and reason in ERROR_REASONS:
            extra = f": {detail}" if detail else ""
            raise RawFormatError(f"{self.path.name}:{line_no}: {reason}{extra}")

    def parse(self, raw: bytes, line_no: int) -> dict | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.fail(line_no, BAD_ENCODING, str(exc))
            return None
        try:
            rec = json.loads(text)
        except ValueError as exc:
            rec = None
            if self.source.python_literals:
                try:
                    rec = ast.literal_eval(text.strip())
                except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                    rec = None
            if rec is None:
                self.fail(line_no, BAD_JSON, str(exc))
                return None
        if not isinstance(rec, dict):
            self.fail(line_no, BAD_JSON, "not an object")
            return None
        return rec

    def records(self, wanted: Iterator[int] | None = None) -> Iterator[tuple[int, dict]]:
        target = next(wanted, None) if wanted is not None else None
        hasher = self._hash
        line_no = 0
        for raw in open_lines(self.path):
            line_no += 1
            if hasher is not None:
                hasher.update(raw)
            if wanted is not None:
                if target is None:
                    break
                if line_no != target:
                    continue
                target = next(wanted, None)
            elif not raw.strip():
                self.skips["blank_line"] += 1
                continue
            rec = self.parse(raw, line_no)
            if rec is not None:
                yield line_no, rec
        self.lines = line_no
