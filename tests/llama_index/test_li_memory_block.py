"""HeadroomMemoryBlock inside llama_index.core.memory.Memory (flushes, extraction, recall)."""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory import Memory

from headroom_integrations.core.models import MemoryCategory, ScopeLevel
from headroom_integrations.llama_index import HeadroomMemoryBlock

EXTRACTED = (
    '<memory>{"memories": [{"content": "User\'s daughter is named Mia", "category": "entity", '
    '"importance": 0.7}]}</memory>'
)


def small_memory(session_id: str, block: HeadroomMemoryBlock) -> Memory:
    """A Memory whose short-term queue flushes after a few messages."""
    return Memory.from_defaults(
        session_id=session_id, token_limit=100, chat_history_token_ratio=0.5,
        token_flush_size=40, memory_blocks=[block],
    )


async def _chat(mem: Memory, turns: list[tuple[str, str]]) -> None:
    for user, assistant in turns:
        await mem.aput(ChatMessage(role="user", content=user))
        await mem.aput(ChatMessage(role="assistant", content=assistant))


async def test_llm_extraction_on_flush_then_recall_in_another_session(memory, scripted) -> None:
    llm = scripted(replies=[EXTRACTED] * 5)
    block = HeadroomMemoryBlock(engine=memory, user_id="kim", llm=llm)
    mem = small_memory("s1", block)
    await _chat(mem, [
        ("My daughter Mia starts school next week and I need to plan the mornings.", "Happy to help plan."),
        ("She likes pancakes for breakfast, what is quick to make on a weekday?", "Try overnight oats."),
        ("What time should we leave if school starts at eight thirty in the morning?", "Around 8:05."),
        ("Thanks, and can you remind me of what we discussed about breakfast today?", "Overnight oats."),
    ])
    assert llm.calls, "a flush should have asked the LLM for a <memory> block"
    prompt = llm.calls[0]
    assert "<memory>" in prompt[0].content  # the package's extraction instruction
    assert "user: My daughter Mia starts school" in prompt[-1].content
    stored = memory.get_all(user_id="kim")
    assert [r.content for r in stored] == ["User's daughter is named Mia"]
    assert stored[0].scope_level == ScopeLevel.USER

    # A fresh Memory, another session, a block without LLM: the memory is recalled.
    recall = small_memory("s2", HeadroomMemoryBlock(engine=memory, user_id="kim"))
    await recall.aput(ChatMessage(role="user", content="What is my daughter's name?"))
    messages = await recall.aget()
    assert "User's daughter is named Mia" in messages[0].content
    assert messages[0].role == MessageRole.SYSTEM


async def test_without_llm_user_messages_become_session_context(memory) -> None:
    mem = small_memory("s1", HeadroomMemoryBlock(engine=memory, user_id="lee"))
    await _chat(mem, [
        ("I am debugging a flaky integration test in the payments service today.", "Let's look."),
        ("The failure only happens on the CI runners with two cores, never locally.", "Timing issue?"),
        ("Yes, probably a race between the webhook handler and the ledger writer.", "Add a lock."),
        ("Okay, I will try adding a lock around the ledger writer and rerun CI.", "Good plan."),
    ])
    stored = memory.get_all(user_id="lee")
    assert stored, "flushed user messages should be stored"
    assert all(r.category == MemoryCategory.CONTEXT and r.session_id == "s1" for r in stored)
    assert any("flaky integration test" in r.content for r in stored)
    assert not any("Let's look" in r.content for r in stored)  # assistant text is not stored

    block = HeadroomMemoryBlock(engine=memory, user_id="lee")
    same = await block.aget([ChatMessage(role="user", content="Which service had the flaky test?")], session_id="s1")
    other = await block.aget([ChatMessage(role="user", content="Which service had the flaky test?")], session_id="s2")
    assert "payments service" in same
    assert other == ""  # session-scoped context stays in its session
