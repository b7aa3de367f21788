"""``HeadroomMemoryMiddleware``: memories for ``langchain.agents.create_agent``, model unchanged.

    agent = create_agent(model, tools, middleware=[HeadroomMemoryMiddleware(memory=engine,
                                                                            user_id="alice")])

Before every model call the user's relevant memories (and their core memories) are added to
the system message as read-only data. The middleware only injects: for the model to also
*write* memories inline (the ``<memory>`` block, stripped from streams on the fly), wrap the
model in :class:`HeadroomMemoryChatModel` instead. Requires the ``langchain`` package.

The user and session come from the constructor, or per run from the agent's context
(``agent.invoke(..., context={"user_id": "bob", "session_id": "s2"})``, a dict or an object
with those attributes), so one agent can serve many users.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import BaseMessage, SystemMessage

from ..inline import Injection, InlineMemory
from ._common import content_text, resolve_engine

logger = logging.getLogger("headroom_integrations.langchain")


class HeadroomMemoryMiddleware(AgentMiddleware):
    """Injects relevant long-term memories into every model call of an agent."""

    def __init__(
        self,
        memory: Any = None,
        *,
        db_path: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        top_k: int = 5,
        min_similarity: float = 0.15,
        core_top_k: int = 5,
        max_memory_tokens: int = 400,
    ) -> None:
        super().__init__()
        self.engine = resolve_engine(memory, db_path)
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id
        self.top_k = top_k
        self.min_similarity = min_similarity
        self.core_top_k = core_top_k
        self.max_memory_tokens = max_memory_tokens

    def _scope(self, request: ModelRequest) -> tuple[str | None, str | None]:
        context = getattr(getattr(request, "runtime", None), "context", None)

        def pick(name: str, default: str | None) -> str | None:
            if isinstance(context, dict):
                return context.get(name, default)
            return getattr(context, name, default) if context is not None else default

        return pick("user_id", self.user_id), pick("session_id", self.session_id)

    def _inline(self, request: ModelRequest) -> InlineMemory | None:
        user_id, session_id = self._scope(request)
        if not user_id:
            logger.warning("no user_id (constructor or agent context): no memories injected")
            return None
        return InlineMemory.of(
            self.engine,
            user_id=user_id,
            session_id=session_id,
            agent_id=self.agent_id,
            top_k=self.top_k,
            min_similarity=self.min_similarity,
            core_top_k=self.core_top_k,
            max_tokens=self.max_memory_tokens,
            extract=False,
        )

    @staticmethod
    def _latest_human(messages: Sequence[BaseMessage]) -> str | None:
        for message in reversed(messages):
            if message.type == "human":
                return content_text(message.content)
        return None

    @staticmethod
    def _with_memories(request: ModelRequest, injection: Injection) -> ModelRequest:
        text = injection.system_text()
        if not text:
            return request
        current = request.system_message
        base = content_text(current.content) if current is not None else ""
        merged = f"{base}\n\n{text}" if base else text
        return request.override(system_message=SystemMessage(content=merged))

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Add the memories to the system message, then call the model."""
        inline = self._inline(request)
        if inline is not None:
            injection = inline.prepare(self._latest_human(request.messages))
            request = self._with_memories(request, injection)
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        """Async ``wrap_model_call``: the lookup runs on the store's worker threads."""
        inline = self._inline(request)
        if inline is not None:
            injection = await inline.aprepare(self._latest_human(request.messages))
            request = self._with_memories(request, injection)
        return await handler(request)
