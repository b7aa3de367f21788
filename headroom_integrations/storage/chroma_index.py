"""``ChromaVectorIndex``: memory vectors in a Chroma collection (embedded or server)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.ports import IndexedDoc, ScopeQuery, Vector

logger = logging.getLogger(__name__)


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=True)


def make_chroma_client(
    *,
    path: str | None,
    host: str | None = None,
    port: int = 8000,
    ssl: bool = False,
    headers: dict[str, str] | None = None,
) -> Any:
    """An embedded persistent client at ``path``, a server client at ``host``, or (neither)
    an in-memory client."""
    import chromadb

    if host is not None:
        return chromadb.HttpClient(
            host=host, port=port, ssl=ssl, headers=headers, settings=_settings()
        )
    if path is not None:
        return chromadb.PersistentClient(path=path, settings=_settings())
    return chromadb.EphemeralClient(settings=_settings())


class ChromaVectorIndex:
    """Cosine nearest-neighbour search with scope filters; implements ``VectorIndex``.

    Each vector's metadata holds user, session, agent and turn ids (``""`` for none),
    category and ``is_current``, so Chroma filters by scope before ranking.
    """

    def __init__(self, client: Any, collection_name: str) -> None:
        self.client = client
        self.collection_name = collection_name
        self._lock = threading.RLock()
        self.collection = self._open()

    def _open(self) -> Any:
        return self.client.get_or_create_collection(
            self.collection_name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
        )

    @staticmethod
    def _meta(doc: IndexedDoc) -> dict[str, Any]:
        return {
            "user_id": doc.user_id,
            "session_id": doc.session_id or "",
            "agent_id": doc.agent_id or "",
            "turn_id": doc.turn_id or "",
            "category": doc.category,
            "is_current": doc.is_current,
        }

    def upsert(self, docs: Sequence[IndexedDoc], vectors: Vector) -> None:
        if not docs:
            return
        with self._lock:
            for start in range(0, len(docs), 4000):
                part = docs[start : start + 4000]
                self.collection.upsert(
                    ids=[d.id for d in part],
                    embeddings=np.asarray(vectors[start : start + 4000], dtype=np.float32),
                    metadatas=[self._meta(d) for d in part],
                )

    def set_current(self, memory_ids: Sequence[str], is_current: bool) -> None:
        if not memory_ids:
            return
        with self._lock:
            existing = set(self.collection.get(ids=list(memory_ids), include=[])["ids"])
            ids = [i for i in memory_ids if i in existing]
            if ids:
                self.collection.update(
                    ids=ids, metadatas=[{"is_current": is_current} for _ in ids]
                )

    def delete(self, memory_ids: Sequence[str]) -> None:
        if not memory_ids:
            return
        with self._lock:
            self.collection.delete(ids=list(memory_ids))

    @staticmethod
    def where(scope: ScopeQuery, categories: Sequence[str] | None = None) -> dict[str, Any]:
        """The Chroma ``where`` filter for a scope."""
        clauses: list[dict[str, Any]] = [{"user_id": scope.user_id}]
        if not scope.include_superseded:
            clauses.append({"is_current": True})
        if not scope.all_scopes:
            for key, value in (
                ("session_id", scope.session_id),
                ("agent_id", scope.agent_id),
                ("turn_id", scope.turn_id),
            ):
                clauses.append({key: ""} if value is None else {key: {"$in": ["", value]}})
        if categories:
            clauses.append({"category": {"$in": list(categories)}})
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def query(
        self,
        vector: Vector,
        k: int,
        scope: ScopeQuery,
        categories: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        with self._lock:
            result = self.collection.query(
                query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
                n_results=k,
                where=self.where(scope, categories),
                include=["distances"],
            )
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result.get("distances") else []
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances)]

    def get_vectors(self, memory_ids: Sequence[str]) -> dict[str, Vector]:
        if not memory_ids:
            return {}
        with self._lock:
            got = self.collection.get(ids=list(memory_ids), include=["embeddings"])
        embeddings = got.get("embeddings")
        if embeddings is None:
            return {}
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], embeddings)}

    def count(self) -> int:
        with self._lock:
            return int(self.collection.count())

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        with self._lock:
            while True:
                got = self.collection.get(include=[], limit=5000, offset=offset)
                if not got["ids"]:
                    return out
                out.update(got["ids"])
                offset += len(got["ids"])

    def reset(self) -> None:
        with self._lock:
            try:
                self.client.delete_collection(self.collection_name)
            except Exception:  # noqa: BLE001 - absent collection is fine
                logger.debug("collection %s did not exist", self.collection_name)
            self.collection = self._open()

    def close(self) -> None:
        """Chroma clients hold no resource that needs an explicit close."""
