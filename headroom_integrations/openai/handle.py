"""``client.memory``: the store, bound to the wrapper's (user, session, agent) scope."""

from __future__ import annotations

from typing import Any, Literal

from ..core.async_memory import HierarchicalMemory
from ..core.engine import SyncHierarchicalMemory
from ..core.errors import MemoryNotFoundError
from ..core.models import MemoryCategory, MemoryRecord, MemoryStats, Provenance, SearchResult

__all__ = ["AsyncMemoryHandle", "MemoryHandle"]

Scope = Literal["auto", "session", "user"]


class _Base:
    def __init__(
        self,
        engine: SyncHierarchicalMemory,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        top_k: int = 5,
        scope_policy: Scope = "auto",
    ) -> None:
        self.engine = engine
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id
        self.top_k = top_k
        self.scope_policy: Scope = scope_policy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(user_id={self.user_id!r}, session_id={self.session_id!r}, "
            f"agent_id={self.agent_id!r})"
        )

    # -- the blocking implementations (run directly, or on the store's worker threads)
    def _search(self, query: str, top_k: int | None, kwargs: dict[str, Any]) -> list[SearchResult]:
        return self.engine.search(
            query,
            user_id=self.user_id,
            session_id=self.session_id,
            agent_id=self.agent_id,
            top_k=top_k or self.top_k,
            **kwargs,
        )

    def _add(
        self,
        content: str,
        category: MemoryCategory | str,
        importance: float,
        scope: Scope | None,
        entity_refs: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> MemoryRecord:
        policy = scope or self.scope_policy
        session_scoped = policy == "session" or (
            policy == "auto" and MemoryCategory(category) is MemoryCategory.CONTEXT
        )
        return self.engine.add(
            content,
            user_id=self.user_id,
            session_id=self.session_id if session_scoped else None,
            agent_id=self.agent_id if session_scoped else None,
            category=category,
            importance=importance,
            entity_refs=entity_refs,
            metadata=metadata,
            provenance=Provenance(agent_id=self.agent_id, source="api"),
        )

    def _get(self, memory_id: str) -> MemoryRecord | None:
        record = self.engine.get(memory_id)
        return record if record is not None and record.user_id == self.user_id else None

    def _get_all(self, include_superseded: bool, all_scopes: bool) -> list[MemoryRecord]:
        return self.engine.get_all(
            user_id=self.user_id,
            session_id=None if all_scopes else self.session_id,
            agent_id=None if all_scopes else self.agent_id,
            include_superseded=include_superseded,
        )

    def _history(self, memory_id: str) -> list[MemoryRecord]:
        if self._get(memory_id) is None:
            raise MemoryNotFoundError(memory_id)
        return self.engine.get_history(memory_id)

    def _delete(self, memory_id: str) -> bool:
        if self._get(memory_id) is None:
            return False
        return self.engine.delete(memory_id)

    def _clear(self, all_scopes: bool) -> int:
        if all_scopes:
            return self.engine.clear(user_id=self.user_id)
        return self.engine.clear(
            user_id=self.user_id, session_id=self.session_id, agent_id=self.agent_id
        )


class MemoryHandle(_Base):
    """The memories of one user as seen from one session/agent (blocking methods).

    - ``search`` and ``get_all`` see this scope and every broader one (the user's own
      memories), never another session's;
    - ``add`` stores ``context`` memories in this session (and agent) and durable categories
      at user level, so later sessions see them (``scope="session"``/``"user"`` to choose);
    - ``get``/``history``/``delete`` only act on this user's memories;
    - ``clear()`` deletes this session's (and agent's) memories -- the whole user's when the
      handle has no session -- and ``clear(all_scopes=True)`` every memory of the user.
    """

    def search(self, query: str, top_k: int | None = None, **kwargs: Any) -> list[SearchResult]:
        """The memories most relevant to ``query`` (each with ``.content`` and ``.score``)."""
        return self._search(query, top_k, kwargs)

    def add(
        self,
        content: str,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        *,
        scope: Scope | None = None,
        entity_refs: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryRecord:
        """Store a memory by hand."""
        return self._add(content, category, importance, scope, entity_refs, metadata)

    def get(self, memory_id: str) -> MemoryRecord | None:
        return self._get(memory_id)

    def get_all(
        self, *, include_superseded: bool = False, all_scopes: bool = False
    ) -> list[MemoryRecord]:
        """Every memory visible from this scope, oldest first (``all_scopes``: the user's
        memories of every session too)."""
        return self._get_all(include_superseded, all_scopes)

    def stats(self) -> MemoryStats:
        """Counts of this user's memories."""
        return self.engine.stats(self.user_id)

    def history(self, memory_id: str) -> list[MemoryRecord]:
        """The supersession chain through ``memory_id``, oldest first."""
        return self._history(memory_id)

    def delete(self, memory_id: str) -> bool:
        return self._delete(memory_id)

    def clear(self, *, all_scopes: bool = False) -> int:
        """Delete this scope's memories (see the class doc); returns how many."""
        return self._clear(all_scopes)


class AsyncMemoryHandle(_Base):
    """:class:`MemoryHandle` with coroutine methods (for ``AsyncOpenAI``); the work runs on
    the store's worker threads."""

    @property
    def _aio(self) -> HierarchicalMemory:
        return self.engine.aio

    async def search(
        self, query: str, top_k: int | None = None, **kwargs: Any
    ) -> list[SearchResult]:
        return await self._aio.run_sync(self._search, query, top_k, kwargs)

    async def add(
        self,
        content: str,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        *,
        scope: Scope | None = None,
        entity_refs: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryRecord:
        return await self._aio.run_sync(
            self._add, content, category, importance, scope, entity_refs, metadata
        )

    async def get(self, memory_id: str) -> MemoryRecord | None:
        return await self._aio.run_sync(self._get, memory_id)

    async def get_all(
        self, *, include_superseded: bool = False, all_scopes: bool = False
    ) -> list[MemoryRecord]:
        return await self._aio.run_sync(self._get_all, include_superseded, all_scopes)

    async def stats(self) -> MemoryStats:
        return await self._aio.run_sync(self.engine.stats, self.user_id)

    async def history(self, memory_id: str) -> list[MemoryRecord]:
        return await self._aio.run_sync(self._history, memory_id)

    async def delete(self, memory_id: str) -> bool:
        return await self._aio.run_sync(self._delete, memory_id)

    async def clear(self, *, all_scopes: bool = False) -> int:
        return await self._aio.run_sync(self._clear, all_scopes)
