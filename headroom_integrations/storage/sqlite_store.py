"""``SQLiteMemoryStore``: the source of truth, every memory with every field."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from ..core.errors import StoreCorruptedError
from ..core.models import (
    MemoryCategory,
    MemoryFilter,
    MemoryRecord,
    MemoryStats,
    Provenance,
    ScopeLevel,
)
from ..core.ports import MemoryBrief, ScopeQuery
from .sqlite_db import SQLiteDatabase

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category TEXT NOT NULL,
    importance REAL NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    agent_id TEXT,
    turn_id TEXT,
    scope_level TEXT NOT NULL,
    created_at TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    is_current INTEGER NOT NULL,
    supersedes TEXT,
    superseded_by TEXT,
    promoted_from TEXT,
    entity_refs TEXT NOT NULL,
    metadata TEXT NOT NULL,
    provenance TEXT NOT NULL,
    search_text TEXT,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed TEXT,
    vector_synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_memories_user ON memories(user_id, is_current, created_at);
CREATE INDEX IF NOT EXISTS idx_memories_hash ON memories(user_id, content_hash);
CREATE INDEX IF NOT EXISTS idx_memories_promoted ON memories(promoted_from)
    WHERE promoted_from IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_memories_unsynced ON memories(vector_synced)
    WHERE vector_synced = 0;
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = (
    "id, content, content_hash, category, importance, user_id, session_id, agent_id, turn_id, "
    "scope_level, created_at, valid_from, valid_until, is_current, supersedes, superseded_by, "
    "promoted_from, entity_refs, metadata, provenance, access_count, last_accessed, search_text"
)
_PLACEHOLDERS = ", ".join("?" for _ in _COLUMNS.split(","))
_BRIEF_COLUMNS = (
    "id, user_id, session_id, agent_id, turn_id, category, importance, created_at, "
    "valid_from, is_current, promoted_from, entity_refs"
)

_WS = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n.!?;,:'\"`"


def normalize_content(text: str) -> str:
    """The form two memories are compared in for exact dedup: NFKC, casefolded, blanks folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _WS.sub(" ", text).strip(_EDGE_PUNCT)


def content_hash(text: str) -> str:
    """SHA-256 of the normalised content."""
    return hashlib.sha256(normalize_content(text).encode("utf-8", "surrogatepass")).hexdigest()


