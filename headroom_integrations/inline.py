"""``InlineMemory``: the inline-extraction loop every adapter shares.

Before the model call: find the memories relevant to the latest user message (hybrid
search above a similarity floor, plus the user's most important "core" memories), frame
them as read-only data within a token budget, and build the extraction instruction.
After the call: parse the model's ``<memory>`` block and store what it holds, turning a
``supersedes`` reference into a real supersession. Only the model's own output is ever
parsed; nothing here knows about OpenAI, LangChain or LlamaIndex.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from .core.async_memory import HierarchicalMemory
from .core.engine import SyncHierarchicalMemory
from .core.models import MemoryCategory, MemoryFilter, MemoryRecord, Provenance, SearchResult
from .protocol import (
    ExtractedMemory,
    InjectedMemories,
    ParseResult,
    build_instruction,
    drop_typed,
    format_memories,
    resolve_ref,
)

logger = logging.getLogger("headroom_integrations.inline")

Placement = Literal["system", "user"]


@dataclass
class Injection:
    """What to add to one model call."""

    memories: InjectedMemories
    instruction: str
    placement: Placement

    @property
    def refs(self) -> dict[str, str]:
        """Short refs shown to the model (``m1``) -> memory ids."""
        return self.memories.refs

    def system_text(self) -> str:
        """Text to append to the system prompt (instruction, and memories when placed there)."""
        parts = [self.instruction] if self.instruction else []
        if self.placement == "system" and self.memories.text:
            parts.append(self.memories.text)
        return "\n\n".join(parts)

    def user_prefix(self) -> str:
        """Text to put before the latest user message (memories when placed there)."""
        if self.placement == "user" and self.memories.text:
            return self.memories.text + "\n\n"
        return ""


@dataclass
class InlineMemory:
    """Inject-and-extract for one scope of one store (sync and async)."""

    memory: SyncHierarchicalMemory
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    top_k: int = 5
    min_similarity: float = 0.15
    """Search hits below this cosine similarity are dropped, unless they match by keyword."""
    core_top_k: int = 5
    core_min_importance: float = 0.7
    """The user's memories at least this important are injected whatever the question."""
    max_tokens: int = 400
    placement: Placement = "system"
    search_mode: Literal["hybrid", "vector", "text"] = "hybrid"
    extract: bool = True
    """Ask the model for a ``<memory>`` block and store it (False: inject only)."""
    scope_policy: Literal["auto", "session", "user"] = "auto"
    """Where extracted memories go: ``auto`` keeps ``context`` in the session (and agent)
    and stores durable categories (preference, fact, entity, decision, insight) at user
    scope, so the next session sees them; ``session`` / ``user`` put everything there."""
    source: str = "inline"

    @classmethod
    def of(
        cls, memory: SyncHierarchicalMemory | HierarchicalMemory, **kwargs: object
    ) -> InlineMemory:
        """Accept either face of the engine."""
        engine = memory.sync if isinstance(memory, HierarchicalMemory) else memory
        return cls(engine, **kwargs)  # type: ignore[arg-type]

    @property
    def aio(self) -> HierarchicalMemory:
        return self.memory.aio

    # ---------------------------------------------------------------- before the call
    def prepare(self, latest_user_text: str | None) -> Injection:
        """Memories for this question and the instruction (blocking)."""
        return Injection(
            memories=self._collect(latest_user_text),
            instruction=build_instruction() if self.extract else "",
            placement=self.placement,
        )

    async def aprepare(self, latest_user_text: str | None) -> Injection:
        """``prepare`` on the store's worker threads."""
        return await self.aio.run_sync(self.prepare, latest_user_text)

    def _collect(self, query: str | None) -> InjectedMemories:
        results: list[SearchResult | MemoryRecord] = []
        seen: set[str] = set()
        try:
            if query and query.strip():
                for hit in self.memory.search(
                    query,
                    user_id=self.user_id,
                    session_id=self.session_id,
                    agent_id=self.agent_id,
                    top_k=self.top_k,
                    mode=self.search_mode,
                ):
                    relevant = hit.text_rank is not None or (
                        hit.similarity is not None and hit.similarity >= self.min_similarity
                    )
                    if relevant:
                        results.append(hit)
                        seen.add(hit.id)
            if self.core_top_k:
                core = self.memory.query(
                    MemoryFilter(
                        user_id=self.user_id,
                        session_id=self.session_id,
                        agent_id=self.agent_id,
                        min_importance=self.core_min_importance,
                    )
                )
                core.sort(key=lambda m: (-m.importance, -m.created_at.timestamp()))
                for record in core[: self.core_top_k]:
                    if record.id not in seen and record.promoted_from not in seen:
                        results.append(record)
                        seen.add(record.id)
        except Exception:  # noqa: BLE001 - memory must never break the user's call
            logger.exception("memory lookup failed; answering without memories")
            return InjectedMemories()
        return format_memories(results, max_tokens=self.max_tokens)

    # ---------------------------------------------------------------- after the call
    def store(
        self,
        parsed: ParseResult,
        refs: dict[str, str] | None = None,
        *,
        typed: Collection[str] = (),
    ) -> list[MemoryRecord]:
        """Store the memories of a parsed ``<memory>`` block (blocking). Never raises:
        a memory that cannot be stored is logged and skipped.

        ``typed`` (from ``protocol.typed_memories(user_texts)``): memories the user typed in
        their own ``<memory>`` tags; a model copying one back does not get it stored.
        """
        parsed = drop_typed(parsed, typed)
        out: list[MemoryRecord] = []
        for item in parsed.memories:
            record = self._store_one(item, refs or {})
            if record is not None:
                out.append(record)
        return out

    async def astore(
        self,
        parsed: ParseResult,
        refs: dict[str, str] | None = None,
        *,
        typed: Collection[str] = (),
    ) -> list[MemoryRecord]:
        """``store`` on the store's worker threads."""
        return await self.aio.run_sync(self.store, parsed, refs, typed=typed)

    def _store_one(self, item: ExtractedMemory, refs: dict[str, str]) -> MemoryRecord | None:
        provenance = Provenance(agent_id=self.agent_id, source=self.source)
        try:
            target = resolve_ref(item.supersedes, refs) if item.supersedes else None
            if target is not None:
                old = self.memory.get(target)
                if old is not None and old.is_current and old.user_id == self.user_id:
                    return self.memory.supersede(
                        target,
                        item.content,
                        category=item.category,
                        importance=item.importance,
                        entity_refs=list(item.entity_refs) or None,
                        provenance=provenance,
                    )
            session_scoped = self.scope_policy == "session" or (
                self.scope_policy == "auto" and item.category is MemoryCategory.CONTEXT
            )
            return self.memory.add(
                item.content,
                user_id=self.user_id,
                session_id=self.session_id if session_scoped else None,
                agent_id=self.agent_id if session_scoped else None,
                category=item.category,
                importance=item.importance,
                entity_refs=list(item.entity_refs),
                provenance=provenance,
            )
        except Exception:  # noqa: BLE001 - memory must never break the user's call
            logger.exception("could not store an extracted memory; skipped")
            return None


def latest_user_text(texts: Sequence[tuple[str, str | None]]) -> str | None:
    """The text of the last ``("user", text)`` pair in a list of (role, text) pairs."""
    for role, text in reversed(texts):
        if role in ("user", "human") and text:
            return text
    return None
