"""Scope visibility: narrower scopes see broader ones; users never see each other."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom_integrations import MemoryFilter, ScopeLevel, SyncHierarchicalMemory

SCOPES = {
    "user": {},
    "session": {"session_id": "s1"},
    "agent": {"session_id": "s1", "agent_id": "a1"},
    "turn": {"session_id": "s1", "agent_id": "a1", "turn_id": "t1"},
    "other_session": {"session_id": "s2"},
    "other_agent": {"session_id": "s1", "agent_id": "a2"},
    "other_turn": {"session_id": "s1", "agent_id": "a1", "turn_id": "t2"},
}

# which memories a query from each scope sees
EXPECTED = {
    "user": {"user"},
    "session": {"user", "session"},
    "agent": {"user", "session", "agent"},
    "turn": {"user", "session", "agent", "turn"},
    "other_session": {"user", "other_session"},
    "other_agent": {"user", "session", "other_agent"},
    "other_turn": {"user", "session", "agent", "other_turn"},
}


@pytest.fixture
def scoped(memory):
    for name, scope in SCOPES.items():
        memory.add(f"the team note about {name} scope planning", user_id="alice", **scope,
                   importance=0.2)
    memory.add("the team note about bob's planning", user_id="bob", importance=0.2)
    return memory


@pytest.mark.parametrize("where", sorted(SCOPES))
@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_search_sees_exactly_its_path(scoped, where, mode):
    hits = scoped.search("team note planning scope", user_id="alice", top_k=50, mode=mode,
                         **SCOPES[where])
    seen = {h.content.split("about ")[1].split(" scope")[0] for h in hits}
    assert seen == EXPECTED[where]


@pytest.mark.parametrize("where", sorted(SCOPES))
def test_query_sees_exactly_its_path(scoped, where):
    got = scoped.query(MemoryFilter(user_id="alice", **SCOPES[where]))
    assert {m.content.split("about ")[1].split(" scope")[0] for m in got} == EXPECTED[where]


def test_levels_filter(scoped):
    got = scoped.query(
        MemoryFilter(user_id="alice", levels=[ScopeLevel.SESSION, ScopeLevel.TURN], **SCOPES["turn"])
    )
    assert {m.scope_level for m in got} == {ScopeLevel.SESSION, ScopeLevel.TURN}
    hits = scoped.search("planning", user_id="alice", levels=["user"], top_k=20, **SCOPES["turn"])
    assert [h.memory.scope_level for h in hits] == [ScopeLevel.USER]


def test_all_scopes_lists_everything_of_one_user_only(scoped):
    got = scoped.query(MemoryFilter(user_id="alice", all_scopes=True))
    assert len(got) == len(SCOPES)
    assert all(m.user_id == "alice" for m in got)


def test_users_never_see_each_other(scoped):
    for mode in ("hybrid", "vector", "text"):
        hits = scoped.search("bob's planning", user_id="alice", top_k=50, mode=mode)
        assert all(h.memory.user_id == "alice" for h in hits)
        hits = scoped.search("scope planning", user_id="bob", top_k=50, mode=mode)
        assert [h.content for h in hits] == ["the team note about bob's planning"]
    assert scoped.query(MemoryFilter(user_id="carol", all_scopes=True)) == []


ids = st.sampled_from(["u1", "u2", "u 3", "ü"])
opt = st.sampled_from([None, "x", "y"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(st.tuples(ids, opt, opt, opt), min_size=1, max_size=8),
    reader=st.tuples(ids, opt, opt, opt),
)
def test_property_visibility_matches_the_rule(tmp_path_factory, embedder, writes, reader):
    """For any set of memories and any reader scope, search/text_search/query return exactly
    the memories whose every scope id is absent or equal to the reader's, of the same user."""
    path = str(tmp_path_factory.mktemp("prop") / "m.db")
    with SyncHierarchicalMemory.create(db_path=path, embedder=embedder, dedup=False,
                                       bubbling=False) as memory:
        made = []
        for i, (user, session, agent, turn) in enumerate(writes):
            made.append(memory.add(f"shared fact number {i}", user_id=user, session_id=session,
                                   agent_id=agent, turn_id=turn))
        user, session, agent, turn = reader
        expected = {
            m.id for m in made
            if m.user_id == user
            and m.session_id in (None, session)
            and m.agent_id in (None, agent)
            and m.turn_id in (None, turn)
        }
        scope = dict(user_id=user, session_id=session, agent_id=agent, turn_id=turn)
        for mode in ("hybrid", "text"):
            got = {h.id for h in memory.search("shared fact number", top_k=50, mode=mode, **scope)}
            assert got == expected
        assert {m.id for m in memory.query(MemoryFilter(**scope))} == expected


def test_all_scopes_search_and_users(scoped):
    hits = scoped.search("team note planning", user_id="alice", top_k=50, all_scopes=True)
    assert len(hits) == len(SCOPES)
    assert all(h.memory.user_id == "alice" for h in hits)
    assert scoped.users() == ["alice", "bob"]
    assert {m.user_id for m in scoped.iter_memories(user_id="bob")} == {"bob"}
