"""Atomic file output and content fingerprints, shared by every stage that writes an artefact."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

Writer = TypeVar("Writer", bound=Callable[..., Any])


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (dict keys sorted)."""
    payload = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def config_fingerprint(config: Mapping[str, Any], keys: list[str] | None = None) -> str:
    """Fingerprint of the config entries that shape an artefact (all entries when ``keys`` is None)."""
    items = {k: config[k] for k in (keys if keys is not None else sorted(config))}
    return fingerprint(items)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def default_mode(directory: bool) -> int:
    # mkstemp/mkdtemp create private (0600/0700) entries; give outputs the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Stream into a temp file beside ``path``, which it replaces (atomic rename) if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, default_mode(directory=False))
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and an atomic rename."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(value) for value in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (NaN and infinities become null; no ``NaN``/``-Infinity`` tokens)."""
    text = json.dumps(finite_or_null(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def lock_file(path: str | os.PathLike) -> Path:
    """The lock file of the artefact at ``path``: ``.<name>.lock`` beside it (never inside it)."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


_held = threading.local()  # the descriptor filelock hands over on acquiring (its on_acquired callback)


def _note_descriptor(fd: int) -> None:
    _held.fd = fd


def _acquire(lock: Any, lock_path: Path, announce: Callable[[], None]) -> None:
    """Acquire ``lock`` on the file now at ``lock_path``: the outermost holder removes the file before it
    releases, so a waiter may wake up holding a file that is gone; it then tries again on the new one."""
    from filelock import Timeout

    while True:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            announce()
            lock.acquire()
        if lock.lock_counter > 1:
            return  # re-entered in this thread: already verified
        try:
            if os.stat(lock_path).st_ino == os.fstat(_held.fd).st_ino:
                return
        except FileNotFoundError:
            pass
        lock.release()


@contextlib.contextmanager
def artefact_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the inter-process lock of the artefact at ``path`` while building or replacing it.

    Another process (or thread) building the same artefact waits here until the holder is done (saying so
    once on stderr), then finds the finished artefact: stage writers check for a reusable one only once
    they hold the lock, and no run's cleanup (chunks, checkpoints) removes the files of a run still at
    work. Re-entrant within a thread (a stage holding the lock calls writers that take it again). The lock
    file ``.<name>.lock`` beside ``path`` exists only while the lock is held.
    """
    from filelock import FileLock

    lock_path = lock_file(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), is_singleton=True, on_acquired=_note_descriptor)
    said = []

    def announce() -> None:
        if not said:
            said.append(True)
            print(f"waiting for another run building {path} (lock {lock_path})", file=sys.stderr, flush=True)

    _acquire(lock, lock_path, announce)
    try:
        yield Path(path)
    finally:
        if lock.lock_counter == 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)  # still held: a waiter on this file sees it is gone and retries
        lock.release()


def under_artefact_lock(path_of: Callable[..., str | os.PathLike]) -> Callable[[Writer], Writer]:
    """Run the decorated artefact writer holding :func:`artefact_lock` on ``path_of(**arguments)``, the
    call's arguments by name (``lambda out_dir, **_: out_dir``): a concurrent call waits, then finds the
    artefact built. One decorator instead of a locked twin of each writer that repeats its signature."""

    def decorate(writer: Writer) -> Writer:
        signature = inspect.signature(writer)

        @functools.wraps(writer)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with artefact_lock(path_of(**signature.bind(*args, **kwargs).arguments)):
                return writer(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate


class ForeignPathError(FileExistsError):
    """An artefact write was pointed at a path holding something that is not that artefact of ours."""


def _marks_ours(meta: Any, artefact_format: str, legacy: Callable[[dict], bool] | None) -> bool:
    if not isinstance(meta, dict):
        return False
    return meta.get("format") == artefact_format or (legacy is not None and bool(legacy(meta)))


def check_replaceable(
    path: str | os.PathLike,
    artefact_format: str,
    *,
    marker: str = "meta.json",
    legacy: Callable[[dict], bool] | None = None,
) -> None:
    """Raise :class:`ForeignPathError` unless an artefact folder may be written to ``path``.

    Allowed: nothing at ``path``, an empty folder, or a folder whose ``marker`` file is a JSON object with
    ``"format": artefact_format`` (or that ``legacy`` accepts: artefacts written before the field existed).
    Anything else (a file, a link, a folder of someone else's files) is left untouched.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    advice = "move it away or choose another path"
    if path.is_symlink() or not path.is_dir():
        kind = "a symbolic link" if path.is_symlink() else "not a folder"
        raise ForeignPathError(
            f"{path}: refusing to replace it with a {artefact_format} folder: it is {kind}; {advice}"
        )
    if not any(path.iterdir()):
        return
    marker_file = path / marker
    try:
        meta = json.loads(marker_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        reason = f"it has no {marker}"
    except (OSError, ValueError) as err:
        reason = f"its {marker} cannot be read as JSON ({err})"
    else:
        if _marks_ours(meta, artefact_format, legacy):
            return
        reason = f"its {marker} has no field 'format' = {artefact_format!r}"
    raise ForeignPathError(
        f"{path}: refusing to replace a non-empty folder that is not a {artefact_format} folder ({reason}); "
        f"{advice}"
    )


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike,
    artefact_format: str,
    *,
    marker: str = "meta.json",
    legacy: Callable[[dict], bool] | None = None,
) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``path``; on success it replaces ``path`` as a whole.

    Readers never see a half-written folder: either the old one or the new one. If the body raises, the
    temp folder is removed and ``path`` is left untouched. The artefact's lock (:func:`artefact_lock`) is
    held throughout. Only an artefact of the same kind (see
    :func:`check_replaceable`) or an empty folder is replaced; anything else raises
    :class:`ForeignPathError` before the body runs, and again (the body's output discarded) should it
    appear while the body runs.
    """
    path = Path(path)
    with artefact_lock(path):
        check_replaceable(path, artefact_format, marker=marker, legacy=legacy)
        with _replacing_directory(path, artefact_format, marker, legacy) as tmp:
            yield tmp


@contextlib.contextmanager
def _replacing_directory(
    path: Path, artefact_format: str, marker: str, legacy: Callable[[dict], bool] | None
) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, default_mode(directory=True))
    try:
        yield tmp
        check_replaceable(path, artefact_format, marker=marker, legacy=legacy)
        old = None
        if os.path.lexists(path):
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)  # put the previous artefact back
            raise
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
