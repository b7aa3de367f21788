"""Temporal versioning: supersession chains, history, point-in-time queries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from headroom_integrations import (
    AlreadySupersededError,
    InvalidInputError,
    MemoryFilter,
    MemoryNotFoundError,
)


def test_three_version_chain_and_point_in_time(memory):
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    v1 = memory.add("Lives in Paris", user_id="u", valid_from=t0)
    v2 = memory.supersede(v1.id, "Lives in Berlin", valid_from=t0 + timedelta(days=100))
    v3 = memory.supersede(v2.id, "Lives in Tokyo", valid_from=t0 + timedelta(days=200))
    chain = memory.get_history(v2.id)
    assert [m.content for m in chain] == ["Lives in Paris", "Lives in Berlin", "Lives in Tokyo"]
    assert [m.is_current for m in chain] == [False, False, True]

    def at(days):
        got = memory.query(MemoryFilter(user_id="u", valid_at=t0 + timedelta(days=days)))
        return [m.content for m in got]

    assert at(-1) == []
    assert at(0) == ["Lives in Paris"]
    assert at(99) == ["Lives in Paris"]
    assert at(100) == ["Lives in Berlin"]
    assert at(150) == ["Lives in Berlin"]
    assert at(1000) == ["Lives in Tokyo"]
    assert memory.get(v3.id).supersedes == v2.id


def test_search_hides_superseded_unless_asked(memory):
    v1 = memory.add("Favourite editor is vim", user_id="u", category="preference")
    memory.supersede(v1.id, "Favourite editor is emacs")
    for mode in ("hybrid", "vector", "text"):
        hits = memory.search("favourite editor", user_id="u", top_k=10, mode=mode)
        assert [h.content for h in hits] == ["Favourite editor is emacs"]
    both = memory.search("favourite editor", user_id="u", top_k=10, include_superseded=True)
    assert {h.content for h in both} == {"Favourite editor is vim", "Favourite editor is emacs"}
    assert len(memory.text_search("vim", user_id="u")) == 0
    assert len(memory.query(MemoryFilter(user_id="u", include_superseded=True))) == 2


def test_versioning_never_deletes(memory):
    v1 = memory.add("Team size is 4", user_id="u")
    memory.supersede(v1.id, "Team size is 6")
    assert memory.stats().total == 2
    assert memory.get(v1.id) is not None


def test_supersede_errors_name_the_problem(memory):
    v1 = memory.add("Uses Python 3.10", user_id="u")
    memory.supersede(v1.id, "Uses Python 3.12")
    with pytest.raises(AlreadySupersededError, match="no longer current"):
        memory.supersede(v1.id, "Uses Python 3.13")
    with pytest.raises(MemoryNotFoundError, match="nope"):
        memory.supersede("nope", "x")
    with pytest.raises(MemoryNotFoundError):
        memory.get_history("nope")
    v = memory.add("Drinks tea", user_id="u")
    with pytest.raises(InvalidInputError, match="new_content is empty"):
        memory.supersede(v.id, "   ")
    assert memory.get(v.id).is_current  # nothing half-done


def test_supersede_keeps_scope_and_inherits_fields(memory):
    v1 = memory.add("Sprint goal: ship login", user_id="u", session_id="s", category="decision",
                    importance=0.4, metadata={"k": 1})
    v2 = memory.supersede(v1.id, "Sprint goal: ship signup")
    assert (v2.session_id, v2.category.value, v2.importance, v2.metadata) == ("s", "decision", 0.4,
                                                                              {"k": 1})
    assert memory.search("sprint goal", user_id="u", session_id="other") == []


def test_delete_middle_of_chain_relinks(memory):
    v1 = memory.add("Car is red", user_id="u")
    v2 = memory.supersede(v1.id, "Car is blue")
    v3 = memory.supersede(v2.id, "Car is green")
    assert memory.delete(v2.id) is True
    assert [m.content for m in memory.get_history(v3.id)] == ["Car is red", "Car is green"]
    assert memory.delete(v2.id) is False
