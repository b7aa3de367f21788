"""``HeadroomMemoryRetriever``: LangChain retriever over the memories of one scope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from ..core.engine import SyncHierarchicalMemory
from ..core.models import SearchResult
from ._common import resolve_engine

__all__ = ["HeadroomMemoryRetriever", "SearchType", "result_to_document"]

SearchType = Literal["hybrid", "similarity", "keyword"]
_MODES = {"hybrid": "hybrid", "similarity": "vector", "keyword": "text"}


def result_to_document(result: SearchResult) -> Document:
    """A search result as a ``Document``: id, text, and the memory's fields in metadata."""
    m = result.memory
    return Document(
        id=m.id,
        page_content=m.content,
        metadata={
            "id": m.id,
            "category": m.category.value,
            "importance": m.importance,
            "score": result.score,
            "similarity": result.similarity,
            "user_id": m.user_id,
            "session_id": m.session_id,
            "agent_id": m.agent_id,
            "turn_id": m.turn_id,
            "scope": m.scope_level.value,
            "created_at": m.created_at.isoformat(),
            "valid_from": m.valid_from.isoformat(),
            "valid_until": m.valid_until.isoformat() if m.valid_until else None,
            "is_current": m.is_current,
            "supersedes": m.supersedes,
            "entity_refs": list(m.entity_refs),
            "metadata": dict(m.metadata),
        },
    )


class HeadroomMemoryRetriever(BaseRetriever):
    """Retrieve memories visible from a scope (user, optionally session / agent).

    ``search_type``: ``"hybrid"`` (vector + BM25 fused, default), ``"similarity"`` (vector
    only) or ``"keyword"`` (BM25 only). ``k`` is set here and can be overridden per call:
    ``retriever.invoke("query", k=3)``; so can ``min_similarity`` and ``categories``.
    Each ``Document`` has ``id`` = the memory id and the memory's category, importance,
    score, scope and dates in ``metadata``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any = Field(default=None, exclude=True)
    """A ``SyncHierarchicalMemory`` or ``HierarchicalMemory``; or give ``db_path``."""
    db_path: str | None = None
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    search_type: SearchType = "hybrid"
    k: int = Field(default=4, ge=1)
    min_similarity: float | None = None
    categories: list[str] | None = None
    include_superseded: bool = False

    @model_validator(mode="after")
    def _open(self) -> HeadroomMemoryRetriever:
        self.memory = resolve_engine(self.memory, None if self.memory is not None else self.db_path)
        return self

    @property
    def engine(self) -> SyncHierarchicalMemory:
        """The synchronous engine searched."""
        return self.memory  # type: ignore[no-any-return]

    def _search_kwargs(
        self,
        k: int | None,
        search_type: SearchType | None,
        min_similarity: float | None,
        categories: Sequence[str] | None,
    ) -> dict[str, Any]:
        kind = search_type or self.search_type
        if kind not in _MODES:
            raise ValueError(f"search_type must be one of {sorted(_MODES)}, not {kind!r}")
        return {
            "user_id": self.user_id,
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "top_k": k if k is not None else self.k,
            "categories": list(categories) if categories else self.categories,
            "min_similarity": min_similarity if min_similarity is not None else self.min_similarity,
            "include_superseded": self.include_superseded,
            "mode": _MODES[kind],
        }

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        search_type: SearchType | None = None,
        min_similarity: float | None = None,
        categories: Sequence[str] | None = None,
    ) -> list[Document]:
        kwargs = self._search_kwargs(k, search_type, min_similarity, categories)
        return [result_to_document(r) for r in self.engine.search(query, **kwargs)]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        search_type: SearchType | None = None,
        min_similarity: float | None = None,
        categories: Sequence[str] | None = None,
    ) -> list[Document]:
        kwargs = self._search_kwargs(k, search_type, min_similarity, categories)
        results = await self.engine.aio.search(query, **kwargs)
        return [result_to_document(r) for r in results]
