"""Helpers shared by the LlamaIndex adapters: engines, message text, the inline memory loop."""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock

from ..core.async_memory import HierarchicalMemory
from ..core.config import MemoryConfig
from ..core.engine import MemoryInput, SyncHierarchicalMemory
from ..core.errors import HeadroomMemoryError
from ..core.models import MemoryCategory, Provenance
from ..inline import InlineMemory

EngineLike = SyncHierarchicalMemory | HierarchicalMemory
Scope = Literal["user", "session"]
"""The older ``extracted_scope`` values (each is also a ``ScopePolicy``)."""
ScopePolicy = Literal["auto", "session", "user"]

# Config fields that may be written into a serialised adapter (never credentials or objects).
_PORTABLE_CONFIG = (
    "db_path",
    "vector_path",
    "collection_name",
    "chroma_host",
    "chroma_port",
    "chroma_ssl",
    "embedding_model_path",
)

_lock = threading.Lock()
_by_key: weakref.WeakValueDictionary[str, SyncHierarchicalMemory] = weakref.WeakValueDictionary()
_keys: weakref.WeakKeyDictionary[SyncHierarchicalMemory, str] = weakref.WeakKeyDictionary()


def as_sync(engine: EngineLike) -> SyncHierarchicalMemory:
    """The synchronous engine behind either API."""
    if isinstance(engine, HierarchicalMemory):
        return engine.sync
    if isinstance(engine, SyncHierarchicalMemory):
        return engine
    raise TypeError(
        f"engine must be a SyncHierarchicalMemory or HierarchicalMemory, not {type(engine).__name__}"
    )


def register_engine(engine: SyncHierarchicalMemory) -> tuple[str, dict[str, Any]]:
    """Remember an open engine so a deserialised adapter of this process finds it again.

    Returns the key naming it and the portable part of its config (enough to reopen a
    file-backed store in another process).
    """
    config = engine.config
    with _lock:
        key = _keys.get(engine)
        if key is None:
            if config.in_memory:
                key = f":memory:{uuid.uuid4().hex}"
            else:
                key = f"{config.resolved_db_path()}#{config.collection_name}"
            _keys[engine] = key
        _by_key[key] = engine
    portable = {name: getattr(config, name) for name in _PORTABLE_CONFIG}
    return key, portable


def resolve_engine(key: str | None, store_config: dict[str, Any] | None) -> SyncHierarchicalMemory:
    """The engine an adapter was built with: the open one of this process, else reopened."""
    if key:
        with _lock:
            engine = _by_key.get(key)
        if engine is not None and not engine.closed:
            return engine
    if not store_config or store_config.get("db_path") in (None, ":memory:"):
        raise HeadroomMemoryError(
            "this adapter has no open memory store and cannot reopen it (pass engine=..., or "
            "use a file-backed store so it can be reopened from its db_path)"
        )
    engine = SyncHierarchicalMemory.create(MemoryConfig(**store_config))
    register_engine(engine)
    return engine


# ---------------------------------------------------------------------------- messages


def message_text(message: ChatMessage) -> str:
    """The text blocks of a message, joined by newlines ('' when it has none)."""
    return "\n".join(b.text for b in message.blocks if isinstance(b, TextBlock) and b.text)


def last_user_text(messages: Sequence[ChatMessage] | None) -> str:
    """The text of the latest user message with any text, or ''."""
    for message in reversed(list(messages or [])):
        if message.role == MessageRole.USER:
            text = message_text(message)
            if text.strip():
                return text
    return ""


def with_text(message: ChatMessage, text: str) -> ChatMessage:
    """A copy of ``message`` whose text blocks are replaced by one block holding ``text``.

    Other blocks (tool calls, images...) and ``additional_kwargs`` are kept as they are.
    """
    blocks: list[Any] = []
    placed = False
    for block in message.blocks:
        if isinstance(block, TextBlock):
            if not placed:
                blocks.append(TextBlock(text=text))
                placed = True
            continue
        blocks.append(block)
    if not placed and text:
        blocks.insert(0, TextBlock(text=text))
    return message.model_copy(update={"blocks": blocks, "additional_kwargs": dict(message.additional_kwargs)})


def add_system_text(messages: Sequence[ChatMessage], addition: str) -> list[ChatMessage]:
    """``messages`` with ``addition`` appended to the leading system message (or a new one).

    The caller's messages are not modified.
    """
    out = list(messages)
    if not addition:
        return out
    if out and out[0].role == MessageRole.SYSTEM:
        first = out[0]
        base = message_text(first)
        out[0] = with_text(first, f"{base}\n\n{addition}" if base else addition)
    else:
        out.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=addition))
    return out


def transcript_text(messages: Sequence[ChatMessage]) -> str:
    """A plain ``role: text`` rendering of messages (tool calls and empty ones skipped)."""
    lines = []
    for message in messages:
        text = message_text(message).strip()
        if text and message.role in (MessageRole.USER, MessageRole.ASSISTANT):
            lines.append(f"{message.role.value}: {text}")
    return "\n".join(lines)


def dump_message(message: ChatMessage) -> str:
    """JSON payload of a message for the transcript store."""
    return message.model_dump_json()


def load_message(payload: str) -> ChatMessage:
    """A message read back from the transcript store."""
    return ChatMessage.model_validate_json(payload)


# ---------------------------------------------------------------------------- memory loop


def inline_memory(
    engine: SyncHierarchicalMemory,
    *,
    user_id: str,
    session_id: str | None,
    agent_id: str | None,
    top_k: int,
    min_similarity: float | None,
    core_top_k: int,
    max_tokens: int,
    extract: bool,
    scope_policy: ScopePolicy = "user",
) -> InlineMemory:
    """The package's shared inject-and-extract loop with an adapter's settings
    (``min_similarity=None``: no similarity floor)."""
    return InlineMemory.of(
        engine,
        user_id=user_id,
        session_id=session_id,
        agent_id=agent_id,
        top_k=top_k,
        min_similarity=float("-inf") if min_similarity is None else min_similarity,
        core_top_k=core_top_k,
        max_tokens=max_tokens,
        placement="system",
        extract=extract,
        scope_policy=scope_policy,
    )


def resolve_scope_policy(
    scope_policy: ScopePolicy | None, extracted_scope: Scope | None
) -> ScopePolicy:
    """``scope_policy``, or the one the older ``extracted_scope`` names (default ``"user"``)."""
    if extracted_scope is not None:
        if scope_policy is not None and scope_policy != extracted_scope:
            raise ValueError(
                f"extracted_scope={extracted_scope!r} contradicts scope_policy={scope_policy!r}"
            )
        return extracted_scope
    return scope_policy or "user"


def store_user_context(
    engine: SyncHierarchicalMemory,
    messages: Sequence[ChatMessage],
    *,
    user_id: str,
    session_id: str | None,
    agent_id: str | None,
    importance: float = 0.3,
) -> list[str]:
    """Store each user message's text as a session-scoped ``context`` memory."""
    items = [
        MemoryInput(
            content=text,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            category=MemoryCategory.CONTEXT,
            importance=importance,
            provenance=Provenance(agent_id=agent_id, source="llama_index"),
        )
        for m in messages
        if m.role == MessageRole.USER and (text := message_text(m).strip())
    ]
    return [r.id for r in engine.add_many(items)] if items else []
