"""Streamed chat completions with the ``<memory>`` block hidden on the fly.

The wrappers yield the SDK's own ``ChatCompletionChunk`` objects -- modified copies whose
``choices[i].delta.content`` has the block removed -- so role, tool-call, ``finish_reason``
and ``usage`` chunks arrive as they came. Text the stripper holds back (a possible partial
tag, blanks next to a block) is released in the choice's ``finish_reason`` chunk. A chunk
whose only payload was text that turned out to be inside a block is dropped.

When the stream ends, ``on_end`` receives the outcome of choice 0 (its raw text and, when
stripping, what the stripper found). When the consumer stops early and closes the stream
(``close()``, or leaving a ``with`` block), only the blocks that were complete are used.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol import MemoryStreamStripper, ParseResult, parse_block_content

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AsyncMemoryStream", "ChunkProcessor", "MemoryStream", "StreamOutcome"]

logger = logging.getLogger("headroom_integrations.openai")


@dataclass
class StreamOutcome:
    """What one stream produced for choice 0."""

    raw_text: str
    """The model's text as streamed (block included)."""
    parsed: ParseResult | None
    """The stripper's result (None when not stripping)."""
    complete: bool
    """False when the consumer closed the stream before its end."""


@dataclass
class _Choice:
    stripper: MemoryStreamStripper = field(default_factory=MemoryStreamStripper)
    raw: list[str] = field(default_factory=list)
    last_chunk: Any = None
    done: bool = False


def _has_other_payload(delta: Any) -> bool:
    if delta is None:
        return False
    for name in ("role", "tool_calls", "function_call", "refusal"):
        if getattr(delta, name, None):
            return True
    extra = getattr(delta, "model_extra", None)
    return bool(extra)


class ChunkProcessor:
    """Chunk-by-chunk logic shared by the sync and async stream wrappers."""

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self._choices: dict[int, _Choice] = {}
        self.ended = False

    def _state(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        return state

    def process(self, chunk: Any) -> Any | None:
        """The chunk to yield for ``chunk`` (a modified copy), or None to drop it."""
        choices = getattr(chunk, "choices", None)
        if not choices:
            return chunk
        new_choices = []
        changed = False
        droppable = getattr(chunk, "usage", None) is None
        for choice in choices:
            state = self._state(getattr(choice, "index", 0) or 0)
            state.last_chunk = chunk
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None) if delta is not None else None
            if isinstance(content, str) and content:
                state.raw.append(content)
            if not self.strip:
                new_choices.append(choice)
                droppable = False
                continue
            text = ""
            if isinstance(content, str) and content and not state.done:
                text = state.stripper.feed(content)
            finishing = getattr(choice, "finish_reason", None) is not None
            if finishing and not state.done:
                text += state.stripper.finish()
                state.done = True
            new_content = None if content is None and not text else text
            if new_content != content and delta is not None:
                choice = choice.model_copy(
                    update={"delta": delta.model_copy(update={"content": new_content})}
                )
                changed = True
            if (
                new_content
                or finishing
                or _has_other_payload(delta)
                or getattr(choice, "logprobs", None) is not None
                or not content
            ):
                droppable = False
            new_choices.append(choice)
        if self.strip and droppable:
            return None
        if changed:
            return chunk.model_copy(update={"choices": new_choices})
        return chunk

    def tail(self) -> list[Any]:
        """At the end of the stream: chunks carrying text still held back by choices that
        never got a ``finish_reason`` (a cut stream)."""
        out: list[Any] = []
        if not self.strip:
            return out
        for index, state in sorted(self._choices.items()):
            if state.done:
                continue
            text = state.stripper.finish()
            state.done = True
            if text and state.last_chunk is not None:
                base = state.last_chunk
                for choice in base.choices:
                    if (getattr(choice, "index", 0) or 0) == index:
                        delta = choice.delta.model_copy(update={"content": text})
                        new = choice.model_copy(update={"delta": delta, "finish_reason": None})
                        out.append(base.model_copy(update={"choices": [new], "usage": None}))
                        break
        return out

    def outcome(self, complete: bool) -> StreamOutcome:
        state = self._choices.get(0)
        if state is None:
            return StreamOutcome("", ParseResult("") if self.strip else None, complete)
        raw = "".join(state.raw)
        if not self.strip:
            return StreamOutcome(raw, None, complete)
        if complete:
            if not state.done:
                state.stripper.finish()
                state.done = True
            return StreamOutcome(raw, state.stripper.result, complete)
        # stopped early: only the blocks that were closed count
        memories = []
        errors: list[str] = []
        seen: set[str] = set()
        for block in state.stripper.blocks:
            found, problems = parse_block_content(block)
            errors.extend(problems)
            for item in found:
                if item.content.casefold() not in seen:
                    seen.add(item.content.casefold())
                    memories.append(item)
        return StreamOutcome(raw, ParseResult(None, memories, errors), complete)


class MemoryStream:
    """Wraps the SDK's ``Stream[ChatCompletionChunk]``: iterable, context manager,
    ``close()``; other attributes (``response``...) come from the SDK stream."""

    def __init__(
        self, stream: Any, processor: ChunkProcessor, on_end: Callable[[StreamOutcome], None]
    ) -> None:
        self._stream = stream
        self._iter = iter(stream)
        self._processor = processor
        self._on_end = on_end
        self._pending: list[Any] = []
        self._ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> MemoryStream:
        return self

    def __next__(self) -> Any:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._ended:
                raise StopIteration
            try:
                chunk = next(self._iter)
            except StopIteration:
                self._pending.extend(self._processor.tail())
                self._end(complete=True)
                continue
            out = self._processor.process(chunk)
            if out is not None:
                return out

    def _end(self, complete: bool) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._on_end(self._processor.outcome(complete))
        except Exception:
            logger.exception("storing the memories of a stream failed")

    def close(self) -> None:
        """Close the HTTP response; memories in blocks completed so far are stored."""
        try:
            self._stream.close()
        finally:
            self._end(complete=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemoryStream:
    """Async counterpart of :class:`MemoryStream` (wraps ``AsyncStream``)."""

    def __init__(
        self,
        stream: Any,
        processor: ChunkProcessor,
        on_end: Callable[[StreamOutcome], Awaitable[None]],
    ) -> None:
        self._stream = stream
        self._iter = stream.__aiter__()
        self._processor = processor
        self._on_end = on_end
        self._pending: list[Any] = []
        self._ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> AsyncMemoryStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._ended:
                raise StopAsyncIteration
            try:
                chunk = await self._iter.__anext__()
            except StopAsyncIteration:
                self._pending.extend(self._processor.tail())
                await self._end(complete=True)
                continue
            out = self._processor.process(chunk)
            if out is not None:
                return out

    async def _end(self, complete: bool) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            await self._on_end(self._processor.outcome(complete))
        except Exception:
            logger.exception("storing the memories of a stream failed")

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            await self._end(complete=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
