"""The keyword index keeps a memory's content and its context (``search_text``) in two
FTS5 columns: both are searched, the context weighs less, and old one-column indexes are
rebuilt on open."""

from __future__ import annotations

import sqlite3

import pytest

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.ports import IndexedDoc, ScopeQuery
from headroom_integrations.storage import FTS5TextIndex, SQLiteDatabase
from headroom_integrations.storage.fts_index import owner_token

FILLER = [
    "Bought new running shoes", "Cooked lasagna for the team", "Repaired an old bicycle",
    "Learned to bake sourdough", "Planted tomatoes on the balcony", "Saw a meteor shower",
]

OLD_SCHEMA = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5("
    "content, owner, user_id UNINDEXED, session_id UNINDEXED, agent_id UNINDEXED, "
    "turn_id UNINDEXED, category UNINDEXED, is_current UNINDEXED, "
    "tokenize = 'porter unicode61 remove_diacritics 2')"
)


def _doc(i: int, content: str, context: str = "", user: str = "u") -> IndexedDoc:
    return IndexedDoc(id=f"m{i}", content=content, user_id=user, session_id=None,
                      agent_id=None, turn_id=None, category="fact", is_current=True,
                      context=context)


def _open(db_path: str, embedder, **cfg) -> SyncHierarchicalMemory:
    return SyncHierarchicalMemory.create(
        MemoryConfig(db_path=db_path, dedup=False, **cfg), embedder=embedder
    )


def _with_word_in_content_and_in_context(mem: SyncHierarchicalMemory) -> None:
    mem.add("Caroline walked the puppy in the park", user_id="u")
    mem.add("Caroline walked in the park", user_id="u", search_text="puppy")
    for text in FILLER:
        mem.add(text, user_id="u")


def test_indexed_doc_of_puts_search_text_in_the_context(memory):
    with_ctx = memory.add("Went to the lake", user_id="u", search_text="[7 May 2023] camping")
    without = memory.add("Likes tea", user_id="u")
    doc = IndexedDoc.of(with_ctx)
    assert (doc.content, doc.context) == ("Went to the lake", "[7 May 2023] camping")
    assert IndexedDoc.of(without).context == ""


def test_a_word_only_in_search_text_is_found(memory):
    memory.add("Went to the lake", user_id="u", search_text="[7 May 2023] camping trip")
    memory.add("Likes tea", user_id="u")
    assert [h.content for h in memory.text_search("camping", user_id="u")] == [
        "Went to the lake"]
    assert [h.content for h in memory.search("lake", user_id="u", mode="text")] == [
        "Went to the lake"]


def test_saying_the_word_outranks_having_it_in_the_context(db_path, embedder):
    with _open(db_path, embedder) as mem:
        assert mem.text_index.context_weight == 0.5  # MemoryConfig.search_text_weight
        _with_word_in_content_and_in_context(mem)
        hits = mem.text_search("puppy", user_id="u")
        assert [h.content for h in hits] == [
            "Caroline walked the puppy in the park", "Caroline walked in the park"]


def test_the_configured_weight_reaches_the_index(db_path, embedder):
    # weighed like the content, the shorter memory (context-only hit) wins: as with one column
    with _open(db_path, embedder, search_text_weight=1.0) as mem:
        assert mem.text_index.context_weight == 1.0
        _with_word_in_content_and_in_context(mem)
        hits = mem.text_search("puppy", user_id="u")
        assert [h.content for h in hits] == [
            "Caroline walked in the park", "Caroline walked the puppy in the park"]


def test_the_context_weight_scales_a_context_only_hit(tmp_path):
    docs = [_doc(0, "Walked in the park", "puppy")] + [
        _doc(i + 1, text) for i, text in enumerate(FILLER)]
    scope = ScopeQuery(user_id="u")
    scores = {}
    for weight in (0.0, 0.5, 1.0):
        index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / f"w{weight}.db")),
                              context_weight=weight)
        index.upsert(docs)
        [(memory_id, scores[weight])] = index.search("puppy", 5, scope)
        assert memory_id == "m0"
    assert scores[0.0] == 0.0 < scores[0.5] < scores[1.0]
    # a content hit does not depend on the weight
    content_scores = set()
    for weight in (0.5, 1.0):
        index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / f"c{weight}.db")),
                              context_weight=weight)
        index.upsert([_doc(0, "Walked the puppy")] + docs[1:])
        content_scores.add(index.search("puppy", 5, scope)[0][1])
    assert len(content_scores) == 1


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_a_bad_context_weight_is_refused(tmp_path, weight):
    with pytest.raises(ValueError):
        FTS5TextIndex(SQLiteDatabase(str(tmp_path / "k.db")), context_weight=weight)


