"""``SyncHierarchicalMemory``: the memory engine, synchronous and thread-safe.

It owns the rules (scopes, supersession, bubbling, dedup, hybrid ranking) and talks to
storage only through the ports in ``ports.py``. ``HierarchicalMemory`` (``async_memory.py``)
is the asynchronous face of the same engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .access_log import AccessLog
from .config import MemoryConfig
from .errors import (
    AlreadySupersededError,
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFoundError,
    StoreClosedError,
)
from .models import (
    MemoryCategory,
    MemoryFilter,
    MemoryRecord,
    MemoryStats,
    Provenance,
    ScopeLevel,
    SearchResult,
    new_id,
    utcnow,
)
from .entities import QueryNames
from .query_dates import query_period
from .query_words import strip_words
from .ports import (
    ContextWindow,
    Embedder,
    IndexedDoc,
    MemoryBrief,
    MemoryCache,
    ScopeQuery,
    TextIndex,
    Vector,
    VectorIndex,
)
from .ranking import Candidate, FusionWeights, recency_factor, relevance
from .validation import check_id, check_importance, check_text, check_top_k

if TYPE_CHECKING:
    from .async_memory import HierarchicalMemory

logger = logging.getLogger("headroom_integrations")

SearchMode = Literal["hybrid", "vector", "text"]


class MemoryInput(BaseModel):
    """One memory to add in a batch (``add_many``); the same fields as ``add()``."""

    model_config = ConfigDict(extra="forbid")

    content: str
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    memory_id: str | None = None
    """A caller-chosen id (e.g. derived from a key); default: a new random one."""
    category: MemoryCategory | str = MemoryCategory.FACT
    importance: float = 0.5
    entity_refs: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    valid_from: datetime | None = None
    provenance: Provenance | None = None
    search_text: str | None = None
    """Extra text for keyword search only (e.g. surrounding conversation, date, speaker)."""


class ConsistencyReport(BaseModel):
    """How the indexes compare with SQLite, the source of truth."""

    memories: int
    vectors: int | None
    """Vectors in the index; None when the quick check (on open) did not count them."""
    keywords: int
    missing_vectors: list[str] = Field(default_factory=list)
    orphan_vectors: list[str] = Field(default_factory=list)
    missing_keywords: list[str] = Field(default_factory=list)
    orphan_keywords: list[str] = Field(default_factory=list)
    unsynced: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_vectors
            or self.orphan_vectors
            or self.missing_keywords
            or self.orphan_keywords
            or self.unsynced
        )


class SyncHierarchicalMemory:
    """Hierarchical, temporal memory with hybrid search (synchronous API).

    Scopes: a memory belongs to a user and optionally a session, an agent and a turn; a
    search from (user, session, agent, turn) sees that scope and every broader one on the
    same path, and never another user's memories. Open one with ``create()``.
    """

    def __init__(
        self,
        config: MemoryConfig,
        *,
        store: Any,
        vector_index: VectorIndex,
        text_index: TextIndex,
        embedder: Embedder,
        cache: MemoryCache,
        transcripts: Any = None,
    ) -> None:
        self.config = config
        self.store = store
        self.vector_index = vector_index
        self.text_index = text_index
        self.embedder = embedder
        self.cache = cache
        self.transcripts = transcripts
        bind = getattr(vector_index, "bind_store", None)
        if callable(bind):
            bind(store)
        self._vectors_in_tx = bool(getattr(vector_index, "joins_store_transaction", False))
        """The vector index writes only SQLite inside our transactions (its slow copy is
        written later by its own thread, which also flags memories synced)."""
        self._write_lock = threading.RLock()
        self._closed = False
        self._side_pool: ThreadPoolExecutor | None = None
        self._side_pool_lock = threading.Lock()
        self._aio: HierarchicalMemory | None = None
        self.weights = FusionWeights(
            fusion=config.fusion,
            rrf_k=config.rrf_k,
            vector=config.vector_weight,
            text=config.text_weight,
            importance=config.importance_weight,
            recency=config.recency_weight,
            recency_half_life_days=config.recency_half_life_days,
            entity=config.entity_weight,
            date=config.date_weight,
        )
        window = ContextWindow(config.vector_context_before, config.vector_context_after)
        self._context_window: ContextWindow | None = None if window.empty else window
        write_accesses = getattr(store, "record_accesses", None)
        self._accesses: AccessLog | None = (
            AccessLog(write_accesses) if callable(write_accesses) else None
        )
        """Access counts of searches, written in the background (when the store can)."""

    # ------------------------------------------------------------------ opening / closing
    @classmethod
    def create(
        cls,
        config: MemoryConfig | None = None,
        *,
        store: Any = None,
        vector_index: VectorIndex | None = None,
        text_index: TextIndex | None = None,
        embedder: Embedder | None = None,
        cache: MemoryCache | None = None,
        **settings: Any,
    ) -> SyncHierarchicalMemory:
        """Open (or create) a memory store.

        ``config`` or keyword settings (``db_path="memory.db"``, ...) say where it lives;
        any port can be replaced by passing an object implementing it.
        """
        from ..storage.factory import build_components

        if config is None:
            config = MemoryConfig(**settings)
        elif settings:
            config = config.model_copy(update=settings)
        parts = build_components(
            config,
            store=store,
            vector_index=vector_index,
            text_index=text_index,
            embedder=embedder,
            cache=cache,
        )
        engine = cls(config, **parts)
        engine._check_embedder()
        if config.check_drift_on_open:
            report = engine.check_consistency(full=False)
            if not report.ok:
                logger.warning(
                    "memory indexes drifted from SQLite (%d missing vectors, %d orphan vectors, "
                    "%d missing keywords, %d orphan keywords, %d unsynced); repairing",
                    len(report.missing_vectors),
                    len(report.orphan_vectors),
                    len(report.missing_keywords),
                    len(report.orphan_keywords),
                    len(report.unsynced),
                )
                engine.repair(report)
        return engine

    @property
    def aio(self) -> HierarchicalMemory:
        """The async API over this same store (created once, shares its connection)."""
        if self._aio is None:
            from .async_memory import HierarchicalMemory

            with self._write_lock:
                if self._aio is None:
                    self._aio = HierarchicalMemory(self)
        return self._aio

    def close(self) -> None:
        """Apply queued vector-index writes, then release the database connection. Further
        calls raise ``StoreClosedError``.

        A queued write that failed is logged as a warning (not raised): SQLite has the
        memory and its vector, flagged unsynced, and the next open writes it again. Call
        ``flush()`` first to get such failures as an exception.
        """
        if self._closed:
            return
        self._closed = True
        if self._aio is not None:
            self._aio._executor.shutdown(wait=False)
        with self._side_pool_lock:
            if self._side_pool is not None:
                self._side_pool.shutdown(wait=True)
        try:
            if self._accesses is not None:
                self._accesses.close()
            self.vector_index.close()
        finally:
            self.store.close()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued vector-index write is applied (Chroma is written by a
        background thread; searches never need this, the memory is searchable as soon as
        ``add`` returns), and write the access counts searches owe. Raises
        ``VectorSyncError`` when a queued write failed since the last ``flush`` (the
        memories concerned stay flagged unsynced; ``repair()`` writes them again),
        ``TimeoutError`` after ``timeout`` seconds."""
        self._alive()
        self._settle_accesses()
        flush = getattr(self.vector_index, "flush", None)
        if callable(flush):
            flush(timeout)

    def _wait_vectors(self) -> None:
        """Wait for queued vector-index writes without raising (before comparing indexes)."""
        wait = getattr(self.vector_index, "wait", None)
        if callable(wait):
            wait()

    def __enter__(self) -> SyncHierarchicalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def _alive(self) -> None:
        if self._closed:
            raise StoreClosedError("this memory store is closed")

    def _check_embedder(self) -> None:
        name = self.store.get_meta("embedder")
        dim = self.store.get_meta("embedding_dim")
        here = (self.embedder.name, str(self.embedder.dimension))
        if name is None:
            self.store.set_meta("embedder", here[0])
            self.store.set_meta("embedding_dim", here[1])
            return
        if (name, dim) == here:
            return
        if self.config.on_embedder_mismatch == "reindex":
            logger.warning("store built with %s (dim %s); re-embedding with %s", name, dim, here)
            self.reindex()
            return
        raise EmbedderMismatchError(
            f"the store at {self.config.db_path} was built with embedder {name} (dimension "
            f"{dim}), but this one is {here[0]} (dimension {here[1]}). Open it with the same "
            "embedder, or pass MemoryConfig(on_embedder_mismatch='reindex') to re-embed all "
            f"{self.store.count()} memories with the new one."
        )

    # ------------------------------------------------------------------ writing
    def add(
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
        search_text: str | None = None,
    ) -> MemoryRecord:
        """Store a memory and return it, or return the existing twin when one is current.

        A twin is a current memory of the same scope with the same normalised text, or
        (``dedup_threshold``) a near-identical embedding; its importance is raised and the
        new provenance recorded instead of storing a second copy. A narrower-scope memory
        whose importance reaches ``bubble_threshold`` is also promoted to user scope.
        ``search_text`` is indexed for keyword search only (never shown or embedded).
        """
        item = MemoryInput.model_construct(
            content=content,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
            category=category,
            importance=importance,
            entity_refs=list(entity_refs or []),
            metadata=dict(metadata or {}),
            valid_from=valid_from,
            provenance=provenance,
            memory_id=memory_id,
            search_text=search_text,
        ) if not isinstance(content, MemoryInput) else content
        return self.add_many([item], dedup=dedup)[0]

    def add_many(
        self, items: Iterable[MemoryInput | dict[str, Any]], *, dedup: bool | None = None
    ) -> list[MemoryRecord]:
        """Add many memories with one embedding batch; returns one record per item, in order
        (a twin's existing record where deduplicated)."""
        self._alive()
        inputs = [_as_input(i, n) for n, i in enumerate(items)]
        records = [self._build(i) for i in inputs]
        if not records:
            return []
        keyed = [getattr(i, "memory_id", None) is not None for i in inputs]
        use_dedup = self.config.dedup if dedup is None else dedup
        vectors = self.embedder.embed_documents([r.content for r in records])
        out: list[MemoryRecord] = []
        with self._write_lock:
            fresh: list[tuple[MemoryRecord, Vector]] = []
            seen: dict[tuple[Any, ...], MemoryRecord] = {}
            # a caller-chosen id is never merged away
            twins = self._find_twins(records, vectors, keyed) if use_dedup else []
            for n, (record, vector, has_key) in enumerate(zip(records, vectors, keyed)):
                twin = None
                if use_dedup and not has_key:
                    key = _scope_key(record) + (_norm_key(record.content),)
                    twin = seen.get(key) or twins[n]
                    if twin is not None:
                        twin = self._merge_into(twin, record)
                        seen[key] = twin
                        out.append(twin)
                        continue
                    seen[key] = record
                fresh.append((record, vector))
                out.append(record)
            self._insert(fresh)
            fresh_vectors = {r.id: v for r, v in fresh}
            for record in out:
                self._maybe_promote(record, fresh_vectors.get(record.id))
        return out

    def _build(self, item: MemoryInput) -> MemoryRecord:
        content = check_text(item.content, max_chars=self.config.max_content_chars)
        user_id = check_id(item.user_id, name="user_id", required=True)
        assert user_id is not None
        now = utcnow()
        valid_from = item.valid_from or now
        if valid_from.tzinfo is None:
            from datetime import timezone

            valid_from = valid_from.replace(tzinfo=timezone.utc)
        try:
            category = MemoryCategory.parse(item.category)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        provenance = item.provenance or Provenance(agent_id=item.agent_id, source="api")
        memory_id = check_id(getattr(item, "memory_id", None), name="memory_id")
        if memory_id is not None and self.store.get(memory_id) is not None:
            raise InvalidInputError(f"memory_id {memory_id!r} is already used")
        return MemoryRecord(
            id=memory_id if memory_id is not None else new_id(),
            content=content,
            category=category,
            importance=check_importance(item.importance),
            user_id=user_id,
            session_id=check_id(item.session_id, name="session_id"),
            agent_id=check_id(item.agent_id, name="agent_id"),
            turn_id=check_id(item.turn_id, name="turn_id"),
            created_at=now,
            valid_from=valid_from,
            entity_refs=[str(e) for e in item.entity_refs],
            metadata=item.metadata,
            search_text=self._check_search_text(getattr(item, "search_text", None)),
            provenance=[provenance],
        )

    def _check_search_text(self, text: str | None) -> str | None:
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        return check_text(text, name="search_text", max_chars=self.config.max_content_chars * 4)

    def _find_twin(self, record: MemoryRecord, vector: Vector) -> MemoryRecord | None:
        return self._find_twins([record], np.asarray(vector).reshape(1, -1))[0]

    def _find_twins(
        self, records: Sequence[MemoryRecord], vectors: Vector, skip: Sequence[bool] | None = None
    ) -> list[MemoryRecord | None]:
        """For each record, a current memory of the same scope with the same normalised text
        or (``dedup_threshold``) a near-identical embedding; one vector call per user."""
        out: list[MemoryRecord | None] = [None] * len(records)
        near: list[int] = []
        for n, record in enumerate(records):
            if skip is not None and skip[n]:
                continue
            same = self.store.find_same_content(record)
            if same is not None:
                out[n] = same
            elif self.config.dedup_threshold < 1.0:
                near.append(n)
        if not near:
            return out
        scopes = [
            ScopeQuery(
                user_id=records[n].user_id,
                session_id=records[n].session_id,
                agent_id=records[n].agent_id,
                turn_id=records[n].turn_id,
                levels=(records[n].scope_level,),
            )
            for n in near
        ]
        rows = np.asarray(vectors)[near]
        finder = getattr(self.vector_index, "nearest_twins", None)
        if finder is not None:
            hits = finder(rows, scopes, self.config.dedup_threshold)
        else:
            hits = []
            for row, scope in zip(rows, scopes):
                got = self.vector_index.query(row, 1, scope)
                hits.append(got[0] if got and got[0][1] >= self.config.dedup_threshold else None)
        found = self.store.get_many([h[0] for h in hits if h is not None])
        for n, hit in zip(near, hits):
            if hit is not None:
                twin = found.get(hit[0])
                if twin is not None and twin.is_current and twin.user_id == records[n].user_id:
                    out[n] = twin
        return out

    def _merge_into(self, twin: MemoryRecord, new: MemoryRecord) -> MemoryRecord:
        boosted = max(twin.importance, new.importance)
        if new.importance >= twin.importance - 1e-9:
            boosted = min(1.0, boosted + self.config.dedup_importance_boost)
        merged = twin.model_copy(deep=True)
        merged.importance = boosted
        for p in new.provenance:
            if not any(
                (q.agent_id, q.source) == (p.agent_id, p.source) for q in merged.provenance
            ):
                merged.provenance.append(p)
        merged.entity_refs = list(dict.fromkeys([*merged.entity_refs, *new.entity_refs]))
        for key, value in new.metadata.items():
            merged.metadata.setdefault(key, value)
        with self.store.transaction():
            self.store.update(merged)
        return merged

    def _insert(self, items: Sequence[tuple[MemoryRecord, Vector]]) -> None:
        if not items:
            return
        records = [r for r, _ in items]
        docs = [IndexedDoc.of(r) for r in records]
        vectors = np.stack([v for _, v in items])
        with self.store.transaction():
            if hasattr(self.store, "insert_many"):
                self.store.insert_many(records)
            else:
                for r in records:
                    self.store.insert(r)
            self.text_index.upsert(docs)
            if self._vectors_in_tx:  # rows, keywords and vectors commit together
                self.vector_index.upsert(docs, vectors)
        if not self._vectors_in_tx:
            self.vector_index.upsert(docs, vectors)
            self.store.mark_synced([r.id for r in records])

    def _maybe_promote(
        self, record: MemoryRecord, vector: Vector | None = None
    ) -> MemoryRecord | None:
        """Promote a narrower-scope memory to user scope once, when important enough."""
        if (
            not self.config.bubbling
            or record.scope_level is ScopeLevel.USER
            or not record.is_current
            or record.importance < self.config.bubble_threshold
            or self.store.find_promoted_copy(record.id) is not None
        ):
            return None
        copy = MemoryRecord(
            content=record.content,
            category=record.category,
            importance=record.importance,
            user_id=record.user_id,
            valid_from=record.valid_from,
            promoted_from=record.id,
            entity_refs=list(record.entity_refs),
            metadata=dict(record.metadata),
            provenance=[*record.provenance, Provenance(agent_id=None, source="promotion")],
        )
        if vector is None:  # the copy has the source's text: reuse its vector when known
            vector = self.embedder.embed_documents([copy.content])[0]
        twin = self._find_twin(copy, vector) if self.config.dedup else None
        if twin is not None:
            return self._merge_into(twin, copy)
        self._insert([(copy, vector)])
        return copy

    def supersede(
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
        """Replace a current memory with a new version and return the new one.

        The old memory is closed (``valid_until``, ``superseded_by``, ``is_current=False``)
        but kept; the new one has ``supersedes`` set and inherits scope, category and
        importance unless given. A promoted copy of the old memory is superseded too.
        """
        self._alive()
        check_id(old_memory_id, name="old_memory_id", required=True)
        content = check_text(new_content, name="new_content", max_chars=self.config.max_content_chars)
        vector = self.embedder.embed_documents([content])[0]
        with self._write_lock:
            return self._supersede(
                old_memory_id, content, vector, category, importance, entity_refs, metadata,
                valid_from, provenance, promoted_from=None,
            )

    def _supersede(
        self,
        old_memory_id: str,
        content: str,
        vector: Vector,
        category: MemoryCategory | str | None,
        importance: float | None,
        entity_refs: Sequence[str] | None,
        metadata: dict[str, Any] | None,
        valid_from: datetime | None,
        provenance: Provenance | None,
        promoted_from: str | None,
    ) -> MemoryRecord:
        # Read, check and write under one BEGIN IMMEDIATE: another process superseding the
        # same memory waits for us and then sees it is no longer current.
        with self.store.transaction():
            old = self.store.get(old_memory_id)
            if old is None:
                raise MemoryNotFoundError(old_memory_id)
            if not old.is_current:
                raise AlreadySupersededError(
                    f"memory {old_memory_id} is no longer current (superseded by "
                    f"{old.superseded_by}); supersede the current version instead"
                )
            now = utcnow()
            start = valid_from or now
            if start.tzinfo is None:
                from datetime import timezone

                start = start.replace(tzinfo=timezone.utc)
            if start < old.valid_from:
                raise InvalidInputError(
                    f"valid_from {start.isoformat()} is before the old memory's valid_from "
                    f"{old.valid_from.isoformat()}"
                )
            try:
                new_category = MemoryCategory.parse(category) if category is not None else old.category
            except ValueError as exc:
                raise InvalidInputError(str(exc)) from None
            new = MemoryRecord(
                content=content,
                category=new_category,
                importance=check_importance(importance) if importance is not None else old.importance,
                user_id=old.user_id,
                session_id=old.session_id,
                agent_id=old.agent_id,
                turn_id=old.turn_id,
                created_at=now,
                valid_from=start,
                supersedes=old.id,
                promoted_from=promoted_from,
                entity_refs=list(entity_refs) if entity_refs is not None else list(old.entity_refs),
                metadata=dict(metadata) if metadata is not None else dict(old.metadata),
                provenance=[provenance or Provenance(agent_id=old.agent_id, source="api")],
            )
            old.is_current = False
            old.valid_until = start
            old.superseded_by = new.id
            self.store.update(old)
            self.store.mark_unsynced([old.id])
            self.store.insert(new)
            self.text_index.set_current([old.id], False)
            self.text_index.upsert([IndexedDoc.of(new)])
            if self._vectors_in_tx:
                self.vector_index.set_current([old.id], False, user_id=old.user_id)
                self.vector_index.upsert([IndexedDoc.of(new)], vector.reshape(1, -1))
        if not self._vectors_in_tx:
            self.vector_index.set_current([old.id], False, user_id=old.user_id)
            self.vector_index.upsert([IndexedDoc.of(new)], vector.reshape(1, -1))
            self.store.mark_synced([old.id, new.id])
        copy = self.store.find_promoted_copy(old.id)
        if copy is not None and copy.is_current:
            self._supersede(
                copy.id, content, vector, new.category, new.importance, new.entity_refs,
                new.metadata, start, Provenance(source="promotion"), promoted_from=new.id,
            )
        else:
            self._maybe_promote(new, vector)
        return new

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        category: MemoryCategory | str | None = None,
        importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryRecord:
        """Edit a memory in place (no new version; use ``supersede`` for changed facts).
        New content is re-embedded."""
        self._alive()
        check_id(memory_id, name="memory_id", required=True)
        with self._write_lock:
            record = self.store.get(memory_id)
            if record is None:
                raise MemoryNotFoundError(memory_id)
            changed_text = content is not None and content != record.content
            if content is not None:
                record.content = check_text(content, max_chars=self.config.max_content_chars)
            if category is not None:
                try:
                    record.category = MemoryCategory.parse(category)
                except ValueError as exc:
                    raise InvalidInputError(str(exc)) from None
            if importance is not None:
                record.importance = check_importance(importance)
            if entity_refs is not None:
                record.entity_refs = list(entity_refs)
            if metadata is not None:
                record.metadata = dict(metadata)
            vector = (
                self.embedder.embed_documents([record.content])[0]
                if changed_text
                else self.vector_index.get_vectors([record.id], user_id=record.user_id).get(
                    record.id
                )
            )
            if vector is None:
                vector = self.embedder.embed_documents([record.content])[0]
            with self.store.transaction():
                self.store.update(record)
                self.store.mark_unsynced([record.id])
                self.text_index.upsert([IndexedDoc.of(record)])
                if self._vectors_in_tx:
                    self.vector_index.upsert([IndexedDoc.of(record)], vector.reshape(1, -1))
            if not self._vectors_in_tx:
                self.vector_index.upsert([IndexedDoc.of(record)], vector.reshape(1, -1))
                self.store.mark_synced([record.id])
            self._maybe_promote(record)
            return record  # type: ignore[no-any-return]

    def delete(self, memory_id: str) -> bool:
        """Delete a memory (and its promoted copy). Returns False when no such id exists.

        Neighbours in its supersession chain are linked to each other.
        """
        self._alive()
        check_id(memory_id, name="memory_id", required=True)
        with self._write_lock:
            with self.store.transaction():  # read and write under one write lock
                record = self.store.get(memory_id)
                if record is None:
                    return False
                if record.supersedes:
                    pred = self.store.get(record.supersedes)
                    if pred is not None:
                        pred.superseded_by = record.superseded_by
                        self.store.update(pred)
                if record.superseded_by:
                    succ = self.store.get(record.superseded_by)
                    if succ is not None:
                        succ.supersedes = record.supersedes
                        self.store.update(succ)
                self.store.delete([memory_id])
                self.text_index.delete([memory_id])
                if self._vectors_in_tx:
                    self.vector_index.delete([memory_id], user_id=record.user_id)
            if not self._vectors_in_tx:
                self.vector_index.delete([memory_id], user_id=record.user_id)
            copy = self.store.find_promoted_copy(memory_id)
            if copy is not None:
                self.delete(copy.id)
            return True

    def clear(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        """Delete every memory of ``user_id`` at or under the given scope; returns how many.

        ``clear(user_id="u")`` empties the user; ``clear(user_id="u", session_id="s")``
        removes session ``s``'s memories (and its agents' and turns') but not user-level ones.
        """
        self._alive()
        scope = ScopeQuery(
            user_id=check_id(user_id, name="user_id", required=True) or "",
            session_id=check_id(session_id, name="session_id"),
            agent_id=check_id(agent_id, name="agent_id"),
            turn_id=check_id(turn_id, name="turn_id"),
        )
        with self._write_lock:
            with self.store.transaction():
                ids = self.store.delete_scope(scope, exact=False)
                self.text_index.delete(ids)
                if self._vectors_in_tx:
                    self.vector_index.delete(ids, user_id=scope.user_id)
            if not self._vectors_in_tx:
                self.vector_index.delete(ids, user_id=scope.user_id)
        return len(ids)

    # ------------------------------------------------------------------ reading
    def get(self, memory_id: str) -> MemoryRecord | None:
        """The memory with this id, or None."""
        self._alive()
        check_id(memory_id, name="memory_id", required=True)
        self._settle_accesses()
        return self.store.get(memory_id)  # type: ignore[no-any-return]

    def query(self, flt: MemoryFilter) -> list[MemoryRecord]:
        """Memories matching a filter, oldest first (no ranking, no embedding)."""
        self._alive()
        check_id(flt.user_id, name="user_id", required=True)
        check_id(flt.session_id, name="session_id")
        check_id(flt.agent_id, name="agent_id")
        check_id(flt.turn_id, name="turn_id")
        self._settle_accesses()
        return self.store.query(flt)  # type: ignore[no-any-return]

    def get_all(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        include_superseded: bool = False,
    ) -> list[MemoryRecord]:
        """Every memory of a user visible from the given scope (all scopes when only
        ``user_id`` is given)."""
        return self.query(
            MemoryFilter(
                user_id=user_id,
                session_id=session_id,
                agent_id=agent_id,
                all_scopes=session_id is None and agent_id is None,
                include_superseded=include_superseded,
            )
        )

    def users(self) -> list[str]:
        """Every user id that has at least one memory, sorted."""
        self._alive()
        return self.store.users()  # type: ignore[no-any-return]

    def iter_memories(self, user_id: str | None = None) -> Iterator[MemoryRecord]:
        """Every memory (of one user, or all), superseded ones included, in id order; read in
        batches so a large store is not loaded at once."""
        self._alive()
        self._settle_accesses()
        return self.store.iter_all(user_id=user_id)  # type: ignore[no-any-return]

    def get_history(self, memory_id: str) -> list[MemoryRecord]:
        """The whole supersession chain through ``memory_id``, oldest first."""
        self._alive()
        check_id(memory_id, name="memory_id", required=True)
        self._settle_accesses()
        record = self.store.get(memory_id)
        if record is None:
            raise MemoryNotFoundError(memory_id)
        seen = {record.id}
        chain = [record]
        current = record
        while current.supersedes and current.supersedes not in seen:
            prev = self.store.get(current.supersedes)
            if prev is None:
                break
            seen.add(prev.id)
            chain.insert(0, prev)
            current = prev
        current = record
        while current.superseded_by and current.superseded_by not in seen:
            nxt = self.store.get(current.superseded_by)
            if nxt is None:
                break
            seen.add(nxt.id)
            chain.append(nxt)
            current = nxt
        return chain

    def stats(self, user_id: str | None = None) -> MemoryStats:
        """Counts of memories: total, current, superseded, by category and scope level."""
        self._alive()
        return self.store.stats(user_id)  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> Vector:
        """The query embedding, from the LRU cache when this text was searched recently."""
        key = f"{self.embedder.name}\x00{text}"
        cached = self.cache.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        vector = self.embedder.embed_query(text)
        self.cache.put(key, vector)
        return vector

    def search(
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
        """The memories most relevant to ``query`` visible from the given scope.

        ``mode="hybrid"`` fuses vector similarity and BM25 keyword relevance
        (``MemoryConfig.fusion``); ``"vector"`` and ``"text"`` use one side. On top of that,
        in every mode: memories whose ``entity_refs`` the query names (``entity_weight``),
        memories valid in a period the query names, such as "in May 2023" or "last week"
        (``date_weight``), and optionally importance and recency rank higher.
        ``min_similarity`` drops results whose cosine similarity to the query
        is lower. ``all_scopes=True`` searches every memory of the user, whatever its
        session, agent or turn (for administration and listing). Any string is a valid query.
        """
        self._alive()
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, not {type(query).__name__}")
        if mode not in ("hybrid", "vector", "text"):
            raise InvalidInputError(f"mode must be 'hybrid', 'vector' or 'text', not {mode!r}")
        top_k = check_top_k(top_k)
        scope = ScopeQuery(
            user_id=check_id(user_id, name="user_id", required=True) or "",
            session_id=check_id(session_id, name="session_id"),
            agent_id=check_id(agent_id, name="agent_id"),
            turn_id=check_id(turn_id, name="turn_id"),
            levels=tuple(ScopeLevel(lv) for lv in levels) if levels else None,
            include_superseded=include_superseded,
            all_scopes=all_scopes,
        )
        try:
            cats = [MemoryCategory.parse(c).value for c in categories] if categories else None
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        if "\x00" in query:
            query = query.replace("\x00", " ")
        # lone surrogates cannot reach the tokenizer or SQLite: make them U+FFFD
        query = query.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        n = max(top_k * self.config.candidate_multiplier, self.config.min_candidates)
        asked = query  # names and dates are read from the whole query
        query = self._without_common_terms(query, scope.user_id)
        candidates: dict[str, Candidate] = {}
        qvec: Vector | None = None
        vector_hits: list[tuple[str, float, float]] = []  # (id, rank score, cosine)
        text_hits: list[tuple[str, float]] = []
        need_vector = (mode != "text" or min_similarity is not None) and bool(query.strip())
        side: Future[tuple[Vector, list[tuple[str, float, float]]]] | None = None
        if need_vector and mode == "hybrid":
            side = self._submit_side(self._vector_side, query, n, scope, cats, True)
        if need_vector and side is None:
            qvec, vector_hits = self._vector_side(query, n, scope, cats, mode != "text")
        briefs = getattr(self.store, "get_briefs", None)
        read_rows = briefs if briefs is not None else self.store.get_many
        records: dict[str, MemoryRecord | MemoryBrief] = {}
        if mode != "vector":
            try:
                text_hits = self.text_index.search(query, n, scope, cats)
                if side is not None and text_hits:
                    # the vector side is still running (the query embedding alone takes
                    # longer than the keyword search): read the keyword hits' rows meanwhile
                    records.update(read_rows([mid for mid, _ in text_hits]))
            except BaseException:
                if side is not None:
                    wait_futures([side])  # never leave the other side running on its own
                raise
        if side is not None:
            qvec, vector_hits = side.result()
        for rank, (mid, score, sim) in enumerate(vector_hits, 1):
            candidates[mid] = Candidate(mid, vector_rank=rank, similarity=sim, vector_score=score)
        for rank, (mid, bm25) in enumerate(text_hits, 1):
            cand = candidates.setdefault(mid, Candidate(mid))
            cand.text_rank = rank
            cand.text_score = bm25
        if not candidates:
            return []
        unread = [mid for mid in candidates if mid not in records]
        if unread:
            records.update(read_rows(unread))
        if qvec is not None and min_similarity is not None:
            # keyword-only hits have no similarity yet: the floor needs one
            missing = [m for m, c in candidates.items() if c.similarity is None and m in records]
            for mid, vec in self.vector_index.get_vectors(missing, user_id=scope.user_id).items():
                candidates[mid].similarity = float(np.dot(vec, qvec))
        now = utcnow()
        w = self.weights
        fused = relevance(candidates.values(), w)
        names = QueryNames(asked) if w.entity else None
        period = query_period(asked, now) if w.date else None
        kept: list[tuple[MemoryRecord | MemoryBrief, Candidate, float]] = []
        any_named = False
        for mid, cand in candidates.items():
            record = records.get(mid)
            if record is None or not scope.sees(record):
                continue  # index drift or a foreign record: SQLite has the last word
            if cats is not None and record.category.value not in cats:
                continue
            if min_importance is not None and record.importance < min_importance:
                continue
            if min_similarity is not None and (cand.similarity or 0.0) < min_similarity:
                continue
            score = fused[mid]
            if w.importance:
                score += w.importance * record.importance
            if w.recency:
                score += w.recency * recency_factor(record.created_at, now, w.recency_half_life_days)
            if names and record.entity_refs and names.names_any(record.entity_refs):
                score += w.entity
                any_named = True
            if period is not None and period.holds(record.valid_from):
                score += w.date
            kept.append((record, cand, score))
        best = w.best_possible + (w.entity if any_named else 0.0) + (w.date if period else 0.0)
        scored = [
            (min(1.0, score / best) if best else 0.0, record, cand) for record, cand, score in kept
        ]
        scored.sort(key=lambda t: (-t[0], -(t[2].similarity or 0.0), t[1].id))
        # A promoted copy and its source both visible: show the memory once (the source).
        found = {record.id for _, record, _ in scored}
        scored = [t for t in scored if t[1].promoted_from not in found]
        full = self._full_records([record for _, record, _ in scored], top_k)
        results = [
            SearchResult(
                memory=full[record.id],
                score=score,
                similarity=cand.similarity,
                text_rank=cand.text_rank,
                vector_rank=cand.vector_rank,
            )
            for score, record, cand in scored
            if record.id in full
        ][:top_k]
        if self.config.track_access and results:
            ids = [r.memory.id for r in results]
            if self._accesses is None:
                self.store.record_access(ids, now)
            for r in results:
                if self._accesses is not None:
                    r.memory.access_count += self._accesses.owed(r.memory.id)
                r.memory.access_count += 1
                r.memory.last_accessed = now
            if self._accesses is not None:
                self._accesses.note(ids, now)
        return results

    def _settle_accesses(self) -> None:
        """Write the access counts searches owe, before a read that returns records."""
        if self._accesses is not None:
            self._accesses.flush()

    def _full_records(
        self, ranked: Sequence[MemoryRecord | MemoryBrief], top_k: int
    ) -> dict[str, MemoryRecord]:
        """The full records of the best ``top_k`` of ``ranked`` (briefs or records, best
        first). Briefs are read in full now; one deleted since its brief was read is passed
        over for the next one."""
        full: dict[str, MemoryRecord] = {}
        start = 0
        while len(full) < top_k and start < len(ranked):
            need = top_k - len(full)
            chunk = ranked[start : start + need]
            start += need
            briefs = [r for r in chunk if not isinstance(r, MemoryRecord)]
            full.update((r.id, r) for r in chunk if isinstance(r, MemoryRecord))
            if briefs:
                full.update(self.store.get_many([b.id for b in briefs]))
        return full

    def _vector_side(
        self,
        query: str,
        n: int,
        scope: ScopeQuery,
        cats: list[str] | None,
        with_hits: bool,
    ) -> tuple[Vector, list[tuple[str, float, float]]]:
        """The query embedding and (``with_hits``) the ``n`` best visible memories of the
        vector side: (id, rank score, cosine), ranked in their context
        (``MemoryConfig.vector_context_before``) when the index can, else by cosine."""
        qvec = self.embed_query(query)
        if not with_hits:
            return qvec, []
        window = self._context_window
        in_context = getattr(self.vector_index, "query_in_context", None)
        if window is not None and in_context is not None:
            return qvec, list(in_context(qvec, n, scope, cats, window))
        return qvec, [(mid, sim, sim) for mid, sim in self.vector_index.query(qvec, n, scope, cats)]

    def _submit_side(self, fn: Any, *args: Any) -> Future[Any] | None:
        """``fn(*args)`` started on the engine's worker threads, or None when it must run on
        the calling thread: ``parallel_search`` is off, the store is closing, or the caller
        is inside a store transaction (a worker waiting for that lock would never get it)."""
        if not self.config.parallel_search:
            return None
        in_tx = getattr(self.store, "in_transaction", None)
        if callable(in_tx) and in_tx():
            return None
        with self._side_pool_lock:
            if self._closed:
                return None
            if self._side_pool is None:
                self._side_pool = ThreadPoolExecutor(
                    max_workers=self.config.async_workers, thread_name_prefix="headroom-search"
                )
            return self._side_pool.submit(fn, *args)

    def _without_common_terms(self, query: str, user_id: str) -> str:
        """``query`` without the words most of the user's memories hold (see
        ``MemoryConfig.common_term_ratio``); the query itself when the index cannot tell."""
        ratio = self.config.common_term_ratio
        finder = getattr(self.text_index, "common_terms", None)
        if ratio >= 1.0 or finder is None or not query.strip():
            return query
        common = finder(query, user_id, ratio=ratio)
        return strip_words(query, common) if common else query

    def text_search(
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
        """Keyword-only (BM25) search; no embedding is computed."""
        return self.search(
            query,
            user_id=user_id,
            session_id=session_id,
            agent_id=agent_id,
            turn_id=turn_id,
            top_k=top_k,
            categories=categories,
            include_superseded=include_superseded,
            mode="text",
        )

    # ------------------------------------------------------------------ maintenance
    def check_consistency(self, full: bool = True) -> ConsistencyReport:
        """Compare the vector and keyword indexes with SQLite.

        ``full=False`` (used on open) compares counts and the write journal first and
        lists ids only when something differs. Queued vector writes are applied first, so
        only memories whose vector write really failed (or another process's writes in
        flight) show as unsynced.
        """
        from .maintenance import check_consistency

        self._alive()
        return check_consistency(self, full=full)

    def repair(self, report: ConsistencyReport | None = None) -> ConsistencyReport:
        """Bring the indexes back in line with SQLite; returns what was found before.
        Returns once the vector index has the repaired vectors (``VectorSyncError`` if
        writing them failed)."""
        from .maintenance import repair

        self._alive()
        with self._write_lock:
            return repair(self, report)

    def reindex(self, progress: Any = None) -> int:
        """Rebuild the vector and keyword indexes from SQLite; returns how many memories."""
        from .maintenance import reindex

        self._alive()
        with self._write_lock:
            return reindex(self, progress=progress)

    def export_jsonl(self, destination: str | IO[str], *, user_id: str | None = None) -> int:
        """Write every memory (of one user, or all) as JSON lines; returns how many."""
        from .maintenance import export_jsonl

        self._alive()
        check_id(user_id, name="user_id")
        return export_jsonl(self, destination, user_id=user_id)

    def import_jsonl(
        self,
        source: str | IO[str],
        *,
        on_conflict: Literal["skip", "replace", "error"] = "skip",
        progress: Any = None,
    ) -> int:
        """Read memories written by ``export_jsonl`` (every field kept, ids included) and
        index them; returns how many were written. Every line is validated before anything
        is written: a bad line raises ``InvalidInputError`` naming its number."""
        from .maintenance import import_jsonl

        self._alive()
        with self._write_lock:
            return import_jsonl(self, source, on_conflict=on_conflict, progress=progress)


def _as_input(item: MemoryInput | dict[str, Any], index: int) -> MemoryInput:
    if isinstance(item, MemoryInput):
        return item
    if not isinstance(item, dict):
        raise InvalidInputError(f"item {index} must be a MemoryInput or a dict, not {type(item).__name__}")
    try:
        return MemoryInput(**item)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"item {index}: {where}: {first['msg']}") from None


def _scope_key(record: MemoryRecord) -> tuple[Any, ...]:
    return (record.user_id, record.session_id, record.agent_id, record.turn_id)


def _norm_key(text: str) -> str:
    from ..storage.sqlite_store import normalize_content

    return normalize_content(text)
