"""Chroma writes leave the request path: a writer thread applies them, in order, later.

A memory is searchable as soon as ``add`` returns (the in-process matrix and the SQLite copy
are written in the add's transaction); Chroma gets it from the writer thread, which then
flags the memory synced. These tests use the real engine, SQLite, Chroma and ONNX model; to
hold writes in the queue they give the writer a long batching delay (``flush`` ignores it).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from headroom_integrations import HierarchicalMemory, MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.ports import ScopeQuery, VectorSyncError
from headroom_integrations.storage.chroma_index import ChromaVectorIndex

ROOT = Path(__file__).resolve().parents[2]



def _spy_chroma_calls(index) -> list[str]:
    """Record the names of the Chroma collection methods ``index`` calls from now on."""
    calls: list[str] = []
    real = index._col

    def spy(method, *args, **kwargs):
        calls.append(method)
        return real(method, *args, **kwargs)

    index._col = spy
    return calls

def _hold(engine: SyncHierarchicalMemory, seconds: float = 600.0) -> ChromaVectorIndex:
    """Keep queued writes queued (until flush) by giving the writer a long batching delay."""
    index = engine.vector_index
    assert isinstance(index, ChromaVectorIndex) and index._writer is not None
    index._writer.delay = index._writer.quiet = seconds
    return index


def _in_chroma(engine: SyncHierarchicalMemory, ids: list[str]) -> dict[str, dict]:
    got = engine.vector_index.collection.get(ids=ids, include=["metadatas"])
    return dict(zip(got["ids"], got["metadatas"]))


def test_an_added_memory_is_searchable_before_chroma_has_it(memory):
    index = _hold(memory)
    memory.add("Keeps a pet tortoise named Sheldon", user_id="u")
    rec = memory.add("Plays the cello in a community orchestra", user_id="u")
    assert _in_chroma(memory, [rec.id]) == {}  # still queued
    assert memory.store.unsynced_ids() != []
    hits = memory.search("which instrument does the user play", user_id="u", mode="vector")
    assert hits[0].id == rec.id
    memory.flush()
    assert set(_in_chroma(memory, [rec.id])) == {rec.id}
    assert memory.store.unsynced_ids() == []
    assert index._writer is not None and not index._writer.queue


def test_the_writer_thread_is_a_daemon_and_batches(memory):
    index = _hold(memory)
    records = [memory.add(f"note number {i} about the garden shed", user_id="u", dedup=False)
               for i in range(5)]
    writer = index._writer
    assert writer is not None and writer.thread is not None and writer.thread.daemon
    before = writer.batches
    memory.flush()
    assert writer.batches - before == 1  # five adds, one Chroma call
    assert set(_in_chroma(memory, [r.id for r in records])) == {r.id for r in records}


def test_add_then_delete_at_once_leaves_nothing_in_chroma(memory):
    _hold(memory)
    a = memory.add("Parks the car on level 3", user_id="u")
    b = memory.add("Drinks oat milk", user_id="u")
    assert memory.delete(a.id)
    memory.flush()
    assert set(_in_chroma(memory, [a.id, b.id])) == {b.id}
    # and the other way round: in Chroma first, then deleted
    assert memory.delete(b.id)
    memory.flush()
    assert _in_chroma(memory, [b.id]) == {}
    assert memory.check_consistency().ok


def test_a_delete_queued_behind_an_applied_upsert_wins(memory):
    """The writer takes an add's batch, then the memory is deleted before the next batch:
    the later batch deletes it; nothing re-adds it."""
    index = _hold(memory, 0.0)
    rec = memory.add("Collects stamps from Iceland", user_id="u")
    memory.flush()
    _hold(memory)
    memory.supersede(rec.id, "Collects stamps from Norway")
    memory.delete(rec.id)
    memory.flush()
    assert _in_chroma(memory, [rec.id]) == {}
    assert index.rows.get([rec.id]) == {}
    assert memory.check_consistency().ok


def test_supersede_reaches_chroma_with_the_old_version_closed(memory):
    _hold(memory)
    old = memory.add("Lives in Porto", user_id="u")
    new = memory.supersede(old.id, "Lives in Lisbon")
    memory.flush()
    meta = _in_chroma(memory, [old.id, new.id])
    assert meta[old.id]["is_current"] is False and meta[new.id]["is_current"] is True
    assert memory.check_consistency().ok


def test_check_consistency_and_export_wait_for_the_queue(memory, tmp_path):
    _hold(memory)
    for i in range(3):
        memory.add(f"queued memory {i} about sailing", user_id="u", dedup=False)
    report = memory.check_consistency()
    assert report.ok and report.unsynced == [] and report.vectors == 3
    memory.add("one more about rowing", user_id="u")
    assert memory.export_jsonl(str(tmp_path / "x.jsonl")) == 4
    assert memory.vector_index.count() == 4


def test_close_applies_the_queue(db_path, embedder):
    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    _hold(engine)
    ids = [engine.add(f"memory {i} written just before close", user_id="u", dedup=False).id
           for i in range(4)]
    engine.close()
    with SyncHierarchicalMemory.create(
        MemoryConfig(db_path=db_path, check_drift_on_open=False), embedder=embedder
    ) as again:
        assert again.store.unsynced_ids() == []
        assert set(_in_chroma(again, ids)) == set(ids)


async def test_async_flush(db_path, embedder):
    mem = await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    try:
        _hold(mem.sync)
        rec = await mem.add("Async memory about kayaking", user_id="u")
        assert _in_chroma(mem.sync, [rec.id]) == {}
        await mem.flush()
        assert set(_in_chroma(mem.sync, [rec.id])) == {rec.id}
    finally:
        await mem.close()


def test_flush_inside_a_transaction_is_refused(memory):
    with memory.store.transaction():
        with pytest.raises(RuntimeError, match="deadlock"):
            memory.vector_index.flush()


class _FailingWrites:
    """Chroma's collection, except that writes raise (a server that went away)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        if name in ("upsert", "delete", "update", "add"):
            def fail(*args, **kwargs):
                raise ConnectionError("chroma is unreachable")
            return fail
        return getattr(self.inner, name)


