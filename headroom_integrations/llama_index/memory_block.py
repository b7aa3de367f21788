"""``HeadroomMemoryBlock``: a long-term memory block for ``llama_index.core.memory.Memory``."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import LLM
from llama_index.core.memory.memory import BaseMemoryBlock

from ..core.engine import SyncHierarchicalMemory
from ..inline import InlineMemory
from ..protocol import parse_memory_blocks, typed_memories
from ._common import (
    EngineLike,
    Scope,
    ScopePolicy,
    as_sync,
    inline_memory,
    last_user_text,
    message_text,
    register_engine,
    resolve_engine,
    resolve_scope_policy,
    store_user_context,
    transcript_text,
)

__all__ = ["HeadroomMemoryBlock", "EXTRACTION_REQUEST"]

EXTRACTION_REQUEST = (
    "Here is part of a conversation that is leaving the assistant's short-term memory:\n\n"
    "{transcript}\n\n"
    "Reply with only a <memory> block holding what is worth remembering long-term about the "
    "user, following the rules above; reply with nothing if nothing qualifies."
)


class HeadroomMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memories for LlamaIndex's ``Memory``.

    - ``aget`` returns the memories relevant to the recent messages (the latest user
      message), plus up to ``core_top_k`` of the user's most important ones, formatted within
      ``max_tokens`` (the package's :class:`~headroom_integrations.inline.InlineMemory`).
    - ``aput`` receives the messages flushed from short-term memory. With ``llm`` it asks the
      model once for a ``<memory>`` block over them (the package's inline protocol) and
      stores what it returns following ``scope_policy`` (``"user"``, ``"session"`` or
      ``"auto"``; ``extracted_scope`` is its older name, still accepted); without one it
      stores the user's messages as session-scoped ``context`` memories.

    The session is ``session_id`` when set, else the one the ``Memory`` passes.
    """

    name: str = Field(default="headroom_memories", description="The block's name.")
    user_id: str = Field(description="Whose memories these are.")
    session_id: str | None = Field(default=None, description="Fixed session (else Memory's).")
    agent_id: str | None = Field(default=None, description="Optional agent scope.")
    top_k: int = Field(default=5, ge=1)
    max_tokens: int = Field(default=400, ge=0, description="Budget of the formatted memories.")
    min_similarity: float | None = Field(default=None, description="None: no similarity floor.")
    core_top_k: int = Field(default=5, ge=0, description="Most important memories always given.")
    llm: LLM | None = Field(default=None, description="Model used to extract memories.")
    scope_policy: ScopePolicy | None = Field(
        default=None, description="Where LLM-extracted memories go: 'user', 'session' or 'auto'."
    )
    extracted_scope: Scope | None = Field(
        default=None, description="Older name of scope_policy: 'user' or 'session'."
    )
    store_key: str | None = Field(default=None)
    store_config: dict[str, Any] = Field(default_factory=dict)

    _engine: SyncHierarchicalMemory | None = PrivateAttr(default=None)

    def __init__(self, *, engine: EngineLike | None = None, **data: Any) -> None:
        sync = as_sync(engine) if engine is not None else None
        if sync is not None:
            data["store_key"], data["store_config"] = register_engine(sync)
        data["scope_policy"] = resolve_scope_policy(data.get("scope_policy"), data.get("extracted_scope"))
        super().__init__(**data)
        self._engine = sync

    @property
    def engine(self) -> SyncHierarchicalMemory:
        """The store (reopened from ``store_config`` after deserialisation if needed)."""
        if self._engine is None or self._engine.closed:
            self._engine = resolve_engine(self.store_key, self.store_config)
        return self._engine

    def _session(self, session_id: str | None) -> str | None:
        return self.session_id or session_id

    def _inline(self, session_id: str | None, *, extract: bool) -> InlineMemory:
        return inline_memory(
            self.engine,
            user_id=self.user_id,
            session_id=session_id,
            agent_id=self.agent_id,
            top_k=self.top_k,
            min_similarity=self.min_similarity,
            core_top_k=self.core_top_k,
            max_tokens=self.max_tokens,
            extract=extract,
            scope_policy=self.scope_policy or "user",
        )

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        inline = self._inline(self._session(block_kwargs.get("session_id")), extract=False)
        injection = await inline.aprepare(last_user_text(messages))
        return injection.memories.text

    async def _aput(self, messages: list[ChatMessage]) -> None:
        if not messages:
            return
        passed = next(
            (m.additional_kwargs.get("session_id") for m in messages if m.additional_kwargs.get("session_id")),
            None,
        )
        session_id = self._session(passed)
        if self.llm is None:
            await self.engine.aio.run_sync(
                store_user_context,
                self.engine,
                messages,
                user_id=self.user_id,
                session_id=session_id,
                agent_id=self.agent_id,
            )
            return
        transcript = transcript_text(messages)
        if not transcript:
            return
        inline = self._inline(session_id, extract=True)
        injection = await inline.aprepare(last_user_text(messages) or transcript)
        prompt = [
            ChatMessage(role=MessageRole.SYSTEM, content=injection.system_text()),
            ChatMessage(role=MessageRole.USER, content=EXTRACTION_REQUEST.format(transcript=transcript)),
        ]
        response = await self.llm.achat(prompt)
        parsed = parse_memory_blocks(response.message.content or "")
        if parsed.memories:
            typed = typed_memories(message_text(m) for m in messages if m.role == MessageRole.USER)
            await inline.astore(parsed, injection.refs, typed=typed)
