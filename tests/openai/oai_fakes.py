"""A scripted OpenAI-compatible HTTP endpoint for the real ``openai`` SDK (httpx MockTransport).

Every request body is recorded; replies come from a script (a list consumed in order, or a
function of the request body). Streams are served as SSE, cut into ``chunk_size`` characters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from openai import AsyncOpenAI, OpenAI


@dataclass
class Reply:
    content: str | None = "OK."
    tool_calls: list[dict[str, Any]] | None = None
    extra_choices: list[str] = field(default_factory=list)
    """Contents of choices 1.. (n > 1)."""
    chunk_size: int = 1


def tool_call(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


class FakeLLM:
    def __init__(self, script: list[Reply | str] | Callable[[dict[str, Any]], Reply | str]) -> None:
        self._script = script
        self.requests: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ clients
    def client(self) -> OpenAI:
        return OpenAI(
            api_key="test",
            base_url="http://test/v1",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(self.handler)),
        )

    def aclient(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            api_key="test",
            base_url="http://test/v1",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(self.handler)),
        )

    # ------------------------------------------------------------------ inspection
    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    @staticmethod
    def text_of(body: dict[str, Any], role: str) -> str:
        """All text of the messages of ``role`` in a request body."""
        out: list[str] = []
        for message in body["messages"]:
            if message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.extend(p.get("text", "") for p in content if p.get("type") == "text")
        return "\n".join(out)

    # ------------------------------------------------------------------ serving
    def _next(self, body: dict[str, Any]) -> Reply:
        if callable(self._script):
            reply = self._script(body)
        else:
            reply = self._script.pop(0)
        return Reply(reply) if isinstance(reply, str) else reply

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        if request.url.path.endswith("/models"):
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": [{"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "test"}],
                },
            )
        reply = self._next(body)
        model = body.get("model", "gpt-4o")
        if body.get("stream"):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=self._sse(reply, model, body).encode(),
            )
        choices = [self._choice(0, reply.content, reply.tool_calls)]
        choices += [self._choice(i + 1, c, None) for i, c in enumerate(reply.extra_choices)]
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": choices,
                "usage": USAGE,
            },
        )

    @staticmethod
    def _choice(
        index: int, content: str | None, tools: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tools:
            message["tool_calls"] = tools
        return {
            "index": index,
            "message": message,
            "finish_reason": "tool_calls" if tools else "stop",
            "logprobs": None,
        }

    @staticmethod
    def _sse(reply: Reply, model: str, body: dict[str, Any]) -> str:
        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
            data = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": choices,
            }
            if usage is not None:
                data["usage"] = usage
            return f"data: {json.dumps(data)}\n\n"

        out = [
            chunk(
                [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
            )
        ]
        if reply.tool_calls:
            for i, call in enumerate(reply.tool_calls):
                out.append(
                    chunk(
                        [
                            {
                                "index": 0,
                                "delta": {"tool_calls": [{"index": i, **call}]},
                                "finish_reason": None,
                            }
                        ]
                    )
                )
            out.append(chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))
        else:
            text = reply.content or ""
            step = max(1, reply.chunk_size)
            for start in range(0, len(text), step):
                out.append(
                    chunk(
                        [
                            {
                                "index": 0,
                                "delta": {"content": text[start : start + step]},
                                "finish_reason": None,
                            }
                        ]
                    )
                )
            out.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            out.append(chunk([], USAGE))
        out.append("data: [DONE]\n\n")
        return "".join(out)


def block(*memories: dict[str, Any] | str) -> str:
    items = [{"content": m} if isinstance(m, str) else m for m in memories]
    return "<memory>" + json.dumps({"memories": items}) + "</memory>"
