"""``ChromaVectorIndex``: memory vectors kept in Chroma, searched exactly per user.

Chroma (embedded, in memory, or a server) holds every vector in one collection, with the
memory's user, scope ids, category and ``is_current`` as metadata. Searches do not go
through Chroma's own filtered query, which on the project's machines costs 20-40 ms at 10k
vectors once a ``where`` filter is given (1.3 ms without one), and a collection per user
costs about 2.7 MB of memory and 180 kB of disk each. Instead the first search of a user
loads that user's vectors from Chroma into a matrix, and searches are an exact dot product
over it with the scope rules applied as array masks: isolation between users by
construction, no approximate-neighbour misses, about 0.4 ms at 10k vectors.

A user with many vectors (``hnsw_min_vectors``, 20k) is first searched through Chroma's own
approximate index without a filter, keeping the neighbours that user may see; only when
too few are visible does the exact search run.

The matrices are kept fresh across threads and processes by a per-user version stamped in
the store's SQLite file (``VectorVersions``) on every vector write: a process whose copy
is older than the stamp reloads it. The loaded matrices are bounded
(``max_cached_vectors``); the least recently used users are dropped first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..core.models import ScopeLevel
from ..core.ports import IndexedDoc, ScopeQuery, Vector

logger = logging.getLogger(__name__)

_LEVEL_CODE = {ScopeLevel.USER: 0, ScopeLevel.SESSION: 1, ScopeLevel.AGENT: 2, ScopeLevel.TURN: 3}
_PAGE = 5000
_ATTEMPTS = 4


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


class VersionClock(Protocol):
    """Per-user version stamps that never repeat (shared by every process on a store)."""

    def get(self, user_id: str) -> int: ...
    def bump(self, user_id: str) -> int: ...
    def bump_all(self) -> None: ...


class LocalVersions:
    """A ``VersionClock`` for one process only (when no SQLite file is shared)."""

    def __init__(self) -> None:
        self._seq = 0
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str) -> int:
        return self._versions.get(user_id, 0)

    def bump(self, user_id: str) -> int:
        with self._lock:
            self._seq += 1
            self._versions[user_id] = self._seq
            return self._seq

    def bump_all(self) -> None:
        with self._lock:
            for user_id in self._versions:
                self._seq += 1
                self._versions[user_id] = self._seq


class _UserVectors:
    """One user's vectors and scope metadata as arrays (rows can be appended and retired)."""

    def __init__(self, dim: int, version: int) -> None:
        self.version = version
        self.dim = dim
        self.n = 0
        self.live = 0
        self.matrix = np.zeros((16, dim), dtype=np.float32)
        self.alive = np.zeros(16, dtype=bool)
        self.current = np.zeros(16, dtype=bool)
        self.level = np.zeros(16, dtype=np.int8)
        self.cols = {k: np.zeros(16, dtype=np.int32) for k in ("session", "agent", "turn", "cat")}
        self.codes: dict[str, int] = {"": 0}
        self.ids: list[str] = []
        self.row: dict[str, int] = {}

    def _code(self, value: str | None) -> int:
        key = value or ""
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = len(self.codes)
        return code

    def _grow(self, need: int) -> None:
        cap = len(self.alive)
        if need <= cap:
            return
        new = max(need, cap * 2)
        self.matrix = np.resize(self.matrix, (new, self.dim))
        for name in ("alive", "current", "level"):
            arr = getattr(self, name)
            grown = np.zeros(new, dtype=arr.dtype)
            grown[:cap] = arr
            setattr(self, name, grown)
        for k, arr in self.cols.items():
            grown = np.zeros(new, dtype=np.int32)
            grown[:cap] = arr
            self.cols[k] = grown

    def put(self, ids: Sequence[str], rows: np.ndarray, metas: Sequence[dict[str, Any]]) -> None:
        fresh = [i for i in ids if i not in self.row]
        self._grow(self.n + len(fresh))
        for mid, vec, meta in zip(ids, rows, metas):
            r = self.row.get(mid)
            if r is None:
                r = self.n
                self.n += 1
                self.ids.append(mid)
                self.row[mid] = r
                self.live += 1
            self.matrix[r] = vec
            self.alive[r] = True
            self.current[r] = bool(meta.get("is_current", True))
            s, a, t = (meta.get(k) or "" for k in ("session_id", "agent_id", "turn_id"))
            self.level[r] = 3 if t else 2 if a else 1 if s else 0
            self.cols["session"][r] = self._code(s)
            self.cols["agent"][r] = self._code(a)
            self.cols["turn"][r] = self._code(t)
            self.cols["cat"][r] = self._code(str(meta.get("category") or ""))

    def set_current(self, ids: Sequence[str], value: bool) -> None:
        for mid in ids:
            r = self.row.get(mid)
            if r is not None:
                self.current[r] = value

    def drop(self, ids: Sequence[str]) -> None:
        for mid in ids:
            r = self.row.pop(mid, None)
            if r is not None:
                self.alive[r] = False
                self.live -= 1

    def mask(self, scope: ScopeQuery, categories: Sequence[str] | None) -> np.ndarray:
        n = self.n
        m = self.alive[:n].copy()
        if not scope.include_superseded:
            m &= self.current[:n]
        if categories is not None:
            codes = [self.codes[c] for c in categories if c in self.codes]
            m &= np.isin(self.cols["cat"][:n], codes)
        if scope.levels is not None:
            m &= np.isin(self.level[:n], [_LEVEL_CODE[lv] for lv in scope.levels])
        if not scope.all_scopes:
            for col, want in (
                ("session", scope.session_id),
                ("agent", scope.agent_id),
                ("turn", scope.turn_id),
            ):
                have = self.cols[col][:n]
                if want is None:
                    m &= have == 0
                else:
                    m &= (have == 0) | (have == self.codes.get(want, -1))
        return m

    def top(self, q: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` rows allowed by ``mask`` most similar to ``q`` (exact), best first."""
        count = int(mask.sum())
        if count == 0 or k <= 0:
            return []
        scores = np.where(mask, self.matrix[: self.n] @ q, -np.inf)
        k = min(k, count)
        part = np.argpartition(-scores, k - 1)[:k] if k < self.n else np.arange(self.n)
        order = part[np.argsort(-scores[part], kind="stable")][:k]
        return [(self.ids[o], float(scores[o])) for o in order]

    @property
    def size(self) -> int:
        return self.n


class ChromaVectorIndex:
    """Vectors in one Chroma collection; exact, scope-filtered search per user from
    in-process matrices kept fresh by per-user version stamps. Implements ``VectorIndex``."""

    def __init__(
        self,
        client: Any,
        collection_name: str,
        *,
        versions: VersionClock | None = None,
        rows: Any = None,
        max_cached_vectors: int = 500_000,
        hnsw_min_vectors: int = 20_000,
    ) -> None:
        self.client = client
        self.collection_name = collection_name
        self.versions: VersionClock = versions or LocalVersions()
        self.rows = rows
        """Where a user's vectors are loaded from (``SQLiteVectorRows``); None: from Chroma."""
        self.max_cached_vectors = max_cached_vectors
        self.hnsw_min_vectors = hnsw_min_vectors
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, _UserVectors] = OrderedDict()
        self._loaded_estimate = 0
        self.collection = self._open()
        if self.rows is not None and self.rows.is_empty() and self._col("count") > 0:
            self._backfill_rows()

    def _backfill_rows(self) -> None:
        """Copy Chroma's vectors into the SQLite rows (a store from before they existed)."""
        offset = 0
        while True:
            got = self._col(
                "get", include=["embeddings", "metadatas"], limit=_PAGE, offset=offset
            )
            if not got["ids"]:
                return
            docs = [
                IndexedDoc(
                    id=i,
                    content="",
                    user_id=str(m.get("user_id", "")),
                    session_id=m.get("session_id") or None,
                    agent_id=m.get("agent_id") or None,
                    turn_id=m.get("turn_id") or None,
                    category=str(m.get("category", "")),
                    is_current=bool(m.get("is_current", True)),
                )
                for i, m in zip(got["ids"], (m or {} for m in got["metadatas"]))
            ]
            self.rows.upsert(docs, np.asarray(got["embeddings"], dtype=np.float32))
            offset += len(got["ids"])

    def _open(self) -> Any:
        return self.client.get_or_create_collection(
            self.collection_name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
        )

    def _col(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a collection method. If another process re-created the collection (reset,
        reindex), reopen it by name; if Chroma reports an internal error (a server racing a
        concurrent delete answers "Error finding id"), try again: every call made here is
        idempotent."""
        for attempt in range(_ATTEMPTS):
            try:
                return getattr(self.collection, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - chromadb's errors have no common base
                text = str(exc)
                if "does not exist" in text:
                    self.collection = self._open()
                    self._cache.clear()
                elif type(exc).__name__ != "InternalError" or attempt == _ATTEMPTS - 1:
                    raise
                else:
                    logger.debug("chroma %s failed (%s); retrying", method, text)
                    time.sleep(0.01 * (attempt + 1))
        return getattr(self.collection, method)(*args, **kwargs)

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

    # -- the per-user matrices ----------------------------------------------------------
    def _load(self, user_id: str, version: int, dim: int | None) -> _UserVectors | None:
        if self.rows is not None:
            got = self.rows.load(user_id)
            if got is None:
                return None
            cache = _UserVectors(int(got[1].shape[1]), version)
            cache.put(got[0], got[1], got[2])
            return cache
        ids: list[str] = []
        rows: list[Any] = []
        metas: list[dict[str, Any]] = []
        offset = 0
        while True:
            got = self._col(
                "get",
                where={"user_id": user_id},
                include=["embeddings", "metadatas"],
                limit=_PAGE,
                offset=offset,
            )
            if not got["ids"]:
                break
            ids.extend(got["ids"])
            rows.extend(got["embeddings"])
            metas.extend(m or {} for m in got["metadatas"])
            offset += len(got["ids"])
            if len(got["ids"]) < _PAGE:
                break
        if not ids and dim is None:
            return None
        width = len(rows[0]) if rows else int(dim or 0)
        cache = _UserVectors(width, version)
        if ids:
            cache.put(ids, np.asarray(rows, dtype=np.float32), metas)
        return cache

    def _user(self, user_id: str, dim: int | None = None) -> _UserVectors | None:
        """The user's matrix, reloaded when another writer stamped a newer version."""
        version = self.versions.get(user_id)
        cache = self._cache.get(user_id)
        if cache is not None and cache.version == version:
            self._cache.move_to_end(user_id)
            return cache
        cache = self._load(user_id, version, dim)
        if cache is None:
            self._cache.pop(user_id, None)
            return None
        self._cache[user_id] = cache
        self._cache.move_to_end(user_id)
        self._evict(cache.size)
        return cache

    def _evict(self, added: int) -> None:
        """Drop least recently searched users while more than ``max_cached_vectors`` are
        loaded. The exact count is taken only when a running estimate says it may be over
        (the estimate ignores appends; a recount corrects it)."""
        self._loaded_estimate += added
        if self._loaded_estimate <= self.max_cached_vectors:
            return
        total = sum(c.size for c in self._cache.values())
        while total > self.max_cached_vectors and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            total -= dropped.size
        self._loaded_estimate = total

    def _stamp(self, user_id: str, apply: Any) -> None:
        """After a write of ``user_id``'s vectors: stamp a new version and bring this
        process's copy along (or drop it when another writer got in between)."""
        before = self.versions.get(user_id)
        after = self.versions.bump(user_id)
        cache = self._cache.get(user_id)
        if cache is None:
            return
        if cache.version == before:
            apply(cache)
            cache.version = after
        else:
            self._cache.pop(user_id, None)

    # -- writes ------------------------------------------------------------------------
    def upsert(self, docs: Sequence[IndexedDoc], vectors: Vector) -> None:
        if not docs:
            return
        rows = np.asarray(vectors, dtype=np.float32)
        with self._lock:
            for start in range(0, len(docs), 4000):
                part = list(docs[start : start + 4000])
                self._col(
                    "upsert",
                    ids=[d.id for d in part],
                    embeddings=rows[start : start + 4000],
                    metadatas=[self._meta(d) for d in part],
                )
            if self.rows is not None:
                self.rows.upsert(docs, rows)
            by_user: dict[str, list[int]] = {}
            for n, doc in enumerate(docs):
                by_user.setdefault(doc.user_id, []).append(n)
            for user_id, picks in by_user.items():
                self._stamp(
                    user_id,
                    lambda c, p=picks: c.put(
                        [docs[n].id for n in p], rows[p], [self._meta(docs[n]) for n in p]
                    ),
                )

    def set_current(
        self, memory_ids: Sequence[str], is_current: bool, *, user_id: str | None = None
    ) -> None:
        if not memory_ids:
            return
        with self._lock:
            got = self._col("get", ids=list(memory_ids), include=["metadatas"])
            ids = list(got["ids"])
            if not ids:
                return
            self._col("update", ids=ids, metadatas=[{"is_current": is_current} for _ in ids])
            if self.rows is not None:
                self.rows.set_current(ids, is_current)
            users = {(m or {}).get("user_id") for m in got["metadatas"]}
            for owner in users:
                if owner:
                    self._stamp(owner, lambda c: c.set_current(ids, is_current))

    def delete(self, memory_ids: Sequence[str], *, user_id: str | None = None) -> None:
        if not memory_ids:
            return
        with self._lock:
            owners: set[str] = set()
            if user_id is not None:
                owners.add(user_id)
            else:
                got = self._col("get", ids=list(memory_ids), include=["metadatas"])
                owners.update((m or {}).get("user_id") or "" for m in got["metadatas"])
                owners.discard("")
            if self.rows is not None:
                owners.update(self.rows.owners(memory_ids))
                self.rows.delete(memory_ids)
            self._col("delete", ids=list(memory_ids))
            for owner in owners:
                self._stamp(owner, lambda c: c.drop(memory_ids))

    # -- reads -------------------------------------------------------------------------
    def query(
        self,
        vector: Vector,
        k: int,
        scope: ScopeQuery,
        categories: Sequence[str] | None = None,
        min_similarity: float | None = None,
    ) -> list[tuple[str, float]]:
        """Up to ``k`` visible (id, cosine similarity) pairs, most similar first (exact)."""
        if k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            cache = self._user(scope.user_id)
            if cache is None:
                return []
            mask = cache.mask(scope, categories)
            hits = None
            if cache.live >= self.hnsw_min_vectors:
                hits = self._hnsw(q, k, scope, cache, mask)
            if hits is None:
                hits = cache.top(q, mask, k)
        if min_similarity is not None:
            hits = [h for h in hits if h[1] >= min_similarity]
        return hits

    def _hnsw(
        self, q: np.ndarray, k: int, scope: ScopeQuery, cache: _UserVectors, mask: np.ndarray
    ) -> list[tuple[str, float]] | None:
        """For a user with many vectors, Chroma's approximate index without a filter (a
        dot product over 100k vectors reads 150 MB; HNSW a few thousand). Its neighbours
        are kept when the user's mask allows them; None (use the exact search) when fewer
        than ``k`` are allowed."""
        fetch = max(3 * k, 30)
        res = self._col(
            "query", query_embeddings=q.reshape(1, -1), n_results=fetch, include=["distances"]
        )
        ids = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else []
        out = []
        for mid, dist in zip(ids, dists):
            r = cache.row.get(mid)
            if r is not None and mask[r]:
                out.append((mid, 1.0 - float(dist)))
                if len(out) == k:
                    return out
        return out if len(ids) < fetch and len(out) == int(mask.sum()) else None

    def nearest_twins(
        self, vectors: Vector, scopes: Sequence[ScopeQuery], min_similarity: float
    ) -> list[tuple[str, float] | None]:
        """For each vector, the most similar memory visible from its (exact) scope with a
        similarity of at least ``min_similarity``, or None."""
        rows = np.asarray(vectors, dtype=np.float32)
        out: list[tuple[str, float] | None] = []
        with self._lock:
            for row, scope in zip(rows, scopes):
                cache = self._user(scope.user_id)
                hit = cache.top(row, cache.mask(scope, None), 1) if cache is not None else []
                out.append(hit[0] if hit and hit[0][1] >= min_similarity else None)
        return out

    def get_vectors(
        self, memory_ids: Sequence[str], *, user_id: str | None = None
    ) -> dict[str, Vector]:
        if not memory_ids:
            return {}
        with self._lock:
            cache = self._cache.get(user_id) if user_id is not None else None
            if cache is not None and cache.version == self.versions.get(user_id or ""):
                return {i: cache.matrix[cache.row[i]].copy() for i in memory_ids if i in cache.row}
            got = self._col("get", ids=list(memory_ids), include=["embeddings"])
        embeddings = got.get("embeddings")
        if embeddings is None:
            return {}
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], embeddings)}

    def count(self) -> int:
        with self._lock:
            return int(self._col("count"))

    def is_empty(self) -> bool:
        return self.count() == 0

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        with self._lock:
            while True:
                got = self._col("get", include=[], limit=_PAGE, offset=offset)
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
            if self.rows is not None:
                self.rows.reset()
            self._cache.clear()
            self._loaded_estimate = 0
            self.versions.bump_all()

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
