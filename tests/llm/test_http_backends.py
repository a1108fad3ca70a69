from __future__ import annotations

import socket

import numpy as np
import pytest
from standin import StandIn

from recbole_hnlm.llm.backends import GenerationParams, OllamaChat, OpenAIChat, make_backend
from recbole_hnlm.llm.concurrency import LLMServerError, RetryPolicy, ServerUnreachableError, bounded_map
from recbole_hnlm.llm.embedders import OllamaEmbedder, OpenAIEmbedder
from recbole_hnlm.llm.parsing import PROFILE_TASK, generate_structured

FAST = RetryPolicy(retries=3, base=0.001, cap=0.01)
PARAMS = GenerationParams(max_tokens=32)
MSGS = [{"role": "user", "content": "hello"}]


@pytest.fixture
def standin():
    with StandIn() as server:
        yield server


def test_ollama_chat_and_wire_format(standin):
    backend = OllamaChat(standin.url, "m1", retry=FAST)
    backend.check()
    out = backend.chat(MSGS, params=PARAMS, schema=PROFILE_TASK.schema)
    assert out.text.startswith('{"summarization"') and (out.prompt_tokens, out.completion_tokens) == (10, 5)
    body = standin.bodies[-1]
    assert body["stream"] is False and body["format"] == PROFILE_TASK.schema
    assert body["options"] == {"temperature": 0.0, "num_predict": 32, "seed": 0}


@pytest.mark.parametrize("fault", ["500", "429", "timeout", "garbage", "truncated"])
def test_each_fault_is_retried_exactly(standin, fault):
    standin.faults.extend([fault, fault])
    standin.slow_seconds = 0.5
    backend = OllamaChat(standin.url, "m", retry=FAST, timeout=0.25)
    outcome = generate_structured(backend, MSGS, PROFILE_TASK, PARAMS)
    assert outcome.status == "ok"
    assert standin.calls["/api/chat"] == 3
    stats = backend.client.stats.as_dict()
    assert stats["retries"] == 2 and stats["failures"] == 0 and sum(stats["by_reason"].values()) == 2


def test_retries_exhausted_then_clear_error(standin):
    standin.faults.extend(["500"] * 10)
    backend = OllamaChat(standin.url, "m", retry=FAST)
    with pytest.raises(LLMServerError, match=r"failed after 4 attempts \(last error: http_500\)"):
        backend.chat(MSGS, params=PARAMS)
    assert standin.calls["/api/chat"] == 4 and backend.client.stats.retries == 3


def test_client_errors_are_not_retried(standin):
    backend = OpenAIChat(standin.url + "/nope", "m", retry=FAST, api_key_env=None)
    with pytest.raises(LLMServerError, match="HTTP 404"):
        backend.chat(MSGS, params=PARAMS)
    assert backend.client.stats.retries == 0


def test_unreachable_server_fails_fast():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for backend in (OllamaChat(f"http://127.0.0.1:{port}"), OpenAIChat(f"http://127.0.0.1:{port}/v1")):
        with pytest.raises(ServerUnreachableError, match=f"cannot reach the .* at http://127.0.0.1:{port}"):
            backend.check()


def test_openai_key_from_env_only_and_never_shown(standin, monkeypatch):
    monkeypatch.setenv("HNLM_TEST_KEY", "sk-secret-123")
    backend = make_backend(
        "openai", base_url=standin.url + "/v1", model="m", api_key_env="HNLM_TEST_KEY", retry=FAST
    )
    out = backend.chat(MSGS, params=PARAMS, schema=PROFILE_TASK.schema)
    assert out.completion_tokens == 5
    assert standin.headers[-1]["Authorization"] == "Bearer sk-secret-123"
    assert standin.bodies[-1]["response_format"]["json_schema"]["schema"] == PROFILE_TASK.schema
    assert "sk-secret" not in repr(backend) and "sk-secret" not in repr(backend.client)
    standin.faults.extend(["500"] * 5)
    with pytest.raises(LLMServerError) as err:
        backend.chat(MSGS, params=PARAMS)
    assert "sk-secret" not in str(err.value)


def test_concurrency_is_bounded(standin):
    standin.delay = 0.05
    backend = OllamaChat(standin.url, "m", retry=FAST)
    import threading

    active, peak, lock = [0], [0], threading.Lock()

    def call(k):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return backend.chat([{"role": "user", "content": str(k)}], params=PARAMS)
        finally:
            with lock:
                active[0] -= 1

    results = list(bounded_map(call, range(12), max_workers=3))
    assert len(results) == 12 and peak[0] == 3 and standin.calls["/api/chat"] == 12


def test_server_embedders(standin):
    texts = [f"text {k}" for k in range(10)]
    openai = OpenAIEmbedder(standin.url + "/v1", "e", batch_size=4, api_key_env=None, retry=FAST)
    ollama = OllamaEmbedder(standin.url, "e", batch_size=3, retry=FAST)
    a, b = openai.embed(texts), ollama.embed(texts)
    assert a.shape == (10, 8) and np.array_equal(a, b)  # order restored despite shuffled answers
    assert standin.calls["/v1/embeddings"] == 3 and standin.calls["/api/embed"] == 4
    assert all(body.get("encoding_format") == "float" for body in standin.bodies if "encoding_format" in body)
    assert sum("encoding_format" in body for body in standin.bodies) == 3


def _authorizations(server) -> list[str | None]:
    return [h.get("Authorization") for h in server.headers]


def test_openai_key_is_never_sent_unless_its_variable_is_named(standin, monkeypatch):
    """OPENAI_API_KEY in the environment must not reach an arbitrary base_url by default."""
    from recbole_hnlm.stages.common import LLMSettings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-999")
    OpenAIChat(standin.url + "/v1", "m", retry=FAST).chat(MSGS, params=PARAMS)
    make_backend("openai", base_url=standin.url + "/v1", model="m", api_key_env=None, retry=FAST).chat(
        MSGS, params=PARAMS
    )
    settings = LLMSettings(llm_backend="openai", llm_base_url=standin.url + "/v1", llm_model="m")
    settings.backend().chat(MSGS, params=PARAMS)
    OpenAIEmbedder(standin.url + "/v1", "e", retry=FAST).embed(["a", "b"])
    LLMSettings(embedder="openai", embedder_base_url=standin.url + "/v1").make_embedder().embed(["c"])
    assert len(standin.headers) == 5 and _authorizations(standin) == [None] * 5

    monkeypatch.setenv("HNLM_EMBED_KEY", "sk-embed-456")
    named = LLMSettings(
        embedder="openai", embedder_base_url=standin.url + "/v1", embedder_api_key_env="HNLM_EMBED_KEY"
    )
    named.make_embedder().embed(["d"])
    assert _authorizations(standin)[-1] == "Bearer sk-embed-456"


def test_a_named_but_unset_key_variable_is_an_error(monkeypatch):
    monkeypatch.delenv("HNLM_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match=r"llm_api_key_env.*HNLM_MISSING_KEY"):
        OpenAIChat("http://127.0.0.1:9/v1", "m", api_key_env="HNLM_MISSING_KEY")
    with pytest.raises(ValueError, match=r"embedder_api_key_env.*HNLM_MISSING_KEY"):
        OpenAIEmbedder("http://127.0.0.1:9/v1", "e", api_key_env="HNLM_MISSING_KEY")
