"""What every chat backend shares: the messages, the generation parameters, the result and the protocol the
stages call (:class:`ChatBackend`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed}


@dataclass(frozen=True)
class ChatResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@runtime_checkable
class ChatBackend(Protocol):
    """What the stages need from an LLM: one chat call (thread-safe), a liveness check, a close."""

    name: str
    model: str
    max_concurrency: int

    def chat(
        self, messages: Messages, *, params: GenerationParams, schema: dict[str, Any] | None = None
    ) -> ChatResult: ...

    def check(self) -> None: ...

    def close(self) -> None: ...
