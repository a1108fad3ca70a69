"""LLM access for the stages: chat backends, embedders, prompts, JSON parsing, request cache."""

from recbole_hnlm.llm.backends import (
    BACKENDS,
    ChatBackend,
    ChatResult,
    GenerationParams,
    make_backend,
)
from recbole_hnlm.llm.cache import RequestCache, request_key
from recbole_hnlm.llm.concurrency import LLMServerError, RetryPolicy, ServerUnreachableError
from recbole_hnlm.llm.embedders import EMBEDDERS, Embedder, make_embedder
from recbole_hnlm.llm.parsing import NEGATIVE_TASK, PROFILE_TASK, Outcome, extract_json, generate_structured

__all__ = [
    "BACKENDS",
    "EMBEDDERS",
    "NEGATIVE_TASK",
    "PROFILE_TASK",
    "ChatBackend",
    "ChatResult",
    "Embedder",
    "GenerationParams",
    "LLMServerError",
    "Outcome",
    "RequestCache",
    "RetryPolicy",
    "ServerUnreachableError",
    "extract_json",
    "generate_structured",
    "make_backend",
    "make_embedder",
    "request_key",
]
