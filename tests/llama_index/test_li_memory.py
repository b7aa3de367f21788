"""HeadroomMemory as an agent's memory: persistence across runs, Context round trips, API."""

from __future__ import annotations

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.workflow import Context, JsonSerializer

from conftest import system_text
from headroom_integrations.llama_index import HeadroomMemory, HeadroomMemoryLLM

TEACH = (
    "Noted, Go it is.\n"
    '<memory>{"memories": [{"content": "User prefers Go for backend services", '
    '"category": "preference", "importance": 0.8}]}</memory>'
)


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


async def test_second_run_prompt_carries_what_the_first_taught(open_engine, scripted) -> None:
    # Run 1: the model (behind the memory LLM) learns a preference.
    engine1 = open_engine()
    llm1 = scripted(replies=[TEACH])
    agent1 = FunctionAgent(
        tools=[get_weather],
        llm=HeadroomMemoryLLM(llm=llm1, engine=engine1, user_id="alice"),
        system_prompt="You are a coding assistant.",
    )
    memory1 = HeadroomMemory(engine=engine1, user_id="alice", session_id="s1")
    out = await agent1.run(user_msg="I always write my backends in Go.", memory=memory1)
    assert str(out) == "Noted, Go it is."
    engine1.close()

    # Run 2: a new process-like setup on the same file, a new session, a plain model.
    engine2 = open_engine()
    llm2 = scripted(replies=["Use Go."])
    agent2 = FunctionAgent(tools=[get_weather], llm=llm2, system_prompt="You are a coding assistant.")
    memory2 = HeadroomMemory(engine=engine2, user_id="alice", session_id="s2")
    await agent2.run(user_msg="Which language should my new backend service use?", memory=memory2)

    prompt = llm2.calls[0]
    assert "User prefers Go for backend services" in system_text(prompt)
    # only this session's history is in the prompt, not session s1's
    assert [m.content for m in prompt if m.role == MessageRole.USER] == [
        "Which language should my new backend service use?"
    ]
    # session s1's transcript persisted, without the memory block
    s1 = HeadroomMemory(engine=engine2, user_id="alice", session_id="s1").get_all()
    assert [m.role for m in s1] == [MessageRole.USER, MessageRole.ASSISTANT]
    assert s1[1].content == "Noted, Go it is."


async def test_memory_survives_context_serialization(open_engine, scripted) -> None:
    engine = open_engine()
    engine.add("User's dog is called Biscuit", user_id="bob", category="entity", importance=0.7)
    llm = scripted(replies=[("tool", "get_weather", {"city": "Oslo"}), "It is sunny in Oslo.", "Biscuit!"])
    agent = FunctionAgent(tools=[get_weather], llm=llm)
    memory = HeadroomMemory(engine=engine, user_id="bob", session_id="chat-7")

    ctx = Context(agent)
    await agent.run(user_msg="Weather in Oslo?", ctx=ctx, memory=memory)
    data = ctx.to_dict(serializer=JsonSerializer())

    # The store this process had open is gone: the restored memory reopens it from its db_path.
    engine.close()
    restored = Context.from_dict(agent, data, serializer=JsonSerializer())
    await agent.run(user_msg="What is my dog's name?", ctx=restored)

    restored_memory = await restored.store.get("memory")
    assert isinstance(restored_memory, HeadroomMemory)
    assert (restored_memory.user_id, restored_memory.session_id) == ("bob", "chat-7")
    prompt = llm.calls[-1]
    texts = [m.content for m in prompt if m.role in (MessageRole.USER, MessageRole.ASSISTANT)]
    assert texts[0] == "Weather in Oslo?"
    assert "It is sunny in Oslo." in texts
    assert texts[-1] == "What is my dog's name?"
    assert any(m.role == MessageRole.TOOL and "Sunny in Oslo" in (m.content or "") for m in prompt)
    assert "Biscuit" in system_text(prompt)
    restored_memory.engine.close()


def test_sync_api_and_scoping(memory) -> None:
    memory.add("User is allergic to peanuts", user_id="alice", category="fact", importance=0.9)
    memory.add("User is allergic to shellfish", user_id="mallory", category="fact")
    mem = HeadroomMemory.from_defaults(
        engine=memory,
        user_id="alice",
        session_id="s1",
        chat_history=[ChatMessage(role="user", content="hello")],
    )
    mem.put(ChatMessage(role="assistant", content="hi!"))
    mem.put_messages([ChatMessage(role="user", content="Suggest a snack with nuts?")])
    assert [m.content for m in mem.get_all()] == ["hello", "hi!", "Suggest a snack with nuts?"]

    got = mem.get()
    assert got[0].role == MessageRole.SYSTEM
    assert "allergic to peanuts" in got[0].content
    assert "shellfish" not in got[0].content  # another user's memory never leaks
    assert [m.content for m in got[1:]] == ["hello", "hi!", "Suggest a snack with nuts?"]
    assert "allergic to peanuts" in mem.get(input="what am I allergic to")[0].content

    mem.set([ChatMessage(role="user", content="fresh start")])
    assert [m.content for m in mem.get_all()] == ["fresh start"]
    other = HeadroomMemory(engine=memory, user_id="alice", session_id="s2")
    assert other.get_all() == []
    mem.reset()
    assert mem.get_all() == []
    assert len(memory.get_all(user_id="alice")) == 1  # reset never touches long-term memories


def test_token_limit_keeps_newest_turns(memory) -> None:
    mem = HeadroomMemory(engine=memory, user_id="u", session_id="s", token_limit=40)
    for i in range(10):
        mem.put(ChatMessage(role="user", content=f"question number {i} about something long enough"))
        mem.put(ChatMessage(role="assistant", content=f"answer number {i}"))
    history = [m for m in mem.get() if m.role != MessageRole.SYSTEM]
    assert 0 < len(history) < 20
    assert history[0].role == MessageRole.USER
    assert history[-1].content == "answer number 9"
    assert len(mem.get_all()) == 20


async def test_native_async_api(amemory) -> None:
    await amemory.add("User lives in Lisbon", user_id="carol", category="fact")
    mem = HeadroomMemory(engine=amemory, user_id="carol", session_id="a1")
    await mem.aset([ChatMessage(role="user", content="hi")])
    await mem.aput(ChatMessage(role="assistant", content="hello"))
    await mem.aput_messages([ChatMessage(role="user", content="Where do I live?")])
    assert [m.content for m in await mem.aget_all()] == ["hi", "hello", "Where do I live?"]
    got = await mem.aget()
    assert "Lisbon" in got[0].content and got[0].role == MessageRole.SYSTEM
    await mem.areset()
    assert await mem.aget_all() == []
    # async methods are our own, not BaseMemory's run-in-thread defaults
    for name in ("aget", "aget_all", "aput", "aput_messages", "aset", "areset"):
        assert getattr(HeadroomMemory, name).__qualname__.startswith("HeadroomMemory.")


def test_from_defaults_opens_a_store_at_db_path(tmp_path, embedder) -> None:
    path = str(tmp_path / "fd.db")
    mem = HeadroomMemory.from_defaults(user_id="dan", db_path=path, session_id="x")
    mem.put(ChatMessage(role="user", content="persist me"))
    data = mem.to_dict()
    assert data["store_config"]["db_path"] == path and data["class_name"] == "HeadroomMemory"
    again = HeadroomMemory.from_dict(data)
    assert [m.content for m in again.get_all()] == ["persist me"]
    mem.engine.close()
