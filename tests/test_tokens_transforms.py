"""Offline token counting and the rolling-window transform."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom_integrations import tokens
from headroom_integrations.tokens import (
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    count_message_tokens,
    count_tokens,
    get_encoding,
    message_tokens,
)
from headroom_integrations.transforms import RollingWindowTransform

# ------------------------------------------------------------------------- tokens


def test_encodings_load_offline_without_leaking_the_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    get_encoding.cache_clear()
    try:
        assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
        assert get_encoding("o200k_base").name == "o200k_base"
        assert "TIKTOKEN_CACHE_DIR" not in os.environ
    finally:
        get_encoding.cache_clear()


def test_broken_user_cache_dir_falls_back_to_bundled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import tiktoken.load

    def offline(*_: Any, **__: Any) -> bytes:
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    get_encoding.cache_clear()
    import tiktoken.registry

    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    try:
        assert count_tokens("hello world") == 2
        assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path)
    finally:
        get_encoding.cache_clear()


def test_clear_error_when_no_encoding_can_be_loaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import tiktoken.load
    import tiktoken.registry

    def offline(*_: Any, **__: Any) -> bytes:
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    monkeypatch.setattr(tokens, "bundled_tiktoken_cache_dir", lambda: None)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    get_encoding.cache_clear()
    try:
        with pytest.raises(tokens.TokenizerUnavailableError, match="TIKTOKEN_CACHE_DIR"):
            get_encoding("cl100k_base")
    finally:
        get_encoding.cache_clear()


def test_count_tokens_treats_special_tokens_as_text() -> None:
    assert count_tokens("") == 0
    assert count_tokens("<|endoftext|>") > 1


def test_message_tokens_cover_every_content_shape() -> None:
    text = {"role": "user", "content": "What is the capital of France?"}
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "What is the capital of France?"}],
    }
    assert message_tokens(text) == message_tokens(parts)
    assert message_tokens(text) == TOKENS_PER_MESSAGE + count_tokens("user") + count_tokens(
        "What is the capital of France?"
    )
    none = {"role": "assistant", "content": None}
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'},
            }
        ],
    }
    assert message_tokens(call) > message_tokens(none) + 10
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:..."}}]}
    assert message_tokens(image) > 80
    assert count_message_tokens([]) == 0
    assert count_message_tokens([text, call]) == TOKENS_PER_REPLY + message_tokens(
        text
    ) + message_tokens(call)


# --------------------------------------------------------------------- transform


def msg(role: str, content: str | None = "x", **kw: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **kw}


def call(call_id: str) -> dict[str, Any]:
    return msg(
        "assistant",
        None,
        tool_calls=[
            {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    )


def long(role: str, n: int = 200) -> dict[str, Any]:
    return msg(role, "word " * n)


def test_everything_fits_returns_a_new_equal_list() -> None:
    messages = [msg("system", "be nice"), msg("user", "hi"), msg("assistant", "hello")]
    snapshot = copy.deepcopy(messages)
    transform = RollingWindowTransform(max_tokens=1000)
    out = transform.apply(messages)
    assert out == messages and out is not messages
    assert messages == snapshot
    assert transform.dropped_count == 0


def test_keeps_system_and_most_recent_turns_within_budget() -> None:
    messages = [msg("system", "rules")] + [
        long("user" if i % 2 == 0 else "assistant") for i in range(10)
    ]
    messages.append(msg("user", "latest question"))
    snapshot = copy.deepcopy(messages)
    transform = RollingWindowTransform(max_tokens=700)
    out = transform.apply(messages)
    assert out[0] == messages[0]
    assert out[-1] == messages[-1]
    assert out[1:] == messages[len(messages) - (len(out) - 1) :]  # a contiguous recent suffix
    assert count_message_tokens(out) <= 700
    assert transform.last_tokens == count_message_tokens(out)
    assert transform.dropped_count == len(messages) - len(out) > 0
    assert messages == snapshot


def test_latest_user_message_is_kept_even_over_budget() -> None:
    messages = [
        msg("system", "rules"),
        msg("user", "old"),
        msg("assistant", "old answer"),
        long("user", 3000),
    ]
    out = RollingWindowTransform(max_tokens=100).apply(messages)
    assert out == [messages[0], messages[3]]


def test_current_agent_turn_is_kept_whole() -> None:
    messages = [
        long("user"),
        long("assistant"),
        msg("user", "book a flight"),
        call("a"),
        msg("tool", "ok", tool_call_id="a"),
        call("b"),
        msg("tool", "ok", tool_call_id="b"),
    ]
    out = RollingWindowTransform(max_tokens=50).apply(messages)
    assert out == messages[2:]


def test_tool_calls_and_their_answers_stay_together() -> None:
    messages = [
        msg("user", "q1"),
        call("a"),
        long("tool", 150) | {"tool_call_id": "a"},
        msg("tool", "second answer", tool_call_id="a"),
        msg("assistant", "done"),
        msg("user", "q2"),
    ]
    for budget in range(0, 400, 5):
        out = RollingWindowTransform(max_tokens=budget).apply(messages)
        non_system = [m for m in out if m["role"] != "system"]
        assert non_system[0]["role"] != "tool"
        for index, message in enumerate(out):
            if message["role"] == "tool":
                assert out[index - 1]["role"] in ("tool", "assistant")
        kept_call = messages[1] in out
        assert kept_call == (messages[2] in out) == (messages[3] in out)


def test_orphan_tool_message_never_starts_the_history() -> None:
    messages = [msg("tool", "stale", tool_call_id="zz"), msg("user", "hi")]
    out = RollingWindowTransform(max_tokens=10_000).apply(messages)
    assert out == [messages[1]]


def test_keep_system_false_windows_system_messages_too() -> None:
    messages = [long("system", 500), long("user"), msg("assistant", "a"), msg("user", "q")]
    out = RollingWindowTransform(max_tokens=300, keep_system=False).apply(messages)
    assert messages[0] not in out and out[-1] == messages[-1]
    assert RollingWindowTransform(max_tokens=300).apply(messages)[0] == messages[0]


def test_empty_input() -> None:
    transform = RollingWindowTransform()
    assert transform.apply([]) == []
    assert transform.dropped_count == 0


_roles = st.sampled_from(["system", "user", "assistant", "call", "tool"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_roles, st.integers(0, 60)), max_size=14), st.integers(0, 600))
def test_window_invariants(spec: list[tuple[str, int]], budget: int) -> None:
    messages = [
        call(f"c{i}")
        if r == "call"
        else msg(r, "w " * n, **({"tool_call_id": "c"} if r == "tool" else {}))
        for i, (r, n) in enumerate(spec)
    ]
    snapshot = copy.deepcopy(messages)
    out = RollingWindowTransform(max_tokens=budget).apply(messages)
    assert messages == snapshot
    ids = [id(m) for m in out]
    positions = [next(i for i, m in enumerate(messages) if id(m) == x) for x in ids]
    assert positions == sorted(positions)  # original order
    assert all(m in out for m in messages if m["role"] == "system")
    users = [m for m in messages if m["role"] == "user"]
    if users:
        assert any(m is users[-1] for m in out)
    history = [m for m in out if m["role"] != "system"]
    if history:
        assert history[0]["role"] != "tool"
    for index, message in enumerate(out):
        if message.get("tool_calls"):
            original = positions[index]
            following = messages[original + 1 :]
            answers = []
            for nxt in following:
                if nxt["role"] != "tool":
                    break
                answers.append(nxt)
            assert all(any(a is m for m in out) for a in answers)
