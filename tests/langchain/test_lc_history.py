"""HeadroomChatMessageHistory against a real store and RunnableWithMessageHistory."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import ConfigurableFieldSpec
from langchain_core.runnables.history import RunnableWithMessageHistory

from headroom_integrations import SyncHierarchicalMemory
from headroom_integrations.langchain import HeadroomChatMessageHistory, history_factory

from lc_fakes import RecordingListModel

pytestmark = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")

ALL_TYPES: list[BaseMessage] = [
    SystemMessage("be brief", id="s1"),
    HumanMessage("what's the weather in Paris?", additional_kwargs={"lang": "en"}, name="ann"),
    AIMessage(
        "",
        tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}],
        additional_kwargs={"refusal": None},
        response_metadata={"model_name": "gpt-x"},
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        id="a1",
    ),
    ToolMessage("18C, sunny", tool_call_id="call_1", name="weather", artifact={"raw": 18}),
    FunctionMessage("legacy", name="fn"),
    AIMessage([{"type": "text", "text": "It is 18C."}], id="a2"),
]


def test_all_message_types_round_trip_in_order(memory: SyncHierarchicalMemory) -> None:
    history = HeadroomChatMessageHistory("s", user_id="u", memory=memory)
    history.add_messages(ALL_TYPES[:3])
    history.add_messages(ALL_TYPES[3:])
    assert history.messages == ALL_TYPES
    assert history.messages[2].tool_calls == ALL_TYPES[2].tool_calls  # type: ignore[attr-defined]
    assert history.get_messages(limit=2) == ALL_TYPES[-2:]


def test_sessions_and_users_are_isolated_and_clear_is_scoped(memory: SyncHierarchicalMemory) -> None:
    a = HeadroomChatMessageHistory("s1", user_id="u", memory=memory)
    b = HeadroomChatMessageHistory("s2", user_id="u", memory=memory)
    c = HeadroomChatMessageHistory("s1", user_id="other", memory=memory)
    a.add_message(HumanMessage("a"))
    b.add_message(HumanMessage("b"))
    c.add_message(HumanMessage("c"))
    a.clear()
    assert a.messages == []
    assert [m.content for m in b.messages] == ["b"]
    assert [m.content for m in c.messages] == ["c"]


def test_streamed_chunk_is_stored_as_finished_message(memory: SyncHierarchicalMemory) -> None:
    chunk = AIMessageChunk("Hel", id="x") + AIMessageChunk(
        "lo",
        tool_call_chunks=[{"name": "t", "args": '{"a": 1}', "id": "c1", "index": 0, "type": "tool_call_chunk"}],
    )
    history = HeadroomChatMessageHistory("s", user_id="u", memory=memory)
    history.add_messages([chunk])
    (stored,) = history.messages
    assert type(stored) is AIMessage
    assert stored.content == "Hello"
    assert stored.tool_calls == [{"name": "t", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]


def test_persists_across_engines_on_the_same_file(db_path: str, embedder: Any) -> None:
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as first:
        HeadroomChatMessageHistory("s", user_id="u", memory=first).add_messages(ALL_TYPES)
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as second:
        assert HeadroomChatMessageHistory("s", user_id="u", memory=second).messages == ALL_TYPES


async def test_async_methods_run_on_the_store_worker_threads(memory: SyncHierarchicalMemory) -> None:
    history = HeadroomChatMessageHistory("s", user_id="u", memory=memory)
    threads: list[str] = []
    real_append, real_get = memory.transcripts.append, memory.transcripts.get

    def append(*args: Any, **kwargs: Any) -> None:
        threads.append(threading.current_thread().name)
        real_append(*args, **kwargs)

    def get(*args: Any, **kwargs: Any) -> list[str]:
        threads.append(threading.current_thread().name)
        return real_get(*args, **kwargs)

    memory.transcripts.append = append  # type: ignore[method-assign]
    memory.transcripts.get = get  # type: ignore[method-assign]
    await history.aadd_messages(ALL_TYPES)
    assert await history.aget_messages() == ALL_TYPES
    await history.aclear()
    assert await history.aget_messages() == []
    assert len(threads) == 3
    assert all(name.startswith("headroom-memory") for name in threads), threads


def _chain(model: RecordingListModel) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are helpful."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    return prompt | model


def test_runnable_with_message_history_sees_previous_turns(memory: SyncHierarchicalMemory) -> None:
    model = RecordingListModel(responses=["Nice to meet you, Ada.", "Your name is Ada."])
    chain = RunnableWithMessageHistory(
        _chain(model), history_factory(memory=memory, user_id="u"),
        input_messages_key="input", history_messages_key="history",
    )
    cfg = {"configurable": {"session_id": "s1"}}
    chain.invoke({"input": "I am Ada"}, cfg)
    chain.invoke({"input": "What is my name?"}, cfg)
    second_prompt = [m.content for m in model.seen[1]]
    assert second_prompt == [
        "You are helpful.", "I am Ada", "Nice to meet you, Ada.", "What is my name?"
    ]
    stored = HeadroomChatMessageHistory("s1", user_id="u", memory=memory).messages
    assert [(m.type, m.content) for m in stored] == [
        ("human", "I am Ada"), ("ai", "Nice to meet you, Ada."),
        ("human", "What is my name?"), ("ai", "Your name is Ada."),
    ]


async def test_runnable_with_history_async_and_user_from_config(memory: SyncHierarchicalMemory) -> None:
    model = RecordingListModel(responses=["hello"])
    chain = RunnableWithMessageHistory(
        _chain(model), history_factory(memory=memory),
        input_messages_key="input", history_messages_key="history",
        history_factory_config=[
            ConfigurableFieldSpec(id="user_id", annotation=str, is_shared=True),
            ConfigurableFieldSpec(id="session_id", annotation=str, is_shared=True),
        ],
    )
    await chain.ainvoke({"input": "hi"}, {"configurable": {"user_id": "bob", "session_id": "x"}})
    assert [m.content for m in HeadroomChatMessageHistory("x", user_id="bob", memory=memory).messages] == ["hi", "hello"]
    assert HeadroomChatMessageHistory("x", user_id="default", memory=memory).messages == []


def test_a_llamaindex_transcript_in_the_same_session_is_kept_apart(memory):
    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage

    from headroom_integrations.langchain import HeadroomChatMessageHistory
    from headroom_integrations.llama_index import HeadroomMemory

    HeadroomMemory(engine=memory, user_id="u", session_id="s").put(
        ChatMessage(role="user", content="from llamaindex"))
    history = HeadroomChatMessageHistory("s", user_id="u", memory=memory)
    assert history.messages == []
    history.add_messages([HumanMessage("from langchain")])
    assert [m.content for m in history.messages] == ["from langchain"]
    li = HeadroomMemory(engine=memory, user_id="u", session_id="s").get_all()
    assert [m.content for m in li] == ["from llamaindex"]
