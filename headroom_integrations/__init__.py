"""headroom-integrations: persistent, hierarchical, temporal memory for LLM applications.

The engine (``HierarchicalMemory``) stores memories in SQLite, searches them with Chroma
vectors and SQLite FTS5 keywords, and plugs into OpenAI clients, LangChain, LangGraph and
LlamaIndex through the adapters in the sub-packages.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core import (
    AlreadySupersededError,
    ConsistencyReport,
    Embedder,
    EmbedderMismatchError,
    HeadroomMemoryError,
    HierarchicalMemory,
    InvalidInputError,
    Memory,
    MemoryCategory,
    MemoryConfig,
    MemoryFilter,
    MemoryInput,
    MemoryNotFoundError,
    MemoryRecord,
    MemoryStats,
    Provenance,
    ScopeLevel,
    SearchResult,
    StoreClosedError,
    StoreCorruptedError,
    VectorSyncError,
    SyncHierarchicalMemory,
)

__all__ = [
    "AlreadySupersededError",
    "ConsistencyReport",
    "Embedder",
    "EmbedderMismatchError",
    "HeadroomMemoryError",
    "HierarchicalMemory",
    "InvalidInputError",
    "Memory",
    "MemoryCategory",
    "MemoryConfig",
    "MemoryFilter",
    "MemoryInput",
    "MemoryNotFoundError",
    "MemoryRecord",
    "MemoryStats",
    "Provenance",
    "ScopeLevel",
    "SearchResult",
    "StoreClosedError",
    "StoreCorruptedError",
    "VectorSyncError",
    "SyncHierarchicalMemory",
    "__version__",
    "with_fast_memory",
    "with_memory",
]

if TYPE_CHECKING:
    from .openai import with_fast_memory, with_memory


def __getattr__(name: str) -> Any:
    # The OpenAI wrapper is imported on first use: it is the only part that touches the
    # openai SDK (an optional extra).
    if name in ("with_memory", "with_fast_memory"):
        from . import openai as _openai

        return getattr(_openai, name)
    raise AttributeError(f"module 'headroom_integrations' has no attribute {name!r}")
