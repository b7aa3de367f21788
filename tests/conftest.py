"""Shared fixtures: the real ONNX embedder (loaded once), real SQLite + Chroma stores."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from headroom_integrations import HierarchicalMemory, MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.embedders.fastembed import FastEmbedEmbedder


@pytest.fixture(scope="session")
def embedder() -> FastEmbedEmbedder:
    """The real default embedder: all-MiniLM-L6-v2 int8 ONNX, loaded from the local packages."""
    return FastEmbedEmbedder()


class HashEmbedder:
    """A deterministic bag-of-words embedder for pure-logic tests (never the only coverage
    of search). Texts sharing words get similar vectors."""

    def __init__(self, dimension: int = 64) -> None:
        self._dim = dimension

    @property
    def name(self) -> str:
        return f"test:hash:{self._dim}"

    @property
    def dimension(self) -> int:
        return self._dim

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()) or ["<empty>"]:
            h = int(hashlib.md5(word.encode()).hexdigest(), 16)
            v[h % self._dim] += 1.0
        return v / (np.linalg.norm(v) or 1.0)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._one(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "memory.db")


@pytest.fixture
def memory(db_path: str, embedder: FastEmbedEmbedder) -> Iterator[SyncHierarchicalMemory]:
    """A real store (SQLite file + embedded Chroma + ONNX embeddings), synchronous API."""
    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    yield engine
    engine.close()


@pytest.fixture
async def amemory(db_path: str, embedder: FastEmbedEmbedder) -> AsyncIterator[HierarchicalMemory]:
    """A real store, asynchronous API."""
    engine = await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    yield engine
    await engine.close()
