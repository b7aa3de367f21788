"""HeadroomStore through LangGraph's BaseStore API and inside a real create_agent run."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.config import get_store
from lc_fakes import ToolCallingFake

from headroom_integrations import MemoryFilter, SyncHierarchicalMemory
from headroom_integrations.langchain import HeadroomMemoryRetriever, HeadroomStore


def test_put_get_round_trip_update_delete(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    value = {"content": "Alice codes in Go", "tags": ["lang"], "nested": {"n": 1}, "score": 0.5}
    store.put(("memories", "alice"), "lang", value)
    item = store.get(("memories", "alice"), "lang")
    assert item is not None and item.value == value and item.key == "lang"
    assert item.namespace == ("memories", "alice")
    store.put(("memories", "alice"), "lang", {"content": "Alice codes in Rust"})
    item2 = store.get(("memories", "alice"), "lang")
    assert item2 is not None and item2.value == {"content": "Alice codes in Rust"}
    assert item2.updated_at >= item.updated_at and item2.created_at == item.created_at
    assert len(memory.get_all(user_id="alice")) == 1  # updated in place, not duplicated
    assert store.get(("memories", "bob"), "lang") is None
    assert store.get(("other", "alice"), "lang") is None
    store.delete(("memories", "alice"), "lang")
    assert store.get(("memories", "alice"), "lang") is None
    assert memory.get_all(user_id="alice") == []


def test_namespaces_map_to_scopes_and_are_visible_to_retriever(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    store.put(("memories", "alice"), "k1", {"text": "Alice is allergic to peanuts"})
    store.put(("memories", "alice", "trip"), "k2", {"content": "Flight to Oslo on Friday"})
    store.put(("prefs",), "theme", {"theme": "dark"})  # no content: the JSON is embedded
    recs = {r.content: r for r in memory.query(MemoryFilter(user_id="alice", all_scopes=True))}
    assert recs["Alice is allergic to peanuts"].scope_level.value == "user"
    assert recs["Flight to Oslo on Friday"].session_id == "trip"
    assert memory.get_all(user_id="langgraph")[0].content == '{"theme": "dark"}'
    docs = HeadroomMemoryRetriever(memory=memory, user_id="alice", k=5).invoke("food allergy")
    assert docs[0].page_content == "Alice is allergic to peanuts"


def test_search_query_filter_limit_offset_and_index_false(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    ns = ("memories", "alice")
    store.put(ns, "a", {"content": "Alice loves hiking in the Alps", "kind": "hobby", "year": 2020})
    store.put(ns, "b", {"content": "Alice plays the cello", "kind": "hobby", "year": 2023})
    store.put(ns, "c", {"content": "Alice works as a nurse", "kind": "job", "year": 2021})
    store.put(ns, "d", {"content": "Mountain trekking gear list"}, index=False)
    store.put(("memories", "alice", "s1"), "e", {"content": "Alice plans a mountain hike", "kind": "plan"})
    hits = store.search(("memories", "alice"), query="mountain walks", limit=10)
    keys = [h.key for h in hits]
    assert keys[0] in ("a", "e") and set(keys) == {"a", "b", "c", "d", "e"}
    assert keys[-1] == "d" and hits[-1].score is None  # not indexed: never ranked
    assert all(h.score is not None for h in hits[:-1])
    assert [h.key for h in store.search(ns, filter={"kind": "hobby"}, query="music")] == ["b", "a"]
    assert {h.key for h in store.search(ns, filter={"year": {"$gte": 2021}})} == {"b", "c"}
    listed = store.search(("memories", "alice"), limit=2, offset=1)
    assert len(listed) == 2
    assert [h.key for h in store.search(("memories", "alice", "s1"))] == ["e"]
    assert store.search(("memories", "bob")) == []


def test_list_namespaces(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    store.put(("memories", "alice"), "1", {"content": "x one"})
    store.put(("memories", "alice", "s1"), "2", {"content": "x two"})
    store.put(("docs", "bob"), "3", {"content": "x three"})
    assert store.list_namespaces() == [("docs", "bob"), ("memories", "alice"), ("memories", "alice", "s1")]
    assert store.list_namespaces(prefix=("memories",)) == [("memories", "alice"), ("memories", "alice", "s1")]
    assert store.list_namespaces(suffix=("s1",)) == [("memories", "alice", "s1")]
    assert store.list_namespaces(max_depth=1) == [("docs",), ("memories",)]


def test_inline_memories_are_items_too(memory: SyncHierarchicalMemory) -> None:
    rec = memory.add("User likes green tea", user_id="alice", category="preference", importance=0.6)
    store = HeadroomStore(memory=memory)
    (hit,) = store.search(("memories", "alice"), query="tea")
    assert hit.key == rec.id and hit.value == {"content": "User likes green tea", "category": "preference", "importance": 0.6}
    assert store.get(("memories", "alice"), rec.id) is not None


async def test_async_api(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    await store.aput(("memories", "alice"), "k", {"content": "Alice runs marathons"})
    item = await store.aget(("memories", "alice"), "k")
    assert item is not None and item.value["content"] == "Alice runs marathons"
    hits = await store.asearch(("memories", "alice"), query="running")
    assert [h.key for h in hits] == ["k"]
    await store.adelete(("memories", "alice"), "k")
    assert await store.aget(("memories", "alice"), "k") is None


@tool
def remember(fact: str) -> str:
    """Save a fact about the user."""
    get_store().put(("memories", "alice"), "fact-1", {"content": fact})
    return "saved"


@tool
def recall(query: str) -> str:
    """Search saved facts."""
    return "; ".join(i.value["content"] for i in get_store().search(("memories", "alice"), query=query))


def test_create_agent_tools_use_the_store(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    script = [
        AIMessage("", tool_calls=[{"name": "remember", "args": {"fact": "Alice's sister is Ines"}, "id": "1", "type": "tool_call"}]),
        AIMessage("Saved."),
    ]
    agent = create_agent(ToolCallingFake(messages=iter(script)), [remember, recall], store=store)
    agent.invoke({"messages": [HumanMessage("Remember my sister is Ines")]})
    assert store.get(("memories", "alice"), "fact-1").value == {"content": "Alice's sister is Ines"}  # type: ignore[union-attr]
    # a second agent, new store object on the same engine, recalls it through a tool
    script2 = [
        AIMessage("", tool_calls=[{"name": "recall", "args": {"query": "sister"}, "id": "2", "type": "tool_call"}]),
        AIMessage("Your sister is Ines."),
    ]
    agent2 = create_agent(ToolCallingFake(messages=iter(script2)), [remember, recall], store=HeadroomStore(memory=memory))
    out: Any = agent2.invoke({"messages": [HumanMessage("Who is my sister?")]})
    assert out["messages"][2].content == "Alice's sister is Ines"


def test_items_are_keyed_by_a_deterministic_memory_id(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    ns = ("memories", "alice", "s1")
    store.put(ns, "k", {"content": "Alice flies to Oslo"})
    rec = memory.get(HeadroomStore.item_id(ns, "k"))
    assert rec is not None and rec.session_id == "s1" and rec.content == "Alice flies to Oslo"
    assert HeadroomStore.item_id(ns, "k") != HeadroomStore.item_id(("memories", "alice"), "k")
    store.put(ns, "k", {"content": "Alice flies to Bergen"})
    assert memory.get(HeadroomStore.item_id(ns, "k")).content == "Alice flies to Bergen"  # type: ignore[union-attr]
    store.delete(ns, "k")
    assert store.get(ns, "k") is None
    store.put(ns, "k", {"content": "Alice flies to Tromso"})  # the key can be used again
    assert store.get(ns, "k").value == {"content": "Alice flies to Tromso"}  # type: ignore[union-attr]


def test_superseded_item_is_found_through_its_current_version(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    ns = ("memories", "alice")
    store.put(ns, "city", {"content": "Alice lives in Lisbon"})
    new = memory.supersede(HeadroomStore.item_id(ns, "city"), "Alice lives in Porto")
    item = store.get(ns, "city")
    assert item is not None and memory.get(new.id).is_current  # type: ignore[union-attr]
    store.put(ns, "city", {"content": "Alice lives in Faro"})
    assert store.get(ns, "city").value == {"content": "Alice lives in Faro"}  # type: ignore[union-attr]
    assert [r.content for r in memory.get_all(user_id="alice")] == ["Alice lives in Faro"]
    store.delete(ns, "city")
    assert store.get(ns, "city") is None and memory.get_all(user_id="alice") == []


def test_search_across_users_and_scopes(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    store.put(("memories", "alice"), "a", {"content": "Alice drinks green tea"})
    store.put(("memories", "alice", "s1", "bot"), "b", {"content": "Alice ordered tea today"})
    store.put(("memories", "bob"), "c", {"content": "Bob drinks black tea"})
    store.put(("other", "bob"), "d", {"content": "Bob drinks oolong tea"})
    assert {h.key for h in store.search(("memories",), query="tea")} == {"a", "b", "c"}
    assert {h.key for h in store.search(("memories", "alice"), query="tea")} == {"a", "b"}
    assert {h.key for h in store.search((), query="tea")} == {"a", "b", "c", "d"}
