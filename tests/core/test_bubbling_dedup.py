"""Promotion of important memories to user scope, and deduplication."""

from __future__ import annotations

from headroom_integrations import MemoryFilter, Provenance, ScopeLevel, SyncHierarchicalMemory


def _user_level(memory, user="u"):
    return memory.query(MemoryFilter(user_id=user, levels=[ScopeLevel.USER]))


def test_important_session_memory_is_promoted_once(memory):
    src = memory.add("Allergic to peanuts", user_id="u", session_id="s1", importance=0.9)
    promoted = _user_level(memory)
    assert [(m.content, m.promoted_from) for m in promoted] == [("Allergic to peanuts", src.id)]
    # visible from another session now
    hits = memory.search("food allergy", user_id="u", session_id="s2")
    assert [h.content for h in hits] == ["Allergic to peanuts"]
    # adding it again (same session) is a twin: still one source and one copy
    again = memory.add("allergic to peanuts.", user_id="u", session_id="s1", importance=0.9)
    assert again.id == src.id
    assert len(_user_level(memory)) == 1


def test_unimportant_memory_stays_in_its_scope(memory):
    memory.add("Looking at the billing page", user_id="u", session_id="s1", importance=0.3)
    assert _user_level(memory) == []


def test_threshold_and_switch_are_configurable(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder,
                                       bubble_threshold=0.5) as m:
        m.add("Works night shifts", user_id="u", session_id="s", importance=0.6)
        assert len(_user_level(m)) == 1
    with SyncHierarchicalMemory.create(db_path=db_path + "2", embedder=embedder,
                                       bubbling=False) as m:
        m.add("Works night shifts", user_id="u", session_id="s", importance=0.99)
        assert _user_level(m) == []


def test_superseding_source_supersedes_copy(memory):
    src = memory.add("Lead engineer is Dana", user_id="u", session_id="s1", importance=0.9)
    new = memory.supersede(src.id, "Lead engineer is Sam")
    copies = _user_level(memory)
    assert [(m.content, m.promoted_from) for m in copies] == [("Lead engineer is Sam", new.id)]
    old_copy = memory.query(MemoryFilter(user_id="u", levels=[ScopeLevel.USER],
                                         include_superseded=True))
    assert {m.content for m in old_copy} == {"Lead engineer is Dana", "Lead engineer is Sam"}
    assert [m.content for m in memory.get_history(copies[0].id)] == [
        "Lead engineer is Dana", "Lead engineer is Sam"]


def test_deleting_source_deletes_copy(memory):
    src = memory.add("Prefers async standups", user_id="u", session_id="s1", importance=0.95)
    assert len(_user_level(memory)) == 1
    memory.delete(src.id)
    assert _user_level(memory) == []
    assert memory.stats().total == 0


def test_raising_importance_by_update_promotes(memory):
    src = memory.add("Budget is 10k", user_id="u", session_id="s1", importance=0.2)
    memory.update(src.id, importance=0.85)
    assert [m.promoted_from for m in _user_level(memory)] == [src.id]


def test_exact_dedup_normalises_case_space_punctuation(memory):
    a = memory.add("User prefers Go for services", user_id="u", importance=0.5)
    b = memory.add("  user prefers go   for services. ", user_id="u", importance=0.5)
    assert a.id == b.id
    assert b.importance > a.importance  # repetition raises importance
    assert memory.stats().total == 1


def test_near_duplicate_is_merged_but_different_fact_is_not(memory):
    a = memory.add("The user prefers Go for performance-critical code", user_id="u")
    b = memory.add("The user prefers Go for performance critical code!", user_id="u")
    c = memory.add("The user prefers Rust for performance-critical code", user_id="u")
    assert b.id == a.id
    assert c.id != a.id
    assert memory.stats().total == 2


def test_dedup_is_per_scope(memory):
    a = memory.add("Reviewing PR 42", user_id="u", session_id="s1")
    b = memory.add("Reviewing PR 42", user_id="u", session_id="s2")
    c = memory.add("Reviewing PR 42", user_id="other", session_id="s1")
    assert len({a.id, b.id, c.id}) == 3


def test_dedup_can_be_turned_off(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder, dedup=False) as m:
        m.add("Same", user_id="u")
        m.add("Same", user_id="u")
        assert m.stats().total == 2


def test_twin_records_every_writer(memory):
    a = memory.add("Repo uses uv", user_id="u", provenance=Provenance(agent_id="claude"))
    b = memory.add("Repo uses uv", user_id="u", provenance=Provenance(agent_id="codex"))
    assert a.id == b.id
    got = memory.get(a.id)
    assert [p.agent_id for p in got.provenance] == ["claude", "codex"]


def test_add_many_dedups_within_the_batch(memory):
    out = memory.add_many([
        {"content": "Likes hiking", "user_id": "u"},
        {"content": "likes hiking", "user_id": "u"},
        {"content": "Likes chess", "user_id": "u"},
    ])
    assert out[0].id == out[1].id != out[2].id
    assert memory.stats().total == 2


def test_a_twin_leaves_no_unsynced_write_behind(memory):
    memory.add("Uses Neovim", user_id="u")
    memory.add("uses neovim", user_id="u")
    assert memory.check_consistency().ok


def test_source_and_its_promoted_copy_show_once(memory):
    src = memory.add("Allergic to peanuts", user_id="u", session_id="s1", importance=0.9)
    hits = memory.search("allergy", user_id="u", session_id="s1", top_k=5)
    assert [h.id for h in hits] == [src.id]
    elsewhere = memory.search("allergy", user_id="u", session_id="s2", top_k=5)
    assert [h.memory.promoted_from for h in elsewhere] == [src.id]
