"""``ChromaVectorIndex``: memory vectors kept in Chroma, searched exactly per user.

Chroma (embedded, in memory, or a server) holds every vector in one collection, with the
memory's user, scope ids, category and ``is_current`` as metadata. Searches do not go
through Chroma's own filtered query, which on the project's machines costs 20-40 ms at 10k
vectors once a ``where`` filter is given (1.3 ms without one), and a collection per user
costs about 2.7 MB of memory and 180 kB of disk each. Instead the first search of a user
loads that user's vectors (from the SQLite copy, ``SQLiteVectorRows``) into a matrix, and
searches are an exact dot product over it with the scope rules applied as array masks:
isolation between users by construction, no approximate-neighbour misses, about 0.4 ms at
10k vectors.

A user with many vectors (``hnsw_min_vectors``, 20k) is first searched through Chroma's own
approximate index without a filter, keeping the neighbours that user may see; only when
too few are visible does the exact search run. The near-duplicate check of a write (a
top-1 against a 0.95 similarity floor) uses the same path from ``twin_hnsw_min_vectors``
(5k) vectors.

Writes, with the SQLite copy (the default): ``upsert``/``set_current``/``delete`` write the
``vector_rows`` table and the user's version stamp inside the caller's SQLite transaction
(the engine's, with the memory rows and keywords) and update this process's matrix when it
commits, so a memory is searchable as soon as the write returns. The Chroma write is queued
to one writer thread per index, which applies the queue in batches and then flags those
memories ``vector_synced`` in SQLite. The writer copies *state*, not operations: for each
queued id it reads the id's current ``vector_rows`` row and upserts it to Chroma (or deletes
the id from Chroma when the row is gone and a delete was queued), then, in one SQLite
transaction, checks that the row is still what it wrote before flagging the memory synced;
a row that changed meanwhile is queued again. So a late write can never undo a newer one (a
deleted memory is never resurrected by an upsert that was queued before the delete), and a
crash at any point leaves the memories concerned unsynced, which ``repair()`` (run on open)
writes again. Until Chroma has a vector, the approximate path scores that user's pending
rows exactly from the matrix and merges them in, so a memory added a moment ago is found.
Without the SQLite copy (``rows=None``) writes go to Chroma at once, as before.

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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from ..core.at_exit import call_at_exit, cancel_at_exit
from ..core.models import ScopeLevel
from ..core.ports import ContextWindow, IndexedDoc, ScopeQuery, Vector, VectorSyncError

logger = logging.getLogger(__name__)

_LEVEL_CODE = {ScopeLevel.USER: 0, ScopeLevel.SESSION: 1, ScopeLevel.AGENT: 2, ScopeLevel.TURN: 3}
_PAGE = 5000
_ATTEMPTS = 4
DEFAULT_CONTEXT_GAP_S = 3600.0
"""Consecutive memories further apart than this in ``valid_from`` are not each other's
context (``ContextWindow``)."""


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

    def __init__(
        self, dim: int, version: int, capacity: int = 16, gap_s: float = DEFAULT_CONTEXT_GAP_S
    ) -> None:
        self.version = version
        self.dim = dim
        self.n = 0
        self.live = 0
        self.gap_s = gap_s
        cap = max(16, capacity)
        self.matrix = np.zeros((cap, dim), dtype=np.float32)
        self.alive = np.zeros(cap, dtype=bool)
        self.current = np.zeros(cap, dtype=bool)
        self.level = np.zeros(cap, dtype=np.int8)
        self.cols = {k: np.zeros(cap, dtype=np.int32) for k in ("session", "agent", "turn", "cat")}
        self.prev = np.full(cap, -1, dtype=np.int64)
        """The row written before this one in its conversation (see ``ContextWindow``), or -1."""
        self.next = np.full(cap, -1, dtype=np.int64)
        self._tail: dict[tuple[int, int, int], tuple[int, float | None]] = {}
        """Each conversation thread's (session, agent, turn codes) last row and its valid_from."""
        self._scratch: np.ndarray | None = None
        """Similarities of one ``in_context`` call (reused: the index lock serialises them)."""
        self.codes: dict[str, int] = {"": 0}
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.pending: set[str] = set()
        """Ids whose latest vector Chroma may not have yet (scored exactly on the HNSW path)."""

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
        self._scratch = None
        n = self.n  # rows past n are unused: copy only the used ones
        matrix = np.zeros((new, self.dim), dtype=np.float32)  # untouched pages stay free
        matrix[:n] = self.matrix[:n]
        self.matrix = matrix
        for name in ("alive", "current", "level", "prev", "next"):
            arr = getattr(self, name)
            grown = np.full(new, -1 if name in ("prev", "next") else 0, dtype=arr.dtype)
            grown[:n] = arr[:n]
            setattr(self, name, grown)
        for k, arr in self.cols.items():
            grown = np.zeros(new, dtype=np.int32)
            grown[:n] = arr[:n]
            self.cols[k] = grown

    def put(self, ids: Sequence[str], rows: np.ndarray, metas: Sequence[dict[str, Any]]) -> None:
        fresh = [i for i in ids if i not in self.row]
        self._grow(self.n + len(fresh) + 1)  # one spare row: see ``in_context``
        if len(fresh) == len(ids) and len(set(ids)) == len(ids):
            self._append(ids, rows, metas)
            return
        for mid, vec, meta in zip(ids, rows, metas):
            r = self.row.get(mid)
            fresh_row = r is None
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
            if fresh_row:
                self._link(r, meta.get("valid_from"))

    def _append(
        self, ids: Sequence[str], rows: np.ndarray, metas: Sequence[dict[str, Any]]
    ) -> None:
        """``put`` of ids none of which has a row yet (a user's load, an insert), with
        whole-column writes (row by row, the loads of a 1,000-memory ingest into the 100k
        spread store took twice as long under cProfile: 0.80 against 0.40 s)."""
        start, count = self.n, len(ids)
        part = slice(start, start + count)
        code = self._code
        keys = [  # row by row, in ``put``'s order, so the codes are numbered as it does
            (
                code(m.get("session_id") or ""),
                code(m.get("agent_id") or ""),
                code(m.get("turn_id") or ""),
                code(str(m.get("category") or "")),
            )
            for m in metas
        ]
        table = np.array(keys, dtype=np.int32).reshape(count, 4)
        self.matrix[part] = rows
        self.alive[part] = True
        self.current[part] = [bool(m.get("is_current", True)) for m in metas]
        for k, col in enumerate(("session", "agent", "turn", "cat")):
            self.cols[col][part] = table[:, k]
        session, agent, turn = table[:, 0], table[:, 1], table[:, 2]
        self.level[part] = np.where(turn > 0, 3, np.where(agent > 0, 2, np.where(session > 0, 1, 0)))
        self.ids.extend(ids)
        self.row.update(zip(ids, range(start, start + count)))
        self.n += count
        self.live += count
        for r, key, meta in zip(range(start, start + count), keys, metas):
            self._link(r, meta.get("valid_from"), (key[0], key[1], key[2]))

    def _link(
        self, r: int, valid_from: float | None, key: tuple[int, int, int] | None = None
    ) -> None:
        """Make a new row the last of its conversation thread (see ``ContextWindow``);
        ``key`` is the row's (session, agent, turn) codes when the caller has them."""
        if key is None:
            key = (
                int(self.cols["session"][r]),
                int(self.cols["agent"][r]),
                int(self.cols["turn"][r]),
            )
        tail = self._tail.get(key)
        if tail is not None and valid_from is not None and tail[1] is not None:
            if abs(valid_from - tail[1]) <= self.gap_s:
                self.prev[r] = tail[0]
                self.next[tail[0]] = r
        self._tail[key] = (r, valid_from)

    def set_current(self, ids: Sequence[str], value: bool) -> None:
        for mid in ids:
            r = self.row.get(mid)
            if r is not None:
                self.current[r] = value

    def drop(self, ids: Sequence[str]) -> None:
        for mid in ids:
            self.pending.discard(mid)
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

    def top_rows(self, q: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` of these row numbers most similar to ``q`` (exact), best first."""
        if len(rows) == 0 or k <= 0:
            return []
        scores = self.matrix[rows] @ q
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.ids[rows[o]], float(scores[o])) for o in order]

    def in_context(
        self,
        q: np.ndarray,
        mask: np.ndarray,
        k: int,
        window: ContextWindow,
        rows: np.ndarray | None = None,
    ) -> list[tuple[str, float, float]]:
        """The ``k`` rows allowed by ``mask`` (of ``rows``, or of all) with the best context
        score (``ContextWindow``): (id, context score, cosine), best first. Callers hold the
        index's lock (calls share a scratch array)."""
        n = self.n
        cand = np.flatnonzero(mask) if rows is None else rows[mask[rows]]
        if len(cand) == 0 or k <= 0:
            return []
        # the window's rows of each candidate, step by step; -1 (no neighbour) indexes the
        # last row of the arrays, which is always unused (``_grow`` keeps one spare): its
        # links are -1, it is not alive, and its similarity is never written (stays 0)
        steps = []
        for links, count in ((self.prev, window.before), (self.next, window.after)):
            cur = cand
            for _ in range(count):
                cur = links[cur]
                steps.append(cur)
        sims = self._scratch  # only entries written below are read (and the spare row's 0)
        if sims is None:
            sims = self._scratch = np.zeros(len(self.alive), dtype=np.float32)
        if rows is None:
            np.matmul(self.matrix[:n], q, out=sims[:n])
        else:  # only the candidates and their windows: the rest of the matrix stays unread
            needed = np.unique(np.concatenate([cand, *steps]))
            needed = needed[needed >= 0]
            sims[needed] = self.matrix[needed] @ q
        own = sims[cand]
        total = own.copy()
        count_in = np.ones(len(cand), dtype=np.float32)
        for cur in steps:
            alive = self.alive[cur]
            total += sims[cur] * alive
            count_in += alive
        score = (own + total / count_in) / 2
        k = min(k, len(cand))
        part = np.argpartition(-score, k - 1)[:k] if k < len(cand) else np.arange(len(cand))
        order = part[np.lexsort((part, -score[part]))]  # ties: the earlier row first
        return [(self.ids[cand[o]], float(score[o]), float(own[o])) for o in order]

    def window_owners(self, rows: np.ndarray, window: ContextWindow) -> np.ndarray:
        """``rows`` and every row whose context window holds one of them (the rows a hit
        lifts: the next ones, whose window looks back at it, and the previous ones)."""
        out = [rows]
        for links, count in ((self.next, window.before), (self.prev, window.after)):
            cur = rows
            for _ in range(count):
                cur = links[cur]
                cur = cur[cur >= 0]
                out.append(cur)
        return np.unique(np.concatenate(out))

    @property
    def size(self) -> int:
        return self.n


ATEXIT_FLUSH_SECONDS = 30.0
"""How long the interpreter's exit waits for queued Chroma writes (then they are left to
the next open's repair: their memories stay flagged unsynced)."""


def _wait_at_exit(writer: _ChromaWriter) -> None:
    if not writer.wait(ATEXIT_FLUSH_SECONDS):
        logger.warning(
            "exiting with Chroma writes still queued; their memories stay unsynced "
            "and are written again when the store is next opened"
        )


class _ChromaWriter:
    """The one thread that applies an index's queued Chroma writes, in batches.

    The queue holds memory ids (with whether a delete was asked); a newer request for an id
    replaces an older one still queued. A batch is written once no write came for ``quiet``
    seconds, or ``delay`` seconds after its first write, or when ``max_batch`` are queued,
    or at once when someone waits (``flush``). Embedded Chroma holds the GIL for a whole
    call (a fixed few ms to tens of ms, plus ~0.5-1 ms a vector), so fewer, larger calls
    block the caller's threads less often. The thread starts on the first write and ends
    after ``idle_exit`` seconds with nothing to do (a daemon: it never keeps the interpreter
    alive; an ``atexit`` hook waits for the queue, up to ``ATEXIT_FLUSH_SECONDS``).
    """

    def __init__(
        self,
        apply: Callable[[dict[str, bool]], None],
        *,
        quiet: float,
        delay: float,
        max_batch: int,
        idle_exit: float = 2.0,
        name: str = "headroom-chroma-writer",
    ) -> None:
        self._apply = apply
        self.quiet = quiet
        self.delay = delay
        self.max_batch = max_batch
        self.idle_exit = idle_exit
        self.name = name
        self.cv = threading.Condition()
        self.queue: OrderedDict[str, bool] = OrderedDict()
        self.first_at = 0.0
        self.last_at = 0.0
        self.busy = False
        self.hurry = 0
        self.closed = False
        self.thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.failed_ids = 0
        self.batches = 0
        call_at_exit(self, _wait_at_exit)

    def submit(self, ids: Sequence[str], delete: bool) -> None:
        if not ids:
            return
        with self.cv:
            if self.closed:
                logger.debug("index closed: %d Chroma writes left to repair on open", len(ids))
                return
            self.last_at = time.monotonic()
            if not self.queue:
                self.first_at = self.last_at
            for mid in ids:
                self.queue.pop(mid, None)
                self.queue[mid] = delete
            self._ensure_thread()
            self.cv.notify_all()

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            with self.cv:
                idle_until = time.monotonic() + self.idle_exit
                while not self.queue:
                    left = idle_until - time.monotonic()
                    if self.closed or left <= 0:
                        self.thread = None
                        self.cv.notify_all()
                        return
                    self.cv.wait(left)
                # wait for more writes, to apply them in one Chroma call
                while len(self.queue) < self.max_batch and not self.hurry and not self.closed:
                    left = (
                        min(self.first_at + self.delay, self.last_at + self.quiet)
                        - time.monotonic()
                    )
                    if left <= 0:
                        break
                    self.cv.wait(left)
                batch: dict[str, bool] = {}
                while self.queue and len(batch) < self.max_batch:
                    mid, delete = self.queue.popitem(last=False)
                    batch[mid] = delete
                self.first_at = 0.0 if self.queue else time.monotonic()  # leftovers: no delay
                self.busy = True
            try:
                self._apply_with_retry(batch)
            finally:
                with self.cv:
                    self.busy = False
                    self.batches += 1
                    self.cv.notify_all()

    def _apply_with_retry(self, batch: dict[str, bool]) -> None:
        for attempt in (1, 2):
            try:
                self._apply(batch)
                return
            except Exception as exc:  # noqa: BLE001 - recorded and surfaced by flush()
                if attempt == 1:
                    logger.warning("queued Chroma write failed (%s); retrying once", exc)
                    time.sleep(0.2)
                    continue
                logger.error(
                    "queued Chroma write of %d memories failed: %s; they stay unsynced in "
                    "SQLite and are written again by repair() (run on the next open)",
                    len(batch),
                    exc,
                    exc_info=True,
                )
                with self.cv:
                    self.failed_ids += len(batch)
                    if len(self.errors) < 20:
                        self.errors.append(f"{type(exc).__name__}: {exc}")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is applied (True) or ``timeout`` seconds pass (False)."""
        if self.thread is threading.current_thread():
            raise RuntimeError("the Chroma writer cannot wait for itself")
        end = None if timeout is None else time.monotonic() + timeout
        with self.cv:
            self.hurry += 1
            self.cv.notify_all()
            try:
                while self.queue or self.busy:
                    if self.queue and not self.busy:
                        self._ensure_thread()
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self.cv.wait(left if left is not None else 1.0)
                return True
            finally:
                self.hurry -= 1

    def take_errors(self) -> tuple[int, list[str]]:
        """(memories whose write failed, error texts) since the last call; clears them."""
        with self.cv:
            out = (self.failed_ids, list(self.errors))
            self.failed_ids = 0
            self.errors.clear()
            return out

    def stop(self, timeout: float | None) -> bool:
        drained = self.wait(timeout)
        with self.cv:
            self.closed = True
            thread = self.thread
            self.cv.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        cancel_at_exit(self)
        return drained


class ChromaVectorIndex:
    """Vectors in one Chroma collection; exact, scope-filtered search per user from
    in-process matrices kept fresh by per-user version stamps. Implements ``VectorIndex``.

    With ``rows`` (the SQLite copy) and ``background_writes`` (default), Chroma writes are
    applied by a writer thread in batches: once no write came for ``write_quiet_s``, at the
    latest ``write_delay_s`` after a batch's first write, at most ``max_write_batch``
    memories per Chroma call (``flush()`` does not wait for the delays).
    """

    def __init__(
        self,
        client: Any,
        collection_name: str,
        *,
        versions: VersionClock | None = None,
        rows: Any = None,
        max_cached_vectors: int = 500_000,
        hnsw_min_vectors: int = 20_000,
        twin_hnsw_min_vectors: int = 5_000,
        background_writes: bool = True,
        write_quiet_s: float = 0.05,
        write_delay_s: float = 0.5,
        max_write_batch: int = 512,
        close_timeout_s: float | None = 120.0,
        context_gap_s: float = DEFAULT_CONTEXT_GAP_S,
    ) -> None:
        self.client = client
        self.context_gap_s = context_gap_s
        """Consecutive memories further apart than this in ``valid_from`` start a new
        conversation (``query_in_context``)."""
        self.collection_name = collection_name
        self.versions: VersionClock = versions or LocalVersions()
        self.rows = rows
        """Where a user's vectors are loaded from (``SQLiteVectorRows``); None: from Chroma."""
        self.max_cached_vectors = max_cached_vectors
        self.hnsw_min_vectors = hnsw_min_vectors
        self.twin_hnsw_min_vectors = twin_hnsw_min_vectors
        """From this many vectors (or ``hnsw_min_vectors``, the lower) the near-duplicate
        check of a write asks HNSW first: an exact top-1 reads the user's whole matrix, which
        at 10k vectors costs ~3 ms plus a colder CPU cache for the next embedding."""
        self.close_timeout_s = close_timeout_s
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, _UserVectors] = OrderedDict()
        self._loaded_estimate = 0
        self._mark_synced: Callable[[Sequence[str]], None] | None = None
        self.collection = self._open()
        if self.rows is not None and self.rows.is_empty() and self._col("count") > 0:
            self._backfill_rows()
            self.rows.fill_valid_from()
        self._writer: _ChromaWriter | None = None
        if rows is not None and background_writes:
            self._writer = _ChromaWriter(
                self._apply_queued,
                quiet=write_quiet_s,
                delay=write_delay_s,
                max_batch=max_write_batch,
                name=f"headroom-chroma-writer-{collection_name}"[:60],
            )

    # -- wiring ------------------------------------------------------------------------
    @property
    def joins_store_transaction(self) -> bool:
        """True when writes only touch SQLite (in the caller's transaction) and Chroma is
        written by the writer thread, which also flags memories synced (``bind_store``)."""
        return self._writer is not None

    def bind_store(self, store: Any) -> None:
        """The store whose memories the writer flags synced once Chroma has their vectors.

        Queued writes need the store and the SQLite copy on one connection (one transaction
        holds a memory and its vector); with any other store, writes go to Chroma at once.
        """
        self._mark_synced = getattr(store, "mark_synced", None)
        if self._writer is not None and getattr(store, "db", None) is not self.rows.db:
            logger.debug("store on another connection: Chroma writes are not queued")
            self._writer.stop(None)
            self._writer = None

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
                    with self._lock:
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
            # a quarter more room (zero pages: no memory until used), so the writes that
            # follow a load do not copy the matrix into a bigger one at once
            n = len(got[0])
            cache = _UserVectors(int(got[1].shape[1]), version, n + n // 4 + 16, self.context_gap_s)
            cache.put(got[0], got[1], got[2])
            if self._writer is not None and cache.live >= self._hnsw_floor():
                # written (by any process) but maybe not in Chroma yet
                cache.pending = {i for i in self.rows.unsynced(user_id) if i in cache.row}
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
        cache = _UserVectors(width, version, gap_s=self.context_gap_s)
        if ids:
            cache.put(ids, np.asarray(rows, dtype=np.float32), metas)
        return cache

    def _hnsw_floor(self) -> int:
        return min(self.hnsw_min_vectors, self.twin_hnsw_min_vectors)

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
        """After a write of ``user_id``'s vectors (Chroma at once, no SQLite copy): stamp a
        new version and bring this process's copy along (or drop it when another writer got
        in between)."""
        before = self.versions.get(user_id)
        after = self.versions.bump(user_id)
        self._apply_stamp(user_id, before, after, apply)

    def _apply_stamp(self, user_id: str, before: int, after: int, apply: Any) -> None:
        with self._lock:
            cache = self._cache.get(user_id)
            if cache is None:
                return
            if cache.version == before:
                apply(cache)
                cache.version = after
            else:
                self._cache.pop(user_id, None)

    def _queued_write(
        self, users: dict[str, Any], ids: Sequence[str], delete: bool
    ) -> None:
        """Inside the SQLite transaction that wrote ``vector_rows``: stamp each user's new
        version; once it commits, apply ``users[u](cache)`` to this process's matrices and
        queue ``ids`` for the Chroma writer. A rollback does neither."""
        assert self._writer is not None
        stamps = {u: (self.versions.get(u), self.versions.bump(u)) for u in users}
        writer = self._writer

        def committed() -> None:
            for user_id, (before, after) in stamps.items():
                self._apply_stamp(user_id, before, after, users[user_id])
            writer.submit(ids, delete)

        self.rows.db.after_commit(committed)

    # -- writes ------------------------------------------------------------------------
    def upsert(self, docs: Sequence[IndexedDoc], vectors: Vector) -> None:
        if not docs:
            return
        rows = np.asarray(vectors, dtype=np.float32)
        by_user: dict[str, list[int]] = {}
        for n, doc in enumerate(docs):
            by_user.setdefault(doc.user_id, []).append(n)

        def putter(picks: list[int], pending: bool) -> Any:
            def apply(c: _UserVectors) -> None:
                ids = [docs[n].id for n in picks]
                metas = [{**self._meta(docs[n]), "valid_from": docs[n].valid_from} for n in picks]
                c.put(ids, rows[picks], metas)
                if pending:
                    c.pending.update(ids)

            return apply

        if self._writer is not None:
            with self.rows.db.transaction():
                self.rows.upsert(docs, rows)
                self._queued_write(
                    {u: putter(p, True) for u, p in by_user.items()},
                    [d.id for d in docs],
                    delete=False,
                )
            return
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
            for user_id, picks in by_user.items():
                self._stamp(user_id, putter(picks, False))

    def set_current(
        self, memory_ids: Sequence[str], is_current: bool, *, user_id: str | None = None
    ) -> None:
        if not memory_ids:
            return
        if self._writer is not None:
            with self.rows.db.transaction():
                owners = self.rows.owners_of(memory_ids)
                if not owners:
                    return
                ids = list(owners)
                self.rows.set_current(ids, is_current)
                self._queued_write(
                    {u: (lambda c: c.set_current(ids, is_current)) for u in set(owners.values())},
                    ids,
                    delete=False,
                )
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
        ids = list(memory_ids)
        if self._writer is not None:
            with self.rows.db.transaction():
                owners = set(self.rows.owners_of(ids).values())
                if user_id is not None:
                    owners.add(user_id)
                self.rows.delete(ids)
                self._queued_write({u: (lambda c: c.drop(ids)) for u in owners}, ids, delete=True)
            return
        with self._lock:
            owners = set()
            if user_id is not None:
                owners.add(user_id)
            else:
                got = self._col("get", ids=ids, include=["metadatas"])
                owners.update((m or {}).get("user_id") or "" for m in got["metadatas"])
                owners.discard("")
            if self.rows is not None:
                owners.update(self.rows.owners(ids))
                self.rows.delete(ids)
            self._col("delete", ids=ids)
            for owner in owners:
                self._stamp(owner, lambda c: c.drop(ids))

    # -- the writer thread's work ----------------------------------------------------------
    def _apply_queued(self, batch: dict[str, bool]) -> None:
        """Copy the current SQLite state of ``batch``'s ids to Chroma, then flag synced the
        memories whose row is still what was copied (one SQLite transaction); queue again
        those that changed meanwhile."""
        ids = list(batch)
        state = self.rows.get(ids)
        ups = [i for i in ids if i in state]
        dels = [i for i in ids if i not in state and batch[i]]
        for start in range(0, len(ups), 4000):
            part = ups[start : start + 4000]
            vecs = np.frombuffer(b"".join(state[i][6] for i in part), dtype=np.float32)
            self._col(
                "upsert",
                ids=part,
                embeddings=vecs.reshape(len(part), -1),
                metadatas=[_row_meta(state[i]) for i in part],
            )
        if dels:
            self._col("delete", ids=dels)
        confirmed: list[str] = []
        again_sync: list[str] = []
        again_delete: list[str] = []
        with self.rows.db.transaction():
            now = self.rows.get(ups + dels)
            for i in ups:
                if now.get(i) == state[i]:
                    confirmed.append(i)
                elif i in now:
                    again_sync.append(i)
                else:
                    again_delete.append(i)
            again_sync.extend(i for i in dels if i in now)
            if confirmed and self._mark_synced is not None:
                self._mark_synced(confirmed)
        with self._lock:
            for i in confirmed:
                cache = self._cache.get(state[i][0])
                if cache is not None:
                    cache.pending.discard(i)
        if self._writer is not None:
            self._writer.submit(again_sync, delete=False)
            self._writer.submit(again_delete, delete=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queued Chroma writes are applied; False when ``timeout`` passed
        first, or at once inside a SQLite transaction of this connection (the writer needs
        the connection: waiting there would deadlock). Never raises for failed writes
        (``flush`` does)."""
        if self._writer is None:
            return True
        if self._in_transaction():
            return False
        return self._writer.wait(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Block until the queued Chroma writes are applied. Raises ``VectorSyncError`` if
        any failed since the last ``flush`` (their memories stay unsynced: ``repair()``
        writes them again), ``TimeoutError`` when ``timeout`` seconds pass first, and
        ``RuntimeError`` inside a transaction of the store (it would deadlock)."""
        if self._writer is None:
            return
        if self._in_transaction():
            raise RuntimeError(
                "flush() inside a transaction of the store would deadlock (the Chroma writer "
                "needs the connection): flush before or after the transaction"
            )
        if not self.wait(timeout):
            raise TimeoutError(f"queued Chroma writes not applied within {timeout} s")
        failed, errors = self._writer.take_errors()
        if failed:
            raise VectorSyncError(
                f"{failed} queued vector writes to Chroma failed (first error: {errors[0]}); "
                "SQLite has those memories and their vectors, flagged unsynced: repair() "
                "(also run when the store is next opened) writes them to Chroma again"
            )

    def _in_transaction(self) -> bool:
        return self.rows is not None and bool(self.rows.db.in_transaction())

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

        def pick(q: np.ndarray, cache: _UserVectors, mask: np.ndarray, hits: Any) -> Any:
            return hits if hits is not None else cache.top(q, mask, k)

        hits: list[tuple[str, float]] = self._search(vector, k, scope, categories, pick)
        if min_similarity is not None:
            hits = [h for h in hits if h[1] >= min_similarity]
        return hits

    def query_in_context(
        self,
        vector: Vector,
        k: int,
        scope: ScopeQuery,
        categories: Sequence[str] | None = None,
        window: ContextWindow | None = None,
    ) -> list[tuple[str, float, float]]:
        """Up to ``k`` visible (id, context score, cosine similarity) triples, best context
        score first: a memory scores the mean of its own cosine and its window's mean
        (``ContextWindow``). Exact for users below ``hnsw_min_vectors``; above, the
        candidates are the approximate neighbours and the memories whose windows hold one."""
        win = window or ContextWindow()

        def pick(q: np.ndarray, cache: _UserVectors, mask: np.ndarray, hits: Any) -> Any:
            rows = None
            if hits is not None:
                found = np.fromiter((cache.row[i] for i, _ in hits), dtype=np.int64)
                rows = cache.window_owners(found, win)
            return cache.in_context(q, mask, k, win, rows)

        result: list[tuple[str, float, float]] = self._search(vector, k, scope, categories, pick)
        return result

    def _search(
        self,
        vector: Vector,
        k: int,
        scope: ScopeQuery,
        categories: Sequence[str] | None,
        pick: Callable[[np.ndarray, _UserVectors, np.ndarray, Any], Any],
    ) -> Any:
        """``pick(q, user's matrix, visibility mask, HNSW hits or None)`` under the lock: the
        hits come from ``_hnsw`` for users of ``hnsw_min_vectors`` or more (None otherwise,
        or when too few of them are visible); [] for ``k <= 0`` or a user without vectors."""
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
                hits = self._hnsw(q, k, cache, mask)
            return pick(q, cache, mask, hits)

    def _hnsw(
        self, q: np.ndarray, k: int, cache: _UserVectors, mask: np.ndarray
    ) -> list[tuple[str, float]] | None:
        """For a user with many vectors, Chroma's approximate index without a filter (a
        dot product over 100k vectors reads 150 MB; HNSW a few thousand). Its neighbours
        are kept when the user's mask allows them; None (use the exact search) when fewer
        than ``k`` are allowed. Rows Chroma may not have yet (``pending``) are scored
        exactly and merged in (Chroma's copy of them, if any, is ignored)."""
        fetch = max(3 * k, 30)
        res = self._col(
            "query", query_embeddings=q.reshape(1, -1), n_results=fetch, include=["distances"]
        )
        ids = res["ids"][0] if res["ids"] else []
        dists = res["distances"][0] if res.get("distances") else []
        return self._hnsw_pick(q, k, cache, mask, ids, dists, fetch)

    def _hnsw_pick(
        self,
        q: np.ndarray,
        k: int,
        cache: _UserVectors,
        mask: np.ndarray,
        ids: Sequence[str],
        dists: Sequence[float],
        fetch: int,
    ) -> list[tuple[str, float]] | None:
        """``_hnsw`` from the ``fetch`` neighbours Chroma returned for ``q``."""
        eligible = mask
        pend_rows = np.zeros(0, dtype=np.int64)
        if cache.pending:
            pend_rows = np.fromiter(
                (r for r in (cache.row.get(i) for i in cache.pending) if r is not None),
                dtype=np.int64,
            )
            if len(pend_rows):
                eligible = mask.copy()
                eligible[pend_rows] = False
                pend_rows = pend_rows[mask[pend_rows]]
        out = []
        for mid, dist in zip(ids, dists):
            r = cache.row.get(mid)
            if r is not None and eligible[r]:
                out.append((mid, 1.0 - float(dist)))
                if len(out) == k:
                    break
        if len(out) < k and not (len(ids) < fetch and len(out) == int(eligible.sum())):
            return None
        if len(pend_rows):
            out = sorted(out + cache.top_rows(q, pend_rows, k), key=lambda h: -h[1])[:k]
        return out

    def nearest_twins(
        self, vectors: Vector, scopes: Sequence[ScopeQuery], min_similarity: float
    ) -> list[tuple[str, float] | None]:
        """For each vector, the most similar memory visible from its (exact) scope with a
        similarity of at least ``min_similarity``, or None. Users with
        ``twin_hnsw_min_vectors`` or more go through the approximate path, with their
        pending rows scored exactly (exact when it cannot answer)."""
        rows = np.asarray(vectors, dtype=np.float32)
        out: list[tuple[str, float] | None] = [None] * len(rows)
        with self._lock:
            caches = {u: self._user(u) for u in dict.fromkeys(s.user_id for s in scopes)}
            big = [
                n
                for n, s in enumerate(scopes)
                if (c := caches[s.user_id]) is not None and c.live >= self._hnsw_floor()
            ]
            near: dict[int, tuple[Sequence[str], Sequence[float]]] = {}
            fetch = 30
            if big:  # one Chroma call for every row of the big users
                res = self._col(
                    "query", query_embeddings=rows[big], n_results=fetch, include=["distances"]
                )
                for n, got_ids, got_d in zip(big, res["ids"] or [], res.get("distances") or []):
                    near[n] = (got_ids, got_d)
            masks: dict[ScopeQuery, np.ndarray] = {}  # a batch mostly shares one scope
            for n, (row, scope) in enumerate(zip(rows, scopes)):
                cache = caches[scope.user_id]
                if cache is None:
                    continue
                mask = masks.get(scope)
                if mask is None:
                    mask = masks[scope] = cache.mask(scope, None)
                hit = None
                if n in near:
                    hit = self._hnsw_pick(row, 1, cache, mask, *near[n], fetch)
                if hit is None:
                    hit = cache.top(row, mask, 1)
                out[n] = hit[0] if hit and hit[0][1] >= min_similarity else None
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
            if self.rows is not None:
                return dict(self.rows.vectors(memory_ids))
            got = self._col("get", ids=list(memory_ids), include=["embeddings"])
        embeddings = got.get("embeddings")
        if embeddings is None:
            return {}
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], embeddings)}

    def count(self) -> int:
        """Vectors in Chroma (queued writes not included: ``wait()`` first)."""
        with self._lock:
            return int(self._col("count"))

    def is_empty(self) -> bool:
        return self.count() == 0

    def all_ids(self) -> set[str]:
        """Ids in Chroma (queued writes not included: ``wait()`` first)."""
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
        """Drop every vector (Chroma's collection and the SQLite copy)."""
        if self._in_transaction():
            raise RuntimeError("reset() inside a transaction of the store would deadlock")
        while True:
            self.wait()  # queued writes land in the old collection, never the new one
            with self._lock:
                writer = self._writer
                if writer is not None:
                    with writer.cv:
                        if writer.queue or writer.busy:
                            continue  # written to meanwhile: wait again
                self._reset_now()
                return

    def _reset_now(self) -> None:
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
        """Apply the queued Chroma writes (up to ``close_timeout_s``), then stop the writer.
        Failed or unapplied writes are logged as a warning, not raised: their memories stay
        unsynced in SQLite and the next open repairs them."""
        if self._writer is not None:
            # inside a transaction the writer cannot finish: leave the queue to repair
            drained = self._writer.stop(0 if self._in_transaction() else self.close_timeout_s)
            failed, errors = self._writer.take_errors()
            if failed or not drained:
                logger.warning(
                    "closing with %s; those memories stay unsynced in SQLite and are written "
                    "to Chroma again when the store is next opened (repair)",
                    f"{failed} failed vector writes ({errors[0]})"
                    if failed
                    else f"vector writes still queued after {self.close_timeout_s} s",
                )
        with self._lock:
            self._cache.clear()


def _row_meta(row: tuple[Any, ...]) -> dict[str, Any]:
    """Chroma metadata of a ``SQLiteVectorRows.get`` row."""
    return {
        "user_id": row[0],
        "session_id": row[1],
        "agent_id": row[2],
        "turn_id": row[3],
        "category": row[4],
        "is_current": bool(row[5]),
    }