def test_common_terms_count_a_word_held_only_by_the_context(tmp_path):
    index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "k.db")))
    topics = FILLER * 4  # 24 memories
    # "Melanie" is the speaker of 20 of them, named only in their search_text
    index.upsert([_doc(i, t, "Melanie said" if i < 20 else "") for i, t in enumerate(topics)])
    assert index.common_terms("What did Melanie cook?", "u", ratio=0.7) == {"melanie"}
    # in the content of 12, the context of 12, 20 in all: neither column alone is > 70%,
    # and a memory holding it in both columns counts once (20 of 24 is not > 85%)
    mixed = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "x.db")))
    mixed.upsert([
        _doc(i, f"Melanie {t}" if i < 12 else t, "Melanie said" if 8 <= i < 20 else "")
        for i, t in enumerate(topics)
    ])
    assert mixed.common_terms("What did Melanie cook?", "u", ratio=0.7) == {"melanie"}
    assert mixed.common_terms("What did Melanie cook?", "u", ratio=0.85) == set()


def test_a_word_common_only_in_contexts_is_skipped_in_a_large_store(tmp_path):
    index = FTS5TextIndex(SQLiteDatabase(str(tmp_path / "k.db")), max_term_docs=5)
    index.upsert([_doc(i, f"note number {i}", "shared context") for i in range(20)]
                 + [_doc(100, "a zebra", "shared context")])
    scope = ScopeQuery(user_id="u")
    assert [i for i, _ in index.search("shared zebra", 10, scope)] == ["m100"]
    assert index.search("shared", 10, scope) == []


def _to_old_schema(db_path: str) -> int:
    """Replace the keyword index with the one-column table of the previous version, filled
    as it filled it (content and search_text joined); returns its row count."""
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute(
            "SELECT i.fts_rowid, m.content, m.search_text, m.user_id, m.session_id, "
            "m.agent_id, m.turn_id, m.category, m.is_current FROM memories_fts_ids AS i "
            "JOIN memories AS m ON m.id = i.memory_id"
        ).fetchall()
        con.execute("DROP TABLE memories_fts")
        con.execute(OLD_SCHEMA)
        for rowid, content, extra, user, session, agent, turn, category, current in rows:
            con.execute(
                "INSERT INTO memories_fts(rowid, content, owner, user_id, session_id, agent_id, "
                "turn_id, category, is_current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rowid, f"{content}\n{extra}" if extra else content, owner_token(user), user,
                 session or "", agent or "", turn or "", category, current),
            )
        con.commit()
        return len(rows)
    finally:
        con.close()


def _fts_columns(db_path: str) -> list[str]:
    con = sqlite3.connect(db_path)
    try:
        return [r[1] for r in con.execute("PRAGMA table_info(memories_fts)")]
    finally:
        con.close()


def test_an_index_without_the_context_column_is_rebuilt_on_open(db_path, embedder):
    with _open(db_path, embedder) as mem:
        mem.add("Keeps bees in the garden", user_id="u", search_text="[3 June 2023] honey")
        mem.add("Plays the violin", user_id="u", session_id="s1", search_text="orchestra")
        for text in FILLER:
            mem.add(text, user_id="u")
        before = {(r.id, r.content, r.search_text) for r in mem.get_all(user_id="u")}
    assert _to_old_schema(db_path) == 2 + len(FILLER)
    assert "context" not in _fts_columns(db_path)

    with _open(db_path, embedder) as mem:
        assert _fts_columns(db_path)[:3] == ["content", "context", "owner"]
        assert mem.text_index.count() == 2 + len(FILLER)
        assert mem.check_consistency(full=True).ok
        assert {(r.id, r.content, r.search_text) for r in mem.get_all(user_id="u")} == before

        def found(query: str, **scope) -> list[str]:
            return [h.content for h in mem.search(query, user_id="u", mode="text", **scope)]

        assert found("bees") == ["Keeps bees in the garden"]  # by content
        assert found("honey") == ["Keeps bees in the garden"]  # by search_text
        assert found("June 2023") == ["Keeps bees in the garden"]
        assert found("orchestra", session_id="s1") == ["Plays the violin"]
        assert found("orchestra") == []  # scopes still hold
        assert found("lasagna") == ["Cooked lasagna for the team"]
        assert mem.get(mem.text_search("honey", user_id="u")[0].id).search_text == (
            "[3 June 2023] honey")

    # a current index is kept as it is on the next open
    con = sqlite3.connect(db_path)
    rowids = con.execute("SELECT * FROM memories_fts_ids ORDER BY fts_rowid").fetchall()
    con.close()
    with _open(db_path, embedder) as mem:
        assert [h.content for h in mem.text_search("honey", user_id="u")] == [
            "Keeps bees in the garden"]
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT * FROM memories_fts_ids ORDER BY fts_rowid").fetchall() == rowids
    con.close()
