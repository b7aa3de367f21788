"""Query words that nearly every memory of the user holds are left out of the search."""

from __future__ import annotations

import pytest

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.query_words import strip_words

TOPICS = [
    "went to a support group yesterday", "is thinking about studying counseling",
    "got a necklace from her grandmother", "wants to adopt children some day",
    "finds painting sunsets relaxing", "joined a mentorship program", "loved the book Becoming Nicole",
    "is researching adoption agencies", "gave a talk at a school", "had a birthday party",
    "goes hiking to think", "plays the violin on Sundays", "camped at the lake",
    "finished a pottery class", "saw a meteor shower", "swims with friends",
    "cooked lasagna for the team", "repaired an old bicycle", "learned to bake sourdough",
    "visited her cousin in Lisbon", "watched a documentary about whales", "planted tomatoes",
]


def _open(db_path: str, embedder, **cfg) -> SyncHierarchicalMemory:
    return SyncHierarchicalMemory.create(
        MemoryConfig(db_path=db_path, dedup=False, **cfg), embedder=embedder
    )


@pytest.fixture
def journal(tmp_path, embedder):
    """A user whose every memory names the same person (a transcript's speaker)."""
    mem = _open(str(tmp_path / "m.db"), embedder)
    mem.add_many([{"content": f"Caroline {t}.", "user_id": "u"} for t in TOPICS])
    yield mem
    mem.close()


def test_a_word_every_memory_holds_does_not_flood_keyword_results(journal, tmp_path, embedder):
    hits = journal.text_search("What did Caroline research?", user_id="u", top_k=30)
    assert [h.content for h in hits] == ["Caroline is researching adoption agencies."]
    journal.close()
    # the same store with the rewrite off: the name matches (and ranks) every memory
    plain = _open(str(tmp_path / "m.db"), embedder, common_term_ratio=1.0)
    try:
        flooded = plain.text_search("What did Caroline research?", user_id="u", top_k=30)
        assert len(flooded) == len(TOPICS)
        assert flooded[0].content == "Caroline is researching adoption agencies."
    finally:
        plain.close()


def test_hybrid_still_finds_the_answer_and_a_name_only_query_still_works(journal):
    top = journal.search("What does Caroline find relaxing?", user_id="u", top_k=1)
    assert top[0].content == "Caroline finds painting sunsets relaxing."
    # nothing else left to search for: the query is kept as it is
    assert len(journal.search("Caroline", user_id="u", top_k=5)) == 5
    assert len(journal.text_search("Caroline", user_id="u", top_k=50)) == len(TOPICS)


def test_commonness_is_per_user(journal):
    # another user with few memories that mention Caroline: the word is rare for them
    journal.add_many(
        [{"content": f"Team note {n}: {t}.", "user_id": "v"} for n, t in enumerate(TOPICS)]
        + [{"content": "Caroline from accounting approved the budget.", "user_id": "v"}]
    )
    hits = journal.text_search("Caroline", user_id="v", top_k=5)
    assert [h.content for h in hits] == ["Caroline from accounting approved the budget."]
    idx = journal.text_index
    assert idx.common_terms("what did caroline do", "u", ratio=0.7) == {"caroline"}
    assert idx.common_terms("what did caroline do", "v", ratio=0.7) == set()


def test_small_users_are_not_rewritten(tmp_path, embedder):
    mem = _open(str(tmp_path / "s.db"), embedder)
    try:
        mem.add_many([{"content": f"Caroline {t}.", "user_id": "u"} for t in TOPICS[:5]])
        assert mem.text_index.common_terms("Caroline research", "u", ratio=0.7) == set()
        assert len(mem.text_search("What did Caroline research?", user_id="u", top_k=9)) == 5
    finally:
        mem.close()


@pytest.mark.parametrize(
    "text, words, expected",
    [
        ("What is Caroline's job?", {"caroline"}, "What is 's job?"),
        ("CAROLINE and caroline", {"Caroline"}, " and "),
        ("Caroline", {"caroline"}, "Caroline"),  # nothing would be left
        ("no change", set(), "no change"),
        ("Straße café", {"café"}, "Straße "),
    ],
)
def test_strip_words(text, words, expected):
    assert strip_words(text, words) == expected