def test_a_failed_write_is_raised_by_flush_and_repaired_on_open(db_path, embedder, caplog):
    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    index = engine.vector_index
    real = index.collection
    index.collection = _FailingWrites(real)
    rec = engine.add("Was born in Montreal", user_id="u")
    # still searchable: the vector is in SQLite and in this process's matrix
    assert engine.search("birthplace city", user_id="u", mode="vector")[0].id == rec.id
    with pytest.raises(VectorSyncError, match="1 queued vector writes to Chroma failed"):
        engine.flush()
    engine.flush()  # reported once
    assert engine.store.unsynced_ids() == [rec.id]
    # a failure not collected by flush() is logged by close(), not raised
    rec2 = engine.add("Works night shifts", user_id="u")
    with caplog.at_level(logging.WARNING):
        engine.close()
    assert any("failed vector writes" in r.getMessage() for r in caplog.records)
    assert sorted(_in_chroma_direct(db_path, [rec.id, rec2.id])) == []
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        assert m.store.unsynced_ids() == []
        assert sorted(_in_chroma(m, [rec.id, rec2.id])) == sorted([rec.id, rec2.id])
        assert m.check_consistency().ok


def _in_chroma_direct(db_path: str, ids: list[str]) -> list[str]:
    from headroom_integrations.storage.chroma_index import make_chroma_client

    client = make_chroma_client(path=MemoryConfig(db_path=db_path).resolved_vector_path())
    got = client.get_collection(MemoryConfig().collection_name).get(ids=ids, include=[])
    return list(got["ids"])


