"""Fixtures for the LlamaIndex adapter tests: a scripted function-calling LLM and engines."""

from __future__ import annotations

import copy
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.mock import MockFunctionCallingLLM

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.embedders.fastembed import FastEmbedEmbedder


class ScriptedLLM(MockFunctionCallingLLM):
    """A function-calling LLM that answers from a script and records every prompt it gets.

    Each reply is a string (text) or a ``("tool", name, kwargs)`` tuple (one tool call).
    Streams cut text replies into ``chunk_size``-character deltas.
    """

    replies: list[Any] = Field(default_factory=list)
    calls: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)
    chunk_size: int = 3

    @classmethod
    def class_name(cls) -> str:
        return "ScriptedLLM"

    def _next(self, messages: Sequence[ChatMessage]) -> ChatMessage:
        self.calls.append(copy.deepcopy(list(messages)))
        if not self.replies:
            raise AssertionError("the scripted LLM ran out of replies")
        reply = self.replies.pop(0)
        if isinstance(reply, tuple):
            _, name, kwargs = reply
            return ChatMessage(
                role=MessageRole.ASSISTANT,
                blocks=[ToolCallBlock(tool_call_id=f"call-{len(self.calls)}", tool_name=name, tool_kwargs=kwargs)],
            )
        return ChatMessage(role=MessageRole.ASSISTANT, content=reply)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        message = self._next(messages)
        return ChatResponse(message=message, raw={"content": message.content})

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def _pieces(self, message: ChatMessage) -> Iterator[ChatResponse]:
        text = message.content or ""
        if not text:
            yield ChatResponse(message=message, delta="")
            return
        acc = ""
        for i in range(0, len(text), self.chunk_size):
            delta = text[i : i + self.chunk_size]
            acc += delta
            yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=acc), delta=delta)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        message = self._next(messages)

        def gen() -> Generator[ChatResponse, None, None]:
            yield from self._pieces(message)

        return gen()

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        message = self._next(messages)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            for piece in self._pieces(message):
                yield piece

        return gen()


def system_text(messages: Sequence[ChatMessage]) -> str:
    """All system messages of a prompt, joined."""
    return "\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)


@pytest.fixture
def scripted() -> type[ScriptedLLM]:
    return ScriptedLLM


@pytest.fixture
def open_engine(db_path: str, embedder: FastEmbedEmbedder) -> Iterator[Callable[[], SyncHierarchicalMemory]]:
    """Opens fresh engines on the same db file (as separate runs of an app would); closes them."""
    opened: list[SyncHierarchicalMemory] = []

    def make() -> SyncHierarchicalMemory:
        engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()
