"""The memory engine: models, configuration, ports and the hierarchical memory itself."""

from .async_memory import HierarchicalMemory
from .config import MemoryConfig
from .engine import ConsistencyReport, MemoryInput, SyncHierarchicalMemory
from .ports import VectorSyncError
from .errors import (
    AlreadySupersededError,
    EmbedderMismatchError,
    HeadroomMemoryError,
    InvalidInputError,
    MemoryNotFoundError,
    StoreClosedError,
    StoreCorruptedError,
)
from .models import (
    MemoryCategory,
    MemoryFilter,
    MemoryRecord,
    MemoryStats,
    Provenance,
    ScopeLevel,
    SearchResult,
)
from .ports import Embedder, MemoryCache, MemoryStore, ScopeQuery, TextIndex, VectorIndex
from .simple import Memory

__all__ = [
    "AlreadySupersededError",
    "ConsistencyReport",
    "Embedder",
    "EmbedderMismatchError",
    "HeadroomMemoryError",
    "HierarchicalMemory",
    "InvalidInputError",
    "Memory",
    "MemoryCache",
    "MemoryCategory",
    "MemoryConfig",
    "MemoryFilter",
    "MemoryInput",
    "MemoryNotFoundError",
    "MemoryRecord",
    "MemoryStats",
    "MemoryStore",
    "Provenance",
    "ScopeLevel",
    "ScopeQuery",
    "SearchResult",
    "StoreClosedError",
    "StoreCorruptedError",
    "VectorSyncError",
    "SyncHierarchicalMemory",
    "TextIndex",
    "VectorIndex",
]
