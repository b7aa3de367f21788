"""headroom-integrations: persistent, hierarchical, temporal memory for LLM applications.

The engine (``HierarchicalMemory``) stores memories in SQLite, searches them with Chroma
vectors and SQLite FTS5 keywords, and plugs into OpenAI clients, LangChain, LangGraph and
LlamaIndex through the adapters in the sub-packages.
"""

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
    "SyncHierarchicalMemory",
    "__version__",
]
