"""The vector side ranks a memory in its conversation (``MemoryConfig.vector_context_before``
/ ``_after``): its score is the mean of its own cosine and the mean cosine of its window.
Index tests use hand-made vectors (exact expected scores); engine tests use the real store,
Chroma and ONNX embedder."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.ports import ContextWindow, IndexedDoc, ScopeQuery
from headroom_integrations.storage import SQLiteDatabase
from headroom_integrations.storage.chroma_index import ChromaVectorIndex, make_chroma_client
from headroom_integrations.storage.vector_rows import SQLiteVectorRows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc).timestamp()
WINDOW = ContextWindow(before=2, after=1)


def _doc(i: int, *, user: str = "u", session: str | None = None, at: float = T0) -> IndexedDoc:
    return IndexedDoc(id=f"m{i}", content="", user_id=user, session_id=session, agent_id=None,
                      turn_id=None, category="fact", is_current=True, valid_from=at)


def _basis(dim: int, *axes: int) -> np.ndarray:
    """Unit vectors along the given axes."""
    out = np.zeros((len(axes), dim), dtype=np.float32)
    for row, axis in enumerate(axes):
        out[row, axis] = 1.0
    return out


def _index(tmp_path, name: str = "ctx", **kw) -> ChromaVectorIndex:
    db = SQLiteDatabase(str(tmp_path / f"{name}.db"))
    # in-process Chroma clients share one system: a collection name per test
    return ChromaVectorIndex(make_chroma_client(path=None), f"{name}-{uuid.uuid4().hex[:8]}",
                             rows=SQLiteVectorRows(db), background_writes=False, **kw)


def _expected(sims: list[float], i: int, before: int = 2, after: int = 1) -> float:
    window = sims[max(0, i - before): i + after + 1]
    return (sims[i] + sum(window) / len(window)) / 2


def test_a_memory_scores_the_mean_of_its_cosine_and_its_windows(tmp_path) -> None:
    index = _index(tmp_path)
    # five turns of one conversation; the query points along axis 0
    vectors = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1], [0.6, 0.8, 0], [0, 1, 0]], np.float32)
    index.upsert([_doc(i, at=T0 + 60 * i) for i in range(5)], vectors)
    q = np.array([1.0, 0, 0], np.float32)
    got = index.query_in_context(q, 5, ScopeQuery(user_id="u"), window=WINDOW)
    sims = [0.0, 1.0, 0.0, 0.6, 0.0]
    want = sorted(((f"m{i}", _expected(sims, i), sims[i]) for i in range(5)), key=lambda t: -t[1])
    assert [g[0] for g in got] == [w[0] for w in want]
    for (_, score, cosine), (_, w_score, w_cos) in zip(got, want):
        assert score == pytest.approx(w_score, abs=1e-6)
        assert cosine == pytest.approx(w_cos, abs=1e-6)  # the own cosine is kept apart
    # the turn right after the match (m2, orthogonal to the query) is lifted above m4
    assert [g[0] for g in got].index("m2") < [g[0] for g in got].index("m4")


def test_a_pause_longer_than_the_gap_or_another_session_starts_a_new_conversation(tmp_path) -> None:
    index = _index(tmp_path, context_gap_s=3600)
    q = np.array([1.0, 0, 0], np.float32)
    docs = [
        _doc(0, at=T0), _doc(1, at=T0 + 60),                       # the match and its answer
        _doc(2, at=T0 + 7200),                                       # two hours later
        _doc(3, session="s2", at=T0 + 120),                           # another session
    ]
    index.upsert(docs, np.vstack([_basis(3, 0), _basis(3, 1, 1, 1)]))
    got = {g[0]: g[1] for g in index.query_in_context(q, 4, ScopeQuery(user_id="u", session_id="s2"),
                                                      window=WINDOW)}
    assert got["m1"] == pytest.approx(0.25)  # (0 + (1 + 0) / 2) / 2: m0 is its context
    assert got["m2"] == pytest.approx(0.0)   # after the pause: its window is itself
    assert got["m3"] == pytest.approx(0.0)   # s2's thread holds only m3


def test_users_never_share_a_window(tmp_path) -> None:
    index = _index(tmp_path)
    q = np.array([1.0, 0, 0], np.float32)
    index.upsert([_doc(0, user="bob"), _doc(1, user="alice", at=T0 + 1)], _basis(3, 0, 1))
    (hit,) = index.query_in_context(q, 5, ScopeQuery(user_id="alice"), window=WINDOW)
    assert hit == ("m1", 0.0, 0.0)


def test_a_deleted_neighbour_leaves_the_window(tmp_path) -> None:
    index = _index(tmp_path)
    q = np.array([1.0, 0, 0], np.float32)
    index.upsert([_doc(0), _doc(1, at=T0 + 1)], _basis(3, 0, 1))
    scope = ScopeQuery(user_id="u")
    assert dict((i, s) for i, s, _ in index.query_in_context(q, 2, scope, window=WINDOW))["m1"] == 0.25
    index.delete(["m0"], user_id="u")
    assert index.query_in_context(q, 2, scope, window=WINDOW) == [("m1", 0.0, 0.0)]


def test_the_order_is_the_same_after_a_reopen_and_a_rewrite_keeps_its_place(tmp_path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sessions = ["a" if i % 3 else "b" for i in range(40)]  # two interleaved conversations
    docs = [_doc(i, session=sessions[i], at=T0 + 30 * i) for i in range(40)]
    first = _index(tmp_path, "reopen")
    first.upsert(docs, vectors)
    first.upsert([docs[5]], vectors[6:7])  # m5 rewritten (re-embedded): same place
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    scope = ScopeQuery(user_id="u", all_scopes=True)
    before = [first.query_in_context(q, 10, scope, window=WINDOW) for q in queries]
    again = ChromaVectorIndex(first.client, first.collection_name, rows=first.rows,
                              background_writes=False)  # loads from the SQLite rows
    after = [again.query_in_context(q, 10, scope, window=WINDOW) for q in queries]
    assert after == before
    # and that order is the write order per session, with m5 still between m4 and m7
    cache = again._user("u")
    row = cache.row
    assert cache.prev[row["m7"]] == row["m5"] and cache.next[row["m5"]] == row["m7"]


def test_the_approximate_path_scores_like_the_exact_one(tmp_path) -> None:
    rng = np.random.default_rng(11)
    n, dim = 400, 64
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors[:, :20] = 0.0  # small talk, unrelated to any of the 20 topics (axes 0-19)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    topics = _basis(dim, *range(20))
    vectors[np.arange(20) * 20 + 5] = topics  # turn 5 of each conversation states its topic
    docs = [_doc(i, at=T0 + (i // 20) * 86_400 + i) for i in range(n)]  # 20 conversations
    fast = _index(tmp_path, "fast", hnsw_min_vectors=50)
    fast.upsert(docs, vectors)
    exact = ChromaVectorIndex(fast.client, fast.collection_name, rows=fast.rows,
                              hnsw_min_vectors=10**9, background_writes=False)
    scope = ScopeQuery(user_id="u")
    for t in range(20):
        got = fast.query_in_context(topics[t], 4, scope, window=WINDOW)
        want = exact.query_in_context(topics[t], 4, scope, window=WINDOW)
        # the topic turn, then the turns whose window holds it (4 looks on to it, 6 and 7
        # back), whose own cosines are 0: found through the topic turn's neighbours
        assert [g[0] for g in got] == [w[0] for w in want]
        assert {g[0] for g in got} == {f"m{20 * t + i}" for i in (4, 5, 6, 7)}
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], abs=1e-5)


def test_a_store_from_before_the_window_gets_its_order_and_dates_on_open(db_path, hash_embedder) -> None:
    turns = ["what are you painting", "a sunset over the lake", "lovely colours"]
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=hash_embedder) as m:
        ids = [r.id for r in m.add_many([{"content": t, "user_id": "u"} for t in turns])]
    con = sqlite3.connect(db_path)  # the vector_rows table as stores wrote it before
    con.execute("CREATE TABLE old AS SELECT memory_id, user_id, session_id, agent_id, turn_id, "
                "category, is_current, embedding FROM vector_rows ORDER BY rowid")
    con.execute("DROP TABLE vector_rows")
    con.execute("ALTER TABLE old RENAME TO vector_rows")
    con.commit()
    con.close()
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=hash_embedder) as m:
        stamps = sqlite3.connect(db_path).execute(
            "SELECT memory_id, valid_from FROM vector_rows").fetchall()
        assert {i for i, vf in stamps if vf is not None} == set(ids)
        cache = m.vector_index._user("u")
        assert [cache.ids[r] for r in (cache.prev[cache.row[ids[1]]], cache.next[cache.row[ids[1]]])] \
            == [ids[0], ids[2]]


# ------------------------------------------------------------------ through the engine
SESSIONS = [  # (topic, follow-up, the answer, which never names the topic; a question)
    ("I finally went to that pottery class at the community centre.", "Oh nice, how did it go?",
     "Really well. I came home with a small blue bowl for my mum.",
     "What did Mia make at the pottery class?"),
    ("We drove up to the mountains for the weekend.", "Did you do any hiking up there?",
     "Yes, a six hour trail to a frozen waterfall.", "Where did Mia hike on her mountain trip?"),
    ("My daughter started piano lessons in September.", "How is she getting on?",
     "She already plays a little minuet by Bach.",
     "What piece can Mia's daughter play on the piano?"),
    ("I've been trying to cook more Thai food at home.", "What have you made so far?",
     "A green curry with aubergine, and it was too spicy.", "Which Thai dish did Mia cook?"),
    ("Our team at work switched to a new project tracker.", "Do you like it?",
     "Not really, it is slow and the boards keep freezing.",
     "What does Mia think of the new project tracker at work?"),
    ("We adopted a dog from the shelter last week.", "What breed is it?",
     "A three year old beagle called Pepper.", "What kind of dog did Mia adopt?"),
    ("I went to the dentist on Tuesday.", "Was everything okay?",
     "I need two fillings next month, sadly.", "What did the dentist tell Mia?"),
    ("My brother is getting married in June.", "Where is the wedding?",
     "On a vineyard just outside Porto.", "Where is Mia's brother's wedding?"),
]
DAY = datetime(2026, 2, 1, 18, 0, tzinfo=timezone.utc)


def _transcript() -> list[dict]:
    """Eight conversations three days apart, a minute between turns."""
    return [
        {"content": text, "user_id": "u", "valid_from": DAY + timedelta(days=3 * s, minutes=t)}
        for s, session in enumerate(SESSIONS)
        for t, text in enumerate(session[:3])
    ]


def _open(path: str, embedder, **cfg) -> SyncHierarchicalMemory:
    return SyncHierarchicalMemory.create(MemoryConfig(db_path=path, dedup=False, **cfg),
                                         embedder=embedder)


def _answer_ranks(mem: SyncHierarchicalMemory, mode: str) -> list[int]:
    ranks = []
    for *_, answer, question in SESSIONS:
        hits = mem.search(question, user_id="u", top_k=24, mode=mode)
        ranks.append([h.content for h in hits].index(answer))
    return ranks


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_answers_that_never_name_the_topic_rank_higher_in_their_conversation(
    tmp_path, embedder, mode
) -> None:
    windowed = _open(str(tmp_path / "w.db"), embedder)
    plain = _open(str(tmp_path / "p.db"), embedder, vector_context_before=0, vector_context_after=0)
    try:
        for mem in (windowed, plain):
            mem.add_many(_transcript())
        got, before = _answer_ranks(windowed, mode), _answer_ranks(plain, mode)
        # measured: window ranks 1,2,0,1,2,2,3,2 (7 answers in the top 3), own cosine alone
        # 4,2,0,1,5,2,6,2 (5); hybrid the same within one place
        assert sum(got) < sum(before)
        assert sum(r < 3 for r in got) > sum(r < 3 for r in before)
    finally:
        windowed.close()
        plain.close()


def test_similarity_and_min_similarity_stay_the_memorys_own_cosine(tmp_path, embedder) -> None:
    *_, answer, question = SESSIONS[0]
    q = embedder.embed_query(question)
    own = float(embedder.embed_documents([answer])[0] @ q)
    with _open(str(tmp_path / "w.db"), embedder) as mem:
        mem.add_many(_transcript())
        hit = next(h for h in mem.search(question, user_id="u", top_k=24, mode="vector")
                   if h.content == answer)
        assert hit.similarity == pytest.approx(own, abs=1e-5)
        assert hit.score != pytest.approx(own, abs=1e-3)  # ranked by more than its cosine
        kept = mem.search(question, user_id="u", top_k=24, mode="vector", min_similarity=own + 0.01)
        assert answer not in [h.content for h in kept]
        assert all(h.similarity >= own + 0.01 for h in kept)


def test_the_window_off_ranks_by_cosine_alone(tmp_path, embedder) -> None:
    with _open(str(tmp_path / "p.db"), embedder, vector_context_before=0,
               vector_context_after=0) as mem:
        mem.add_many(_transcript())
        hits = mem.search(SESSIONS[0][3], user_id="u", top_k=24, mode="vector")
        sims = [h.similarity for h in hits]
        assert len(sims) == 24 and sims == sorted(sims, reverse=True)


async def test_the_async_engine_ranks_in_context_too(tmp_path, embedder) -> None:
    from headroom_integrations import HierarchicalMemory

    mem = await HierarchicalMemory.create(
        MemoryConfig(db_path=str(tmp_path / "a.db"), dedup=False), embedder=embedder)
    sync = _open(str(tmp_path / "s.db"), embedder)
    try:
        sync.add_many(_transcript())
        await mem.add_many(_transcript())
        for *_, question in SESSIONS:
            got = [h.content for h in await mem.search(question, user_id="u", mode="vector")]
            want = [h.content for h in sync.search(question, user_id="u", mode="vector")]
            assert got == want
    finally:
        await mem.close()
        sync.close()


def test_a_reindex_and_an_export_import_keep_each_conversation_in_order(tmp_path, embedder) -> None:
    with _open(str(tmp_path / "a.db"), embedder) as mem:
        mem.add_many(_transcript())
        want = [[h.content for h in mem.search(question, user_id="u", mode="vector")]
                for *_, question in SESSIONS]
        mem.reindex()
        assert [[h.content for h in mem.search(question, user_id="u", mode="vector")]
                for *_, question in SESSIONS] == want
        dump = tmp_path / "dump.jsonl"
        mem.export_jsonl(str(dump))
    with _open(str(tmp_path / "b.db"), embedder) as copy:
        copy.import_jsonl(str(dump))
        assert [[h.content for h in copy.search(question, user_id="u", mode="vector")]
                for *_, question in SESSIONS] == want
