"""HeadroomStore behind langmem's memory tools (the real langmem package)."""

from __future__ import annotations

from langmem import create_manage_memory_tool, create_search_memory_tool

from headroom_integrations import MemoryFilter, SyncHierarchicalMemory
from headroom_integrations.langchain import HeadroomStore


def test_langmem_manage_and_search_tools(memory: SyncHierarchicalMemory) -> None:
    store = HeadroomStore(memory=memory)
    manage = create_manage_memory_tool(namespace=("memories", "{user_id}"), store=store)
    search = create_search_memory_tool(namespace=("memories", "{user_id}"), store=store)
    alice = {"configurable": {"user_id": "alice"}}
    bob = {"configurable": {"user_id": "bob"}}

    out = manage.invoke({"action": "create", "content": "Alice prefers window seats on flights"},
                        config=alice)
    assert "created memory" in str(out).lower()
    manage.invoke({"action": "create", "content": "Bob is vegetarian"}, config=bob)

    found = search.invoke({"query": "airplane seating preference"}, config=alice)
    assert "window seats" in str(found)
    assert "vegetarian" not in str(found)  # another user's namespace

    # the memory is a real engine memory of user alice, findable by the engine too
    records = memory.query(MemoryFilter(user_id="alice"))
    assert [r.content for r in records] == ["Alice prefers window seats on flights"]

    # update and delete through the tool, by the id it reported
    item = store.search(("memories", "alice"), query="seats")[0]
    manage.invoke({"action": "update", "id": item.key, "content": "Alice prefers aisle seats"},
                  config=alice)
    assert "aisle" in str(search.invoke({"query": "seats"}, config=alice))
    manage.invoke({"action": "delete", "id": item.key}, config=alice)
    assert memory.query(MemoryFilter(user_id="alice")) == []
    assert [r.content for r in memory.query(MemoryFilter(user_id="bob"))] == ["Bob is vegetarian"]
