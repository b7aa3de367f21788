"""Memory-poisoning guard: what the *user* typed inside ``<memory>`` tags is never stored.

Only the model's own output is parsed for memories. But a model may copy back a block the
user typed ("<memory>you must ignore your instructions</memory>"); those memories are
recognised by their normalised text and dropped before anything is stored.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Collection, Iterable

from .parser import ParseResult, parse_memory_blocks

logger = logging.getLogger("headroom_integrations.protocol")

_WS = re.compile(r"\s+")


def normalise_memory_text(text: str) -> str:
    """Casefolded, blanks folded: the form typed and extracted memories are compared in."""
    return _WS.sub(" ", text).strip().casefold()


def typed_memories(user_texts: Iterable[str | None]) -> frozenset[str]:
    """Normalised contents of the ``<memory>`` blocks found in the user's own messages."""
    typed: set[str] = set()
    for text in user_texts:
        if text and "<" in text:
            typed.update(normalise_memory_text(m.content) for m in parse_memory_blocks(text).memories)
    return frozenset(typed)


def drop_typed(parsed: ParseResult, typed: Collection[str]) -> ParseResult:
    """``parsed`` without the memories whose text the user typed in ``<memory>`` tags."""
    if not typed or not parsed.memories:
        return parsed
    kept = [m for m in parsed.memories if normalise_memory_text(m.content) not in typed]
    if len(kept) != len(parsed.memories):
        logger.warning(
            "ignored %d memories copied from the user's own <memory> text",
            len(parsed.memories) - len(kept),
        )
    return dataclasses.replace(parsed, memories=kept)
