"""``SQLiteVectorRows``: each vector and its scope fields, also kept in the store's SQLite file.

The vector index loads a user's vectors from here on that user's first search in a process:
one indexed read, about 20 times faster than reading them back from Chroma (0.1 ms a
vector there). Chroma stays the approximate-neighbour index of large users.

It is also what the Chroma writer thread copies from: a vector is written here in the same
transaction as its memory, and pushed to Chroma later (``ChromaVectorIndex``).

Rows keep the order they were first written in (a rewrite updates in place), with each
memory's ``valid_from``: the vector index reads a user's conversations from that order
(``ContextWindow``), the same in every process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ..core.ports import IndexedDoc
from .sqlite_db import SQLiteDatabase


class SQLiteVectorRows:
    """Vectors by memory id, with what the scope filters need."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        with db.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vector_rows (memory_id TEXT PRIMARY KEY, "
                "user_id TEXT NOT NULL, session_id TEXT NOT NULL, agent_id TEXT NOT NULL, "
                "turn_id TEXT NOT NULL, category TEXT NOT NULL, is_current INTEGER NOT NULL, "
                "embedding BLOB NOT NULL, valid_from REAL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS idx_vector_rows_user ON vector_rows(user_id)")
            columns = {r[1] for r in conn.execute("PRAGMA table_info(vector_rows)")}
            if "valid_from" not in columns:  # a store from before the context window
                conn.execute("ALTER TABLE vector_rows ADD COLUMN valid_from REAL")
                self._fill_valid_from(conn)

    def fill_valid_from(self) -> None:
        """Copy ``valid_from`` from the store's memories into rows that lack it (rows
        written without it, e.g. copied back from Chroma)."""
        with self.db.transaction() as conn:
            self._fill_valid_from(conn)

    @staticmethod
    def _fill_valid_from(conn: sqlite3.Connection) -> None:
        try:
            rows = conn.execute(
                "SELECT v.memory_id, m.valid_from FROM vector_rows v "
                "JOIN memories m ON m.id = v.memory_id WHERE v.valid_from IS NULL"
            ).fetchall()
        except sqlite3.OperationalError:  # no memories table (a bare vector index)
            return
        conn.executemany(
            "UPDATE vector_rows SET valid_from = ? WHERE memory_id = ?",
            [(datetime.fromisoformat(vf).timestamp(), mid) for mid, vf in rows if vf],
        )

    def upsert(self, docs: Sequence[IndexedDoc], vectors: np.ndarray) -> None:
        """Write these vectors; a memory already here keeps its place in the order."""
        rows = np.asarray(vectors, dtype=np.float32)
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO vector_rows (memory_id, user_id, session_id, agent_id, turn_id, "
                "category, is_current, embedding, valid_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(memory_id) DO UPDATE SET user_id = excluded.user_id, "
                "session_id = excluded.session_id, agent_id = excluded.agent_id, "
                "turn_id = excluded.turn_id, category = excluded.category, "
                "is_current = excluded.is_current, embedding = excluded.embedding, "
                "valid_from = coalesce(excluded.valid_from, vector_rows.valid_from)",
                [
                    (
                        d.id,
                        d.user_id,
                        d.session_id or "",
                        d.agent_id or "",
                        d.turn_id or "",
                        d.category,
                        1 if d.is_current else 0,
                        rows[n].tobytes(),
                        d.valid_from,
                    )
                    for n, d in enumerate(docs)
                ],
            )

    def set_current(self, memory_ids: Sequence[str], is_current: bool) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE vector_rows SET is_current = ? WHERE memory_id = ?",
                [(1 if is_current else 0, i) for i in memory_ids],
            )

    def delete(self, memory_ids: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM vector_rows WHERE memory_id = ?", [(i,) for i in memory_ids])

    def owners_of(self, memory_ids: Sequence[str]) -> dict[str, str]:
        """The owning user of each of these ids that has a row."""
        rows = self.db.fetchall_in(
            "SELECT memory_id, user_id FROM vector_rows WHERE memory_id IN ({marks})", memory_ids
        )
        return {r[0]: r[1] for r in rows}

    def owners(self, memory_ids: Sequence[str]) -> set[str]:
        return set(self.owners_of(memory_ids).values())

    def load(self, user_id: str) -> tuple[list[str], np.ndarray, list[dict[str, Any]]] | None:
        """The user's ids, vectors (one row each) and metadata, in the order they were first
        written; None when there are none."""
        rows = self.db.fetchall(
            "SELECT memory_id, session_id, agent_id, turn_id, category, is_current, embedding, "
            "valid_from FROM vector_rows WHERE user_id = ? ORDER BY rowid",
            (user_id,),
        )
        if not rows:
            return None
        matrix = np.frombuffer(b"".join(r[6] for r in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), -1)
        metas = [
            {"session_id": r[1], "agent_id": r[2], "turn_id": r[3], "category": r[4],
             "is_current": bool(r[5]), "valid_from": r[7]}
            for r in rows
        ]
        return [r[0] for r in rows], matrix, metas

    def get(self, memory_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """The stored rows of these ids, by id: (user_id, session_id, agent_id, turn_id,
        category, is_current, embedding bytes). Absent ids are left out."""
        rows = self.db.fetchall_in(
            "SELECT memory_id, user_id, session_id, agent_id, turn_id, category, is_current, "
            "embedding FROM vector_rows WHERE memory_id IN ({marks})",
            memory_ids,
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def vectors(self, memory_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of these ids (absent ids left out)."""
        return {
            i: np.frombuffer(row[6], dtype=np.float32).copy()
            for i, row in self.get(memory_ids).items()
        }

    def unsynced(self, user_id: str) -> set[str]:
        """Ids of the user's memories flagged ``vector_synced = 0`` in the store's
        ``memories`` table (written, maybe not in Chroma yet); empty without that table."""
        try:
            rows = self.db.fetchall(
                "SELECT id FROM memories INDEXED BY idx_memories_unsynced "
                "WHERE vector_synced = 0 AND user_id = ?",
                (user_id,),
            )
        except sqlite3.OperationalError:  # no memories table (a bare vector index)
            return set()
        return {r[0] for r in rows}

    def is_empty(self) -> bool:
        return self.db.fetchone("SELECT 1 FROM vector_rows LIMIT 1") is None

    def reset(self) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM vector_rows")
