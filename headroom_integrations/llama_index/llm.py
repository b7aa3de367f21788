"""``HeadroomMemoryLLM``: any LlamaIndex LLM with inline ``<memory>`` extraction.

Each chat call gets the memories relevant to the latest user message and the extraction
instruction in its system message; the model's ``<memory>`` block is removed from the answer
(and from streams as they arrive: no delta ever carries any part of it) and its memories are
stored. Tool calling is delegated to the wrapped model, so function-calling agents accept it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from ..core.engine import SyncHierarchicalMemory
from ..inline import InlineMemory
from ..protocol import MemoryStreamStripper, ParseResult, parse_memory_blocks, typed_memories
from ._common import (
    EngineLike,
    Scope,
    ScopePolicy,
    add_system_text,
    as_sync,
    inline_memory,
    last_user_text,
    message_text,
    register_engine,
    resolve_engine,
    resolve_scope_policy,
    with_text,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["HeadroomMemoryLLM"]


class HeadroomMemoryLLM(FunctionCallingLLM):
    """Wrap ``llm`` so it reads and writes long-term memories inline.

    >>> llm = HeadroomMemoryLLM(llm=OpenAI(model="gpt-4o-mini"), engine=engine, user_id="alice")
    >>> agent = FunctionAgent(llm=llm, tools=[...])

    Injection and storing are the package's :class:`~headroom_integrations.inline.InlineMemory`:
    the memories found for the latest user message (``top_k``, ``min_similarity``) plus up to
    ``core_top_k`` of the user's most important ones, within ``memory_token_budget``. Memories
    the model emits are stored following ``scope_policy`` (``"user"``: visible in every
    session; ``"session"``: only in ``session_id`` / ``agent_id``; ``"auto"``: ``context`` in
    the session, durable categories at user scope); ``extracted_scope`` (``"user"`` /
    ``"session"``) is its older name, still accepted. A ``supersedes`` naming an injected
    memory replaces it. ``last_result`` is the parse of the latest answer. The ``complete``
    methods are passed through unchanged (no memory).
    """

    llm: SerializeAsAny[LLM] = Field(description="The wrapped model.")
    user_id: str = Field(description="Whose memories these are.")
    session_id: str | None = Field(default=None, description="Session scope of searches.")
    agent_id: str | None = Field(default=None, description="Agent scope of searches and writes.")
    top_k: int = Field(default=5, ge=1)
    memory_token_budget: int = Field(default=400, ge=0)
    min_similarity: float | None = Field(default=None, description="None: no similarity floor.")
    core_top_k: int = Field(default=5, ge=0, description="Most important memories always injected.")
    scope_policy: ScopePolicy | None = Field(default=None, description="Where extracted memories go.")
    extracted_scope: Scope | None = Field(default=None, description="Older name of scope_policy.")
    store_key: str | None = Field(default=None)
    store_config: dict[str, Any] = Field(default_factory=dict)

    _engine: SyncHierarchicalMemory | None = PrivateAttr(default=None)
    _last_result: ParseResult | None = PrivateAttr(default=None)

    def __init__(self, *, engine: EngineLike | None = None, **data: Any) -> None:
        sync = as_sync(engine) if engine is not None else None
        if sync is not None:
            data["store_key"], data["store_config"] = register_engine(sync)
        data.setdefault("callback_manager", getattr(data.get("llm"), "callback_manager", None))
        if data["callback_manager"] is None:
            del data["callback_manager"]
        data["scope_policy"] = resolve_scope_policy(data.get("scope_policy"), data.get("extracted_scope"))
        super().__init__(**data)
        self._engine = sync

    @classmethod
    def class_name(cls) -> str:
        return "HeadroomMemoryLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    @property
    def engine(self) -> SyncHierarchicalMemory:
        """The store (reopened from ``store_config`` after deserialisation if needed)."""
        if self._engine is None or self._engine.closed:
            self._engine = resolve_engine(self.store_key, self.store_config)
        return self._engine

    @property
    def last_result(self) -> ParseResult | None:
        """Visible text, memories and parse errors of the latest finished answer."""
        return self._last_result

    # ------------------------------------------------------------------ memory plumbing
    def _inline(self) -> InlineMemory:
        return inline_memory(
            self.engine,
            user_id=self.user_id,
            session_id=self.session_id,
            agent_id=self.agent_id,
            top_k=self.top_k,
            min_similarity=self.min_similarity,
            core_top_k=self.core_top_k,
            max_tokens=self.memory_token_budget,
            extract=True,
            scope_policy=self.scope_policy or "user",
        )

    def _prepare(self, messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], _Turn]:
        inline = self._inline()
        injection = inline.prepare(last_user_text(messages))
        return add_system_text(messages, injection.system_text()), _Turn(
            inline, injection.refs, _typed(messages)
        )

    async def _aprepare(self, messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], _Turn]:
        inline = self._inline()
        injection = await inline.aprepare(last_user_text(messages))
        return add_system_text(messages, injection.system_text()), _Turn(
            inline, injection.refs, _typed(messages)
        )

    def _clean(self, response: ChatResponse) -> tuple[ChatResponse, ParseResult]:
        parsed = parse_memory_blocks(response.message.content)
        self._last_result = parsed
        if parsed.clean_text is None:
            return response, parsed
        message = with_text(response.message, parsed.clean_text)
        return response.model_copy(update={"message": message, "delta": None}), parsed

    @staticmethod
    def _chunk(chunk: ChatResponse, visible: str, delta: str) -> ChatResponse:
        return chunk.model_copy(update={"message": with_text(chunk.message, visible), "delta": delta})

    # ------------------------------------------------------------------ chat
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prepared, turn = self._prepare(messages)
        response, parsed = self._clean(self.llm.chat(prepared, **kwargs))
        if parsed.memories:
            turn.inline.store(parsed, turn.refs, typed=turn.typed)
        return response

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prepared, turn = await self._aprepare(messages)
        response, parsed = self._clean(await self.llm.achat(prepared, **kwargs))
        if parsed.memories:
            await turn.inline.astore(parsed, turn.refs, typed=turn.typed)
        return response

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        prepared, turn = self._prepare(messages)
        inner = self.llm.stream_chat(prepared, **kwargs)

        def gen() -> Generator[ChatResponse, None, None]:
            stripper = MemoryStreamStripper()
            visible = ""
            last: ChatResponse | None = None
            for chunk in inner:
                shown = stripper.feed(chunk.delta)
                visible += shown
                last = chunk
                yield self._chunk(chunk, visible, shown)
            tail = stripper.finish()
            if tail and last is not None:
                visible += tail
                yield self._chunk(last, visible, tail)
            self._last_result = stripper.result
            if stripper.result.memories:
                turn.inline.store(stripper.result, turn.refs, typed=turn.typed)

        return gen()

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        prepared, turn = await self._aprepare(messages)
        inner = await self.llm.astream_chat(prepared, **kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            stripper = MemoryStreamStripper()
            visible = ""
            last: ChatResponse | None = None
            async for chunk in inner:
                shown = stripper.feed(chunk.delta)
                visible += shown
                last = chunk
                yield self._chunk(chunk, visible, shown)
            tail = stripper.finish()
            if tail and last is not None:
                visible += tail
                yield self._chunk(last, visible, tail)
            self._last_result = stripper.result
            if stripper.result.memories:
                await turn.inline.astore(stripper.result, turn.refs, typed=turn.typed)

        return gen()

    # ------------------------------------------------------------------ completion (pass-through)
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self.llm.complete(prompt, formatted=formatted, **kwargs)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return self.llm.stream_complete(prompt, formatted=formatted, **kwargs)

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await self.llm.acomplete(prompt, formatted=formatted, **kwargs)

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await self.llm.astream_complete(prompt, formatted=formatted, **kwargs)

    # ------------------------------------------------------------------ function calling
    def _function_calling(self) -> FunctionCallingLLM:
        if not isinstance(self.llm, FunctionCallingLLM):
            raise NotImplementedError(
                f"{type(self.llm).__name__} is not a FunctionCallingLLM: tool calling is not available"
            )
        return self.llm

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return self._function_calling()._prepare_chat_with_tools_compat(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        return self._function_calling()._validate_chat_with_tools_response(
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        return self._function_calling().get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )


class _Turn(NamedTuple):
    """What one call needs after the model answers."""

    inline: InlineMemory
    refs: dict[str, str]
    typed: frozenset[str]


def _typed(messages: Sequence[ChatMessage]) -> frozenset[str]:
    """Memories the user typed in ``<memory>`` tags in this request: never stored."""
    return typed_memories(message_text(m) for m in messages if m.role == MessageRole.USER)
