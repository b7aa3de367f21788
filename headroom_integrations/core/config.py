"""``MemoryConfig``: where a memory store lives and how it searches, dedups and promotes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


DEFAULT_PATH_ENV = "HEADROOM_MEMORY_PATH"


def default_db_path() -> str:
    """``$HEADROOM_MEMORY_PATH``, else ``~/.headroom/memory.db``: where a store lives when no
    path is given (the CLI and ``Memory()`` use the same default)."""
    return os.environ.get(DEFAULT_PATH_ENV) or os.path.join(
        os.path.expanduser("~"), ".headroom", "memory.db"
    )


class MemoryConfig(BaseModel):
    """Settings of one memory store.

    Everything of a store derives from ``db_path``: the SQLite file (source of truth, with its
    FTS5 keyword index inside) and, beside it, the Chroma folder ``<db_path>-vectors/``
    (as SQLite keeps ``<db_path>-wal``). ``db_path=":memory:"`` keeps everything in memory.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    db_path: str = Field(default_factory=lambda: default_db_path())
    """The SQLite file; default ``$HEADROOM_MEMORY_PATH``, else ``~/.headroom/memory.db``."""
    vector_path: str | None = None
    """Chroma folder; default ``<db_path>-vectors``."""
    collection_name: str = "headroom_memories"

    chroma_host: str | None = None
    """Use a Chroma server (``chroma run``) at this host instead of the embedded client."""
    chroma_port: int = 8000
    chroma_ssl: bool = False
    chroma_headers: dict[str, str] | None = None

    embedder: Any = None
    """An ``Embedder``; default: the local ONNX MiniLM model through fastembed."""
    embedding_model_path: str | None = None
    """Folder holding a local ONNX embedding model (``model.onnx`` and tokenizer files)."""
    on_embedder_mismatch: str = Field(default="error", pattern="^(error|reindex)$")
    """What to do when the store was built with another embedder: ``error`` or ``reindex``."""

    # search
    fusion: Literal["score", "rrf"] = "score"
    """How hybrid search fuses its two sides: min-max normalised scores, or reciprocal ranks."""
    rrf_k: int = Field(default=60, ge=1)
    vector_weight: float = Field(default=0.8, ge=0.0)
    text_weight: float = Field(default=1.0, ge=0.0)
    importance_weight: float = Field(default=0.0, ge=0.0)
    recency_weight: float = Field(default=0.0, ge=0.0)
    recency_half_life_days: float = Field(default=30.0, gt=0.0)
    common_term_ratio: float = Field(default=0.7, ge=0.0, le=1.0)
    """Query words found in more than this share of the user's memories are left out of
    both sides of a search (a speaker's name on every turn says nothing about which turn
    answers); 1.0 keeps every word. Checked for users with 20 to 5,000 memories."""
    entity_weight: float = Field(default=0.25, ge=0.0)
    """Added to the relevance of a memory whose ``entity_refs`` include a name the query
    contains (whole words, any case, "Caroline's" counts): "What did Caroline paint?"
    prefers Caroline's memories. A transcript's speaker is the natural entity of a turn.
    0 turns it off."""
    date_weight: float = Field(default=0.5, ge=0.0)
    """Added to the relevance of a memory whose ``valid_from`` falls in the period a query
    names ("on 1 May 2022", "in mid-August 2023", "last week"), give or take 7 days.
    0 turns it off."""
    vector_context_before: int = Field(default=2, ge=0)
    """A memory's vector score also counts this many memories written before it in the same
    conversation (same user, session, agent and turn ids, no pause longer than
    ``vector_context_gap_minutes``): the score is the mean of its own cosine similarity and
    the mean similarity of its window. A turn that answers a question seldom repeats the
    question's words; the turns around it often do. 0 and ``vector_context_after`` 0 rank by
    the memory's own similarity alone. ``SearchResult.similarity`` and ``min_similarity``
    are always the memory's own cosine."""
    vector_context_after: int = Field(default=1, ge=0)
    """The memories written after it that a memory's vector score counts (see
    ``vector_context_before``)."""
    vector_context_gap_minutes: float = Field(default=60.0, ge=0.0)
    """Consecutive memories further apart than this in ``valid_from`` belong to different
    conversations and are not each other's context."""
    search_text_weight: float = Field(default=0.5, ge=0.0)
    """BM25 weight of a memory's ``search_text`` (its context) against 1.0 for its content:
    a word the memory itself says counts more than one from the turns around it."""
    parallel_search: bool = True
    """A hybrid search embeds the query and searches the vectors on a worker thread while
    the keyword index is searched on the calling thread (ONNX, numpy and SQLite release the
    GIL), so it takes about as long as the slower side instead of both. False runs the two
    sides one after the other."""
    candidate_multiplier: int = Field(default=4, ge=1)
    min_candidates: int = Field(default=40, ge=1)
    track_access: bool = True

    # dedup
    dedup: bool = True
    dedup_threshold: float = Field(default=0.95, ge=0.0, le=1.0)
    """Cosine similarity at or above which a new memory counts as a twin of a current one."""
    dedup_importance_boost: float = Field(default=0.05, ge=0.0, le=1.0)

    # bubbling
    bubbling: bool = True
    bubble_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    """Importance at or above which a narrower-scope memory is promoted to user scope."""

    # limits and caches
    max_content_chars: int = Field(default=20_000, ge=1)
    query_cache_size: int = Field(default=1024, ge=0)
    max_cached_vectors: int = Field(default=500_000, ge=1)
    """Vectors kept in memory for exact search (the most recently searched users first);
    about 1.6 kB each with the default 384-dimension model."""
    busy_timeout_ms: int = Field(default=30_000, ge=0)
    sqlite_mmap_mb: int = Field(default=1024, ge=0)
    """How much of the SQLite file is read through memory mapping (``PRAGMA mmap_size``);
    0 reads every page with a system call. Mapped pages are the operating system's file
    cache, shared and reclaimable, yet they count in the process's resident size."""
    check_drift_on_open: bool = True
    async_workers: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _paths(self) -> MemoryConfig:
        if not self.db_path:
            raise ValueError("db_path must not be empty")
        return self

    @property
    def in_memory(self) -> bool:
        """True when nothing is written to disk."""
        return self.db_path == ":memory:"

    def resolved_db_path(self) -> str:
        """The SQLite path, user-expanded (``~``) and absolute (so two stores opened with the
        same relative path from different working directories never share a Chroma client)."""
        if self.in_memory:
            return self.db_path
        return str(Path(os.path.expanduser(self.db_path)).absolute())

    def resolved_vector_path(self) -> str | None:
        """The Chroma folder, or None when vectors stay in memory or on a server."""
        if self.chroma_host is not None or self.in_memory:
            return None
        if self.vector_path:
            return str(Path(os.path.expanduser(self.vector_path)).absolute())
        return self.resolved_db_path() + "-vectors"
