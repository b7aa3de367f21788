"""A search ranks its candidates on brief rows (``MemoryStore.get_briefs``) and reads the full
records of its results only: same results as reading every candidate in full, full records
returned, and a result deleted between the two reads is replaced by the next one.
Real SQLite, Chroma and ONNX model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.ports import MemoryBrief

FACTS = [
    ("Ann's cat is called Miso and sleeps on the radiator", ["Ann"], "preference"),
    ("Ann adopted a second cat, a tabby named Pixel", ["Ann"], "fact"),
    ("Bob feeds the neighbour's cat when they travel", ["Bob"], "fact"),
    ("The team deploys to production every Friday afternoon", [], "decision"),
    ("Cats at the shelter need fosters over the winter", [], "context"),
    ("Ann is allergic to dogs but not to cats", ["Ann"], "fact"),
    ("Priya is learning Rust to rewrite the ingest service", ["Priya"], "insight"),
    ("Miso the cat had a vet visit on Tuesday", ["Ann"], "fact"),
]
QUERIES = ["what is Ann's cat called?", "who looks after the cat?", "when does the team deploy to production", "Rust"]


class FullReadsOnly:
    """The same store without ``get_briefs``: the engine reads every candidate in full."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "get_briefs":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _fill(memory: SyncHierarchicalMemory) -> list[str]:
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    ids = []
    for n, (text, who, cat) in enumerate(FACTS):
        ids.append(memory.add(
            text, user_id="u", session_id="s1" if n % 3 == 0 else None, entity_refs=who,
            category=cat, importance=0.3 + 0.05 * n, metadata={"n": n},
            valid_from=start + timedelta(hours=3 * n),
        ).id)
    return ids


@pytest.fixture
def memory(tmp_path: Any, embedder: Any) -> Any:
    mem = SyncHierarchicalMemory.create(
        MemoryConfig(db_path=str(tmp_path / "m.db"), dedup=False, track_access=False),
        embedder=embedder,
    )
    _fill(mem)
    yield mem
    mem.close()


def _view(results: Sequence[Any]) -> list[tuple[str, float, int | None, int | None]]:
    return [(r.memory.id, round(r.score, 9), r.text_rank, r.vector_rank) for r in results]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_briefs_rank_as_full_records_do(memory: Any, mode: str) -> None:
    full_reads = FullReadsOnly(memory.store)
    found = 0
    for query in QUERIES:
        for scope in ({}, {"session_id": "s1"}):
            briefed = memory.search(query, user_id="u", top_k=4, mode=mode, **scope)
            memory.store = full_reads
            try:
                plain = memory.search(query, user_id="u", top_k=4, mode=mode, **scope)
            finally:
                memory.store = full_reads._inner
            assert _view(briefed) == _view(plain), (query, scope)
            found += bool(briefed)
    assert found >= 6  # of 8 (the deploy fact is in session s1, out of the user scope)


def test_results_are_full_records(memory: Any) -> None:
    hits = memory.search("what is Ann's cat called?", user_id="u", top_k=3)
    for hit in hits:
        stored = memory.store.get(hit.memory.id)
        assert hit.memory == stored  # content, metadata, provenance: everything
        assert hit.memory.provenance and hit.memory.metadata["n"] >= 0


def test_briefs_hold_the_records_fields(memory: Any) -> None:
    ids = [r.id for r in memory.store.iter_all()]
    briefs = memory.store.get_briefs(ids + ["no-such-id"])
    assert set(briefs) == set(ids)
    for mid, brief in briefs.items():
        assert isinstance(brief, MemoryBrief)
        rec = memory.store.get(mid)
        for field in ("user_id", "session_id", "agent_id", "turn_id", "category", "importance",
                      "created_at", "valid_from", "is_current", "promoted_from", "entity_refs",
                      "scope_level"):
            assert getattr(brief, field) == getattr(rec, field), field


def test_a_result_deleted_between_the_reads_is_replaced(memory: Any) -> None:
    query = "what is Ann's cat called?"
    before = memory.search(query, user_id="u", top_k=3)
    gone = before[0].memory.id
    real_get_many = memory.store.get_many

    def get_many_after_a_delete(ids: Sequence[str]) -> dict[str, Any]:
        return {k: v for k, v in real_get_many(ids).items() if k != gone}

    memory.store.get_many = get_many_after_a_delete  # the row vanished after its brief was read
    try:
        after = memory.search(query, user_id="u", top_k=3)
    finally:
        del memory.store.get_many
    assert [r.memory.id for r in after] == [r.memory.id for r in before[1:]] + [after[2].memory.id]
    assert gone not in {r.memory.id for r in after} and len(after) == 3
