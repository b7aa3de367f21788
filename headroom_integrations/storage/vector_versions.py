"""``VectorVersions``: per-user version stamps of the vector index, in the store's SQLite file.

Every write of a user's vectors stamps a new version (from one sequence, so a user's
versions never repeat); a process holding an in-memory copy of that user's vectors compares
stamps before a search and reloads when another process wrote since.
"""

from __future__ import annotations

from .sqlite_db import SQLiteDatabase

_SEQ = "\x00seq"  # user ids never contain NUL: a safe key for the sequence itself


class VectorVersions:
    """A ``VersionClock`` shared by every process that opens the same SQLite file."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        with db.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vector_versions "
                "(user_id TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO vector_versions(user_id, version) VALUES (?, 0)", (_SEQ,)
            )

    def get(self, user_id: str) -> int:
        row = self.db.fetchone("SELECT version FROM vector_versions WHERE user_id = ?", (user_id,))
        return int(row[0]) if row else 0

    def _next(self, conn: object) -> int:
        conn.execute(  # type: ignore[attr-defined]
            "UPDATE vector_versions SET version = version + 1 WHERE user_id = ?", (_SEQ,)
        )
        row = conn.execute(  # type: ignore[attr-defined]
            "SELECT version FROM vector_versions WHERE user_id = ?", (_SEQ,)
        ).fetchone()
        return int(row[0])

    def bump(self, user_id: str) -> int:
        with self.db.transaction() as conn:
            version = self._next(conn)
            conn.execute(
                "INSERT INTO vector_versions(user_id, version) VALUES (?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET version = excluded.version",
                (user_id, version),
            )
            return version

    def bump_all(self) -> None:
        with self.db.transaction() as conn:
            version = self._next(conn)
            conn.execute(
                "UPDATE vector_versions SET version = ? WHERE user_id != ?", (version, _SEQ)
            )
