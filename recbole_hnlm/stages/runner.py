"""Running many structured LLM requests: cache first, then a bounded pool, a progress bar and a report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from recbole_hnlm.config_values import as_flag
from recbole_hnlm.llm.backends import ChatBackend, GenerationParams, Messages
from recbole_hnlm.llm.cache import RequestCache, request_key
from recbole_hnlm.llm.concurrency import LLMServerError, bounded_map
from recbole_hnlm.llm.parsing import Outcome, StructuredTask, generate_structured


@dataclass(frozen=True)
class LLMRequest:
    id: str
    messages: Messages
    task: StructuredTask


@dataclass
class StageReport:
    """Counts of every outcome, tokens and time; printed at the end of a stage and saved as JSON."""

    stage: str
    total: int = 0
    counts: Counter = field(default_factory=Counter)
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    request_seconds: float = 0.0  # summed over requests: above `seconds` when they run concurrently
    # what the answers taken from the cache cost when they were generated (request seconds are recorded
    # with answers cached since they carry them), so a rerun's report still says what the stage costs
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cached_request_seconds: float = 0.0
    # cache lines that could not be read (a partial last line after a kill, or a corrupt line): their
    # requests are sent again if still needed, and counted here so nothing disappears silently
    cache_lines_dropped: int = 0
    sent: int = 0  # requests sent to the server in this run (not answered from the cache)
    # records that failed at the server (retries exhausted): a transient failure, cached as such so a
    # rerun sends them again (retry_failed: retried_failed, recovered) or keeps them (--no_retry_failed)
    failed_at_server: int = 0
    retried_failed: int = 0
    recovered: int = 0
    error_examples: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, outcome: Outcome, *, cached: bool) -> None:
        self.counts[outcome.status] += 1
        self.failed_at_server += int(is_server_failure(outcome.as_dict()))
        self.cached += int(cached)
        if cached:
            self.cached_prompt_tokens += outcome.prompt_tokens
            self.cached_completion_tokens += outcome.completion_tokens
            self.cached_request_seconds += outcome.seconds
        else:
            self.prompt_tokens += outcome.prompt_tokens
            self.completion_tokens += outcome.completion_tokens
            self.request_seconds += outcome.seconds
        if outcome.status in ("fallback", "failed") and len(self.error_examples) < 5 and outcome.errors:
            self.error_examples.append(outcome.errors[-1][:300])

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "total": self.total,
            "counts": {
                status: self.counts.get(status, 0) for status in ("ok", "repaired", "fallback", "failed")
            },
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "request_seconds": round(self.request_seconds, 3),
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cached_completion_tokens": self.cached_completion_tokens,
            "cached_request_seconds": round(self.cached_request_seconds, 3),
            "cache_lines_dropped": self.cache_lines_dropped,
            "sent": self.sent,
            "failed_at_server": self.failed_at_server,
            "retried_failed": self.retried_failed,
            "recovered": self.recovered,
            "error_examples": self.error_examples,
            **self.extra,
        }

    def summary(self) -> str:
        c = self.as_dict()["counts"]
        rate = self.completion_tokens / self.seconds if self.seconds else 0.0
        line = (
            f"[{self.stage}] {self.total} records: {c['ok']} ok, {c['repaired']} repaired, "
            f"{c['fallback']} fallback, "
            f"{c['failed']} failed ({self.cached} from cache); tokens {self.prompt_tokens} in / "
            f"{self.completion_tokens} out ({rate:.1f} tok/s); {self.seconds:.1f} s"
        )
        if self.cache_lines_dropped:
            sent = f"{self.sent} requests sent to the server" if self.sent else "no request needed sending"
            line += f"; {self.cache_lines_dropped} unreadable cache lines dropped ({sent})"
        if self.retried_failed:
            line += f"; {self.retried_failed} server failures sent again, {self.recovered} recovered"
        if self.failed_at_server:
            line += f"; {self.failed_at_server} failed at the server (a rerun sends them again)"
        if self.cached:
            line += (
                f"; the cached answers cost {self.cached_prompt_tokens} in / "
                f"{self.cached_completion_tokens} out, {self.cached_request_seconds:.1f} request-s"
            )
        return line


SERVER_ERROR = "server: "


def is_server_failure(value: dict[str, Any]) -> bool:
    """A cached outcome that failed at the server (not an answer that failed to parse)."""
    errors = value.get("errors") or []
    return value.get("status") == "failed" and any(str(e).startswith(SERVER_ERROR) for e in errors)


def cache_key(request: LLMRequest, backend: ChatBackend, params: GenerationParams, max_repairs: int) -> str:
    return request_key(
        messages=request.messages,
        backend=backend.name,
        model=backend.model,
        params=params.as_dict(),
        schema=request.task.schema,
        max_repairs=max_repairs,
    )


def run_requests(
    requests: Sequence[LLMRequest],
    backend: ChatBackend,
    cache: RequestCache,
    *,
    params: GenerationParams,
    max_repairs: int,
    report: StageReport,
    progress: bool = True,
    retry_failed: bool = True,
) -> dict[str, Outcome]:
    """Outcome per request id. Cached requests are not sent again; new outcomes are cached as they arrive.

    A request whose server call fails for good (retries exhausted) is reported as ``failed`` and cached
    as a server failure: with ``retry_failed`` the next run sends it again, once (counted in
    ``report.retried_failed``; an answer then supersedes the failure in the cache), else it stays failed.
    After ``max(8, 2 x concurrency)`` such failures in a row the stage stops with :class:`LLMServerError`
    (the work already cached is kept for the rerun).
    """
    start = time.perf_counter()
    report.cache_lines_dropped = cache.dropped_partial + cache.skipped_invalid
    outcomes: dict[str, Outcome] = {}
    keys = {r.id: cache_key(r, backend, params, max_repairs) for r in requests}
    todo = []
    retried: set[str] = set()
    for request in requests:
        hit = cache.get(keys[request.id])
        if hit is None:
            todo.append(request)
        elif retry_failed and is_server_failure(hit):
            todo.append(request)
            retried.add(request.id)
        else:
            outcomes[request.id] = Outcome.from_dict(hit)
            report.add(outcomes[request.id], cached=True)
    report.total += len(requests)
    report.retried_failed += len(retried)
    report.sent += len(todo)
    limit = max(8, 2 * backend.max_concurrency)
    streak = 0
    if todo:
        backend.check()

    def call(request: LLMRequest) -> Outcome:
        return generate_structured(backend, request.messages, request.task, params, max_repairs=max_repairs)

    bar = tqdm(
        total=len(requests), initial=len(outcomes), desc=report.stage, unit="req", disable=not progress
    )
    try:
        for request, result in bounded_map(call, todo, max_workers=backend.max_concurrency):
            if isinstance(result, LLMServerError):
                streak += 1
                outcome = Outcome("failed", None, "", 0, [f"{SERVER_ERROR}{result}"])
                if request.id not in retried:
                    cache.put(keys[request.id], outcome.as_dict())
                if streak >= limit:
                    raise LLMServerError(
                        f"{report.stage}: {streak} requests in a row failed at the server; stopping "
                        f"(finished answers are cached, rerun to resume). Last error: {result}"
                    ) from result
            elif isinstance(result, BaseException):
                raise result
            else:
                streak = 0
                outcome = result
                cache.put(keys[request.id], outcome.as_dict(), supersede=request.id in retried)
                report.recovered += int(request.id in retried)
            outcomes[request.id] = outcome
            report.add(outcome, cached=False)
            bar.update(1)
            bar.set_postfix(
                ok=report.counts["ok"] + report.counts["repaired"],
                fb=report.counts["fallback"],
                fail=report.counts["failed"],
                refresh=False,
            )
    finally:
        bar.close()
        report.seconds += time.perf_counter() - start
    return outcomes


def run_stage(
    name: str,
    requests: Sequence[LLMRequest],
    backend: ChatBackend,
    cache: RequestCache,
    settings: Any,
    *,
    progress: bool = True,
) -> tuple[dict[str, Outcome], StageReport]:
    """:func:`run_requests` with a stage's ``LLMSettings`` (generation params, repairs) and a fresh report."""
    report = StageReport(name)
    outcomes = run_requests(
        requests,
        backend,
        cache,
        params=settings.params,
        max_repairs=settings.llm_max_repairs,
        report=report,
        progress=progress,
        retry_failed=as_flag(settings.llm_retry_failed, "llm_retry_failed"),
    )
    return outcomes, report
