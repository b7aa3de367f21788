"""``HeadroomMemoryChatModel``: wrap any LangChain chat model with long-term memory.

Before each call it searches the memories relevant to the latest human message and adds
them to the system message (framed as read-only data), together with the instruction asking
the model to end its answer with a ``<memory>`` block when something is worth remembering.
After the call it removes that block from the answer -- also while streaming, chunk by
chunk -- and stores its memories (a ``supersedes`` ref becomes a real supersession).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
)
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import ConfigDict, Field, model_validator

from ..core.engine import SyncHierarchicalMemory
from ..core.models import MemoryRecord
from ..inline import InlineMemory, Injection
from ..protocol import (
    InjectedMemories,
    MemoryStreamStripper,
    ParseResult,
    drop_typed,
    typed_memories,
)
from ._common import content_text, resolve_engine

__all__ = ["HeadroomMemoryChatModel"]

logger = logging.getLogger("headroom_integrations.langchain")

# The inner model runs with no callbacks of its own: its raw tokens (memory block included)
# must never reach the caller's handlers or LangGraph's "messages" stream. The wrapper's own
# run reports the cleaned tokens and the cleaned final message.
_INNER_CONFIG: RunnableConfig = {"callbacks": [], "tags": ["nostream"]}


_StoreScope = Literal["user", "session", "agent"]
_ScopePolicy = Literal["auto", "session", "user"]
# The legacy ``store_scope`` values as InlineMemory scope policies ("session" now also keeps
# the agent_id of the model, like "agent" did).
_STORE_SCOPE_POLICY: dict[str, _ScopePolicy] = {"user": "user", "session": "session", "agent": "session"}


@dataclass
class _Turn:
    """What one call prepared: the prompt sent and what is needed to store its memories."""

    messages: list[BaseMessage]
    inline: InlineMemory
    refs: dict[str, str] = field(default_factory=dict)
    user_typed: frozenset[str] = frozenset()
    injected: list[MemoryRecord] = field(default_factory=list)


def _latest_human(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return content_text(message.content)
    return ""


def _append_text(content: Any, addendum: str) -> Any:
    if isinstance(content, str):
        return f"{content}\n\n{addendum}" if content.strip() else addendum
    return [*list(content), {"type": "text", "text": addendum}]


def _strip_content(content: Any, stripper: MemoryStreamStripper) -> Any:
    """Feed a content's text to ``stripper``; return the visible content (same shape)."""
    if isinstance(content, str):
        return stripper.feed(content)
    out: list[Any] = []
    for block in content:
        if isinstance(block, str):
            visible = stripper.feed(block)
            if visible:
                out.append(visible)
        elif isinstance(block, dict) and block.get("type") == "text":
            visible = stripper.feed(str(block.get("text", "")))
            if visible:
                out.append({**block, "text": visible})
        else:
            out.append(block)
    return out


def _add_tail(content: Any, tail: str, like: Any) -> Any:
    """``content`` with the stripper's final text appended (a text block for list content)."""
    if not tail:
        return content
    if isinstance(content, str):
        return content + tail
    blocks = list(content)
    for i in range(len(blocks) - 1, -1, -1):
        block = blocks[i]
        if isinstance(block, dict) and block.get("type") == "text":
            blocks[i] = {**block, "text": str(block.get("text", "")) + tail}
            return blocks
    index = next(
        (b["index"] for b in reversed(like or []) if isinstance(b, dict) and "index" in b), None
    )
    new: dict[str, Any] = {"type": "text", "text": tail}
    if index is not None:
        new["index"] = index
    return [*blocks, new]


def _strip_message(message: BaseMessage) -> tuple[AIMessage, ParseResult]:
    """The finished answer without its memory blocks, and what they held."""
    message = message_chunk_to_message(message)
    stripper = MemoryStreamStripper()
    content = _strip_content(message.content, stripper)
    content = _add_tail(content, stripper.finish(), message.content)
    if not isinstance(message, AIMessage):
        message = AIMessage(content="", id=message.id)
    return message.model_copy(update={"content": content}), stripper.result


