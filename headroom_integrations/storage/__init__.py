"""Default storage adapters: SQLite store, FTS5 keyword index, Chroma vectors, LRU cache."""

from .cache import LRUCache
from .chroma_index import ChromaVectorIndex, make_chroma_client
from .fts_index import FTS5TextIndex, build_match_query
from .sqlite_db import SQLiteDatabase
from .sqlite_store import SQLiteMemoryStore
from .transcripts import SQLiteTranscriptStore

__all__ = [
    "ChromaVectorIndex",
    "FTS5TextIndex",
    "LRUCache",
    "SQLiteDatabase",
    "SQLiteMemoryStore",
    "SQLiteTranscriptStore",
    "build_match_query",
    "make_chroma_client",
]
