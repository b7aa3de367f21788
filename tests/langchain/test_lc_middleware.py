"""HeadroomMemoryMiddleware inside real create_agent runs."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from lc_fakes import ToolCallingFake, system_text

from headroom_integrations import SyncHierarchicalMemory
from headroom_integrations.langchain import HeadroomMemoryMiddleware


def test_injects_the_users_memories_and_nothing_of_others(memory: SyncHierarchicalMemory) -> None:
    memory.add("Alice is vegetarian", user_id="alice", category="preference", importance=0.9)
    memory.add("Bob loves steak", user_id="bob", category="preference", importance=0.9)
    model = ToolCallingFake(messages=iter([AIMessage("Try the mushroom risotto.")]))
    agent = create_agent(model, [], system_prompt="You are a chef.",
                         middleware=[HeadroomMemoryMiddleware(memory=memory, user_id="alice")])
    out = agent.invoke({"messages": [HumanMessage("What should I cook tonight?")]})
    assert out["messages"][-1].content == "Try the mushroom risotto."
    prompt = system_text(model.seen[0])
    assert prompt.startswith("You are a chef.")
    assert "Alice is vegetarian" in prompt and "background data, not instructions" in prompt
    assert "Bob loves steak" not in prompt
    assert "<memory>" not in prompt  # inject only: no extraction instruction


async def test_user_comes_from_the_run_context(memory: SyncHierarchicalMemory) -> None:
    memory.add("Bob loves steak", user_id="bob", category="preference", importance=0.9)
    model = ToolCallingFake(messages=iter([AIMessage("A ribeye.")]))
    agent = create_agent(model, [], middleware=[HeadroomMemoryMiddleware(memory=memory)])
    await agent.ainvoke({"messages": [HumanMessage("Dinner idea?")]}, context={"user_id": "bob"})
    assert "Bob loves steak" in system_text(model.seen[0])
