"""``HeadroomMemory``: a LlamaIndex ``BaseMemory`` for agents' ``memory=``.

Chat history lives in the engine's transcript table (same SQLite file as the memories), so
it survives restarts and ``Context`` serialisation; ``get()`` adds one system message with
the long-term memories relevant to the conversation.
"""

from __future__ import annotations

import uuid
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.types import BaseMemory

from ..core.engine import SyncHierarchicalMemory
from ..core.config import default_db_path
from ..inline import Injection, InlineMemory
from ..tokens import count_tokens
from ._common import (
    EngineLike,
    as_sync,
    dump_message,
    inline_memory,
    last_user_text,
    load_message,
    message_text,
    register_engine,
    resolve_engine,
)

__all__ = ["HeadroomMemory"]


KIND = "llama_index"
"""Transcript entries of this adapter (kept apart from other frameworks' entries)."""


class HeadroomMemory(BaseMemory):
    """Persistent chat history plus relevant long-term memories, for LlamaIndex agents.

    >>> memory = HeadroomMemory.from_defaults(engine=engine, user_id="alice", session_id="s1")
    >>> agent.run("hi", memory=memory)

    ``get(input=...)`` returns ``[system message with memories] + chat history``; the memories
    (the package's :class:`~headroom_integrations.inline.InlineMemory`, inject only) are the
    ones found for ``input`` (else the latest user message) from the (user, session, agent)
    scope, plus up to ``core_top_k`` of the user's most important ones. ``put``/``set``/``reset`` change this session's transcript only, never the
    long-term memories. Serialises to a dict (``to_dict``) naming its store, so an agent
    ``Context`` holding it can be saved and restored.
    """

    user_id: str = Field(description="Whose memories and transcript these are.")
    session_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex, description="The conversation's id."
    )
    agent_id: str | None = Field(default=None, description="Optional agent scope for searches.")
    top_k: int = Field(default=5, ge=1, description="How many memories to search for.")
    memory_token_budget: int = Field(
        default=400, ge=0, description="Most tokens the memory system message may use."
    )
    min_similarity: float | None = Field(
        default=None, description="Drop memories less similar than this to the query."
    )
    core_top_k: int = Field(
        default=5, ge=0, description="How many of the user's most important memories to add."
    )
    token_limit: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens of chat history get() returns (oldest turns dropped first).",
    )
    store_key: str | None = Field(default=None, description="Names the open store (internal).")
    store_config: dict[str, Any] = Field(
        default_factory=dict, description="Portable store settings used to reopen it."
    )

    _engine: SyncHierarchicalMemory | None = PrivateAttr(default=None)

    def __init__(self, *, engine: EngineLike | None = None, **data: Any) -> None:
        if engine is not None:
            sync = as_sync(engine)
            data["store_key"], data["store_config"] = register_engine(sync)
        super().__init__(**data)
        self._engine = sync if engine is not None else None

    @classmethod
    def class_name(cls) -> str:
        return "HeadroomMemory"

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        *,
        user_id: str,
        engine: EngineLike | None = None,
        db_path: str | None = None,
        session_id: str | None = None,
        chat_history: list[ChatMessage] | None = None,
        **kwargs: Any,
    ) -> HeadroomMemory:
        """A memory over ``engine``, or over a store opened at ``db_path``.

        ``chat_history``, when given, replaces the session's transcript.
        """
        if engine is None:
            engine = SyncHierarchicalMemory.create(db_path=db_path or default_db_path())
        if session_id is not None:
            kwargs["session_id"] = session_id
        memory = cls(engine=engine, user_id=user_id, **kwargs)
        if chat_history is not None:
            memory.set(chat_history)
        return memory

    # ------------------------------------------------------------------ plumbing
    @property
    def engine(self) -> SyncHierarchicalMemory:
        """The store (reopened from ``store_config`` after deserialisation if needed)."""
        if self._engine is None or self._engine.closed:
            self._engine = resolve_engine(self.store_key, self.store_config)
        return self._engine

    def _transcripts(self) -> Any:
        transcripts = self.engine.transcripts
        if transcripts is None:
            raise RuntimeError("this memory store has no transcript table (custom store?)")
        return transcripts

    def _load(self) -> list[ChatMessage]:
        return [load_message(p) for p in self._transcripts().get(self.user_id, self.session_id, kind=KIND)]

    def _append(self, messages: list[ChatMessage]) -> None:
        self._transcripts().append(
            self.user_id, self.session_id, [dump_message(m) for m in messages], kind=KIND
        )

    def _replace(self, messages: list[ChatMessage]) -> None:
        payloads = [dump_message(m) for m in messages]
        self._transcripts().replace(self.user_id, self.session_id, payloads, kind=KIND)

    def _clear(self) -> None:
        self._transcripts().clear(self.user_id, self.session_id, kind=KIND)

    def _window(self, history: list[ChatMessage]) -> list[ChatMessage]:
        """The newest messages within ``token_limit``, starting at a user message."""
        if self.token_limit is None or not history:
            return history
        total = 0
        start = len(history)
        for i in range(len(history) - 1, -1, -1):
            total += count_tokens(message_text(history[i])) + 4
            if total > self.token_limit:
                break
            start = i
        window = history[start:]
        while window and window[0].role != MessageRole.USER:
            window = window[1:]
        return window or history[-1:]

    def _inline(self) -> InlineMemory:
        return inline_memory(
            self.engine,
            user_id=self.user_id,
            session_id=self.session_id,
            agent_id=self.agent_id,
            top_k=self.top_k,
            min_similarity=self.min_similarity,
            core_top_k=self.core_top_k,
            max_tokens=self.memory_token_budget,
            extract=False,
        )

    @staticmethod
    def _query(input: str | None, history: list[ChatMessage]) -> str:
        return input if input and input.strip() else last_user_text(history)

    @staticmethod
    def _system_message(injection: Injection) -> list[ChatMessage]:
        text = injection.memories.text
        return [ChatMessage(role=MessageRole.SYSTEM, content=text)] if text else []

    # ------------------------------------------------------------------ sync API
    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        """The memory system message (when any memory is relevant) then the chat history."""
        history = self._window(self._load())
        injection = self._inline().prepare(self._query(input, history))
        return self._system_message(injection) + history

    def get_all(self) -> list[ChatMessage]:
        """The whole chat history of this session (no memories added)."""
        return self._load()

    def put(self, message: ChatMessage) -> None:
        """Append one message to the session's history."""
        self._append([message])

    def put_messages(self, messages: list[ChatMessage]) -> None:
        """Append messages to the session's history, atomically."""
        self._append(list(messages))

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the session's history."""
        self._replace(list(messages))

    def reset(self) -> None:
        """Forget the session's history (long-term memories are kept)."""
        self._clear()

    # ------------------------------------------------------------------ async API
    async def aget(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        """Async :meth:`get`, on the store's worker threads."""
        history = self._window(await self.engine.aio.run_sync(self._load))
        injection = await self._inline().aprepare(self._query(input, history))
        return self._system_message(injection) + history

    async def aget_all(self) -> list[ChatMessage]:
        """Async :meth:`get_all`."""
        return await self.engine.aio.run_sync(self._load)

    async def aput(self, message: ChatMessage) -> None:
        """Async :meth:`put`."""
        await self.engine.aio.run_sync(self._append, [message])

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        """Async :meth:`put_messages`."""
        await self.engine.aio.run_sync(self._append, list(messages))

    async def aset(self, messages: list[ChatMessage]) -> None:
        """Async :meth:`set`."""
        await self.engine.aio.run_sync(self._replace, list(messages))

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        await self.engine.aio.run_sync(self._clear)

