"""``HierarchicalMemory``: the asynchronous API of the memory engine.

Every method is a coroutine. The SQLite, Chroma and ONNX work it does runs on the store's
own worker threads (``MemoryConfig.async_workers``), so the event loop is never blocked
while memories are embedded, written or searched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import IO, Any, Literal, TypeVar

from .config import MemoryConfig
from .engine import ConsistencyReport, MemoryInput, SearchMode, SyncHierarchicalMemory
from .models import (
    MemoryCategory,
    MemoryFilter,
    MemoryRecord,
    MemoryStats,
    Provenance,
    ScopeLevel,
    SearchResult,
)
from .ports import Embedder, MemoryCache, TextIndex, VectorIndex

T = TypeVar("T")


class HierarchicalMemory:
    """Hierarchical, temporal memory with hybrid search (async API).

    >>> memory = await HierarchicalMemory.create(MemoryConfig(db_path="memory.db"))
    >>> await memory.add("User works at Google", user_id="alice", category="fact")

    ``memory.sync`` is the synchronous API over the same store.
    """

    def __init__(self, engine: SyncHierarchicalMemory) -> None:
        self.sync = engine
        engine._aio = self
        self._executor = ThreadPoolExecutor(
            max_workers=engine.config.async_workers, thread_name_prefix="headroom-memory"
        )

    @property
    def config(self) -> MemoryConfig:
        return self.sync.config

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @classmethod
    async def create(
        cls,
        config: MemoryConfig | None = None,
        *,
        store: Any = None,
        vector_index: VectorIndex | None = None,
        text_index: TextIndex | None = None,
        embedder: Embedder | None = None,
        cache: MemoryCache | None = None,
        **settings: Any,
    ) -> HierarchicalMemory:
        """Open (or create) a memory store; see ``SyncHierarchicalMemory.create``."""
        loop = asyncio.get_running_loop()
        engine = await loop.run_in_executor(
            None,
            functools.partial(
                SyncHierarchicalMemory.create,
                config,
                store=store,
                vector_index=vector_index,
                text_index=text_index,
                embedder=embedder,
                cache=cache,
                **settings,
            ),
        )
        return cls(engine)

    @classmethod
    def from_sync(cls, engine: SyncHierarchicalMemory) -> HierarchicalMemory:
        """The async API over an already open synchronous engine (same as ``engine.aio``)."""
        return engine.aio

    async def close(self) -> None:
        """Wait for running work, then close the store (queued vector writes are applied
        first; see ``SyncHierarchicalMemory.close``)."""
        await self._run(self.sync.close)
        self._executor.shutdown(wait=True)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until queued vector-index writes are applied; see
        ``SyncHierarchicalMemory.flush`` (raises ``VectorSyncError`` if one failed)."""
        await self._run(self.sync.flush, timeout)

    async def __aenter__(self) -> HierarchicalMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add(
        self,
        content: str,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        entity_refs: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        valid_from: datetime | None = None,
        provenance: Provenance | None = None,
        dedup: bool | None = None,
        memory_id: str | None = None,
    ) -> MemoryRecord:
        """Store a memory (or return its current twin); see ``SyncHierarchicalMemory.add``."""
        return await self._run(
            self.sync.add,
            content,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
            category=category,
            importance=importance,
            entity_refs=entity_refs,
            metadata=metadata,
            valid_from=valid_from,
            provenance=provenance,
            dedup=dedup,
            memory_id=memory_id,
        )

    async def add_many(
        self, items: Iterable[MemoryInput | dict[str, Any]], *, dedup: bool | None = None
    ) -> list[MemoryRecord]:
        """Add many memories with one embedding batch."""
        return await self._run(self.sync.add_many, list(items), dedup=dedup)

    async def supersede(
        self,
        old_memory_id: str,
        new_content: str,
        *,
        category: MemoryCategory | str | None = None,
        importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        valid_from: datetime | None = None,
        provenance: Provenance | None = None,
    ) -> MemoryRecord:
        """Replace a current memory with a new version; the old one is kept, closed."""
        return await self._run(
            self.sync.supersede,
            old_memory_id,
            new_content,
            category=category,
            importance=importance,
            entity_refs=entity_refs,
            metadata=metadata,
            valid_from=valid_from,
            provenance=provenance,
        )

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        category: MemoryCategory | str | None = None,
        importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryRecord:
        """Edit a memory in place (re-embedding new content)."""
        return await self._run(
            self.sync.update,
            memory_id,
            content=content,
            category=category,
            importance=importance,
            entity_refs=entity_refs,
            metadata=metadata,
        )

    async def delete(self, memory_id: str) -> bool:
        """Delete a memory and its promoted copy; False when the id is unknown."""
        return await self._run(self.sync.delete, memory_id)

    async def clear(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        """Delete every memory of the user at or under the given scope."""
        return await self._run(
            self.sync.clear,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
        )

    async def get(self, memory_id: str) -> MemoryRecord | None:
        """The memory with this id, or None."""
        return await self._run(self.sync.get, memory_id)

    async def query(self, flt: MemoryFilter) -> list[MemoryRecord]:
        """Memories matching a filter, oldest first."""
        return await self._run(self.sync.query, flt)

    async def get_all(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        include_superseded: bool = False,
    ) -> list[MemoryRecord]:
        """Every memory of a user visible from the given scope."""
        return await self._run(
            self.sync.get_all,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            include_superseded=include_superseded,
        )

    async def users(self) -> list[str]:
        """Every user id that has at least one memory."""
        return await self._run(self.sync.users)

    async def get_history(self, memory_id: str) -> list[MemoryRecord]:
        """The supersession chain through ``memory_id``, oldest first."""
        return await self._run(self.sync.get_history, memory_id)

    async def stats(self, user_id: str | None = None) -> MemoryStats:
        """Counts by category and scope level."""
        return await self._run(self.sync.stats, user_id)

    async def search(
        self,
        query: str,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 5,
        categories: Sequence[MemoryCategory | str] | None = None,
        min_similarity: float | None = None,
        min_importance: float | None = None,
        levels: Sequence[ScopeLevel | str] | None = None,
        include_superseded: bool = False,
        mode: SearchMode = "hybrid",
        all_scopes: bool = False,
    ) -> list[SearchResult]:
        """Hybrid (vector + BM25) search within a scope; see ``SyncHierarchicalMemory.search``."""
        return await self._run(
            self.sync.search,
            query,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
            top_k=top_k,
            categories=categories,
            min_similarity=min_similarity,
            min_importance=min_importance,
            levels=levels,
            include_superseded=include_superseded,
            mode=mode,
            all_scopes=all_scopes,
        )

    async def text_search(
        self,
        query: str,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 5,
        categories: Sequence[MemoryCategory | str] | None = None,
        include_superseded: bool = False,
    ) -> list[SearchResult]:
        """Keyword-only (BM25) search."""
        return await self._run(
            self.sync.text_search,
            query,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
            top_k=top_k,
            categories=categories,
            include_superseded=include_superseded,
        )

    async def check_consistency(self, full: bool = True) -> ConsistencyReport:
        """Compare the indexes with SQLite."""
        return await self._run(self.sync.check_consistency, full)

    async def repair(self, report: ConsistencyReport | None = None) -> ConsistencyReport:
        """Bring the indexes back in line with SQLite."""
        return await self._run(self.sync.repair, report)

    async def reindex(self, progress: Any = None) -> int:
        """Rebuild both indexes from SQLite."""
        return await self._run(self.sync.reindex, progress)

    async def export_jsonl(self, destination: str | IO[str], *, user_id: str | None = None) -> int:
        """Write memories as JSON lines."""
        return await self._run(self.sync.export_jsonl, destination, user_id=user_id)

    async def import_jsonl(
        self,
        source: str | IO[str],
        *,
        on_conflict: Literal["skip", "replace", "error"] = "skip",
        progress: Any = None,
    ) -> int:
        """Read memories written by ``export_jsonl``."""
        return await self._run(
            self.sync.import_jsonl, source, on_conflict=on_conflict, progress=progress
        )

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking callable on the store's worker threads (for adapters)."""
        return await self._run(fn, *args, **kwargs)
