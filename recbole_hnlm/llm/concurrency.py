"""HTTP JSON calls with timeouts and retries, and a bounded thread pool for requests in flight.

Retried: timeouts, dropped or truncated connections, HTTP 429 and 5xx, and 2xx bodies that are not
JSON (a proxy or a crashed worker). Not retried: other 4xx (a wrong model name or a bad request
will not fix itself). Every retry is counted in :attr:`JsonHttpClient.stats` so callers and tests
can see exactly how often a server misbehaved.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

T = TypeVar("T")
R = TypeVar("R")

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMServerError(RuntimeError):
    """A request to an LLM or embedding server failed for good (after the allowed retries)."""


class ServerUnreachableError(LLMServerError):
    """Nothing answers at the configured address when a stage starts."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base * 2**attempt`` seconds, capped at ``cap``; ``retries`` extra tries."""

    retries: int = 4
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.cap, self.base * (2**attempt))
        return min(self.cap, max(backoff, retry_after or 0.0))


@dataclass
class RequestStats:
    """Thread-safe counters of what the client saw."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str, reason: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if reason is not None:
                self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "failures": self.failures,
                "by_reason": dict(self.by_reason),
            }


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def bearer_header(api_key_env: str | None, setting: str) -> dict[str, str]:
    """``Authorization: Bearer <key>`` from the environment variable the user named, else no header.

    A named variable that is unset or empty is an error (``setting`` names the config key), not a request
    without the key the user meant to send.
    """
    if not api_key_env:
        return {}
    key = os.environ.get(api_key_env, "").strip()
    if not key:
        raise ValueError(f"{setting} names the environment variable {api_key_env!r}, which is unset or empty")
    return {"Authorization": f"Bearer {key}"}


class JsonHttpClient:
    """POST/GET JSON to one base URL; one ``requests.Session`` per thread.

    ``headers`` may carry credentials: they are sent but never included in ``repr`` or error messages.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._headers = dict(headers or {})
        self._sleep = sleep
        self._local = threading.local()
        self.stats = RequestStats()

    def __repr__(self) -> str:
        return f"JsonHttpClient({self.base_url!r}, timeout={self.timeout})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
        return session

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _once(self, method: str, path: str, payload: Any | None) -> Any:
        try:
            response = self._session().request(method, self.url(path), json=payload, timeout=self.timeout)
            body = response.content  # reading the body here surfaces truncated transfers as errors
        except requests.Timeout as err:
            raise _Retryable("timeout") from err
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
            raise _Retryable("connection") from err
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(f"http_{response.status_code}", _retry_after(response))
        if response.status_code >= 400:
            raise LLMServerError(
                f"{method} {self.url(path)} answered HTTP {response.status_code}: {body[:300]!r}"
            )
        try:
            return response.json() if body else None
        except ValueError as err:
            raise _Retryable("invalid_json_body") from err

    def request(self, method: str, path: str, payload: Any | None = None) -> Any:
        """Send one request, retrying per :attr:`retry`; raise :class:`LLMServerError` when exhausted."""
        self.stats.count("requests")
        last: _Retryable | None = None
        for attempt in range(self.retry.retries + 1):
            try:
                return self._once(method, path, payload)
            except _Retryable as err:
                last = err
                if attempt == self.retry.retries:
                    break
                self.stats.count("retries", err.reason)
                self._sleep(self.retry.delay(attempt, err.retry_after))
        self.stats.count("failures", last.reason if last else None)
        raise LLMServerError(
            f"{method} {self.url(path)} failed after {self.retry.retries + 1} attempts "
            f"(last error: {last.reason if last else 'unknown'})"
        ) from last

    def post(self, path: str, payload: Any) -> Any:
        return self.request("POST", path, payload)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def check_reachable(self, path: str, what: str) -> None:
        """One quick GET without retries: raise :class:`ServerUnreachableError` if nothing answers."""
        try:
            response = self._session().get(self.url(path), timeout=min(self.timeout, 10.0))
        except requests.RequestException as err:
            raise ServerUnreachableError(
                f"cannot reach the {what} at {self.base_url} ({type(err).__name__}). Is the server running, "
                "and are the backend's base_url/port right?"
            ) from err
        if response.status_code >= 500:
            raise ServerUnreachableError(
                f"the {what} at {self.base_url} is not ready: GET {path} answered HTTP {response.status_code}"
            )


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, max_workers: int
) -> Iterator[tuple[T, R | BaseException]]:
    """Apply ``fn`` on a thread pool with at most ``max_workers`` calls in flight.

    Yields ``(item, result_or_exception)`` in completion order. Items are pulled from ``items`` lazily,
    so a huge request list never turns into a huge list of pending futures.
    """
    max_workers = max(1, int(max_workers))
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="llm") as pool:
        pending: dict[Future, T] = {}

        def fill() -> None:
            while len(pending) < max_workers:
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                pending[pool.submit(fn, item)] = item

        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                error = future.exception()
                yield item, (error if error is not None else future.result())
            fill()
