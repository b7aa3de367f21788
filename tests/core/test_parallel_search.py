"""A hybrid search runs its vector side (query embedding + vector index) on a worker thread
beside the keyword search (``MemoryConfig.parallel_search``): same results as one after the
other, errors from either side reach the caller, no deadlock inside a store transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from headroom_integrations import MemoryConfig, StoreClosedError, SyncHierarchicalMemory
from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

NOTES = [
    "User prefers Go for performance-critical code",
    "User's dog is called Biscuit and loves the beach",
    "The staging database is Postgres 16 on port 5433",
    "Decided to deploy on Fridays only after 2pm",
    "User is allergic to shellfish and peanuts",
    "Error code E1234 means the license expired",
    "The team standup moved to 9:30 on Tuesdays",
    "User is learning Portuguese before a trip to Lisbon",
]
QUERIES = [
    "what language for a fast microservice?",
    "pet name",
    "which port does staging db listen on",
    "seafood dinner ideas",
    "E1234",
    "when is the standup",
    "travel plans",
    "zzz unknown words qqq",
]


class RecordingEmbedder:
    """The real embedder, noting which thread embedded each query (and failing on demand)."""

    def __init__(self, inner: FastEmbedEmbedder) -> None:
        self.inner = inner
        self.query_threads: list[str] = []
        self.fail_queries = False

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        self.query_threads.append(threading.current_thread().name)
        if self.fail_queries:
            raise ConnectionError("embedding service down")
        return self.inner.embed_query(text)


@pytest.fixture
def rec(embedder: FastEmbedEmbedder) -> RecordingEmbedder:
    return RecordingEmbedder(embedder)


@pytest.fixture
def store(db_path: str, rec: RecordingEmbedder) -> Iterator[SyncHierarchicalMemory]:
    mem = SyncHierarchicalMemory.create(
        MemoryConfig(db_path=db_path, query_cache_size=0), embedder=rec
    )
    for note in NOTES:
        mem.add(note, user_id="u")
    yield mem
    mem.close()


def _ranked(mem: SyncHierarchicalMemory, query: str, **kw: object) -> list[tuple[str, float]]:
    return [(h.content, round(h.score, 6)) for h in mem.search(query, user_id="u", top_k=5, **kw)]


def test_parallel_and_sequential_give_the_same_results(store, rec):
    parallel = [_ranked(store, q) for q in QUERIES]
    assert any(t.startswith("headroom-search") for t in rec.query_threads)
    store.config.parallel_search = False
    rec.query_threads.clear()
    sequential = [_ranked(store, q) for q in QUERIES]
    assert rec.query_threads == [threading.current_thread().name] * len(QUERIES)
    assert parallel == sequential
    assert parallel[1][0][0] == NOTES[1]  # and they are the right answers
    assert parallel[4][0][0] == NOTES[5]


def test_vector_and_text_modes_stay_on_the_calling_thread(store, rec):
    store.search("pet name", user_id="u", mode="vector")
    store.search("pet name", user_id="u", mode="text", min_similarity=0.1)
    assert rec.query_threads == [threading.current_thread().name] * 2


def test_an_embedding_error_reaches_the_caller(store, rec):
    rec.fail_queries = True
    with pytest.raises(ConnectionError, match="embedding service down"):
        store.search("pet name", user_id="u")
    rec.fail_queries = False
    assert store.search("pet name", user_id="u")[0].content == NOTES[1]


def test_a_keyword_error_waits_for_the_vector_side_then_raises(store, rec, monkeypatch):
    done = threading.Event()
    real_embed = rec.inner.embed_query

    def slow_embed(text: str) -> np.ndarray:
        out = real_embed(text)
        time.sleep(0.3)  # far longer than the failing keyword side
        done.set()
        return out

    monkeypatch.setattr(rec.inner, "embed_query", slow_embed)

    def broken(*_a: object, **_k: object) -> list[tuple[str, float]]:
        raise RuntimeError("fts broke")

    monkeypatch.setattr(store.text_index, "search", broken)
    with pytest.raises(RuntimeError, match="fts broke"):
        store.search("pet name", user_id="u")
    assert done.is_set()  # the worker had finished before the error was raised


def test_search_inside_a_store_transaction_does_not_deadlock(store, rec):
    result: list[object] = []

    def run() -> None:
        with store.store.transaction():
            result.append(store.search("pet name", user_id="u")[0].content)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "search inside a transaction deadlocked"
    assert result == [NOTES[1]]
    assert rec.query_threads[-1] == t.name  # ran on the caller's thread


def test_concurrent_searches_from_many_threads(store):
    expected = {q: _ranked(store, q) for q in QUERIES}
    errors: list[BaseException] = []
    got: dict[tuple[int, str], list[tuple[str, float]]] = {}

    def worker(n: int) -> None:
        try:
            for q in QUERIES:
                got[(n, q)] = _ranked(store, q)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert all(got[(n, q)] == expected[q] for n in range(6) for q in QUERIES)


def test_close_stops_the_worker_threads(db_path, rec):
    before = set(threading.enumerate())
    mem = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=rec)
    mem.add(NOTES[0], user_id="u")
    mem.search("language", user_id="u")
    workers = [
        t for t in set(threading.enumerate()) - before if t.name.startswith("headroom-search")
    ]
    assert workers
    mem.close()
    for t in workers:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in workers)
    with pytest.raises(StoreClosedError):
        mem.search("language", user_id="u")
