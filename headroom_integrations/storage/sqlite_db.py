"""One SQLite connection shared by the store, the FTS5 index and the transcripts.

WAL journal, a busy timeout (so another process's write waits instead of raising
"database is locked"), reads through memory mapping (``mmap_bytes``), and a re-entrant
lock so one connection serves many threads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import StoreClosedError, StoreCorruptedError

logger = logging.getLogger(__name__)

_RETRYABLE = ("database is locked", "database is busy", "database table is locked")


class SQLiteDatabase:
    """A thread-safe SQLite connection with atomic, retrying transactions."""

    def __init__(
        self, path: str, *, busy_timeout_ms: int = 30_000, mmap_bytes: int = 1 << 30
    ) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._depth = 0
        self._owner: int | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._closed = False
        try:
            self.conn = sqlite3.connect(
                path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if path != ":memory:":
                self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            if path != ":memory:" and mmap_bytes > 0:
                # Reads map the file instead of copying each page through a read() call:
                # a search reads a few dozen random rows of a file of hundreds of MB.
                self.conn.execute(f"PRAGMA mmap_size = {int(mmap_bytes)}")
            # Touch the schema so a file that is not a database fails here, clearly.
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptedError(
                f"{path} is not a readable SQLite database ({exc}); "
                "restore it from a backup or an export, or point db_path elsewhere"
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block atomically: BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error.

        Nested use joins the outer transaction. Callbacks registered with ``after_commit``
        during it run once the outermost block has committed (and released the lock);
        a rollback discards them.
        """
        done: list[Callable[[], None]] = []
        with self.lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            self._owner = threading.get_ident()
            self._callbacks = []
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self._owner = None
                self._callbacks = []
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._owner = None
            done, self._callbacks = self._callbacks, []
            self._commit()  # on failure it rolls back and raises: ``done`` is dropped
        for callback in done:
            _run_callback(callback)

    def in_transaction(self) -> bool:
        """True when the calling thread is inside ``transaction()``."""
        return bool(self._depth) and self._owner == threading.get_ident()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the calling thread's transaction commits (now, outside one).

        It runs after the lock is released, so it may take other locks; it is dropped when
        the transaction rolls back. Exceptions it raises are logged, not propagated.
        """
        with self.lock:
            if self.in_transaction():
                self._callbacks.append(callback)
                return
        _run_callback(callback)

    def _begin(self) -> None:
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _commit(self) -> None:
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.005
        while True:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    self.conn.execute("ROLLBACK")
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def execute(self, sql: str, params: tuple | list | dict = ()) -> sqlite3.Cursor:
        """Run one statement under the lock (autocommit outside a transaction)."""
        with self.lock:
            self._check_open()
            return self.conn.execute(sql, params)

    def fetchall(self, sql: str, params: tuple | list | dict = ()) -> list[tuple]:
        with self.lock:
            self._check_open()
            return self.conn.execute(sql, params).fetchall()

    def fetchall_in(self, sql: str, ids: Sequence[str], chunk: int = 500) -> list[tuple]:
        """The rows of ``sql`` for every id of ``ids`` (duplicates once), in chunks of
        ``chunk`` ids; ``sql`` holds ``{marks}`` where the ``IN (...)`` placeholders go."""
        unique = list(dict.fromkeys(ids))
        out: list[tuple] = []
        for start in range(0, len(unique), chunk):
            part = unique[start : start + chunk]
            out.extend(self.fetchall(sql.format(marks=", ".join("?" for _ in part)), part))
        return out

    def fetchone(self, sql: str, params: tuple | list | dict = ()) -> tuple | None:
        with self.lock:
            self._check_open()
            row: tuple | None = self.conn.execute(sql, params).fetchone()
            return row

    def _check_open(self) -> None:
        """Work that was already running when another thread called close() ends with the
        same clear error as a call made after it (not sqlite3's ProgrammingError)."""
        if self._closed:
            raise StoreClosedError("this memory store is closed")

    def close(self) -> None:
        """Close the connection. Waits for a running transaction or statement (same lock)."""
        with self.lock:
            self._closed = True
            try:
                self.conn.close()
            except sqlite3.Error:
                pass


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _RETRYABLE)


def _run_callback(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - the transaction is committed; report, do not undo
        logger.exception("after-commit callback failed")
