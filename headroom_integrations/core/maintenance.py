"""Keeping the indexes honest: consistency checks, repair, reindex, JSONL export/import."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from .errors import InvalidInputError
from .models import MemoryRecord
from .ports import IndexedDoc

if TYPE_CHECKING:
    from .engine import ConsistencyReport, SyncHierarchicalMemory

Progress = Callable[[int, int], None]
_BATCH = 256


def check_consistency(engine: SyncHierarchicalMemory, *, full: bool) -> ConsistencyReport:
    from .engine import ConsistencyReport

    store = engine.store
    n_mem = store.count()
    n_vec = engine.vector_index.count()
    n_txt = engine.text_index.count()
    unsynced = list(store.unsynced_ids())
    report = ConsistencyReport(memories=n_mem, vectors=n_vec, keywords=n_txt, unsynced=unsynced)
    if not full and n_mem == n_vec == n_txt:
        return report
    truth = store.all_ids()
    vec_ids = engine.vector_index.all_ids()
    txt_ids = engine.text_index.all_ids()
    report.missing_vectors = sorted(truth - vec_ids)
    report.orphan_vectors = sorted(vec_ids - truth)
    report.missing_keywords = sorted(truth - txt_ids)
    report.orphan_keywords = sorted(txt_ids - truth)
    return report


def repair(
    engine: SyncHierarchicalMemory, report: ConsistencyReport | None = None
) -> ConsistencyReport:
    if report is None:
        report = check_consistency(engine, full=True)
    if report.orphan_vectors:
        engine.vector_index.delete(report.orphan_vectors)
    if report.orphan_keywords:
        engine.text_index.delete(report.orphan_keywords)
    to_vector = sorted(set(report.missing_vectors) | set(report.unsynced))
    for start in range(0, len(to_vector), _BATCH):
        records = list(engine.store.get_many(to_vector[start : start + _BATCH]).values())
        _index(engine, records, text=False)
    to_text = report.missing_keywords
    for start in range(0, len(to_text), _BATCH):
        records = list(engine.store.get_many(to_text[start : start + _BATCH]).values())
        engine.text_index.upsert([IndexedDoc.of(r) for r in records])
    return report


def _index(engine: SyncHierarchicalMemory, records: list[MemoryRecord], *, text: bool) -> None:
    if not records:
        return
    docs = [IndexedDoc.of(r) for r in records]
    vectors = engine.embedder.embed_documents([r.content for r in records])
    if text:
        engine.text_index.upsert(docs)
    engine.vector_index.upsert(docs, vectors)
    engine.store.mark_synced([r.id for r in records])


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
    return total
