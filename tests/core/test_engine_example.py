"""The issue's walkthrough, end to end, on a real SQLite file, Chroma and the ONNX model."""

from __future__ import annotations

from headroom_integrations import (
    HierarchicalMemory,
    MemoryCategory,
    MemoryConfig,
    MemoryFilter,
    SyncHierarchicalMemory,
)


async def test_walkthrough_async(db_path, embedder):
    memory = await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    job = await memory.add(
        "User works at Google", user_id="alice", category=MemoryCategory.FACT, importance=0.8
    )
    ctx = await memory.add(
        "Debugging the auth service today",
        user_id="alice",
        session_id="s1",
        category=MemoryCategory.CONTEXT,
    )
    new = await memory.supersede(old_memory_id=job.id, new_content="User now works at Anthropic")

    hits = await memory.search("where does she work?", user_id="alice", session_id="s2", top_k=5)
    contents = [h.content for h in hits]
    assert contents[0] == "User now works at Anthropic"
    assert "User works at Google" not in contents
    assert ctx.content not in contents

    chain = await memory.get_history(new.id)
    assert [(m.content, m.is_current) for m in chain] == [
        ("User works at Google", False),
        ("User now works at Anthropic", True),
    ]
    assert await memory.get_history(job.id) == chain

    then = await memory.query(MemoryFilter(user_id="alice", valid_at=job.created_at))
    assert [m.content for m in then] == ["User works at Google"]
    now = await memory.query(MemoryFilter(user_id="alice"))
    assert [m.content for m in now] == ["User now works at Anthropic"]
    await memory.close()

    # a new process would see the same: reopen the files
    again = await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    hits = await again.search("employer", user_id="alice", top_k=1)
    assert hits[0].content == "User now works at Anthropic"
    await again.close()


def test_walkthrough_sync(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as memory:
        job = memory.add("User works at Google", user_id="alice", importance=0.8)
        new = memory.supersede(job.id, "User now works at Anthropic")
        hits = memory.search("where does she work?", user_id="alice", session_id="s2")
        assert [h.content for h in hits] == ["User now works at Anthropic"]
        assert 0.0 < hits[0].score <= 1.0
        old = memory.get(job.id)
        assert old is not None
        assert old.is_current is False
        assert old.superseded_by == new.id
        assert old.valid_until == new.valid_from
        assert new.supersedes == job.id


def test_record_fields_are_filled(memory):
    rec = memory.add(
        "Prefers dark mode in every editor",
        user_id="bob",
        session_id="s",
        agent_id="a",
        turn_id="t",
        category="preference",
        importance=0.3,
        entity_refs=["editor"],
        metadata={"source_url": "x"},
    )
    got = memory.get(rec.id)
    assert got is not None
    assert got.model_dump() == rec.model_dump()
    assert got.scope_level.value == "turn"
    assert got.category is MemoryCategory.PREFERENCE
    assert got.provenance[0].agent_id == "a"
    assert got.access_count == 0 and got.last_accessed is None
    memory.search("dark mode", user_id="bob", session_id="s", agent_id="a", turn_id="t")
    touched = memory.get(rec.id)
    assert touched is not None
    assert touched.access_count == 1 and touched.last_accessed is not None


def test_caller_chosen_id(memory):
    import pytest

    from headroom_integrations import InvalidInputError

    rec = memory.add("Keyed memory", user_id="u", memory_id="ns:key-1")
    assert memory.get("ns:key-1").content == "Keyed memory" and rec.id == "ns:key-1"
    with pytest.raises(InvalidInputError, match="already used"):
        memory.add("Another", user_id="u", memory_id="ns:key-1")
