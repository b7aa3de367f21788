"""Hiding ``<memory>`` blocks from a streamed answer, chunk by chunk.

Guarantee: for any text and any way of cutting it into chunks (down to one character each),
``"".join(stripper.feed(c) for c in chunks) + stripper.finish()`` is *exactly*
``parse_memory_blocks(text).clean_text``, and ``stripper.result.memories`` / ``.errors`` are
exactly the parser's. (``None`` chunks count as empty.) The only difference is timing:

- the stripper holds back a possible partial opening tag (at most 13 characters, e.g. ``"<"``,
  ``"<mem"``, ``"<MEMORY "``) until the next chunk tells whether it is a tag;
- it holds back blanks (spaces, tabs, newlines) until the next non-blank character, because
  blanks touching a removed block are tidied away (so a trailing newline of an answer
  *without* any block only appears at :meth:`MemoryStreamStripper.finish`);
- inside a block it emits nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

from headroom_integrations.protocol._tags import (
    CLOSE,
    OPEN,
    Tidier,
    is_truncated_open,
    partial_open_start,
)
from headroom_integrations.protocol.parser import ParseResult, _collect

__all__ = ["MemoryStreamStripper", "strip_stream", "astrip_stream"]

_MAX_CLOSE = 18  # longest closing tag: "<" + 3 blanks + "/" + 3 blanks + "memory" + 3 blanks + ">"


class MemoryStreamStripper:
    """Incremental counterpart of :func:`~headroom_integrations.protocol.parse_memory_blocks`.

    Feed each streamed text delta to :meth:`feed` and show what it returns; call :meth:`finish`
    at the end of the stream and show what it returns too; then read :attr:`result`.
    Not thread-safe: one instance per stream.
    """

    def __init__(self) -> None:
        self._tidier = Tidier()
        self._pending = ""  # text outside blocks not decided yet (a possible partial tag)
        self._in_block = False
        self._block = ""  # content of the open block so far
        self._scan_from = 0  # no closing tag starts before this index of _block
        self._blocks: list[str] = []
        self._shown: list[str] = []
        self._finished = False
        self._result: ParseResult | None = None

    @property
    def in_block(self) -> bool:
        """Whether the stream is currently inside a ``<memory>`` block."""
        return self._in_block

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self._finished

    def feed(self, chunk: str | None) -> str:
        """Add the next chunk; return the text that can be shown now (possibly ``""``)."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not chunk:
            return ""
        out: list[str] = []
        if self._in_block:
            self._scan_from = max(0, len(self._block) - _MAX_CLOSE + 1)
            self._block += chunk
        else:
            self._pending += chunk
        while True:
            if self._in_block:
                closing = CLOSE.search(self._block, self._scan_from)
                if closing is None:
                    break
                self._blocks.append(self._block[: closing.start()])
                self._pending = self._block[closing.end() :]
                self._block = ""
                self._in_block = False
                continue
            opening = OPEN.search(self._pending)
            if opening is None:
                cut = partial_open_start(self._pending)
                out.append(self._tidier.text(self._pending[:cut]))
                self._pending = self._pending[cut:]
                break
            out.append(self._tidier.text(self._pending[: opening.start()]))
            self._tidier.block()
            self._block = self._pending[opening.end() :]
            self._scan_from = 0
            self._pending = ""
            self._in_block = True
        return self._show("".join(out))

    def finish(self) -> str:
        """End of stream: return the remaining text to show; :attr:`result` becomes available.

        Held-back text that turned out not to be a tag is returned; an unclosed block (or an
        opening tag cut short after its name, like a final ``"<memory"``) stays hidden.
        """
        if self._finished:
            return ""
        out: list[str] = []
        if self._in_block:
            self._blocks.append(self._block)
            self._block = ""
        elif self._pending:
            if is_truncated_open(self._pending):
                self._tidier.block()
                self._blocks.append("")
            else:
                out.append(self._tidier.text(self._pending))
        self._pending = ""
        out.append(self._tidier.finish())
        shown = self._show("".join(out))
        self._finished = True
        memories, errors = _collect(self._blocks)
        self._result = ParseResult(
            clean_text="".join(self._shown), memories=memories, errors=errors
        )
        return shown

    @property
    def result(self) -> ParseResult:
        """Everything shown and the memories of all blocks. Raises before :meth:`finish`."""
        if self._result is None:
            raise RuntimeError("result is available after finish()")
        return self._result

    @property
    def blocks(self) -> list[str]:
        """Raw contents of the blocks closed so far (the open one excluded)."""
        return list(self._blocks)

    def _show(self, text: str) -> str:
        if text:
            self._shown.append(text)
        return text


def strip_stream(
    chunks: Iterable[str | None], stripper: MemoryStreamStripper | None = None
) -> Iterator[str]:
    """Yield the visible text of a stream of chunks (empty pieces skipped).

    Pass your own ``stripper`` to read its :attr:`~MemoryStreamStripper.result` afterwards.
    """
    stripper = stripper if stripper is not None else MemoryStreamStripper()
    for chunk in chunks:
        text = stripper.feed(chunk)
        if text:
            yield text
    tail = stripper.finish()
    if tail:
        yield tail


async def astrip_stream(
    chunks: AsyncIterable[str | None], stripper: MemoryStreamStripper | None = None
) -> AsyncIterator[str]:
    """Async counterpart of :func:`strip_stream`."""
    stripper = stripper if stripper is not None else MemoryStreamStripper()
    async for chunk in chunks:
        text = stripper.feed(chunk)
        if text:
            yield text
    tail = stripper.finish()
    if tail:
        yield tail
