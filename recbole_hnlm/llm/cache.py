"""An append-only JSON-lines request cache that survives SIGKILL at any moment.

Each finished request becomes one line ``{"key": ..., "value": ...}\\n``, written with a single
``os.write`` on an ``O_APPEND`` descriptor and then fsync-ed. A kill can therefore leave at most one
partial *last* line; loading ignores it and truncates the file back to the last complete line, so
the next append starts clean. Keys are read first-wins, so a line repeated by any means is counted
once; only a line that says ``"supersedes": true`` (a retried failure's new answer) replaces an earlier
one. One process writes a cache at a time (the stage that owns it).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def request_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of the parts that determine an answer (prompt, model, params...)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, path: str | os.PathLike, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}
        self.dropped_partial = 0
        self.skipped_invalid = 0
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a partial write
        if end < len(data):
            self.dropped_partial = 1
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key, value = record["key"], record["value"]
            except (ValueError, KeyError, TypeError):
                self.skipped_invalid += 1  # a line that is complete but unreadable: never trusted
                continue
            if record.get("supersedes") is True:
                self._entries[key] = value
            else:
                self._entries.setdefault(key, value)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any | None:
        return self._entries.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._entries.items()))

    def put(self, key: str, value: Any, *, supersede: bool = False) -> bool:
        """Append ``value`` under ``key``; False (and nothing written) if the key is already cached, unless
        ``supersede`` (then the new value replaces the old one, now and when the file is read again)."""
        record: dict[str, Any] = {"key": key, "value": value}
        if supersede:
            record["supersedes"] = True
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            if key in self._entries and not supersede:
                return False
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if self._fsync:
                os.fsync(self._fd)
            self._entries[key] = value
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