def _ts(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def scope_sql(scope: ScopeQuery, alias: str = "") -> tuple[str, list[Any]]:
    """SQL ``WHERE`` text and parameters selecting what ``scope`` may see."""
    p = f"{alias}." if alias else ""
    clauses = [f"{p}user_id = ?"]
    params: list[Any] = [scope.user_id]
    if not scope.include_superseded:
        clauses.append(f"{p}is_current = 1")
    if not scope.all_scopes:
        for column, value in (
            ("session_id", scope.session_id),
            ("agent_id", scope.agent_id),
            ("turn_id", scope.turn_id),
        ):
            if value is None:
                clauses.append(f"{p}{column} IS NULL")
            else:
                clauses.append(f"({p}{column} IS NULL OR {p}{column} = ?)")
                params.append(value)
    if scope.levels is not None:
        clauses.append(f"{p}scope_level IN ({', '.join('?' for _ in scope.levels)})")
        params.extend(level.value for level in scope.levels)
    return " AND ".join(clauses), params


class SQLiteMemoryStore:
    """Memories in one SQLite table; implements the ``MemoryStore`` port."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        try:
            with db.transaction() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                row = conn.execute(
                    "SELECT value FROM store_meta WHERE key = 'schema_version'"
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO store_meta(key, value) VALUES ('schema_version', ?)",
                        (SCHEMA_VERSION,),
                    )
                elif row[0] != SCHEMA_VERSION:
                    raise StoreCorruptedError(
                        f"{db.path} has memory schema version {row[0]}; "
                        f"this version of headroom-integrations reads version {SCHEMA_VERSION}"
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptedError(
                f"{db.path} cannot be used as a memory store ({exc}); restore it from a backup "
                "or an export (export_jsonl), or point db_path elsewhere"
            ) from exc

    # -- transactions ------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.transaction()

    def in_transaction(self) -> bool:
        """True when the calling thread is inside ``transaction()``."""
        return self.db.in_transaction()

    # -- rows ----------------------------------------------------------------------------
    @staticmethod
    def _row(record: MemoryRecord) -> tuple[Any, ...]:
        return (
            record.id,
            record.content,
            content_hash(record.content),
            record.category.value,
            record.importance,
            record.user_id,
            record.session_id,
            record.agent_id,
            record.turn_id,
            record.scope_level.value,
            _ts(record.created_at),
            _ts(record.valid_from),
            _ts(record.valid_until),
            1 if record.is_current else 0,
            record.supersedes,
            record.superseded_by,
            record.promoted_from,
            json.dumps(record.entity_refs, ensure_ascii=False),
            json.dumps(record.metadata, ensure_ascii=False, default=str),
            json.dumps([p.model_dump(mode="json") for p in record.provenance]),
            record.access_count,
            _ts(record.last_accessed),
            record.search_text,
        )

    @staticmethod
    def _record(row: Sequence[Any]) -> MemoryRecord:
        return MemoryRecord.model_construct(
            id=row[0],
            content=row[1],
            category=MemoryCategory(row[3]),
            importance=row[4],
            user_id=row[5],
            session_id=row[6],
            agent_id=row[7],
            turn_id=row[8],
            created_at=_dt(row[10]),
            valid_from=_dt(row[11]),
            valid_until=_dt(row[12]),
            is_current=bool(row[13]),
            supersedes=row[14],
            superseded_by=row[15],
            promoted_from=row[16],
            entity_refs=json.loads(row[17]),
            metadata=json.loads(row[18]),
            provenance=[Provenance.model_validate(p) for p in json.loads(row[19])],
            access_count=row[20],
            last_accessed=_dt(row[21]),
            search_text=row[22],
        )

    def insert(self, record: MemoryRecord) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT INTO memories ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", self._row(record)
            )

    def insert_many(self, records: Sequence[MemoryRecord]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                f"INSERT INTO memories ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                [self._row(r) for r in records],
            )

    def update(self, record: MemoryRecord) -> None:
        row = self._row(record)
        sets = ", ".join(f"{c.strip()} = ?" for c in _COLUMNS.split(",")[1:])
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE memories SET {sets} WHERE id = ?", (*row[1:], row[0])
            )

    def get(self, memory_id: str) -> MemoryRecord | None:
        row = self.db.fetchone(f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,))
        return self._record(row) if row else None

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]:
        rows = self.db.fetchall_in(
            f"SELECT {_COLUMNS} FROM memories WHERE id IN ({{marks}})", memory_ids
        )
        return {row[0]: self._record(row) for row in rows}

    def get_briefs(self, memory_ids: Sequence[str]) -> dict[str, MemoryBrief]:
        """The fields a search ranks on (``MemoryBrief``) for each id that exists."""
        rows = self.db.fetchall_in(
            f"SELECT {_BRIEF_COLUMNS} FROM memories WHERE id IN ({{marks}})", memory_ids
        )
        return {
            row[0]: MemoryBrief(
                id=row[0],
                user_id=row[1],
                session_id=row[2],
                agent_id=row[3],
                turn_id=row[4],
                category=MemoryCategory(row[5]),
                importance=row[6],
                created_at=datetime.fromisoformat(row[7]),
                valid_from=datetime.fromisoformat(row[8]),
                is_current=bool(row[9]),
                promoted_from=row[10],
                entity_refs=json.loads(row[11]) if row[11] != "[]" else [],
            )
            for row in rows
        }

    def delete(self, memory_ids: Sequence[str]) -> int:
        deleted = 0
        with self.db.transaction() as conn:
            for memory_id in memory_ids:
                deleted += conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,)).rowcount
        return deleted

    # -- queries -------------------------------------------------------------------------
    def query(self, flt: MemoryFilter) -> list[MemoryRecord]:
        where, params = scope_sql(ScopeQuery.from_filter(flt))
        if flt.categories:
            where += f" AND category IN ({', '.join('?' for _ in flt.categories)})"
            params.extend(c.value for c in flt.categories)
        if flt.min_importance is not None:
            where += " AND importance >= ?"
            params.append(flt.min_importance)
        if flt.valid_at is not None:
            where += " AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?)"
            params.extend([_ts(flt.valid_at), _ts(flt.valid_at)])
        if flt.created_after is not None:
            where += " AND created_at > ?"
            params.append(_ts(flt.created_after))
        if flt.created_before is not None:
            where += " AND created_at < ?"
            params.append(_ts(flt.created_before))
        sql = f"SELECT {_COLUMNS} FROM memories WHERE {where} ORDER BY created_at, id"
        if flt.limit is not None or flt.offset:
            sql += " LIMIT ? OFFSET ?"
            params.extend([flt.limit if flt.limit is not None else -1, flt.offset])
        return [self._record(row) for row in self.db.fetchall(sql, params)]

    def find_same_content(self, record: MemoryRecord) -> MemoryRecord | None:
        row = self.db.fetchone(
            f"SELECT {_COLUMNS} FROM memories INDEXED BY idx_memories_hash "
            "WHERE user_id = ? AND content_hash = ? "
            "AND session_id IS ? AND agent_id IS ? AND turn_id IS ? AND is_current = 1 "
            "ORDER BY created_at LIMIT 1",
            (
                record.user_id,
                content_hash(record.content),
                record.session_id,
                record.agent_id,
                record.turn_id,
            ),
        )
        return self._record(row) if row else None

    def find_promoted_copy(self, source_id: str) -> MemoryRecord | None:
        row = self.db.fetchone(
            f"SELECT {_COLUMNS} FROM memories WHERE promoted_from = ? ORDER BY created_at DESC "
            "LIMIT 1",
            (source_id,),
        )
        return self._record(row) if row else None

    def record_access(self, memory_ids: Sequence[str], when: datetime) -> None:
        if not memory_ids:
            return
        marks = ", ".join("?" for _ in memory_ids)
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE memories SET access_count = access_count + 1, last_accessed = ? "
                f"WHERE id IN ({marks})",
                (_ts(when), *memory_ids),
            )

    def record_accesses(self, owed: Mapping[str, tuple[int, datetime]]) -> None:
        """Add ``count`` to each id's access count and make ``when`` its last access (when
        later than the one stored); ids that no longer exist are passed over."""
        if not owed:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE memories SET access_count = access_count + ?, "
                "last_accessed = max(coalesce(last_accessed, ''), ?) WHERE id = ?",
                [(count, _ts(when), mid) for mid, (count, when) in owed.items()],
            )

    def delete_scope(self, scope: ScopeQuery, exact: bool) -> list[str]:
        """Delete every memory of ``scope``'s user at or under its scope path.

        ``clear(user_id="u", session_id="s")`` removes session ``s``'s memories and those of
        its agents and turns; user-level memories stay. ``exact`` is kept for API symmetry.
        """
        clauses = ["user_id = ?"]
        params: list[Any] = [scope.user_id]
        for column, value in (
            ("session_id", scope.session_id),
            ("agent_id", scope.agent_id),
            ("turn_id", scope.turn_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " AND ".join(clauses)
        with self.db.transaction() as conn:
            ids = [r[0] for r in conn.execute(f"SELECT id FROM memories WHERE {where}", params)]
            conn.execute(f"DELETE FROM memories WHERE {where}", params)
        return ids

    def stats(self, user_id: str | None = None) -> MemoryStats:
        where, params = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        total, current, users = self.db.fetchone(
            f"SELECT count(*), coalesce(sum(is_current), 0), count(DISTINCT user_id) "
            f"FROM memories {where}",
            params,
        ) or (0, 0, 0)
        by_cat = dict(
            self.db.fetchall(
                f"SELECT category, count(*) FROM memories {where} "
                f"{'AND' if where else 'WHERE'} is_current = 1 GROUP BY category",
                params,
            )
        )
        by_level = dict(
            self.db.fetchall(
                f"SELECT scope_level, count(*) FROM memories {where} "
                f"{'AND' if where else 'WHERE'} is_current = 1 GROUP BY scope_level",
                params,
            )
        )
        return MemoryStats(
            total=total,
            current=current,
            superseded=total - current,
            by_category={c.value: by_cat.get(c.value, 0) for c in MemoryCategory},
            by_scope_level={lv.value: by_level.get(lv.value, 0) for lv in ScopeLevel},
            users=users,
        )

    def iter_all(self, user_id: str | None = None, batch: int = 500) -> Iterator[MemoryRecord]:
        """Every memory (of ``user_id``), in the order they were written: a reindex or an
        export/import keeps each conversation's order (``ContextWindow``)."""
        last = 0
        user_sql = " AND user_id = ?" if user_id is not None else ""
        while True:
            rows = self.db.fetchall(
                f"SELECT rowid, {_COLUMNS} FROM memories WHERE rowid > ?{user_sql} "
                "ORDER BY rowid LIMIT ?",
                (last, user_id, batch) if user_id is not None else (last, batch),
            )
            if not rows:
                return
            for row in rows:
                yield self._record(row[1:])
            last = rows[-1][0]

    def users(self) -> list[str]:
        return [r[0] for r in self.db.fetchall("SELECT DISTINCT user_id FROM memories ORDER BY 1")]

    def count(self) -> int:
        row = self.db.fetchone("SELECT count(*) FROM memories")
        return int(row[0]) if row else 0

    def all_ids(self) -> set[str]:
        return {r[0] for r in self.db.fetchall("SELECT id FROM memories")}

    # -- vector bookkeeping ----------------------------------------------------------------
    def unsynced_ids(self) -> list[str]:
        """Memories whose vector-index entry may be missing or stale (crash mid-write)."""
        return [r[0] for r in self.db.fetchall("SELECT id FROM memories WHERE vector_synced = 0")]

    def mark_synced(self, memory_ids: Sequence[str]) -> None:
        if not memory_ids:
            return
        with self.db.transaction() as conn:
            for start in range(0, len(memory_ids), 500):
                chunk = list(memory_ids[start : start + 500])
                marks = ", ".join("?" for _ in chunk)
                conn.execute(f"UPDATE memories SET vector_synced = 1 WHERE id IN ({marks})", chunk)

    def mark_unsynced(self, memory_ids: Sequence[str]) -> None:
        if not memory_ids:
            return
        with self.db.transaction() as conn:
            for memory_id in memory_ids:
                conn.execute("UPDATE memories SET vector_synced = 0 WHERE id = ?", (memory_id,))

    # -- settings --------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.fetchone("SELECT value FROM store_meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO store_meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        self.db.close()
