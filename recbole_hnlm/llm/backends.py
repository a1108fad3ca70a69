"""Chat backends behind one small protocol, picked by name from :data:`BACKENDS`.

- ``openai``: any OpenAI-compatible server (vLLM, llama.cpp server, OpenAI). The API key is read from
  the environment variable named by ``api_key_env`` and is never logged or stored; with no variable
  named, no key is sent (``OPENAI_API_KEY`` is not read by default: it would go to any ``base_url``).
- ``ollama``: Ollama's native ``/api/chat``.
- ``llamacpp`` (the default local backend): the embedded SmolLM2-135M-Instruct GGUF served in-process
  by llama.cpp (``xllamacpp``) on 127.0.0.1 with parallel slots, then spoken to as ``openai``.
- ``transformers``: the same GGUF dequantised into transformers; concurrent calls are gathered into
  one batched ``generate``.

Structured output: with a JSON schema, ``openai``/``llamacpp`` send ``response_format: json_schema``
(grammar-constrained decoding in llama.cpp and vLLM), ``ollama`` sends it as ``format``, and
``transformers`` forces the answer to open with ``{`` (a prefix constraint; parsing does the rest).

The protocol and its value types live in :mod:`.chat`, the HTTP backends in :mod:`.http_chat`, the
in-process ones in :mod:`.local_chat`; this module holds the registry and re-exports their names.
"""

from __future__ import annotations

from typing import Any

from recbole_hnlm.llm.chat import ChatBackend, ChatResult, GenerationParams, Messages
from recbole_hnlm.llm.http_chat import OllamaChat, OpenAIChat
from recbole_hnlm.llm.local_chat import (
    SMOLLM2_GGUF,
    LlamaCppChat,
    TransformersChat,
    smollm2_gguf_path,
    usable_cpus,
)

BACKENDS: dict[str, type] = {
    OpenAIChat.name: OpenAIChat,
    OllamaChat.name: OllamaChat,
    LlamaCppChat.name: LlamaCppChat,
    TransformersChat.name: TransformersChat,
}


def make_backend(name: str, **options: Any) -> ChatBackend:
    """Build a backend by registry name (the default, ``llm_backend``, lives in overall.yaml); ``options`` are
    its constructor's keyword arguments."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown LLM backend {name!r}; choose one of {sorted(BACKENDS)}") from None
    return cls(**{k: v for k, v in options.items() if v is not None})


__all__ = [
    "BACKENDS",
    "SMOLLM2_GGUF",
    "ChatBackend",
    "ChatResult",
    "GenerationParams",
    "LlamaCppChat",
    "Messages",
    "OllamaChat",
    "OpenAIChat",
    "TransformersChat",
    "make_backend",
    "smollm2_gguf_path",
    "usable_cpus",
]
