"""Keeping the indexes honest: consistency checks, repair, reindex, JSONL export/import."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import ValidationError

from .errors import InvalidInputError
from .models import MemoryRecord
from .ports import IndexedDoc

if TYPE_CHECKING:
    from .engine import ConsistencyReport, SyncHierarchicalMemory

Progress = Callable[[int, int], None]
_BATCH = 256


def check_consistency(engine: SyncHierarchicalMemory, *, full: bool) -> ConsistencyReport:
    """Compare the indexes with SQLite, safely while other threads or processes write.

    Every write commits to SQLite (rows and FTS5 keywords, one transaction) before it touches
    the vector index, and deletes leave SQLite first too. So the vector ids are read *first*,
    then SQLite's ids and keyword ids inside one transaction (one consistent snapshot): a
    memory written meanwhile by another process can show as a missing vector (re-indexing it
    is idempotent) but never as an orphan keyword or orphan vector (deleting those would lose
    another writer's index entries).

    This process's queued vector writes are applied first (``wait``), so they never show
    as unsynced or missing; another process's writes still in its queue can (repairing
    them is idempotent too).
    """
    from .engine import ConsistencyReport

    engine._wait_vectors()
    store = engine.store
    if not full:
        # Cheap, on every open: the write journal (unsynced rows), keyword count against
        # SQLite, and whether the vector index lost everything. No per-partition counts.
        with _snapshot(engine):
            n_mem = store.count()
            n_txt = engine.text_index.count()
            unsynced = list(store.unsynced_ids())
        empty = getattr(engine.vector_index, "is_empty", None)
        vectors_gone = n_mem > 0 and callable(empty) and bool(empty())
        if n_mem == n_txt and not vectors_gone:
            return ConsistencyReport(
                memories=n_mem, vectors=None, keywords=n_txt, unsynced=unsynced
            )
    n_vec = engine.vector_index.count()
    vec_ids = engine.vector_index.all_ids()
    with _snapshot(engine):
        n_mem = store.count()
        n_txt = engine.text_index.count()
        unsynced = list(store.unsynced_ids())
        truth = store.all_ids()
        txt_ids = engine.text_index.all_ids()
    report = ConsistencyReport(memories=n_mem, vectors=n_vec, keywords=n_txt, unsynced=unsynced)
    # Vectors were read before the snapshot: one written meanwhile by another process shows
    # as missing (re-indexing is idempotent), never as an orphan.
    orphan_vectors = vec_ids - truth
    report.missing_vectors = sorted(truth - vec_ids)
    report.orphan_vectors = sorted(orphan_vectors)
    report.missing_keywords = sorted(truth - txt_ids)
    report.orphan_keywords = sorted(txt_ids - truth)
    return report


def _snapshot(engine: SyncHierarchicalMemory) -> Any:
    """A transaction on the store (a consistent view of rows and keywords), if it has one."""
    transaction = getattr(engine.store, "transaction", None)
    return transaction() if callable(transaction) else nullcontext()


def repair(
    engine: SyncHierarchicalMemory, report: ConsistencyReport | None = None
) -> ConsistencyReport:
    """Bring the indexes in line with SQLite; returns what was found before.

    Safe while other processes write to the same store: orphans and missing keywords are
    re-checked and fixed inside one SQLite write transaction (so a concurrent writer's fresh
    entries are never taken for orphans), and vectors are re-embedded outside it, then written
    only for memories still present with the same text.
    """
    if report is None:
        report = check_consistency(engine, full=True)
    else:
        engine._wait_vectors()
    if report.ok:
        return report
    with _snapshot(engine):
        # Re-check under the write lock: ``report`` may be stale when other processes write.
        vec_ids = engine.vector_index.all_ids()
        truth = engine.store.all_ids()
        txt_ids = engine.text_index.all_ids()
        orphan_vectors = sorted(vec_ids - truth)
        orphan_keywords = sorted(txt_ids - truth)
        if orphan_vectors:
            engine.vector_index.delete(orphan_vectors)
        if orphan_keywords:
            engine.text_index.delete(orphan_keywords)
        to_text = sorted(truth - txt_ids)
        for start in range(0, len(to_text), _BATCH):
            records = list(engine.store.get_many(to_text[start : start + _BATCH]).values())
            engine.text_index.upsert([IndexedDoc.of(r) for r in records])
        to_vector = sorted((truth - vec_ids) | set(engine.store.unsynced_ids()))
    for start in range(0, len(to_vector), _BATCH):
        records = list(engine.store.get_many(to_vector[start : start + _BATCH]).values())
        _index_if_unchanged(engine, records)
    _flush(engine)
    return report


def _flush(engine: SyncHierarchicalMemory) -> None:
    """Apply the vector index's queued writes; raise if any failed (``VectorSyncError``)."""
    flush = getattr(engine.vector_index, "flush", None)
    if callable(flush):
        flush()


