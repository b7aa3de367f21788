"""Rewriting a query's words before it is searched (no model involved)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PARTS = re.compile(r"\w+|\W+")
_WORD = re.compile(r"\w")


def strip_words(text: str, words: Iterable[str]) -> str:
    """``text`` without the word tokens listed in ``words`` (compared lowercased); ``text``
    itself when no word would be left."""
    drop = {w.lower() for w in words}
    if not drop:
        return text
    kept = "".join(p for p in _PARTS.findall(text) if p.lower() not in drop)
    return kept if _WORD.search(kept) else text
