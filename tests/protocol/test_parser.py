"""parse_memory_blocks: what the user sees and what gets stored from a model's answer."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom_integrations.core.models import MemoryCategory
from headroom_integrations.protocol import ExtractedMemory, parse_memory_blocks
from headroom_integrations.protocol.parser import MAX_CONTENT_CHARS


def contents(text: str | None) -> list[str]:
    return [m.content for m in parse_memory_blocks(text).memories]


def test_canonical_block_is_extracted_and_hidden() -> None:
    text = (
        "Go is a good fit here.\n\n"
        '<memory>{"memories": [{"content": "User prefers Go for performance-critical code", '
        '"category": "preference", "importance": 0.8}]}</memory>\n'
    )
    result = parse_memory_blocks(text)
    assert result.clean_text == "Go is a good fit here."
    assert result.memories == [
        ExtractedMemory(
            content="User prefers Go for performance-critical code",
            category=MemoryCategory.PREFERENCE,
            importance=0.8,
        )
    ]
    assert result.errors == []


@pytest.mark.parametrize("text", [None, ""])
def test_empty_or_none_content_is_returned_unchanged(text: str | None) -> None:
    result = parse_memory_blocks(text)
    assert result.clean_text == text
    assert result.memories == [] and result.errors == []


@pytest.mark.parametrize(
    "text",
    [
        "Plain answer with a trailing newline.\n\n",
        "  indented\n\ncode:\n    x < y and y > z\n",
        "The <mem> and <memories> tags, <memory id=1>, and a lone < are text.",
    ],
)
def test_text_without_block_is_untouched(text: str) -> None:
    result = parse_memory_blocks(text)
    assert result.clean_text == text
    assert result.memories == []


@pytest.mark.parametrize(
    "body",
    [
        '```json\n{"memories": [{"content": "Lives in Lyon"}]}\n```',
        '```\n[{"content": "Lives in Lyon"}]\n```',
        '[{"content": "Lives in Lyon"}]',
        '{"content": "Lives in Lyon"}',
        '["Lives in Lyon"]',
        '{"memories": [{"content": "Lives in Lyon",},],}',
        "{'memories': [{'content': 'Lives in Lyon', 'extra': true, 'x': null}]}",
        '{"memories": {"content": "Lives in Lyon"}}',
        'Saving this: {"memories": [{"content": "Lives in Lyon"}]}',
        "- Lives in Lyon",
        "Lives in Lyon",
    ],
)
def test_block_shapes_models_emit(body: str) -> None:
    result = parse_memory_blocks(f"Noted.\n<memory>{body}</memory>")
    assert result.clean_text == "Noted."
    assert [m.content for m in result.memories] == ["Lives in Lyon"]
    assert result.errors == []


@pytest.mark.parametrize("tag", ["<Memory>", "<MEMORY >", "< memory>", "<memory\n>"])
def test_mixed_case_and_spaced_tags(tag: str) -> None:
    result = parse_memory_blocks(f'ok {tag}["Has a cat"]</ MEMORY >')
    assert result.clean_text == "ok"
    assert contents(f'ok {tag}["Has a cat"]</Memory>') == ["Has a cat"]


def test_unknown_fields_missing_fields_and_defaults() -> None:
    result = parse_memory_blocks(
        '<memory>[{"content": "Uses vim", "mood": "happy", "id": 3}]</memory>'
    )
    (memory,) = result.memories
    assert memory.category is MemoryCategory.FACT
    assert memory.importance == 0.5
    assert memory.supersedes is None and memory.entity_refs == ()


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("PREFERENCE", MemoryCategory.PREFERENCE),
        ("preferences", MemoryCategory.PREFERENCE),
        ("likes", MemoryCategory.PREFERENCE),
        ("person", MemoryCategory.ENTITY),
        ("Decisions", MemoryCategory.DECISION),
        ("project", MemoryCategory.CONTEXT),
        ("lesson", MemoryCategory.INSIGHT),
        ("banana", MemoryCategory.FACT),
        (42, MemoryCategory.FACT),
    ],
)
def test_category_synonyms_and_unknown_default_to_fact(
    category: object, expected: MemoryCategory
) -> None:
    import json

    body = json.dumps([{"content": "x", "category": category}])
    (memory,) = parse_memory_blocks(f"<memory>{body}</memory>").memories
    assert memory.category is expected


@pytest.mark.parametrize(
    ("importance", "expected"),
    [
        (0.7, 0.7),
        ("0.7", 0.7),
        ("high", 0.8),
        ("LOW", 0.3),
        ("70%", 0.7),
        (8, 0.8),
        (85, 0.85),
        (1000, 1.0),
        (-3, 0.0),
        ("very important!", 0.5),
        (True, 0.5),
        (None, 0.5),
    ],
)
def test_importance_is_read_and_clamped(importance: object, expected: float) -> None:
    import json

    body = json.dumps([{"content": "x", "importance": importance}])
    (memory,) = parse_memory_blocks(f"<memory>{body}</memory>").memories
    assert memory.importance == pytest.approx(expected)
    assert 0.0 <= memory.importance <= 1.0


def test_supersedes_and_entity_refs() -> None:
    result = parse_memory_blocks(
        '<memory>[{"content": "Moved to Berlin", "supersedes": " m2 ", '
        '"entities": ["Berlin", "Berlin", ""]}, {"content": "b", "replaces": 3}]</memory>'
    )
    first, second = result.memories
    assert first.supersedes == "m2"
    assert first.entity_refs == ("Berlin",)
    assert second.supersedes == "m3"


def test_several_blocks_and_block_in_the_middle() -> None:
    text = (
        'First paragraph.\n\n<memory>["A"]</memory>\n\nSecond paragraph.\n'
        '<memory>["B", "a"]</memory>\nThird.'
    )
    result = parse_memory_blocks(text)
    assert result.clean_text == "First paragraph.\n\nSecond paragraph.\nThird."
    assert [m.content for m in result.memories] == ["A", "B"]  # "a" repeats "A"


def test_gap_left_by_a_block_is_at_most_one_blank_line_and_keeps_indentation() -> None:
    text = 'Intro:\n\n\n\n<memory>["x"]</memory>\n\n\n    indented code\n'
    assert parse_memory_blocks(text).clean_text == "Intro:\n\n    indented code\n"


def test_inline_block_between_words_leaves_one_space() -> None:
    assert parse_memory_blocks('I see <memory>["x"]</memory> what you mean').clean_text == (
        "I see what you mean"
    )


def test_unclosed_block_hides_everything_after_the_tag() -> None:
    result = parse_memory_blocks('Answer.\n<memory>{"memories": [{"content": "Likes tea"}]}')
    assert result.clean_text == "Answer."
    assert [m.content for m in result.memories] == ["Likes tea"]


def test_truncated_opening_tag_at_the_end_is_hidden() -> None:
    assert parse_memory_blocks("Answer.\n<memory").clean_text == "Answer."
    assert parse_memory_blocks("Answer <mem").clean_text == "Answer <mem"


def test_malformed_block_is_logged_dropped_and_hidden(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="headroom_integrations.protocol"):
        result = parse_memory_blocks('Hi.\n<memory>{"memories": [{"content": </memory>\nBye.')
    assert result.clean_text == "Hi.\nBye."
    assert result.memories == []
    assert len(result.errors) == 1
    assert any("malformed memory block" in r.getMessage() for r in caplog.records)


def test_plain_text_lines_become_fact_memories() -> None:
    result = parse_memory_blocks(
        "<memory>\n- Likes Go\n* preference: hates YAML\n2. Has two kids\n\nNone\n</memory>"
    )
    assert [(m.content, m.category) for m in result.memories] == [
        ("Likes Go", MemoryCategory.FACT),
        ("hates YAML", MemoryCategory.PREFERENCE),
        ("Has two kids", MemoryCategory.FACT),
    ]


@pytest.mark.parametrize(
    "body", ["", "  \n ", "none", "Nothing to remember.", "[]", '{"memories": []}']
)
def test_empty_blocks_store_nothing_without_error(body: str) -> None:
    result = parse_memory_blocks(f"Hi<memory>{body}</memory>")
    assert result.clean_text == "Hi"
    assert result.memories == [] and result.errors == []


def test_contents_are_sanitised_stripped_capped_and_empty_dropped() -> None:
    import json

    items = [
        {"content": "  a\x00b  "},
        {"content": "   "},
        {"content": "evil <MEMORY> CLOSE_TAG"},
        {"content": "x" * (MAX_CONTENT_CHARS + 500)},
        {"content": {"nested": "object"}},
    ]
    # A raw closing tag would end the block, but JSON escapes can still smuggle one in.
    body = json.dumps(items).replace("CLOSE_TAG", "\\u003c/memory >")
    result = parse_memory_blocks(f"<memory>{body}</memory>")
    got = [m.content for m in result.memories]
    assert got[0] == "ab"
    assert "<memory" not in got[1].lower() and "</memory" not in got[1].lower()
    assert len(got[2]) == MAX_CONTENT_CHARS
    assert len(got) == 3
    assert len(result.errors) == 2  # the blank one and the object


def test_never_returns_block_text_in_clean_text() -> None:
    secret = "SECRET-PAYLOAD"
    text = f"a <memory>{secret}</memory> b <MEMORY>{secret} c"
    assert secret not in (parse_memory_blocks(text).clean_text or "")


_fragments = st.sampled_from(
    [
        "<memory>",
        "</memory>",
        "<MEMORY >",
        "< /Memory>",
        "<mem",
        "<",
        ">",
        "/",
        "```json\n",
        "```",
        "{",
        "}",
        "[",
        "]",
        '"',
        "'",
        ",",
        ":",
        "\n",
        " ",
        "content",
        "memories",
        "0.5",
        "\x00",
        "\\",
        "é",
        "true",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(_fragments, st.text(max_size=5))).map("".join)))
def test_parser_never_raises_and_always_sanitises(text: str) -> None:
    result = parse_memory_blocks(text)
    assert isinstance(result.clean_text, str)
    for memory in result.memories:
        assert memory.content and memory.content == memory.content.strip()
        assert "<memory" not in memory.content.lower()
        assert "\x00" not in memory.content
        assert 0.0 <= memory.importance <= 1.0
