"""MemoryStreamStripper: a streamed answer never shows a block, whatever the chunking."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom_integrations.protocol import (
    MemoryStreamStripper,
    astrip_stream,
    parse_memory_blocks,
    strip_stream,
)

ANSWER = (
    "Sure, here is the plan.\n\n"
    '<memory>{"memories": [{"content": "User is migrating to Postgres", '
    '"category": "context", "importance": 0.7}]}</memory>\n'
)


def run(chunks: list[str]) -> tuple[list[str], MemoryStreamStripper]:
    stripper = MemoryStreamStripper()
    outputs = [stripper.feed(chunk) for chunk in chunks]
    outputs.append(stripper.finish())
    return outputs, stripper


def test_one_character_chunks_hide_the_block_and_keep_the_memory() -> None:
    outputs, stripper = run(list(ANSWER))
    assert "".join(outputs) == "Sure, here is the plan."
    assert [m.content for m in stripper.result.memories] == ["User is migrating to Postgres"]
    assert stripper.result.clean_text == "Sure, here is the plan."


def test_text_is_emitted_as_it_arrives_and_only_a_possible_tag_is_held() -> None:
    stripper = MemoryStreamStripper()
    assert stripper.feed("Hello wor") == "Hello wor"
    assert stripper.feed("ld <") == "ld"  # " <" might start a tag
    assert stripper.feed("b>") == " <b>"  # it did not
    assert stripper.feed(" <MEM") == ""
    assert stripper.feed("ORY>secret") == ""
    assert stripper.in_block
    assert stripper.feed("</memory> after") == " after"
    assert stripper.finish() == ""


def test_text_after_a_closed_block_is_shown_again() -> None:
    outputs, stripper = run(["A <memory>", '["x"]', "</mem", "ory>", " B", " C"])
    assert "".join(outputs) == "A B C"
    assert [m.content for m in stripper.result.memories] == ["x"]


def test_finish_flushes_held_text_that_was_not_a_tag() -> None:
    stripper = MemoryStreamStripper()
    assert stripper.feed("x <mem") == "x"
    assert stripper.finish() == " <mem"


def test_unclosed_block_and_truncated_tag_stay_hidden() -> None:
    assert "".join(run(["Ok.", "\n<memory>", '["y"'])[0]) == "Ok."
    assert "".join(run(["Ok.", "\n<MEMO", "RY"])[0]) == "Ok."


def test_none_and_empty_chunks_are_ignored() -> None:
    outputs, stripper = run(["", None, "hi", None])  # type: ignore[list-item]
    assert "".join(outputs) == "hi"


def test_result_before_finish_and_feed_after_finish_raise() -> None:
    stripper = MemoryStreamStripper()
    with pytest.raises(RuntimeError):
        _ = stripper.result
    stripper.finish()
    with pytest.raises(RuntimeError):
        stripper.feed("late")


def test_strip_stream_yields_visible_text_and_exposes_result() -> None:
    stripper = MemoryStreamStripper()
    pieces = list(strip_stream(iter([ANSWER[:30], ANSWER[30:60], ANSWER[60:]]), stripper))
    assert "".join(pieces) == "Sure, here is the plan."
    assert all(pieces)
    assert len(stripper.result.memories) == 1


async def test_astrip_stream() -> None:
    async def chunks() -> AsyncIterator[str]:
        for ch in ANSWER:
            yield ch

    stripper = MemoryStreamStripper()
    pieces = [piece async for piece in astrip_stream(chunks(), stripper)]
    assert "".join(pieces) == "Sure, here is the plan."
    assert stripper.result.memories[0].importance == 0.7


# --------------------------------------------------------------------------- properties

_fragments = st.sampled_from(
    [
        "<memory>",
        "</memory>",
        "<Memory >",
        "< MEMORY>",
        "</ memory >",
        "<memory",
        "<mem",
        "<",
        ">",
        "/",
        "memory",
        "\n",
        "\n\n",
        " ",
        "\t",
        '["fact one"]',
        '{"content": "c"}',
        "- line",
        "text",
        "x",
    ]
)
_texts = st.one_of(st.text(max_size=60), st.lists(_fragments, max_size=25).map("".join))


@st.composite
def text_and_chunks(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(_texts)
    if draw(st.booleans()):
        return text, list(text)  # one character per chunk
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@settings(max_examples=400, deadline=None)
@given(text_and_chunks())
def test_stream_equals_parser_for_any_chunking(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    outputs, stripper = run(chunks)
    expected = parse_memory_blocks(text)
    assert "".join(outputs) == expected.clean_text
    assert stripper.result.clean_text == expected.clean_text
    assert stripper.result.memories == expected.memories
    assert stripper.result.errors == expected.errors


_visible = st.text(alphabet=st.characters(blacklist_characters="<"), max_size=15)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(_visible, st.sampled_from(["<memory>", "<MEMORY >", "< Memory>"])), max_size=4
    ),
    _visible,
    st.booleans(),
    st.integers(1, 7),
)
def test_no_part_of_a_block_is_ever_shown(
    parts: list[tuple[str, str]], tail: str, close_last: bool, size: int
) -> None:
    text = ""
    for index, (visible, opening) in enumerate(parts):
        closing = "</memory>" if close_last or index < len(parts) - 1 else ""
        text += f"{visible}{opening}SECRET{index}{closing}"
    text += tail if (close_last or not parts) else ""
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    shown = "".join(strip_stream(chunks))
    assert "SECRET" not in shown
    assert "<memory" not in shown.lower()
    for visible, _ in parts:
        assert visible.strip() in shown
