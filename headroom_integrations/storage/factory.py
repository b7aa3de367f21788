"""Builds the default components of a store from a ``MemoryConfig``."""

from __future__ import annotations

import uuid
from typing import Any

from ..core.config import MemoryConfig
from .cache import LRUCache
from .chroma_index import ChromaVectorIndex, make_chroma_client
from .fts_index import FTS5TextIndex
from .sqlite_db import SQLiteDatabase
from .sqlite_store import SQLiteMemoryStore
from .transcripts import SQLiteTranscriptStore
from .vector_rows import SQLiteVectorRows
from .vector_versions import VectorVersions


def build_components(
    config: MemoryConfig,
    *,
    store: Any = None,
    vector_index: Any = None,
    text_index: Any = None,
    embedder: Any = None,
    cache: Any = None,
) -> dict[str, Any]:
    """The store, indexes, embedder and cache for ``config``; given ones are kept."""
    db = None
    if store is None or text_index is None or vector_index is None:
        db = SQLiteDatabase(
            config.resolved_db_path(),
            busy_timeout_ms=config.busy_timeout_ms,
            mmap_bytes=config.sqlite_mmap_mb << 20,
        )
    if store is None:
        store = SQLiteMemoryStore(db)  # type: ignore[arg-type]
    if text_index is None:
        text_index = FTS5TextIndex(
            db, context_weight=config.search_text_weight  # type: ignore[arg-type]
        )
    transcripts = SQLiteTranscriptStore(db) if db is not None else None
    if vector_index is None:
        client = make_chroma_client(
            path=config.resolved_vector_path(),
            host=config.chroma_host,
            port=config.chroma_port,
            ssl=config.chroma_ssl,
            headers=config.chroma_headers,
        )
        name = config.collection_name
        if config.in_memory and config.chroma_host is None:
            # Ephemeral Chroma clients share one in-process system: keep stores apart.
            name = f"{name}-{uuid.uuid4().hex[:12]}"
        vector_index = ChromaVectorIndex(
            client,
            name,
            versions=VectorVersions(db) if db is not None else None,
            rows=SQLiteVectorRows(db) if db is not None else None,
            max_cached_vectors=config.max_cached_vectors,
            context_gap_s=config.vector_context_gap_minutes * 60.0,
        )
    if embedder is None:
        embedder = config.embedder
    if embedder is None:
        embedder = _default_embedder_for(config, store)
    if cache is None:
        cache = LRUCache(config.query_cache_size)
    return {
        "store": store,
        "vector_index": vector_index,
        "text_index": text_index,
        "embedder": embedder,
        "cache": cache,
        "transcripts": transcripts,
    }


def _default_embedder_for(config: MemoryConfig, store: Any) -> Any:
    """The default local embedder, int8 unless the store was built with the float one.

    A store records the embedder that wrote it. One written by the float arithmetic of the
    same model (``fastembed:local/all-MiniLM-L6-v2-int8``, the default before the int8 one)
    keeps being read with it, so it opens as before, with no error and nothing re-embedded;
    with ``on_embedder_mismatch="reindex"`` it is re-embedded with the int8 default instead
    (as ``headroom-memory reindex`` does).
    """
    from ..embedders.fastembed import LOCAL_MODEL_NAME, default_embedder

    keep_float = (
        store.get_meta("embedder") == f"fastembed:{LOCAL_MODEL_NAME}"
        and config.on_embedder_mismatch == "error"
    )
    return default_embedder(config.embedding_model_path, quantize=not keep_float)
