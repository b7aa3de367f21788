"""A tiny OpenAI-compatible (and Ollama-compatible) HTTP server on 127.0.0.1, for the docs tests.

It answers, with no network and no key check:

- ``POST /v1/chat/completions`` (non-streaming JSON, or SSE when ``"stream": true``) with a
  canned answer that ends with a ``<memory>{...}</memory>`` block remembering what the user
  said last;
- ``POST /v1/embeddings`` with deterministic bag-of-words vectors (1536 dimensions, or the
  ``dimensions`` asked for);
- ``POST /api/embed`` (Ollama) with the same kind of vectors (384 dimensions);
- ``GET /v1/models``.

Every chat request body is kept in ``server.requests`` so tests can look at what was sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VISIBLE_ANSWER = "Got it, I will keep that in mind."


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                )
    return ""


def canned_answer(messages: list[dict[str, Any]]) -> str:
    """The visible answer plus a memory block holding the user's last message."""
    said = " ".join(_last_user_text(messages).split())[:200] or "nothing"
    said = said.replace("<", " ").replace(">", " ")
    block = json.dumps(
        {"memories": [{"content": f"User said: {said}", "category": "fact", "importance": 0.7}]}
    )
    return f"{VISIBLE_ANSWER}\n<memory>{block}</memory>"


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector: texts sharing words get similar vectors."""
    v = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()) or ["<empty>"]:
        h = int(hashlib.md5(word.encode()).hexdigest(), 16)
        v[h % dim] += 1.0
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model",
                                                         "created": 0, "owned_by": "docs"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/chat/completions"):
            self.server.requests.append(body)
            if body.get("stream"):
                self._stream(body)
            else:
                self._complete(body)
        elif path.endswith("/embeddings"):
            inputs = body.get("input")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
            dim = int(body.get("dimensions") or 1536)
            self._json(200, {
                "object": "list",
                "model": body.get("model", "text-embedding-3-small"),
                "data": [{"object": "embedding", "index": i, "embedding": fake_vector(str(t), dim)}
                         for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            })
        elif path.endswith("/api/embed"):
            inputs = body.get("input")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
            self._json(200, {"model": body.get("model", "nomic-embed-text"),
                             "embeddings": [fake_vector(str(t), 384) for t in texts]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def _complete(self, body: dict[str, Any]) -> None:
        answer = canned_answer(body.get("messages") or [])
        self._json(200, {
            "id": "chatcmpl-docs",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })

    def _stream(self, body: dict[str, Any]) -> None:
        answer = canned_answer(body.get("messages") or [])
        model = body.get("model", "gpt-4o-mini")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-docs", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        event({"role": "assistant", "content": ""})
        for i in range(0, len(answer), 7):  # small pieces: the memory tag is split across chunks
            event({"content": answer[i : i + 7]})
        event({}, "stop")
        opts = body.get("stream_options") or {}
        if opts.get("include_usage"):
            usage = {
                "id": "chatcmpl-docs", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "choices": [],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
            self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class FakeOpenAIServer(ThreadingHTTPServer):
    """``with FakeOpenAIServer() as server: server.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
