"""The keyword search scores a user's matching rows, keeps the best ``4 * k`` and checks only
their scope; when too few of those are visible it runs the full filtered query. Either way
the answer is the k best *visible* rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headroom_integrations.core.ports import IndexedDoc, ScopeQuery
from headroom_integrations.storage import FTS5TextIndex, SQLiteDatabase


def _doc(i: int, content: str, *, session: str | None = None, current: bool = True,
         user: str = "u", category: str = "fact") -> IndexedDoc:
    return IndexedDoc(id=f"m{i}", content=content, user_id=user, session_id=session,
                      agent_id=None, turn_id=None, category=category, is_current=current)


@pytest.fixture
def index(tmp_path) -> Iterator[FTS5TextIndex]:
    db = SQLiteDatabase(str(tmp_path / "fts.db"))
    yield FTS5TextIndex(db)
    db.close()


def _ids(hits: list[tuple[str, float]]) -> list[str]:
    return [mid for mid, _ in hits]


def test_best_rows_hidden_from_the_scope_fall_back_to_the_filtered_query(index):
    # 30 short (high-scoring) rows about apples live in other sessions; the 3 visible ones
    # are longer, so they score lower than every hidden row
    hidden = [_doc(i, "apple pie", session=f"s{i}") for i in range(30)]
    visible = [_doc(100 + i, f"apple with a long note number {i} about the orchard trip")
               for i in range(3)]
    index.upsert(hidden + visible)
    hits = index.search("apple", 2, ScopeQuery(user_id="u"))
    assert len(hits) == 2 and set(_ids(hits)) <= {"m100", "m101", "m102"}
    # from session s7 its own row is visible too, and it is the best one
    hits = index.search("apple", 2, ScopeQuery(user_id="u", session_id="s7"))
    assert _ids(hits)[0] == "m7" and _ids(hits)[1] in {"m100", "m101", "m102"}


def test_superseded_and_other_categories_are_filtered_both_ways(index):
    index.upsert([_doc(i, "coffee beans", current=False) for i in range(20)])
    index.upsert([_doc(50, "coffee and a croissant at the station"),
                  _doc(51, "coffee tasting notes, light roast, from the market",
                       category="preference")])
    assert _ids(index.search("coffee", 1, ScopeQuery(user_id="u"))) == ["m50"]
    assert set(_ids(index.search("coffee", 5, ScopeQuery(user_id="u")))) == {"m50", "m51"}
    got = index.search("coffee", 5, ScopeQuery(user_id="u"), categories=["preference"])
    assert _ids(got) == ["m51"]
    old = index.search("coffee", 30, ScopeQuery(user_id="u", include_superseded=True))
    assert len(old) == 22


def test_ranking_matches_the_full_filtered_query(index):
    # a mixed store: the two-step answer equals scoring every visible row
    docs = []
    for i in range(200):
        words = ["garden", "tomato", "harvest", "rain", "soil"][: 1 + i % 5]
        docs.append(_doc(i, " ".join(words) + f" entry {i}", session=None if i % 3 else "s1",
                         current=i % 7 != 0))
    index.upsert(docs)
    scope = ScopeQuery(user_id="u")
    for k in (1, 5, 10, 40):
        got = index.search("tomato harvest soil", k, scope)
        full = index.db.fetchall(
            "SELECT m.memory_id, bm25(memories_fts, 1.0, 0.5, 0.0) AS score FROM memories_fts "
            "AS f JOIN memories_fts_ids AS m ON m.fts_rowid = f.rowid WHERE memories_fts "
            "MATCH ? AND f.user_id = 'u' AND f.is_current = 1 AND f.session_id = '' AND "
            "f.agent_id = '' AND f.turn_id = '' ORDER BY score LIMIT ?",
            ['{content context}: ("tomato" OR "harvest" OR "soil")', k],
        )
        assert [round(s, 9) for _, s in got] == [round(-s, 9) for _, s in full]
        assert len(got) == k


def test_other_users_rows_never_come_back(index):
    index.upsert([_doc(i, "sailing boat", user="other") for i in range(50)])
    index.upsert([_doc(99, "a sailing weekend with the family boat club", user="u")])
    assert _ids(index.search("sailing boat", 5, ScopeQuery(user_id="u"))) == ["m99"]