class HeadroomMemoryChatModel(BaseChatModel):
    """A chat model with persistent memory around any LangChain ``BaseChatModel``.

    >>> llm = HeadroomMemoryChatModel(model=ChatOpenAI(model="gpt-4o-mini"),
    ...                               memory=engine, user_id="alice", session_id="s1")
    >>> llm.invoke([HumanMessage("I moved to Lisbon")]).content   # no <memory> block shown

    - Injection (the package's :class:`~headroom_integrations.inline.InlineMemory`): search
      on the latest human message (``top_k``, ``min_similarity``, ``search_mode``) plus up to
      ``core_top_k`` of the user's most important memories, rendered within
      ``max_memory_tokens`` and appended, with the extraction instruction, to the first
      system message (one is added when there is none). The caller's messages are never
      mutated.
    - Extraction: the ``<memory>`` block is removed from the answer (``invoke``, ``stream``,
      their async forms, string or content-block answers); its memories are stored by
      ``InlineMemory`` following ``scope_policy`` (``"user"`` by default, so every later
      session recalls them; ``"auto"`` keeps ``context`` memories in the session;
      ``"session"``). ``store_scope`` is the older name, still accepted.
      Malformed blocks are dropped and logged, never raised; a memory the user typed inside
      ``<memory>`` tags in their own message is never stored.
    - ``bind_tools`` and ``with_structured_output`` delegate to the inner model and keep
      the memory behaviour (structured output gets memories injected but no extraction
      instruction, since its output is not free text).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: BaseChatModel
    """The inner chat model."""
    bound: Runnable[LanguageModelInput, BaseMessage] | None = Field(default=None, exclude=True)
    """The inner model with tools bound (set by ``bind_tools``)."""
    memory: Any = Field(default=None, exclude=True)
    """A ``SyncHierarchicalMemory`` / ``HierarchicalMemory``; or give ``db_path``."""
    db_path: str | None = None
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    top_k: int = Field(default=5, ge=1)
    min_similarity: float | None = 0.15
    """Memories less similar (cosine) to the latest human message are not injected, unless
    they match it by keyword (``None``: no floor). With the default MiniLM embedder,
    measured: relevant memories 0.17-0.37 for paraphrased questions ("What's the weather
    where I live?" vs "User lives in Lisbon": 0.17), unrelated ones below 0.07; raise it with
    a stronger embedder."""
    core_top_k: int = Field(default=5, ge=0)
    """Up to this many of the user's most important memories (importance >= 0.7) are injected
    whatever the question (0: none)."""
    max_memory_tokens: int = Field(default=400, ge=0)
    search_mode: Literal["hybrid", "vector", "text"] = "hybrid"
    scope_policy: _ScopePolicy | None = None
    """Where the memories the model writes go: ``"user"`` (default: recalled in every
    session), ``"session"`` (this session and agent only) or ``"auto"`` (``context`` in the
    session, durable categories at user scope)."""
    store_scope: _StoreScope | None = None
    """Older name of ``scope_policy``: ``"user"``, ``"session"`` or ``"agent"`` (both now
    mean the ``"session"`` policy: session and agent of this model)."""
    inject: bool = True
    extract: bool = True

    @model_validator(mode="after")
    def _open(self) -> HeadroomMemoryChatModel:
        if self.store_scope is not None:
            legacy = _STORE_SCOPE_POLICY[self.store_scope]
            if self.scope_policy is not None and self.scope_policy != legacy:
                raise ValueError(
                    f"store_scope={self.store_scope!r} contradicts scope_policy={self.scope_policy!r}"
                )
            self.scope_policy = legacy
        elif self.scope_policy is None:
            self.scope_policy = "user"
        self.memory = resolve_engine(self.memory, None if self.memory is not None else self.db_path)
        if self.profile is None and getattr(self.model, "profile", None) is not None:
            self.profile = self.model.profile
        return self

    @property
    def engine(self) -> SyncHierarchicalMemory:
        """The synchronous engine used."""
        return self.memory  # type: ignore[no-any-return]

    @property
    def _llm_type(self) -> str:
        return "headroom-memory"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "inner": getattr(self.model, "_identifying_params", {}),
            "user_id": self.user_id,
            "session_id": self.session_id,
        }

    # ------------------------------------------------------------------ delegation
    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:  # type: ignore[override]
        """Bind tools on the inner model; the result keeps injecting and extracting memories."""
        return self.model_copy(update={"bound": self.model.bind_tools(tools, **kwargs)})

    def with_structured_output(  # type: ignore[override]
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """The inner model's structured output, with relevant memories injected first."""
        inner = self.model.with_structured_output(schema, include_raw=include_raw, **kwargs)

        def prepare(value: LanguageModelInput) -> list[BaseMessage]:
            return self._prepare(self._convert_input(value).to_messages(), extract=False).messages

        async def aprepare(value: LanguageModelInput) -> list[BaseMessage]:
            turn = await self._aprepare(self._convert_input(value).to_messages(), extract=False)
            return turn.messages

        return RunnableLambda(prepare, afunc=aprepare, name="headroom_inject") | inner

    @property
    def _inner(self) -> Runnable[LanguageModelInput, BaseMessage]:
        return self.bound if self.bound is not None else self.model

    # ------------------------------------------------------------------ preparing
    def _inline(self, extract: bool) -> InlineMemory:
        """The shared inject-and-extract loop for one call, with this model's settings."""
        return InlineMemory.of(
            self.engine,
            search_mode=self.search_mode,
            user_id=self.user_id,
            session_id=self.session_id,
            agent_id=self.agent_id,
            top_k=self.top_k,
            min_similarity=float("-inf") if self.min_similarity is None else self.min_similarity,
            core_top_k=self.core_top_k if self.inject else 0,
            max_tokens=self.max_memory_tokens,
            placement="system",
            extract=extract,
            scope_policy=self.scope_policy or "user",
        )

    def _build(self, messages: Sequence[BaseMessage], inline: InlineMemory, injection: Injection) -> _Turn:
        out = list(messages)
        addendum = injection.system_text()
        if addendum:
            idx = next((i for i, m in enumerate(out) if m.type == "system"), None)
            if idx is None:
                out.insert(0, SystemMessage(content=addendum))
            else:
                system = out[idx]
                out[idx] = system.model_copy(
                    update={"content": _append_text(system.content, addendum)}
                )
        typed = typed_memories(content_text(m.content) for m in messages if m.type == "human")
        injected = injection.memories
        return _Turn(out, inline, dict(injected.refs), typed, list(injected.records))

    def _query(self, messages: Sequence[BaseMessage]) -> str | None:
        return _latest_human(messages) if self.inject else None

    def _prepare(self, messages: Sequence[BaseMessage], *, extract: bool | None = None) -> _Turn:
        inline = self._inline(self.extract if extract is None else extract)
        try:
            injection = inline.prepare(self._query(messages))
        except Exception:  # memory must never break the user's call
            logger.exception("memory lookup failed; calling the model without memories")
            injection = Injection(InjectedMemories(), "", "system")
        return self._build(messages, inline, injection)

    async def _aprepare(self, messages: Sequence[BaseMessage], *, extract: bool | None = None) -> _Turn:
        inline = self._inline(self.extract if extract is None else extract)
        try:
            injection = await inline.aprepare(self._query(messages))
        except Exception:
            logger.exception("memory lookup failed; calling the model without memories")
            injection = Injection(InjectedMemories(), "", "system")
        return self._build(messages, inline, injection)

    # ------------------------------------------------------------------ storing
    def _to_store(self, parsed: ParseResult, turn: _Turn) -> ParseResult | None:
        """``parsed`` without the memories the user typed in their own ``<memory>`` tags
        (None when there is nothing to store)."""
        if not self.extract or not parsed.memories:
            return None
        kept = drop_typed(parsed, turn.user_typed)
        return kept if kept.memories else None

    def _store(self, parsed: ParseResult, turn: _Turn) -> list[MemoryRecord]:
        """Store the memories of a parsed answer; never raises (failures are logged)."""
        wanted = self._to_store(parsed, turn)
        if wanted is None:
            return []
        try:
            return turn.inline.store(wanted, turn.refs)
        except Exception:
            logger.exception("could not store the memories of the model's answer")
            return []

    async def _astore(self, parsed: ParseResult, turn: _Turn) -> list[MemoryRecord]:
        wanted = self._to_store(parsed, turn)
        if wanted is None:
            return []
        try:
            return await turn.inline.astore(wanted, turn.refs)
        except Exception:
            logger.exception("could not store the memories of the model's answer")
            return []

    # ------------------------------------------------------------------ calling
    @staticmethod
    def _call_kwargs(stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "stop": stop} if stop is not None else dict(kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = self._prepare(messages)
        answer = self._inner.invoke(turn.messages, _INNER_CONFIG, **self._call_kwargs(stop, kwargs))
        clean, parsed = _strip_message(answer)
        self._store(parsed, turn)
        return ChatResult(generations=[ChatGeneration(message=clean)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = await self._aprepare(messages)
        answer = await self._inner.ainvoke(
            turn.messages, _INNER_CONFIG, **self._call_kwargs(stop, kwargs)
        )
        clean, parsed = _strip_message(answer)
        await self._astore(parsed, turn)
        return ChatResult(generations=[ChatGeneration(message=clean)])

    @staticmethod
    def _clean_chunk(chunk: BaseMessage, stripper: MemoryStreamStripper) -> AIMessageChunk:
        if not isinstance(chunk, AIMessageChunk):
            chunk = AIMessageChunk(content=chunk.content, id=chunk.id)
        content = _strip_content(chunk.content, stripper)
        if chunk.chunk_position == "last":
            content = _add_tail(content, stripper.finish(), chunk.content)
        return chunk.model_copy(update={"content": content})

    @staticmethod
    def _tail_chunk(stripper: MemoryStreamStripper, last: AIMessageChunk | None) -> AIMessageChunk | None:
        if stripper.finished:
            return None
        tail = stripper.finish()
        if not tail:
            return None
        if last is not None and isinstance(last.content, list):
            return AIMessageChunk(content=_add_tail([], tail, last.content), id=last.id)
        return AIMessageChunk(content=tail, id=last.id if last is not None else None)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        turn = self._prepare(messages)
        stripper = MemoryStreamStripper()
        last: AIMessageChunk | None = None
        for raw in self._inner.stream(turn.messages, _INNER_CONFIG, **self._call_kwargs(stop, kwargs)):
            last = self._clean_chunk(raw, stripper)
            yield ChatGenerationChunk(message=last)
        tail = self._tail_chunk(stripper, last)
        if tail is not None:
            yield ChatGenerationChunk(message=tail)
        self._store(stripper.result, turn)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        turn = await self._aprepare(messages)
        stripper = MemoryStreamStripper()
        last: AIMessageChunk | None = None
        async for raw in self._inner.astream(
            turn.messages, _INNER_CONFIG, **self._call_kwargs(stop, kwargs)
        ):
            last = self._clean_chunk(raw, stripper)
            yield ChatGenerationChunk(message=last)
        tail = self._tail_chunk(stripper, last)
        if tail is not None:
            yield ChatGenerationChunk(message=tail)
        await self._astore(stripper.result, turn)
