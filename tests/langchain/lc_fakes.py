"""Recording fake chat models for the LangChain / LangGraph adapter tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field


class RecordingListModel(FakeListChatModel):
    """``FakeListChatModel`` (streams one character per chunk) that records every prompt."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        self.seen.append(list(messages))
        return super()._call(messages, *args, **kwargs)

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        self.seen.append(list(messages))
        yield from super()._stream(messages, *args, **kwargs)

    async def _astream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        self.seen.append(list(messages))
        async for chunk in super()._astream(messages, *args, **kwargs):
            yield chunk


class ToolCallingFake(GenericFakeChatModel):
    """``GenericFakeChatModel`` that accepts ``bind_tools`` and records prompts and bound tools."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:  # type: ignore[override]
        self.bound_tools.extend(tools)
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        """Stream the next scripted message: tool calls as one chunk, text in small pieces."""
        message = self._generate(messages).generations[0].message
        if getattr(message, "tool_calls", None):
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    id=message.id,
                    tool_call_chunks=[
                        {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"],
                         "index": i, "type": "tool_call_chunk"}
                        for i, c in enumerate(message.tool_calls)
                    ],
                )
            )
            return
        content = message.content
        pieces = [content[i : i + 2] for i in range(0, len(content), 2)] if isinstance(content, str) else [content]
        for piece in pieces:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message.id))


def system_text(messages: Sequence[BaseMessage]) -> str:
    """The text of the system message(s) a model received."""
    out = []
    for m in messages:
        if m.type == "system":
            out.append(m.content if isinstance(m.content, str) else str(m.content))
    return "\n".join(out)