_CHILD = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {root!r})
    from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path={db!r}),
                                           embedder=FastEmbedEmbedder())
    w = engine.vector_index._writer
    w.delay = w.quiet = 600  # the writer holds them: nothing reaches Chroma
    ids = [engine.add(f"child memory {{i}} about {{t}}", user_id="u", dedup=False).id
           for i, t in enumerate(["tea", "ships", "maps"])]
    print(json.dumps(ids), flush=True)
    if {mode!r} == "crash":
        os._exit(0)  # no close(), no atexit: as SIGKILL
    # a normal exit without close(): the atexit hook applies the queue
    """
)


def _child(db_path: str, mode: str) -> list[str]:
    code = _CHILD.format(root=str(ROOT), db=db_path, mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_crash_with_writes_queued_is_repaired_on_open(db_path, embedder):
    ids = _child(db_path, "crash")
    import sqlite3

    con = sqlite3.connect(db_path)
    flags = dict(con.execute("SELECT id, vector_synced FROM memories").fetchall())
    vec_rows = con.execute("SELECT count(*) FROM vector_rows").fetchone()[0]
    con.close()
    assert flags == {i: 0 for i in ids} and vec_rows == 3  # committed, not yet in Chroma
    assert _in_chroma_direct(db_path, ids) == []
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        assert m.store.unsynced_ids() == []  # the open repaired them
        assert sorted(_in_chroma(m, ids)) == sorted(ids)
        assert m.check_consistency().ok
        assert m.search("ships", user_id="u", mode="vector")[0].id == ids[1]


def test_a_normal_exit_without_close_applies_the_queue(db_path, embedder):
    ids = _child(db_path, "exit")
    assert sorted(_in_chroma_direct(db_path, ids)) == sorted(ids)
    with SyncHierarchicalMemory.create(
        MemoryConfig(db_path=db_path, check_drift_on_open=False), embedder=embedder
    ) as m:
        assert m.store.unsynced_ids() == []


# -- the approximate (HNSW) path of big users ------------------------------------------


def _big_user(memory: SyncHierarchicalMemory, n: int = 40) -> list[str]:
    topics = ["astronomy", "baking", "cycling", "databases", "gardening", "jazz", "knitting",
              "pottery"]
    items = [{"content": f"fact {i}: the user enjoys {topics[i % len(topics)]} "
                         f"on day {i}", "user_id": "big"} for i in range(n)]
    ids = [r.id for r in memory.add_many(items, dedup=False)]
    memory.flush()
    return ids


def test_hnsw_path_finds_a_memory_chroma_does_not_have_yet(memory):
    _big_user(memory)
    index = _hold(memory)
    index.hnsw_min_vectors = 10  # "big" now goes through Chroma's HNSW first
    rec = memory.add("The user's passport expires in October 2031", user_id="big")
    assert _in_chroma(memory, [rec.id]) == {}
    calls = _spy_chroma_calls(index)
    hits = memory.search("when does the passport expire", user_id="big", mode="vector",
                         top_k=3)
    assert "query" in calls  # the HNSW path answered
    assert hits[0].id == rec.id
    cache = index._cache["big"]
    assert rec.id in cache.pending
    memory.flush()
    assert rec.id not in cache.pending
    assert memory.search("when does the passport expire", user_id="big", mode="vector",
                         top_k=3)[0].id == rec.id


def test_hnsw_path_with_pending_rows_agrees_with_the_exact_search(memory):
    ids = _big_user(memory)
    index = _hold(memory)
    fresh = [memory.add(f"late fact {i}: the user practises {t}", user_id="big", dedup=False).id
             for i, t in enumerate(["archery", "fencing", "jazz piano", "sourdough baking"])]
    memory.delete(ids[0])  # queued delete: Chroma still has it, the matrix does not
    index.hnsw_min_vectors = 10
    for text in ["music", "bread and cakes", "sports with a sword", "stars and planets"]:
        q = memory.embedder.embed_query(text)
        fast = index.query(q, 5, ScopeQuery(user_id="big"))
        cache = index._cache["big"]
        exact = cache.top(np.asarray(q, dtype=np.float32), cache.mask(ScopeQuery(user_id="big"), None), 5)
        assert [i for i, _ in fast] == [i for i, _ in exact], text
        assert ids[0] not in [i for i, _ in fast]
    assert set(fresh) <= index._cache["big"].pending


def test_near_duplicate_check_of_a_big_user_uses_hnsw_and_pending_rows(memory):
    _big_user(memory)
    index = _hold(memory)
    index.hnsw_min_vectors = 10
    calls = _spy_chroma_calls(index)
    first = memory.add("The user keeps bees on the roof of the office", user_id="big")
    assert "query" in calls
    # a near-identical text while the first is still queued: found through the pending rows
    twin = memory.add("The user keeps bees on the roof of their office", user_id="big")
    assert twin.id == first.id
    memory.flush()
    # and once Chroma has it, through HNSW itself
    again = memory.add("the user keeps honey bees on the office roof", user_id="big")
    assert again.id == first.id
    assert memory.stats("big").total == 41


def test_near_duplicate_check_uses_hnsw_below_the_search_threshold(memory):
    """``twin_hnsw_min_vectors`` (lower than ``hnsw_min_vectors``): a write's top-1 twin
    check asks HNSW, searches stay exact."""
    _big_user(memory)
    index = memory.vector_index
    index.twin_hnsw_min_vectors = 10
    assert index.hnsw_min_vectors > 40
    calls = _spy_chroma_calls(index)
    memory.search("which hobby", user_id="big", mode="vector")
    assert "query" not in calls
    first = memory.add("The user repairs vintage radios at the weekend", user_id="big")
    assert calls.count("query") == 1
    twin = memory.add("The user repairs vintage radios at weekends", user_id="big")
    assert twin.id == first.id
