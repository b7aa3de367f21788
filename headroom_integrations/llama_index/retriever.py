"""``HeadroomRetriever``: the memories of a scope as LlamaIndex ``NodeWithScore`` results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ..core.engine import SyncHierarchicalMemory
from ..core.models import MemoryCategory, SearchResult
from ._common import EngineLike, as_sync

__all__ = ["HeadroomRetriever", "result_to_node"]

_HIDDEN_FROM_LLM = ["memory_id", "user_id", "session_id", "agent_id", "similarity"]


def result_to_node(result: SearchResult) -> NodeWithScore:
    """One search result as a ``NodeWithScore`` (node id = memory id, score = fused score)."""
    record = result.memory
    metadata: dict[str, Any] = {
        "memory_id": record.id,
        "category": record.category.value,
        "importance": record.importance,
        "scope": record.scope_level.value,
        "user_id": record.user_id,
        "session_id": record.session_id,
        "agent_id": record.agent_id,
        "created_at": record.created_at.isoformat(),
        "valid_from": record.valid_from.isoformat(),
        "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        "is_current": record.is_current,
        "similarity": result.similarity,
    }
    node = TextNode(
        id_=record.id,
        text=record.content,
        metadata=metadata,
        excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM),
        excluded_embed_metadata_keys=list(metadata),
    )
    return NodeWithScore(node=node, score=result.score)


class HeadroomRetriever(BaseRetriever):
    """Retrieve a user's memories (hybrid vector + keyword search) as nodes.

    Sees the memories visible from (``user_id``, ``session_id``, ``agent_id``): user-level
    ones and those of this session / agent, never another user's.
    """

    def __init__(
        self,
        engine: EngineLike,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        top_k: int = 5,
        categories: Sequence[MemoryCategory | str] | None = None,
        min_similarity: float | None = None,
        mode: Literal["hybrid", "vector", "text"] = "hybrid",
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self._engine: SyncHierarchicalMemory = as_sync(engine)
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id
        self.top_k = top_k
        self.categories = list(categories) if categories else None
        self.min_similarity = min_similarity
        self.mode = mode
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "top_k": self.top_k,
            "categories": self.categories,
            "min_similarity": self.min_similarity,
            "mode": self.mode,
        }

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        results = self._engine.search(query_bundle.query_str, **self._kwargs())
        return [result_to_node(r) for r in results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        results = await self._engine.aio.search(query_bundle.query_str, **self._kwargs())
        return [result_to_node(r) for r in results]
