"""A stdlib stand-in LLM server on 127.0.0.1 speaking Ollama's and the OpenAI API, with fault injection.

Faults are queued per POST request: ``"500"``, ``"429"``, ``"timeout"`` (answers after ``slow_seconds``),
``"garbage"`` (HTTP 200 with a non-JSON body) and ``"truncated"`` (a Content-Length longer than the
body, then the connection closes). Answers are deterministic functions of the request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def fake_vector(text: str, dim: int = 8) -> list[float]:
    seed = _digest(text)
    return [((seed >> (3 * k)) % 97) / 97.0 - 0.5 for k in range(dim)]


def default_reply(messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
    """A valid JSON answer for the schema's keys, derived from the last message."""
    last = messages[-1]["content"]
    keys = list((schema or {}).get("properties", {"summarization": 0, "reasoning": 0}))
    tag = _digest(last) % 1000
    if "hard_negative_items" in keys:
        k = schema["properties"]["hard_negative_items"].get("minItems", 2)
        return json.dumps(
            {"hard_negative_items": [f"Negative {tag} {j}" for j in range(k)], "reasoning": "r"}
        )
    if "hard_negative_item" in keys:
        return json.dumps({"hard_negative_item": f"Negative {tag}", "reasoning": "close but unwanted"})
    return json.dumps({"summarization": f"Profile {tag}", "reasoning": "from the given text"})


class StandIn:
    def __init__(self, reply: Callable[[list, dict | None], str] = default_reply, delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.slow_seconds = 1.0
        self.faults: deque[str] = deque()
        self.calls: Counter = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients that hang up are expected
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/api/chat":
            text = self.reply(body["messages"], body.get("format"))
            return {
                "model": body["model"],
                "message": {"role": "assistant", "content": text},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 10,
                "eval_count": 5,
            }
        if path == "/v1/chat/completions":
            schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
            text = self.reply(body["messages"], schema)
            return {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        if path == "/api/embed":
            return {"model": body["model"], "embeddings": [fake_vector(t) for t in body["input"]]}
        if path == "/v1/embeddings":
            data = [
                {"object": "embedding", "index": k, "embedding": fake_vector(t)}
                for k, t in enumerate(body["input"])
            ]
            return {"object": "list", "data": data[::-1], "model": body["model"]}  # out of order on purpose
        raise KeyError(path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path in ("/api/tags", "/v1/models"):
                    self._send(200, json.dumps({"models": [], "object": "list", "data": []}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with standin._lock:
                    standin.calls[self.path] += 1
                    standin.bodies.append(body)
                    standin.headers.append(dict(self.headers))
                    fault = standin.faults.popleft() if standin.faults else None
                if standin.delay:
                    time.sleep(standin.delay)
                if fault == "500":
                    return self._send(500, b'{"error": "boom"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                if fault == "garbage":
                    return self._send(200, b"<html>gateway says hi")
                if fault == "timeout":
                    time.sleep(standin.slow_seconds)
                try:
                    payload = json.dumps(standin._answer(self.path, body)).encode()
                except KeyError:
                    return self._send(404, b'{"error": "no such endpoint"}')
                if fault == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload) + 50))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                return self._send(200, payload)

        return Handler