def _write_vectors(
    engine: SyncHierarchicalMemory, records: list[MemoryRecord], vectors: Any
) -> None:
    """Index these memories' vectors and flag them synced (an index that writes its slow
    copy later flags them itself, once that copy has them)."""
    engine.vector_index.upsert([IndexedDoc.of(r) for r in records], np.asarray(vectors))
    if not engine._vectors_in_tx:
        engine.store.mark_synced([r.id for r in records])


def _index_if_unchanged(engine: SyncHierarchicalMemory, records: list[MemoryRecord]) -> None:
    """Embed ``records`` (no lock held), then index those still stored with the same text."""
    if not records:
        return
    vectors = engine.embedder.embed_documents([r.content for r in records])
    with _snapshot(engine):
        now = engine.store.get_many([r.id for r in records])
        keep = [
            n for n, r in enumerate(records) if r.id in now and now[r.id].content == r.content
        ]
        if not keep:
            return
        fresh = [now[records[n].id] for n in keep]
        _write_vectors(engine, fresh, np.asarray(vectors)[keep])


def _index(engine: SyncHierarchicalMemory, records: list[MemoryRecord], *, text: bool) -> None:
    if not records:
        return
    vectors = engine.embedder.embed_documents([r.content for r in records])
    if text:
        engine.text_index.upsert([IndexedDoc.of(r) for r in records])
    _write_vectors(engine, records, vectors)


def reindex(engine: SyncHierarchicalMemory, *, progress: Progress | None = None) -> int:
    total = engine.store.count()
    engine.vector_index.reset()
    engine.text_index.reset()
    done = 0
    batch: list[MemoryRecord] = []
    for record in engine.store.iter_all():
        batch.append(record)
        if len(batch) >= _BATCH:
            _index(engine, batch, text=True)
            done += len(batch)
            batch = []
            if progress:
                progress(done, total)
    _index(engine, batch, text=True)
    done += len(batch)
    if progress:
        progress(done, total)
    _flush(engine)
    engine.store.set_meta("embedder", engine.embedder.name)
    engine.store.set_meta("embedding_dim", str(engine.embedder.dimension))
    engine.cache.clear()
    return done


def export_jsonl(
    engine: SyncHierarchicalMemory, destination: str | IO[str], *, user_id: str | None
) -> int:
    ctx: Any = (
        open(destination, "w", encoding="utf-8")
        if isinstance(destination, str)
        else nullcontext(destination)
    )
    engine._wait_vectors()  # a backup taken now has nothing left in flight
    engine._settle_accesses()
    n = 0
    with ctx as fh:
        for record in engine.store.iter_all(user_id=user_id):
            fh.write(record.model_dump_json() + "\n")
            n += 1
    return n


def import_jsonl(
    engine: SyncHierarchicalMemory,
    source: str | IO[str],
    *,
    on_conflict: Literal["skip", "replace", "error"],
    progress: Progress | None = None,
) -> int:
    if on_conflict not in ("skip", "replace", "error"):
        raise InvalidInputError(f"on_conflict must be skip, replace or error, not {on_conflict!r}")
    ctx: Any = open(source, encoding="utf-8") if isinstance(source, str) else nullcontext(source)
    records: list[MemoryRecord] = []
    with ctx as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(MemoryRecord.model_validate(json.loads(line)))
            except (ValueError, ValidationError) as exc:
                raise InvalidInputError(
                    f"line {lineno} of the import is not a memory record: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
    existing = engine.store.get_many([r.id for r in records])
    if existing and on_conflict == "error":
        raise InvalidInputError(
            f"{len(existing)} imported ids already exist (first: {next(iter(existing))}); "
            "pass on_conflict='skip' or 'replace'"
        )
    if on_conflict == "skip":
        records = [r for r in records if r.id not in existing]
    total = len(records)
    for start in range(0, total, _BATCH):
        batch = records[start : start + _BATCH]
        with engine.store.transaction():
            for record in batch:
                if record.id in existing:
                    engine.store.update(record)
                else:
                    engine.store.insert(record)
            engine.text_index.upsert([IndexedDoc.of(r) for r in batch])
        _index(engine, batch, text=False)
        if progress:
            progress(min(start + _BATCH, total), total)
    _flush(engine)
    return total
