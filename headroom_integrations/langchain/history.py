"""``HeadroomChatMessageHistory``: a LangChain chat history kept in the memory store's SQLite file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    BaseMessage,
    BaseMessageChunk,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.messages.utils import message_chunk_to_message

from ..core.engine import SyncHierarchicalMemory
from ._common import resolve_engine

__all__ = ["HeadroomChatMessageHistory", "history_factory"]


def _finished(message: BaseMessage) -> BaseMessage:
    """A streamed chunk (``AIMessageChunk``...) as its finished message; others unchanged."""
    if isinstance(message, BaseMessageChunk):
        return message_chunk_to_message(message)
    return message


def _dump(message: BaseMessage) -> str:
    return json.dumps(message_to_dict(_finished(message)), ensure_ascii=False, default=str)


KIND = "langchain"
"""Transcript entries of this adapter (another framework's entries for the same session
are kept apart)."""


def _load(payloads: Sequence[str]) -> list[BaseMessage]:
    return messages_from_dict([json.loads(p) for p in payloads])


class HeadroomChatMessageHistory(BaseChatMessageHistory):
    """The ordered transcript of one (user, session), persisted beside the memories.

    >>> history = HeadroomChatMessageHistory("session-1", user_id="alice", memory=engine)
    >>> history.add_messages([HumanMessage("hi"), AIMessage("hello")])
    >>> history.messages  # exactly what was stored, in order

    Messages are serialised with ``message_to_dict`` (tool calls, additional kwargs and
    response metadata round-trip). Streamed chunks are stored as their finished message.
    The async methods run on the store's own worker threads. Pass ``memory=`` (a sync or
    async engine) or ``db_path=`` (an engine is opened, shared per path in the process).
    """

    def __init__(
        self,
        session_id: str,
        *,
        user_id: str = "default",
        memory: Any = None,
        db_path: str | None = None,
    ) -> None:
        if not session_id:
            raise ValueError("session_id must not be empty")
        if not user_id:
            raise ValueError("user_id must not be empty")
        self.session_id = session_id
        self.user_id = user_id
        self.engine: SyncHierarchicalMemory = resolve_engine(memory, db_path)
        if self.engine.transcripts is None:
            raise ValueError("this memory store has no transcript store")

    # ------------------------------------------------------------------ sync
    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every stored message of this session, in the order added."""
        return _load(self.engine.transcripts.get(self.user_id, self.session_id, kind=KIND))

    def get_messages(self, limit: int | None = None) -> list[BaseMessage]:
        """The stored messages (the last ``limit`` when given), oldest first."""
        return _load(self.engine.transcripts.get(self.user_id, self.session_id, limit=limit, kind=KIND))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages atomically, in order (chunks stored as finished messages)."""
        payloads = [_dump(m) for m in messages]
        self.engine.transcripts.append(self.user_id, self.session_id, payloads, kind=KIND)

    def clear(self) -> None:
        """Delete this session's transcript (memories are kept)."""
        self.engine.transcripts.clear(self.user_id, self.session_id, kind=KIND)

    # ------------------------------------------------------------------ async (store threads)
    async def aget_messages(self) -> list[BaseMessage]:
        """Async ``messages``, run on the store's worker threads."""
        return await self.engine.aio.run_sync(lambda: self.messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async ``add_messages``, run on the store's worker threads."""
        payloads = [_dump(m) for m in messages]
        await self.engine.aio.run_sync(
            self.engine.transcripts.append, self.user_id, self.session_id, payloads, kind=KIND
        )

    async def aclear(self) -> None:
        """Async ``clear``, run on the store's worker threads."""
        await self.engine.aio.run_sync(
            self.engine.transcripts.clear, self.user_id, self.session_id, kind=KIND
        )

    def __repr__(self) -> str:
        return f"HeadroomChatMessageHistory(user_id={self.user_id!r}, session_id={self.session_id!r})"

    @classmethod
    def factory(
        cls,
        *,
        memory: Any = None,
        db_path: str | None = None,
        user_id: str = "default",
    ) -> Callable[..., HeadroomChatMessageHistory]:
        """A ``get_session_history`` for ``RunnableWithMessageHistory``; see :func:`history_factory`."""
        return history_factory(memory=memory, db_path=db_path, user_id=user_id)


def history_factory(
    *,
    memory: Any = None,
    db_path: str | None = None,
    user_id: str = "default",
) -> Callable[..., HeadroomChatMessageHistory]:
    """Build ``get_session_history(session_id, user_id=None)`` for ``RunnableWithMessageHistory``.

    Works with the default ``session_id`` config field, and with a ``history_factory_config``
    that declares ``user_id`` and ``session_id`` fields (the user then comes from the config).

    >>> chain = RunnableWithMessageHistory(
    ...     prompt | model, history_factory(memory=engine, user_id="alice"),
    ...     input_messages_key="input", history_messages_key="history")
    """
    engine = resolve_engine(memory, db_path)

    def get_session_history(
        session_id: str, user_id: str | None = None
    ) -> HeadroomChatMessageHistory:
        return HeadroomChatMessageHistory(
            session_id, user_id=user_id or default_user, memory=engine
        )

    default_user = user_id
    return get_session_history
