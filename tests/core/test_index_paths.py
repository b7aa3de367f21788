"""The fast paths of the indexes return what the plain paths return."""

from __future__ import annotations

import sqlite3

import numpy as np

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.ports import IndexedDoc, ScopeQuery
from headroom_integrations.storage import FTS5TextIndex, SQLiteDatabase
from headroom_integrations.storage.chroma_index import ChromaVectorIndex, make_chroma_client


def _doc(i: int, user: str, text: str, session: str | None = None) -> IndexedDoc:
    return IndexedDoc(id=f"m{i}", content=text, user_id=user, session_id=session, agent_id=None,
                      turn_id=None, category="fact", is_current=True)


def test_words_held_by_too_many_memories_are_skipped(tmp_path):
    index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "k.db")), max_term_docs=5)
    index.upsert([_doc(i, "u", f"common word number {i}") for i in range(20)]
                 + [_doc(100, "u", "common rare zebra")])
    scope = ScopeQuery(user_id="u")
    assert [i for i, _ in index.search("common zebra", 10, scope)] == ["m100"]  # 'common' skipped
    assert index.search("common", 10, scope) == []  # nothing discriminating left
    small = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "s.db")), max_term_docs=5)
    small.upsert([_doc(i, "u", f"common word {i}") for i in range(3)])
    assert len(small.search("common", 10, scope)) == 3  # a small store skips nothing


def test_a_words_count_is_reused_for_a_minute_then_counted_again(tmp_path, monkeypatch):
    from headroom_integrations.storage import fts_index

    clock = [1000.0]
    monkeypatch.setattr(fts_index.time, "monotonic", lambda: clock[0])
    index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "k.db")), max_term_docs=5)
    index.upsert([_doc(i, "u", f"filler line {i}") for i in range(10)]
                 + [_doc(100, "u", "rare zebra")])
    scope = ScopeQuery(user_id="u")
    assert [i for i, _ in index.search("zebra", 10, scope)] == ["m100"]
    index.upsert([_doc(200 + i, "u", f"zebra crossing {i}") for i in range(10)])
    clock[0] += 30  # 'zebra' still counted as rare: all 11 rows score
    assert len(index.search("zebra", 20, scope)) == 11
    clock[0] += 31  # counted again: now in more than 5 rows, so it is skipped
    assert index.search("zebra", 20, scope) == []
    index.reset()  # a reset forgets the counts
    index.upsert([_doc(1, "u", "zebra alone")] + [_doc(300 + i, "u", f"x {i}") for i in range(9)])
    assert [i for i, _ in index.search("zebra", 20, scope)] == ["m1"]


def test_keyword_rows_of_other_users_are_never_matched(tmp_path):
    index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "k.db")))
    index.upsert([_doc(1, "alice", "secret plan"), _doc(2, "bob", "secret plan")])
    assert [i for i, _ in index.search("secret", 10, ScopeQuery(user_id="bob"))] == ["m2"]


def test_an_index_from_before_the_owner_column_is_rebuilt_on_open(db_path, embedder):
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        m.add("Keeps bees in the garden", user_id="u")
    con = sqlite3.connect(db_path)
    con.execute("DROP TABLE memories_fts")
    con.execute("CREATE VIRTUAL TABLE memories_fts USING fts5(content, user_id UNINDEXED)")
    con.commit()
    con.close()
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        assert [h.content for h in m.text_search("bees", user_id="u")] == [
            "Keeps bees in the garden"]


def test_the_hnsw_path_agrees_with_the_exact_search():
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [_doc(i, "big", f"v{i}", session="s1" if i % 3 == 0 else None) for i in range(300)]
    docs += [_doc(1000 + i, "small", f"w{i}") for i in range(5)]
    client = make_chroma_client(path=None)
    fast = ChromaVectorIndex(client, "hnsw-path-test", hnsw_min_vectors=50)
    exact = ChromaVectorIndex(client, "hnsw-path-test", hnsw_min_vectors=10**9)
    fast.upsert(docs, np.vstack([vectors, vectors[:5]]))
    for q in rng.standard_normal((20, 16)).astype(np.float32):
        q /= np.linalg.norm(q)
        for scope in (ScopeQuery(user_id="big"), ScopeQuery(user_id="big", session_id="s1")):
            got = [i for i, _ in fast.query(q, 5, scope)]
            want = [i for i, _ in exact.query(q, 5, scope)]
            assert got == want
        assert all(i.startswith("m10") for i, _ in fast.query(q, 5, ScopeQuery(user_id="small")))
