"""Writing RecBole atomic files that hold free text.

RecBole 1.2.1 reads atomic files with ``pandas.read_csv(sep="\\t", engine="python")`` and pandas'
default CSV quoting, while the plugin's text readers use ``quoting=QUOTE_NONE``. Both read a line the
same way as long as no value contains a tab or a line break and no value *starts* with a double quote
(that would open a quoted field for RecBole). The writer guarantees this: text is cleaned to single
spaces (``clean_text``) and a leading ``"`` becomes the typographic ``“``; quotes inside a value stay.
IDs never hold whitespace or quotes (lines with such IDs are skipped as ``bad_value``).

:class:`StagedFiles` writes the files of one dataset as a unit: all or none of them replace the previous
ones, while anything else in the folder (e.g. the user's raw dumps) is left alone.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from recbole_hnlm.io import atomic_open, default_mode, fsync_dir


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


class StagedFiles:
    """The files of one output folder, written as a unit.

    ``open(name)`` streams into a hidden temp file beside ``folder/name``; ``remove(name)`` marks a stale
    file. Leaving the ``with`` block normally commits: the previous ``last`` files (the card) are removed
    first, the staged files renamed into place, ``last`` renamed last, and the stale ones deleted. An
    exception inside the block deletes the temp files and leaves the folder as it was. The only window in
    which a reader sees a mixture is the commit's few renames, and the card is absent throughout it.
    """

    def __init__(self, folder: Path, last: Sequence[str] = ()) -> None:
        self.folder = folder
        self.last = list(last)
        self.staged: dict[str, Path] = {}
        self.stale: set[str] = set()

    def __enter__(self) -> StagedFiles:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.abort()  # whatever was not renamed into place

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[TextIO]:
        """A text handle whose content becomes ``folder/name`` at the commit."""
        if name in self.staged:
            raise ValueError(f"{self.folder / name} is staged twice")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".staged", dir=self.folder)
        self.staged[name] = Path(tmp)  # registered first: abort() removes it whatever happens next
        os.chmod(tmp, default_mode(directory=False))
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def write_text(self, name: str, text: str) -> None:
        with self.open(name) as handle:
            handle.write(text)

    def remove(self, name: str) -> None:
        """Delete ``folder/name`` (if present and not staged) at the commit."""
        self.stale.add(name)

    def commit(self) -> None:
        for name in self.last:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / name)
        order = [n for n in self.staged if n not in self.last] + [n for n in self.last if n in self.staged]
        for name in order:
            os.replace(self.staged.pop(name), self.folder / name)
        for name in sorted(self.stale - set(order)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / name)
        fsync_dir(self.folder)

    def abort(self) -> None:
        for tmp in self.staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.staged.clear()
