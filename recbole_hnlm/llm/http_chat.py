"""Chat backends spoken to over HTTP: any OpenAI-compatible server (``openai``) and Ollama (``ollama``).

The API key of ``openai`` is read from the environment variable named by ``api_key_env`` and is never
logged or stored; with no variable named, no key is sent. With a JSON schema, ``openai`` sends
``response_format: json_schema`` and ``ollama`` sends it as ``format``.
"""

from __future__ import annotations

from typing import Any

from recbole_hnlm.llm.chat import ChatResult, GenerationParams, Messages
from recbole_hnlm.llm.concurrency import JsonHttpClient, LLMServerError, RetryPolicy, bearer_header


class OpenAIChat:
    """``POST {base_url}/chat/completions``; ``base_url`` includes ``/v1``."""

    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "default",
        *,
        api_key_env: str | None = None,
        max_concurrency: int = 4,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        structured: bool = True,
    ) -> None:
        self.client = JsonHttpClient(
            base_url, timeout=timeout, retry=retry, headers=bearer_header(api_key_env, "llm_api_key_env")
        )
        self.model = model
        self.max_concurrency = max_concurrency
        self.structured = structured

    def __repr__(self) -> str:
        return f"OpenAIChat({self.client.base_url!r}, model={self.model!r})"

    def chat(
        self, messages: Messages, *, params: GenerationParams, schema: dict[str, Any] | None = None
    ) -> ChatResult:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, **params.as_dict()}
        if schema is not None and self.structured:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        body = self.client.post("chat/completions", payload)
        try:
            choice = body["choices"][0]
            usage = body.get("usage") or {}
            return ChatResult(
                text=choice["message"].get("content") or "",
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise LLMServerError(f"{self.client.url('chat/completions')}: unexpected response shape") from err

    def check(self) -> None:
        self.client.check_reachable("models", "OpenAI-compatible server")

    def close(self) -> None:
        pass


class OllamaChat:
    """Ollama's ``POST /api/chat`` (``stream: false``); a schema goes to ``format``."""

    name = "ollama"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:11434",
        model: str = "llama3.1:8b",
        *,
        max_concurrency: int = 4,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        structured: bool = True,
        num_ctx: int | None = None,
    ) -> None:
        self.client = JsonHttpClient(base_url, timeout=timeout, retry=retry)
        self.model = model
        self.max_concurrency = max_concurrency
        self.structured = structured
        self.num_ctx = num_ctx

    def __repr__(self) -> str:
        return f"OllamaChat({self.client.base_url!r}, model={self.model!r})"

    def chat(
        self, messages: Messages, *, params: GenerationParams, schema: dict[str, Any] | None = None
    ) -> ChatResult:
        options: dict[str, Any] = {
            "temperature": params.temperature,
            "num_predict": params.max_tokens,
            "seed": params.seed,
        }
        if self.num_ctx:
            options["num_ctx"] = self.num_ctx
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": False,
            "options": options,
        }
        if schema is not None and self.structured:
            payload["format"] = schema
        body = self.client.post("api/chat", payload)
        try:
            return ChatResult(
                text=body["message"].get("content") or "",
                prompt_tokens=int(body.get("prompt_eval_count", 0)),
                completion_tokens=int(body.get("eval_count", 0)),
                finish_reason=body.get("done_reason"),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise LLMServerError(f"{self.client.url('api/chat')}: unexpected response shape") from err

    def check(self) -> None:
        self.client.check_reachable("api/tags", "Ollama server")

    def close(self) -> None:
        pass
