"""Tag grammar and whitespace tidying shared by the one-shot parser and the stream stripper.

Grammar (case-insensitive):

- opening tag: ``<``, up to 3 spaces/tabs, ``memory``, up to 3 blanks (space, tab, newline),
  ``>`` -- e.g. ``<memory>``, ``<Memory>``, ``<MEMORY >``. No attributes: ``<memory id="1">``
  and ``<memories>`` are not tags and stay visible.
- closing tag: ``<``, blanks, ``/``, blanks, ``memory``, blanks, ``>`` (up to 3 blanks each).
- A block runs from an opening tag to the first closing tag after it, or to the end of the text
  when it is never closed.
- A text that *ends* with a truncated opening tag that already spells the whole name
  (``<memory``, ``<MEMORY  `` ...) is treated as an unclosed, empty block: hidden. Shorter
  fragments (``<``, ``<mem``) are ordinary text.
"""

from __future__ import annotations

import re

OPEN = re.compile(r"<[ \t]{0,3}memory[ \t\r\n]{0,3}>", re.IGNORECASE)
CLOSE = re.compile(r"<[ \t\r\n]{0,3}/[ \t\r\n]{0,3}memory[ \t\r\n]{0,3}>", re.IGNORECASE)
# A proper prefix of an opening tag (something more text could complete).
_OPEN_PREFIX = re.compile(
    r"<[ \t]{0,3}(?:m(?:e(?:m(?:o(?:r(?:y[ \t\r\n]{0,3})?)?)?)?)?)?", re.IGNORECASE
)
# A truncated opening tag that already spells the whole name.
_OPEN_TRUNCATED = re.compile(r"<[ \t]{0,3}memory[ \t\r\n]{0,3}", re.IGNORECASE)
MAX_OPEN_PREFIX = 13
"""Longest proper prefix of an opening tag: what a stream may hold back."""

_WS = " \t\r\n\f\v"


def partial_open_start(text: str) -> int:
    """Index where ``text`` ends with a possible start of an opening tag, else ``len(text)``.

    Only the last :data:`MAX_OPEN_PREFIX` characters can hold one.
    """
    start = max(0, len(text) - MAX_OPEN_PREFIX)
    index = text.find("<", start)
    while index != -1:
        if _OPEN_PREFIX.fullmatch(text, index):
            return index
        index = text.find("<", index + 1)
    return len(text)


def is_truncated_open(fragment: str) -> bool:
    """Whether a trailing fragment is an opening tag cut short after its full name."""
    return _OPEN_TRUNCATED.fullmatch(fragment) is not None


def _newlines(ws: str) -> int:
    return ws.count("\n")


class Tidier:
    """Joins the visible pieces around removed blocks, tidying the whitespace they leave.

    The blanks on both sides of a block (or of consecutive blocks separated only by blanks) are
    a *run*. A run at the start or the end of the text is removed. A run between text becomes:
    ``n`` newlines, where ``n`` is the most newlines of any single blank piece of the run
    (capped at 2), followed by the indentation of the text after it; or one space if the run
    has no newline but some blank; or nothing if the run has no blank at all.
    Text with no block passes through unchanged, trailing blanks included.

    Fed incrementally it gives the same output as fed at once (blanks are held back until the
    next non-blank character or :meth:`finish`).
    """

    def __init__(self) -> None:
        self._started = False  # some visible non-blank text was emitted
        self._held = ""  # blanks not emitted yet
        self._in_run = False
        self._run_newlines = 0
        self._run_blank = False

    def text(self, piece: str) -> str:
        """Add visible text; return what can be emitted now."""
        if not piece:
            return ""
        combined = self._held + piece
        body = combined.strip(_WS)
        if not body:
            self._held = combined
            return ""
        start = len(combined) - len(combined.lstrip(_WS))
        lead = combined[:start]
        self._held = combined[start + len(body) :]
        if self._in_run:
            self._in_run = False
            if not self._started:
                lead = ""
            else:
                newlines = min(2, max(self._run_newlines, _newlines(lead)))
                if newlines:
                    indent = lead[lead.rfind("\n") + 1 :] if "\n" in lead else ""
                    lead = "\n" * newlines + indent
                else:
                    lead = " " if (self._run_blank or lead) else ""
        self._started = True
        return lead + body

    def block(self) -> None:
        """A block was removed here."""
        if self._in_run:
            self._run_newlines = max(self._run_newlines, _newlines(self._held))
            self._run_blank = self._run_blank or bool(self._held)
        else:
            self._in_run = True
            self._run_newlines = _newlines(self._held)
            self._run_blank = bool(self._held)
        self._held = ""

    def finish(self) -> str:
        """End of text: trailing blanks are kept unless they touch a block."""
        held, self._held = self._held, ""
        return "" if self._in_run else held
