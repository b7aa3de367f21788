"""Which of a memory's ``entity_refs`` a query names, by whole words and without a model."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"\w+")
_POSSESSIVE = re.compile(r"(\w)[’'](?:s\b)?")


def _words(text: str) -> list[str]:
    # "Caroline's" and "James'" name Caroline and James
    return _WORD.findall(_POSSESSIVE.sub(r"\1", text.lower()))


class QueryNames:
    """The words of one query, ready to tell whether it names an entity.

    An entity is named when all its words appear in the query in order and next to each
    other ("Dr. Lee" is named by "what did dr lee say"); case, punctuation and a possessive
    "'s" do not matter.
    """

    def __init__(self, query: str) -> None:
        self._words = _words(query)
        self._set = set(self._words)
        self._joined = " " + " ".join(self._words) + " "

    def __bool__(self) -> bool:
        return bool(self._words)

    def names(self, entity: str) -> bool:
        """True when the query names ``entity``."""
        words = _words(entity)
        if not words:
            return False
        if len(words) == 1:
            return words[0] in self._set
        return (" " + " ".join(words) + " ") in self._joined

    def names_any(self, entities: Iterable[str]) -> bool:
        """True when the query names one of ``entities``."""
        return any(self.names(e) for e in entities)
