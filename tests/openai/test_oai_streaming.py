"""with_memory() streams: the block hidden on the fly, the SDK's chunks kept, memories stored."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from oai_fakes import FakeLLM, Reply, block, tool_call
from openai.types.chat import ChatCompletionChunk

from headroom_integrations.openai import MemoryStream, with_memory
from headroom_integrations.openai.stream import ChunkProcessor
from headroom_integrations.protocol import parse_memory_blocks

GO = "User prefers Go for performance-critical code"
ANSWER = (
    "Go is a great fit for that.\n\n"
    + block({"content": GO, "category": "preference", "importance": 0.8})
    + "\n"
)


def stream(client, text: str, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], stream=True, **kwargs
    )


def test_one_char_chunks_are_stripped_and_final_chunks_still_arrive(memory):
    fake = FakeLLM([Reply(ANSWER, chunk_size=1)])
    client = with_memory(fake.client(), user_id="alice", memory=memory)
    s = stream(client, "I prefer Go", stream_options={"include_usage": True})
    assert isinstance(s, MemoryStream)
    chunks = list(s)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Go is a great fit for that."
    assert all("<" not in (c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 18
    stored = memory.get_all(user_id="alice")
    assert [(m.content, m.category.value) for m in stored] == [(GO, "preference")]
    assert fake.last["stream"] is True


def test_stream_as_context_manager_and_response_passthrough(memory):
    fake = FakeLLM([Reply("Short." + block(GO), chunk_size=4)])
    client = with_memory(fake.client(), user_id="alice", memory=memory)
    with stream(client, "hi") as s:
        assert s.response.status_code == 200  # SDK stream attributes pass through
        text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert text == "Short."
    assert [m.content for m in memory.get_all(user_id="alice")] == [GO]


def test_stopping_early_stores_only_complete_blocks(memory):
    answer = (
        "First."
        + block("User plays chess")
        + " Then more text"
        + "<memory>"
        + json.dumps({"memories": [{"content": "User plays golf"}]})
        + "</memory>"
    )
    fake = FakeLLM([Reply(answer, chunk_size=1)])
    client = with_memory(fake.client(), user_id="alice", memory=memory)
    s = stream(client, "hobbies?")
    seen = ""
    for chunk in s:
        seen += chunk.choices[0].delta.content or ""
        if "more" in seen:
            break
    s.close()
    assert "<" not in seen
    assert [m.content for m in memory.get_all(user_id="alice")] == ["User plays chess"]


def test_malformed_block_in_a_stream_is_hidden(memory):
    fake = FakeLLM([Reply('All set. <memory>{"memories": [{"content": ', chunk_size=1)])
    client = with_memory(fake.client(), user_id="alice", memory=memory)
    text = "".join(c.choices[0].delta.content or "" for c in stream(client, "hi") if c.choices)
    assert text == "All set."
    assert memory.get_all(user_id="alice") == []


def test_streamed_tool_calls_pass_through(memory):
    call = tool_call("lookup", {"q": "go"})
    fake = FakeLLM([Reply(None, tool_calls=[call])])
    client = with_memory(fake.client(), user_id="alice", memory=memory)
    chunks = list(stream(client, "search go"))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "lookup" and calls[0].function.arguments == '{"q": "go"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert memory.get_all(user_id="alice") == []


def test_background_stream_is_untouched_and_extracted_after(memory):
    def script(body):
        if "<exchange>" in FakeLLM.text_of(body, "user"):
            return block(GO)
        return Reply("Go, definitely.", chunk_size=2)

    fake = FakeLLM(script)
    client = with_memory(fake.client(), user_id="alice", memory=memory, mode="background")
    chunks = list(stream(client, "I prefer Go"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Go, definitely."
    assert len(chunks) == 1 + 8 + 1  # role, 8 text chunks, finish: nothing dropped or merged
    client.flush()
    assert "Go, definitely." in FakeLLM.text_of(fake.chat_requests()[1], "user")
    assert [m.content for m in memory.get_all(user_id="alice")] == [GO]


def _chunk(i: int, content: str | None, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        }
    )


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            [
                "Hello",
                " ",
                "\n",
                "<",
                "memory",
                ">",
                "</",
                "<mem",
                "x",
                "{}",
                "]",
                '{"memories": ["A"]}',
                "</memory>",
                "<memory>",
                "ok.",
            ]
        ),
        max_size=25,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=8),
    finished=st.booleans(),
)
def test_processor_matches_parser_for_any_chunking(pieces, cuts, finished):
    """Whatever the text and however it is cut (with or without a final ``finish_reason``
    chunk), the yielded chunks carry exactly the parser's clean text, and the memories of
    choice 0 are the parser's."""
    text = "".join(pieces)
    chunks, i, k = [], 0, 0
    while i < len(text):
        n = cuts[k % len(cuts)]
        chunks.append(_chunk(len(chunks), text[i : i + n]))
        i, k = i + n, k + 1
    if finished:
        chunks.append(_chunk(len(chunks), None, "stop"))
    originals = [c.choices[0].delta.content for c in chunks]
    proc = ChunkProcessor(strip=True)
    out = [c for c in (proc.process(c) for c in chunks) if c is not None] + proc.tail()
    shown = "".join(c.choices[0].delta.content or "" for c in out)
    expected = parse_memory_blocks(text)
    assert shown == expected.clean_text
    if finished:
        assert out[-1].choices[0].finish_reason == "stop"
    else:
        assert all(c.choices[0].finish_reason is None for c in out)
    assert proc.outcome(True).parsed.memories == expected.memories
    assert [c.choices[0].delta.content for c in chunks] == originals  # SDK chunks not mutated
