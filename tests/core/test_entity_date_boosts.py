"""A query that names a person (one of a memory's ``entity_refs``) or a period (a memory's
``valid_from``) prefers those memories; real store, real embedder."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from headroom_integrations import HierarchicalMemory, MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.entities import QueryNames
from headroom_integrations.core.query_dates import Period, query_period

NOW = datetime(2026, 11, 21, 15, 30, tzinfo=timezone.utc)  # a Saturday


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=timezone.utc)


# ---------------------------------------------------------------- reading a period
@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("What movie did Joanna watch on 1 May, 2022?", utc(2022, 5, 1), utc(2022, 5, 2)),
        ("what happened on the 3rd of June 2021", utc(2021, 6, 3), utc(2021, 6, 4)),
        ("Which activity was James pursuing on March 16, 2022?", utc(2022, 3, 16), utc(2022, 3, 17)),
        ("Which hobby did Dave pick up in October 2023?", utc(2023, 10, 1), utc(2023, 11, 1)),
        ("Which classes did Evan join in mid-August 2023?", utc(2023, 8, 8), utc(2023, 8, 24)),
        ("Where was Dave in the last week of August 2023?", utc(2023, 8, 25), utc(2023, 9, 1)),
        ("plans for early Feb 2024", utc(2024, 2, 1), utc(2024, 2, 16)),
        ("What happened to John's job in 2022?", utc(2022, 1, 1), utc(2023, 1, 1)),
        ("what did I say yesterday", utc(2026, 11, 20), utc(2026, 11, 21)),
        ("anything from today?", utc(2026, 11, 21), utc(2026, 11, 22)),
        ("what did I cook last week", utc(2026, 11, 9), utc(2026, 11, 16)),
        ("this month's plans", utc(2026, 11, 1), utc(2026, 12, 1)),
        ("what did we do last month", utc(2026, 10, 1), utc(2026, 11, 1)),
        ("goals for this year", utc(2026, 1, 1), utc(2027, 1, 1)),
        ("trips taken last year", utc(2025, 1, 1), utc(2026, 1, 1)),
    ],
)
def test_a_named_period_is_read(query: str, start: datetime, end: datetime) -> None:
    assert query_period(query, NOW) == Period(start, end)


@pytest.mark.parametrize(
    "query",
    ["What did Caroline paint?", "plans in May", "on 31 February 2023", "room 2022", "", "the 1990s"],
)
def test_no_period_or_an_impossible_one_gives_none(query: str) -> None:
    assert query_period(query, NOW) is None


def test_a_period_holds_a_week_either_side() -> None:
    may = Period(utc(2023, 5, 1), utc(2023, 6, 1))
    assert may.holds(utc(2023, 5, 15))
    assert may.holds(utc(2023, 4, 25)) and may.holds(utc(2023, 6, 7))
    assert not may.holds(utc(2023, 4, 23)) and not may.holds(utc(2023, 6, 9))
    assert may.holds(datetime(2023, 5, 2))  # naive means UTC


# ---------------------------------------------------------------- naming an entity
def test_names_are_whole_words_in_any_case_with_possessives() -> None:
    q = QueryNames("What was JAMES' big moment with Caroline's sister and Dr. Lee?")
    assert q.names("James") and q.names("caroline") and q.names("Dr Lee")
    assert q.names_any(["Bob", "Lee"])
    assert not q.names("Carol")  # part of a word is not a name
    assert not q.names("Lee Dr")  # a multi-word name in its own order
    assert not q.names("") and not q.names("!!")
    assert not QueryNames("") and not QueryNames("").names("x")


# ---------------------------------------------------------------- through the engine
def _open(path: str, embedder, **cfg) -> SyncHierarchicalMemory:
    return SyncHierarchicalMemory.create(
        MemoryConfig(db_path=path, dedup=False, **cfg), embedder=embedder
    )


PAINTED = [  # every text the same length: the keyword side ties on "paint"
    ("Caroline", o) for o in ("red apples", "blue boats", "green hills", "old bridges",
                              "tall towers", "quiet streets", "white clouds", "wild horses")
] + [
    ("Melanie", o) for o in ("small lakes", "pink roses", "snowy mountains", "yellow bikes",
                             "red barns", "bright lighthouses", "busy markets", "autumn trees")
]


def _painted() -> list[dict]:
    """Two people's statements; who said it is the memory's entity, not part of its text.
    Each was said on its own, two hours apart: no memory is another's conversational context
    (``vector_context_before``; tests/core/test_context_window.py covers transcripts)."""
    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    return [
        {"content": f"I painted {what}.", "user_id": "u", "entity_refs": [who],
         "valid_from": start + timedelta(hours=2 * n)}
        for n, (who, what) in enumerate(PAINTED)
    ]


def _fill(mem: SyncHierarchicalMemory) -> None:
    mem.add_many(_painted())


def _speakers(mem: SyncHierarchicalMemory, mode: str) -> list[str]:
    hits = mem.search("What did Melanie paint?", user_id="u", mode=mode, top_k=8)
    return [h.memory.entity_refs[0] for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "text", "vector"])
def test_the_person_a_query_names_comes_first(tmp_path, embedder, mode) -> None:
    plain = _open(str(tmp_path / "plain.db"), embedder, entity_weight=0.0)
    named = _open(str(tmp_path / "named.db"), embedder)
    try:
        for mem in (plain, named):
            _fill(mem)
        if mode == "text":
            # every memory ties on "paint" (ties fall back to ids): the boost alone
            # separates the two speakers, all 8 of Melanie's first
            assert _speakers(named, mode) == ["Melanie"] * 8
        else:
            # Without the boost the two mix (the text never says who spoke); with it,
            # Melanie's come first. How far down the boost reaches depends on the cosines:
            # the 4th place is within 0.01 of a Caroline memory with either arithmetic of
            # the model (float: Melanie's by 0.002; int8: Caroline's by 0.010).
            before, after = _speakers(plain, mode)[:4], _speakers(named, mode)[:4]
            assert before[:3] != ["Melanie"] * 3 and "Caroline" in before
            assert after[:3] == ["Melanie"] * 3
            assert after.count("Melanie") > before.count("Melanie")
        top = named.search("What did Melanie paint?", user_id="u", mode=mode)
        assert all(0.0 < r.score <= 1.0 for r in top)
        assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    finally:
        plain.close()
        named.close()


def test_a_query_naming_no_one_and_no_date_ranks_as_without_boosts(tmp_path, embedder) -> None:
    plain = _open(str(tmp_path / "plain.db"), embedder, entity_weight=0.0, date_weight=0.0)
    boosted = _open(str(tmp_path / "b.db"), embedder)
    try:
        for mem in (plain, boosted):
            _fill(mem)
        for query in ("who painted a lake?", "paintings of flowers"):
            a = plain.search(query, user_id="u", top_k=8)
            b = boosted.search(query, user_id="u", top_k=8)
            assert [r.content for r in a] == [r.content for r in b]
            assert [round(r.score, 9) for r in a] == [round(r.score, 9) for r in b]
    finally:
        plain.close()
        boosted.close()


BEACH = [
    ("Anna", utc(2022, 8, 10)), ("Ben", utc(2021, 7, 1)), ("Chloe", utc(2023, 5, 6)),
    ("Dan", utc(2022, 6, 3)), ("Eve", utc(2023, 5, 20)), ("Finn", utc(2020, 9, 9)),
    ("Gus", utc(2024, 1, 5)), ("Hana", utc(2023, 9, 9)),
]


def _dated(mem: SyncHierarchicalMemory) -> None:
    for who, when in BEACH:
        mem.add(f"We went to the beach with {who}.", user_id="u", valid_from=when)
    now = datetime.now(timezone.utc)  # "last week" is read against the search's clock
    mem.add("Bought new running shoes.", user_id="u", valid_from=now - timedelta(days=9))
    mem.add("Bought new running socks.", user_id="u", valid_from=now - timedelta(days=60))
    mem.add("Bought a new kettle.", user_id="u", valid_from=now - timedelta(days=200))


def test_a_named_period_prefers_the_memories_valid_then(tmp_path, embedder) -> None:
    plain = _open(str(tmp_path / "plain.db"), embedder, date_weight=0.0)
    dated = _open(str(tmp_path / "dated.db"), embedder)
    try:
        for mem in (plain, dated):
            _dated(mem)
        query = "When did we go to the beach in May 2023?"
        may = {"We went to the beach with Chloe.", "We went to the beach with Eve."}
        assert {r.content for r in plain.search(query, user_id="u", top_k=2)} != may
        assert {r.content for r in dated.search(query, user_id="u", top_k=2)} == may
        # relative periods are read against the time of the search
        last_week = "what did I buy last week?"
        assert plain.search(last_week, user_id="u")[0].content == "Bought new running socks."
        assert dated.search(last_week, user_id="u")[0].content == "Bought new running shoes."
    finally:
        plain.close()
        dated.close()


async def test_the_async_engine_boosts_the_same(db_path, embedder) -> None:
    mem = await HierarchicalMemory.create(MemoryConfig(db_path=db_path, dedup=False), embedder=embedder)
    try:
        await mem.add_many(_painted())
        top = await mem.search("What did Melanie paint?", user_id="u", top_k=4)
        sync = SyncHierarchicalMemory.create(
            MemoryConfig(db_path=db_path + ".sync.db", dedup=False), embedder=embedder
        )
        try:
            _fill(sync)
            same = sync.search("What did Melanie paint?", user_id="u", top_k=4)
        finally:
            sync.close()
        assert [r.memory.entity_refs for r in top][:3] == [["Melanie"]] * 3
        assert [r.memory.content for r in top] == [r.memory.content for r in same]
        assert [r.score for r in top] == pytest.approx([r.score for r in same])
    finally:
        await mem.close()
