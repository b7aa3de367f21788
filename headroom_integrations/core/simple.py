"""``Memory``: the small API of the product docs: save, search, clear, delete.

Memories are saved at user scope; ``agent_id`` records which agent wrote a memory
(provenance), it does not hide it from other agents: a fact one coding agent learnt is
found by another agent of the same user, and the same fact saved by two agents is stored
once with both recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .async_memory import HierarchicalMemory
from .config import DEFAULT_PATH_ENV, MemoryConfig, default_db_path
from .models import MemoryCategory, MemoryRecord, Provenance, SearchResult

__all__ = ["DEFAULT_PATH_ENV", "Memory", "default_db_path"]


class Memory:
    """Persistent memory for agents, in four calls (all async).

    >>> memory = Memory()
    >>> await memory.save("Project uses uv, not pip", user_id="dev", agent_id="claude")
    >>> hits = await memory.search("package manager", user_id="dev", agent_id="codex")
    >>> hits[0].content, hits[0].score
    """

    def __init__(
        self, db_path: str | None = None, *, config: MemoryConfig | None = None, **settings: Any
    ) -> None:
        if config is None:
            config = MemoryConfig(db_path=db_path or default_db_path(), **settings)
        self.config = config
        self._memory: HierarchicalMemory | None = None
        self._lock = asyncio.Lock()

    async def _engine(self) -> HierarchicalMemory:
        if self._memory is None:
            async with self._lock:
                if self._memory is None:
                    self._memory = await HierarchicalMemory.create(self.config)
        return self._memory

    @property
    def engine(self) -> HierarchicalMemory | None:
        """The underlying ``HierarchicalMemory`` once opened (after the first call)."""
        return self._memory

    async def save(
        self,
        text: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryRecord:
        """Save a fact for ``user_id``, recording ``agent_id`` as the writer."""
        engine = await self._engine()
        return await engine.add(
            text,
            user_id=user_id,
            category=category,
            importance=importance,
            metadata=metadata,
            provenance=Provenance(agent_id=agent_id, source="api"),
        )

    async def search(
        self, query: str, *, user_id: str, agent_id: str | None = None, top_k: int = 5
    ) -> list[SearchResult]:
        """The user's memories most relevant to ``query``, whichever agent wrote them.

        ``agent_id`` names the asking agent; it does not narrow the search.
        """
        engine = await self._engine()
        return await engine.search(query, user_id=user_id, top_k=top_k)

    async def get_all(self, *, user_id: str) -> list[MemoryRecord]:
        """Every current memory of the user."""
        engine = await self._engine()
        return await engine.get_all(user_id=user_id)

    async def delete(self, memory_id: str) -> bool:
        """Delete one memory by id; False when there is none."""
        engine = await self._engine()
        return await engine.delete(memory_id)

    async def clear(self, *, user_id: str) -> int:
        """Delete all of a user's memories; returns how many."""
        engine = await self._engine()
        return await engine.clear(user_id=user_id)

    async def close(self) -> None:
        if self._memory is not None:
            await self._memory.close()
            self._memory = None
