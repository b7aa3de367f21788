"""``Memory()``: save/search/clear/delete, with agent_id as provenance."""

from __future__ import annotations

from headroom_integrations import Memory


async def test_agents_share_user_memory(tmp_path):
    memory = Memory(str(tmp_path / "m.db"))
    saved = await memory.save("Project uses uv, not pip", user_id="dev", agent_id="claude")
    hits = await memory.search("package manager", user_id="dev", agent_id="codex")
    assert hits[0].content == "Project uses uv, not pip"
    assert 0 < hits[0].score <= 1
    assert hits[0].memory.provenance[0].agent_id == "claude"
    again = await memory.save("Project uses uv, not pip", user_id="dev", agent_id="codex")
    assert again.id == saved.id
    assert [p.agent_id for p in again.provenance] == ["claude", "codex"]
    assert len(await memory.get_all(user_id="dev")) == 1
    assert await memory.search("package manager", user_id="someone-else") == []
    assert await memory.delete(saved.id) is True
    await memory.save("a", user_id="dev")
    await memory.save("b", user_id="dev")
    assert await memory.clear(user_id="dev") == 2
    await memory.close()


async def test_default_path_comes_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADROOM_MEMORY_PATH", str(tmp_path / "env.db"))
    memory = Memory()
    await memory.save("remember me", user_id="u")
    await memory.close()
    assert (tmp_path / "env.db").exists()
