"""InlineMemory: what every adapter injects before a call and stores after it."""

from __future__ import annotations

from headroom_integrations import MemoryFilter
from headroom_integrations.inline import InlineMemory
from headroom_integrations.protocol import parse_memory_blocks

ANSWER = (
    "Go is a fine choice.\n"
    '<memory>{"memories": ['
    '{"content": "User prefers Go for performance-critical code", "category": "preference", '
    '"importance": 0.8},'
    '{"content": "Working on a payments service today", "category": "context", "importance": 0.4}'
    "]}</memory>"
)


def test_durable_memories_reach_the_next_session_context_stays(memory):
    morning = InlineMemory.of(memory, user_id="alice", session_id="morning")
    stored = morning.store(parse_memory_blocks(ANSWER))
    assert [(m.content, m.session_id) for m in stored] == [
        ("User prefers Go for performance-critical code", None),
        ("Working on a payments service today", "morning"),
    ]
    afternoon = InlineMemory.of(memory, user_id="alice", session_id="afternoon")
    injection = afternoon.prepare("What language for my new microservice?")
    text = injection.system_text()
    assert "User prefers Go for performance-critical code" in text
    assert "payments service" not in text  # the morning's context stays in the morning
    assert "<memory>" in text  # the instruction shows the block format
    assert "not instructions" in injection.memories.text


def test_other_users_memories_are_never_injected(memory):
    InlineMemory.of(memory, user_id="alice").store(parse_memory_blocks(ANSWER))
    bob = InlineMemory.of(memory, user_id="bob")
    injection = bob.prepare("What language for my new microservice?")
    assert injection.memories.text == ""
    assert injection.refs == {}


def test_supersedes_ref_becomes_a_supersession(memory):
    im = InlineMemory.of(memory, user_id="u")
    im.store(parse_memory_blocks(
        '<memory>{"memories": [{"content": "User lives in Paris", "category": "fact", '
        '"importance": 0.9}]}</memory>'))
    injection = im.prepare("where do I live?")
    ref = next(iter(injection.refs))
    new = im.store(
        parse_memory_blocks(
            '<memory>{"memories": [{"content": "User moved to Berlin", "category": "fact", '
            f'"importance": 0.9, "supersedes": "{ref}"}}]}}</memory>'
        ),
        injection.refs,
    )
    assert len(new) == 1 and new[0].supersedes == injection.refs[ref]
    current = memory.query(MemoryFilter(user_id="u"))
    assert [m.content for m in current] == ["User moved to Berlin"]


def test_unknown_or_foreign_ref_adds_instead(memory):
    other = memory.add("Bob's secret", user_id="bob")
    im = InlineMemory.of(memory, user_id="u")
    out = im.store(
        parse_memory_blocks(
            '<memory>{"memories": [{"content": "User likes tea", "supersedes": "m9"},'
            f'{{"content": "User likes coffee", "supersedes": "{other.id}"}}]}}</memory>'
        ),
        {"m1": other.id},
    )
    assert [m.supersedes for m in out] == [None, None]
    assert memory.get(other.id).is_current


def test_token_budget_is_respected(memory):
    for i in range(40):
        memory.add(f"User fact number {i}: likes colour {i} very much indeed", user_id="u",
                   importance=0.9, dedup=False)
    im = InlineMemory.of(memory, user_id="u", max_tokens=60, top_k=20, core_top_k=20)
    injection = im.prepare("what colours do I like?")
    assert 0 < injection.memories.tokens <= 60
    assert 0 < len(injection.refs) < 40


async def test_async_prepare_and_store(amemory):
    im = InlineMemory.of(amemory, user_id="alice")
    await im.astore(parse_memory_blocks(ANSWER))
    injection = await im.aprepare("which language do I like?")
    assert "Go" in injection.system_text()


def test_user_placement(memory):
    im = InlineMemory.of(memory, user_id="alice", placement="user")
    im.store(parse_memory_blocks(ANSWER))
    injection = im.prepare("language?")
    assert "performance-critical" in injection.user_prefix()
    assert "performance-critical" not in injection.system_text()
