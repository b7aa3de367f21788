"""The ports the engine talks to: storage, vector and keyword indexes, embedder, cache.

Each is a ``typing.Protocol``: any object with these methods can be plugged in through
``HierarchicalMemory.create(config, store=..., vector_index=..., ...)``. The defaults are
SQLite, Chroma, SQLite FTS5, fastembed and an in-process LRU cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .errors import HeadroomMemoryError
from .models import (
    MemoryCategory,
    MemoryFilter,
    MemoryRecord,
    MemoryStats,
    ScopeLevel,
    scope_level_of,
)

Vector = NDArray[np.float32]


class VectorSyncError(HeadroomMemoryError):
    """Queued vector-index writes failed (raised by ``flush()``).

    Nothing is lost: SQLite holds every memory and its vector, and the memories concerned
    stay flagged unsynced, so ``repair()`` (run on the next open) writes them again.
    """


@dataclass(frozen=True)
class ScopeQuery:
    """Which memories of one user an index search may return.

    A memory is visible when each scope id it carries (session, agent, turn) equals the
    query's; a memory without that id is broader and visible too. ``all_scopes`` drops the
    scope test (the user test stays).
    """

    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    levels: tuple[ScopeLevel, ...] | None = None
    all_scopes: bool = False
    include_superseded: bool = False

    @classmethod
    def from_filter(cls, flt: MemoryFilter) -> ScopeQuery:
        """The scope part of a ``MemoryFilter``."""
        return cls(
            user_id=flt.user_id,
            session_id=flt.session_id,
            agent_id=flt.agent_id,
            turn_id=flt.turn_id,
            levels=tuple(flt.levels) if flt.levels else None,
            all_scopes=flt.all_scopes,
            include_superseded=flt.include_superseded or flt.valid_at is not None,
        )

    def sees(self, record: MemoryRecord | MemoryBrief) -> bool:
        """True when a memory is visible from this scope (pure, used to check indexes)."""
        if record.user_id != self.user_id:
            return False
        if not self.include_superseded and not record.is_current:
            return False
        if self.levels is not None and record.scope_level not in self.levels:
            return False
        if self.all_scopes:
            return True
        return (
            (record.session_id is None or record.session_id == self.session_id)
            and (record.agent_id is None or record.agent_id == self.agent_id)
            and (record.turn_id is None or record.turn_id == self.turn_id)
        )


@dataclass(frozen=True)
class MemoryBrief:
    """The fields of a memory a search filters and ranks on: no content, metadata,
    provenance or access counts, so reading one per search candidate is cheap. The search
    reads the full ``MemoryRecord`` of its results only."""

    id: str
    user_id: str
    session_id: str | None
    agent_id: str | None
    turn_id: str | None
    category: MemoryCategory
    importance: float
    created_at: datetime
    valid_from: datetime
    is_current: bool
    promoted_from: str | None
    entity_refs: list[str]

    @property
    def scope_level(self) -> ScopeLevel:
        """The narrowest scope this memory belongs to."""
        return scope_level_of(self.session_id, self.agent_id, self.turn_id)


@dataclass(frozen=True)
class IndexedDoc:
    """What the indexes keep of a memory: its text and the fields searches filter on."""

    id: str
    content: str
    user_id: str
    session_id: str | None
    agent_id: str | None
    turn_id: str | None
    category: str
    is_current: bool
    context: str = ""
    """The memory's ``search_text`` (empty when none): keyword-only context, indexed by the
    keyword index in its own column, weighed below the content."""
    valid_from: float | None = None
    """When the memory became true, in seconds since the epoch (a vector index uses it to
    tell where one conversation ends: see ``ContextWindow``)."""

    @classmethod
    def of(cls, record: MemoryRecord) -> IndexedDoc:
        return cls(
            context=getattr(record, "search_text", None) or "",
            id=record.id,
            content=record.content,
            user_id=record.user_id,
            session_id=record.session_id,
            agent_id=record.agent_id,
            turn_id=record.turn_id,
            category=record.category.value,
            is_current=record.is_current,
            valid_from=record.valid_from.timestamp(),
        )


@dataclass(frozen=True)
class ContextWindow:
    """Which neighbours of a memory count as its context in a vector search.

    A memory's neighbours are the memories of the same user and the same session, agent and
    turn ids, in the order they were written, as long as no two consecutive ones are
    further apart in ``valid_from`` than the index's gap (``MemoryConfig.
    vector_context_gap_minutes``: a longer pause starts a new conversation). With
    a window, a memory's vector score is the mean of its own cosine similarity and the mean
    similarity of itself, its ``before`` previous and ``after`` next neighbours: a turn
    that answers a question rarely repeats the question's words, the turns around it often
    do.
    """

    before: int = 2
    after: int = 1

    @property
    def empty(self) -> bool:
        return self.before <= 0 and self.after <= 0


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors."""

    @property
    def name(self) -> str:
        """A stable identifier of the model (recorded in the store)."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """One row per text, shape ``(len(texts), dimension)``, L2-normalised."""
        ...

    def embed_query(self, text: str) -> Vector:
        """One vector, shape ``(dimension,)``, L2-normalised."""
        ...


@runtime_checkable
class MemoryStore(Protocol):
    """The source of truth: every memory with every field, and the store's own settings."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A context in which writes are atomic (committed on exit, rolled back on error)."""
        ...

    # Optional: ``in_transaction() -> bool``, True when the calling thread is inside
    # ``transaction()``. A hybrid search then runs its vector side on the calling thread
    # (a worker thread would wait for the transaction's lock); without it, always on a worker.

    def insert(self, record: MemoryRecord) -> None: ...
    def update(self, record: MemoryRecord) -> None: ...
    def get(self, memory_id: str) -> MemoryRecord | None: ...
    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]: ...

    # Optional: ``get_briefs(memory_ids) -> dict[str, MemoryBrief]``, like ``get_many`` but
    # only the fields a search ranks on. A search then reads every candidate's brief and the
    # full records of its results only; without it, it reads every candidate in full.

    def delete(self, memory_ids: Sequence[str]) -> int: ...
    def query(self, flt: MemoryFilter) -> list[MemoryRecord]: ...
    def find_same_content(self, record: MemoryRecord) -> MemoryRecord | None:
        """A current memory of the exact same scope whose normalised content is the same."""
        ...

    def find_promoted_copy(self, source_id: str) -> MemoryRecord | None: ...
    def record_access(self, memory_ids: Sequence[str], when: datetime) -> None: ...

    # Optional: ``record_accesses(owed: Mapping[str, tuple[int, datetime]])``, adding each
    # id's count at once. With it the engine writes search access counts in the background
    # (``core.access_log``); without it, each search calls ``record_access`` itself.

    def stats(self, user_id: str | None = None) -> MemoryStats: ...
    def delete_scope(self, scope: ScopeQuery, exact: bool) -> list[str]: ...
    def iter_all(self, user_id: str | None = None, batch: int = 500) -> Iterator[MemoryRecord]:
        """Every memory (of ``user_id``) in the order they were written."""
        ...

    def users(self) -> list[str]: ...
    def count(self) -> int: ...
    def all_ids(self) -> set[str]: ...
    def unsynced_ids(self) -> list[str]:
        """Memories whose vector-index entry may be missing or stale (a write in flight)."""
        ...

    def mark_synced(self, memory_ids: Sequence[str]) -> None: ...
    def mark_unsynced(self, memory_ids: Sequence[str]) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest-neighbour search over memory vectors, filtered by scope.

    ``user_id=`` on the id-based methods is a hint naming the owner of the ids (an index
    partitioned by user uses it; without it, it looks everywhere).
    """

    def upsert(self, docs: Sequence[IndexedDoc], vectors: Vector) -> None: ...
    def set_current(
        self, memory_ids: Sequence[str], is_current: bool, *, user_id: str | None = None
    ) -> None: ...
    def delete(self, memory_ids: Sequence[str], *, user_id: str | None = None) -> None: ...
    def query(
        self,
        vector: Vector,
        k: int,
        scope: ScopeQuery,
        categories: Sequence[str] | None = None,
        min_similarity: float | None = None,
    ) -> list[tuple[str, float]]:
        """Up to ``k`` (id, cosine similarity) pairs visible from ``scope``, most similar first."""
        ...

    # Optional (the engine checks with ``getattr``): ``query_in_context(vector, k, scope,
    # categories, window: ContextWindow) -> list[tuple[str, float, float]]``, up to ``k``
    # (id, context score, cosine similarity) triples visible from ``scope``, best context
    # score first (see ``ContextWindow``). Without it, a search ranks by cosine alone.

    def get_vectors(
        self, memory_ids: Sequence[str], *, user_id: str | None = None
    ) -> dict[str, Vector]: ...
    def count(self) -> int: ...
    def is_empty(self) -> bool: ...
    def all_ids(self) -> set[str]: ...
    def reset(self) -> None: ...
    def close(self) -> None:
        """Apply every queued write (see ``flush``), then release resources."""
        ...

    # Optional, for an index that applies its writes later, on its own thread (the engine
    # checks with ``getattr``):
    #
    # ``joins_store_transaction: bool``: True when ``upsert``/``set_current``/``delete`` only
    # write the store's SQLite file (joining the caller's transaction) and queue the rest.
    # Such an index marks memories synced itself (``bind_store(store)`` gives it the store)
    # once its slow copy has them; the engine then never calls ``mark_synced``.
    #
    # ``flush(timeout: float | None = None) -> None``: block until every queued write is
    # applied; raise ``VectorSyncError`` if a queued write failed since the last flush.
    #
    # ``wait(timeout: float | None = None) -> bool``: the same wait without raising (the
    # engine's maintenance calls it before comparing the indexes with SQLite).


@runtime_checkable
class TextIndex(Protocol):
    """Keyword (BM25) search over memory text, filtered by scope."""

    def upsert(self, docs: Sequence[IndexedDoc]) -> None: ...
    def set_current(self, memory_ids: Sequence[str], is_current: bool) -> None: ...
    def delete(self, memory_ids: Sequence[str]) -> None: ...
    def search(
        self, query: str, k: int, scope: ScopeQuery, categories: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """Up to ``k`` (id, relevance) pairs visible from ``scope``, best first; any string is
        a valid query."""
        ...

    def count(self) -> int: ...
    def all_ids(self) -> set[str]: ...
    def reset(self) -> None: ...


@runtime_checkable
class MemoryCache(Protocol):
    """A small key-value cache (query embeddings)."""

    def get(self, key: str) -> Any | None: ...
    def put(self, key: str, value: Any) -> None: ...
    def clear(self) -> None: ...
