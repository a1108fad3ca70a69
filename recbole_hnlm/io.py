"""Atomic file output and content fingerprints, shared by every stage that writes an artefact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any


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
    temp folder is removed and ``path`` is left untouched. Only an artefact of the same kind (see
    :func:`check_replaceable`) or an empty folder is replaced; anything else raises
    :class:`ForeignPathError` before the body runs, and again (the body's output discarded) should it
    appear while the body runs.
    """
    path = Path(path)
    check_replaceable(path, artefact_format, marker=marker, legacy=legacy)
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
