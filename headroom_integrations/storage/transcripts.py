"""``SQLiteTranscriptStore``: the ordered message transcript of each (user, session).

Adapters (LangChain chat history, LlamaIndex memory) keep the exact messages of a
conversation here, in the same SQLite file as the memories; each message is an opaque
JSON payload the adapter serialises, tagged with the adapter's ``kind`` so two frameworks
sharing a session id each read back only their own messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.models import utcnow
from .sqlite_db import SQLiteDatabase


class SQLiteTranscriptStore:
    """Append-only message lists keyed by (user_id, session_id)."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        with db.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS transcripts ("
                "seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, "
                "session_id TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'default', "
                "payload TEXT NOT NULL, created_at TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS idx_transcripts_session "
                "ON transcripts(user_id, session_id, kind, seq)"
            )

    def append(
        self, user_id: str, session_id: str, payloads: Sequence[str], *, kind: str = "default"
    ) -> None:
        """Append messages (already serialised) in order, atomically."""
        if not payloads:
            return
        now = utcnow().isoformat(timespec="microseconds")
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO transcripts(user_id, session_id, kind, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(user_id, session_id, kind, p, now) for p in payloads],
            )

    def replace(
        self, user_id: str, session_id: str, payloads: Sequence[str], *, kind: str = "default"
    ) -> None:
        """Replace one session's transcript (of this kind) with ``payloads``, atomically."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM transcripts WHERE user_id = ? AND session_id = ? AND kind = ?",
                (user_id, session_id, kind),
            )
            self.append(user_id, session_id, payloads, kind=kind)

    def get(
        self, user_id: str, session_id: str, limit: int | None = None, *, kind: str = "default"
    ) -> list[str]:
        """The payloads in the order they were appended (the last ``limit`` when given)."""
        rows = self.db.fetchall(
            "SELECT payload FROM transcripts WHERE user_id = ? AND session_id = ? AND kind = ? "
            "ORDER BY seq DESC LIMIT ?",
            (user_id, session_id, kind, -1 if limit is None else limit),
        )
        return [r[0] for r in reversed(rows)]

    def clear(
        self, user_id: str, session_id: str | None = None, *, kind: str | None = "default"
    ) -> int:
        """Delete one session's transcript, or all of a user's when ``session_id`` is None;
        of one kind, or of every kind when ``kind`` is None."""
        sql = "DELETE FROM transcripts WHERE user_id = ?"
        params: list[str] = [user_id]
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        with self.db.transaction() as conn:
            return int(conn.execute(sql, params).rowcount)

    def sessions(self, user_id: str) -> list[str]:
        """The session ids that have a transcript for this user."""
        rows = self.db.fetchall(
            "SELECT DISTINCT session_id FROM transcripts WHERE user_id = ? ORDER BY session_id",
            (user_id,),
        )
        return [r[0] for r in rows]
