"""Hybrid search quality and safety on the real ONNX model."""

from __future__ import annotations

import pytest

from headroom_integrations import InvalidInputError

FACTS = [
    ("User prefers Go for performance-critical code", "preference"),
    ("User's dog is called Biscuit", "entity"),
    ("The staging database is Postgres 16 on port 5433", "fact"),
    ("Decided to deploy on Fridays only after 2pm", "decision"),
    ("User is allergic to shellfish", "fact"),
    ("Error code E1234 means the license expired", "fact"),
]


@pytest.fixture
def filled(memory):
    for text, cat in FACTS:
        memory.add(text, user_id="u", category=cat)
    return memory


@pytest.mark.parametrize(
    "query, expected",
    [
        ("what language for a fast microservice?", FACTS[0][0]),
        ("pet name", FACTS[1][0]),
        ("which port does staging db listen on", FACTS[2][0]),
        ("can I ship this friday morning", FACTS[3][0]),
        ("seafood dinner ideas", FACTS[4][0]),
        ("E1234", FACTS[5][0]),
    ],
)
def test_hybrid_finds_the_right_memory_first(filled, query, expected):
    assert filled.search(query, user_id="u", top_k=3)[0].content == expected


def test_keyword_only_and_vector_only(filled):
    text = filled.text_search("E1234", user_id="u")
    assert [h.content for h in text] == [FACTS[5][0]]
    assert text[0].text_rank == 1 and text[0].vector_rank is None
    assert filled.text_search("puppy", user_id="u") == []  # no shared word
    vec = filled.search("puppy", user_id="u", mode="vector", top_k=1)
    assert vec[0].content == FACTS[1][0]
    assert vec[0].similarity is not None and vec[0].similarity > 0.2


def test_scores_are_ordered_and_bounded(filled):
    hits = filled.search("database port", user_id="u", top_k=6)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s <= 1.0 for s in scores)


def test_min_similarity_and_categories(filled):
    hits = filled.search("pet name", user_id="u", top_k=6, min_similarity=0.3)
    assert [h.content for h in hits] == [FACTS[1][0]]
    hits = filled.search("anything", user_id="u", top_k=6, categories=["decision"])
    assert [h.content for h in hits] == [FACTS[3][0]]
    with pytest.raises(InvalidInputError, match="unknown memory category"):
        filled.search("x", user_id="u", categories=["feelings"])


@pytest.mark.parametrize(
    "query",
    ['"', '""', "AND", "OR NOT", "NEAR(a b)", "*", "-", ":", "a:b", "col:value", "foo*", "(",
     ")", "'", "🙂🙃", "", "   ", "\x00", "NEAR/2", "^start", "a - b", "SELECT * FROM x;--",
     "x" * 5000, "Straße café naïve", "日本語の質問"],
)
def test_any_string_is_a_valid_query(filled, query):
    for mode in ("hybrid", "text", "vector"):
        hits = filled.search(query, user_id="u", mode=mode)
        assert isinstance(hits, list)


def test_top_k_is_validated(filled):
    with pytest.raises(InvalidInputError, match="top_k"):
        filled.search("x", user_id="u", top_k=0)
    assert len(filled.search("user", user_id="u", top_k=2)) == 2


def test_query_embedding_is_cached(filled):
    filled.search("a question asked twice", user_id="u")
    hits_before = filled.cache.hits
    filled.search("a question asked twice", user_id="u")
    assert filled.cache.hits == hits_before + 1


async def test_async_search_and_text_search(amemory):
    await amemory.add("Meeting with Priya on Tuesday about the Q3 roadmap", user_id="u")
    hits = await amemory.search("when do I meet Priya", user_id="u")
    assert hits[0].content.startswith("Meeting with Priya")
    text = await amemory.text_search("roadmap", user_id="u")
    assert len(text) == 1
