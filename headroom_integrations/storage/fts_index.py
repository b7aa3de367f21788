"""``FTS5TextIndex``: BM25 keyword search in an SQLite FTS5 table, scope-filtered.

User text is never pasted into ``MATCH``: it is cut into word tokens, each quoted, joined
with ``OR`` (see ``build_match_query``), so quotes, ``AND``/``NEAR``, ``*``, ``-``, ``:``,
emoji and the empty string are all valid queries.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..core.ports import IndexedDoc, ScopeQuery
from .sqlite_db import SQLiteDatabase

_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 48
_POOL_FACTOR = 4
"""A keyword search scores the best ``_POOL_FACTOR * k`` rows first (see ``search``)."""
_TERM_TTL_S = 60.0
"""How long a word's "held by more than ``max_term_docs`` rows" answer is reused."""
_TEXT_COLUMNS = "{content context}"
"""FTS5 column filter for a memory's words: its content or its context, never the owner."""
_COLUMNS = ("content", "context", "owner")
"""The indexed columns a table from this version has (an older table lacks some)."""

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves s t d ll m re ve""".split()
)


def query_terms(text: str) -> list[str]:
    """The searchable words of ``text``: lowercased word tokens, stop words dropped
    (unless nothing else is left), duplicates removed, at most 48."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    kept = [t for t in tokens if t not in STOPWORDS] or tokens
    return list(dict.fromkeys(kept))[:_MAX_TERMS]


def _or(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def build_match_query(text: str) -> str | None:
    """An FTS5 ``MATCH`` expression for any user string, or None when it has no words."""
    terms = query_terms(text)
    return _or(terms) if terms else None


def owner_token(user_id: str) -> str:
    """The token that marks a user's rows in the index (a hash: any user id is safe)."""
    return "u" + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class FTS5TextIndex:
    """Keyword index in the store's SQLite file; implements the ``TextIndex`` port.

    A memory's content and its context (``search_text``) sit in two columns; BM25 weighs
    the content 1.0 and the context ``context_weight``, so a memory that says a word itself
    outranks one that only has it in the turns around it.
    """

    def __init__(
        self,
        db: SQLiteDatabase,
        table: str = "memories_fts",
        *,
        max_term_docs: int = 3000,
        context_weight: float = 0.5,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise ValueError(f"invalid FTS table name {table!r}")
        if not math.isfinite(context_weight) or context_weight < 0:
            raise ValueError(f"context_weight must be a finite number >= 0, not {context_weight}")
        self.db = db
        self.max_term_docs = max_term_docs
        self.context_weight = float(context_weight)
        self._user_sizes: dict[str, tuple[int, float]] = {}
        self._too_common: dict[str, tuple[bool, float]] = {}
        self._counts_lock = threading.Lock()
        self.table = table
        self.map_table = f"{table}_ids"
        with db.transaction() as conn:
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if columns and not columns.issuperset(_COLUMNS):
                # an index from before the owner or the context column: drop it; the store's
                # open check sees the keyword count differ from SQLite and rebuilds it
                conn.execute(f"DROP TABLE {table}")
                conn.execute(f"DROP TABLE IF EXISTS {self.map_table}")
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
                "content, context, owner, user_id UNINDEXED, session_id UNINDEXED, "
                "agent_id UNINDEXED, turn_id UNINDEXED, category UNINDEXED, is_current UNINDEXED, "
                "tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.map_table} "
                "(fts_rowid INTEGER PRIMARY KEY, memory_id TEXT UNIQUE NOT NULL)"
            )

    def _rowid(self, conn: Any, memory_id: str, create: bool) -> int | None:
        row = conn.execute(
            f"SELECT fts_rowid FROM {self.map_table} WHERE memory_id = ?", (memory_id,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        return int(
            conn.execute(
                f"INSERT INTO {self.map_table}(memory_id) VALUES (?)", (memory_id,)
            ).lastrowid
        )

    def upsert(self, docs: Sequence[IndexedDoc]) -> None:
        with self.db.transaction() as conn:
            for doc in docs:
                rowid = self._rowid(conn, doc.id, create=True)
                conn.execute(f"DELETE FROM {self.table} WHERE rowid = ?", (rowid,))
                conn.execute(
                    f"INSERT INTO {self.table}(rowid, content, context, owner, user_id, "
                    "session_id, agent_id, turn_id, category, is_current) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rowid,
                        doc.content,
                        doc.context,
                        owner_token(doc.user_id),
                        doc.user_id,
                        doc.session_id or "",
                        doc.agent_id or "",
                        doc.turn_id or "",
                        doc.category,
                        1 if doc.is_current else 0,
                    ),
                )

    def set_current(self, memory_ids: Sequence[str], is_current: bool) -> None:
        with self.db.transaction() as conn:
            for memory_id in memory_ids:
                rowid = self._rowid(conn, memory_id, create=False)
                if rowid is not None:
                    conn.execute(
                        f"UPDATE {self.table} SET is_current = ? WHERE rowid = ?",
                        (1 if is_current else 0, rowid),
                    )

    def delete(self, memory_ids: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            for memory_id in memory_ids:
                rowid = self._rowid(conn, memory_id, create=False)
                if rowid is not None:
                    conn.execute(f"DELETE FROM {self.table} WHERE rowid = ?", (rowid,))
                    conn.execute(f"DELETE FROM {self.map_table} WHERE fts_rowid = ?", (rowid,))

    def search(
        self, query: str, k: int, scope: ScopeQuery, categories: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        terms = self._discriminating(query_terms(query))
        if not terms or k <= 0:
            return []
        # Only this user's rows are matched (their owner token), so nothing is scored for
        # other users; a term matches in the content or the context, and bm25 weighs the
        # content 1.0, the context ``context_weight`` and the owner column not at all.
        match = f'owner:"{owner_token(scope.user_id)}" AND ({_or(terms)})'
        visible, visible_params = self._visibility(scope, categories)
        t, ids = self.table, self.map_table
        # Scoring is the cheap part; reading each matched row's scope columns is not (about
        # 40% of the query for a word held by thousands of the user's rows). So the best
        # ``pool`` rows by score are found first and only their scope is read; the whole
        # filtered query runs only when too few of them are visible from ``scope``.
        pool = _POOL_FACTOR * k
        rows = self.db.fetchall(
            f"SELECT m.memory_id, s.score, ({visible}) FROM (SELECT rowid AS rid, "
            f"bm25({t}, 1.0, ?, 0.0) AS score FROM {t} WHERE {t} MATCH ? "
            f"ORDER BY score LIMIT ?) AS s JOIN {t} AS f ON f.rowid = s.rid "
            f"LEFT JOIN {ids} AS m ON m.fts_rowid = s.rid ORDER BY s.score",
            [*visible_params, self.context_weight, match, pool],
        )
        # bm25() is lower-is-better and negative; report relevance as a positive number.
        hits = [(r[0], -float(r[1])) for r in rows if r[2] and r[0] is not None]
        if len(hits) >= k or len(rows) < pool:
            return hits[:k]
        rows = self.db.fetchall(
            f"SELECT m.memory_id, bm25({t}, 1.0, ?, 0.0) AS score FROM {t} AS f "
            f"JOIN {ids} AS m ON m.fts_rowid = f.rowid "
            f"WHERE {t} MATCH ? AND {visible} ORDER BY score LIMIT ?",
            [self.context_weight, match, *visible_params, k],
        )
        return [(r[0], -float(r[1])) for r in rows]

    @staticmethod
    def _visibility(
        scope: ScopeQuery, categories: Sequence[str] | None
    ) -> tuple[str, list[Any]]:
        """An SQL condition on the index row ``f`` (and its parameters): the row belongs to
        ``scope``'s user, is visible from its session / agent / turn, is current unless
        superseded ones are asked for, and is in ``categories`` when given."""
        clauses = ["f.user_id = ?"]
        params: list[Any] = [scope.user_id]
        if not scope.include_superseded:
            clauses.append("f.is_current = 1")
        if not scope.all_scopes:
            for column, value in (
                ("session_id", scope.session_id),
                ("agent_id", scope.agent_id),
                ("turn_id", scope.turn_id),
            ):
                if value is None:
                    clauses.append(f"f.{column} = ''")
                else:
                    clauses.append(f"f.{column} IN ('', ?)")
                    params.append(value)
        if categories:
            clauses.append(f"f.category IN ({', '.join('?' for _ in categories)})")
            params.extend(categories)
        return " AND ".join(clauses), params

    def _discriminating(self, terms: list[str]) -> list[str]:
        """``terms`` without those in more than ``max_term_docs`` memories (of any user):
        scoring a term costs about a microsecond per memory holding it, and so common a term
        says little (its BM25 weight is small). Only large stores are checked; each check
        stops counting at the limit, and its answer is kept for ``_TERM_TTL_S`` seconds (a
        word's count moves slowly; counting five words took up to ~5 ms at 100k rows)."""
        if not terms or self.max_term_docs <= 0:
            return terms
        row = self.db.fetchone(f"SELECT max(fts_rowid) FROM {self.map_table}")
        if not row or not row[0] or int(row[0]) <= self.max_term_docs:
            return terms
        now = time.monotonic()
        kept = []
        for term in terms:
            with self._counts_lock:
                hit = self._too_common.get(term)
            if hit is not None and now - hit[1] < _TERM_TTL_S:
                common = hit[0]
            else:
                got = self.db.fetchone(
                    f"SELECT count(*) FROM (SELECT rowid FROM {self.table} WHERE "
                    f"{self.table} MATCH ? LIMIT ?)",
                    (f"{_TEXT_COLUMNS}: {_or([term])}", self.max_term_docs + 1),
                )
                common = got is None or int(got[0]) > self.max_term_docs
                with self._counts_lock:
                    if len(self._too_common) > 50_000:
                        self._too_common.clear()
                    self._too_common[term] = (common, now)
            if not common:
                kept.append(term)
        return kept

    def common_terms(
        self,
        query: str,
        user_id: str,
        *,
        ratio: float,
        min_docs: int = 20,
        max_docs: int = 5000,
    ) -> set[str]:
        """The words of ``query`` found in more than ``ratio`` of ``user_id``'s memories.

        Such a word cannot tell this user's memories apart (a speaker's name on every turn of
        a transcript, "user" in "User likes ..."), yet it still steers a search: BM25 weighs
        it by its rarity across all users, and in the query embedding it pulls towards
        memories that mention it most. Checked only for users holding ``min_docs`` to
        ``max_docs`` memories (current or not); a user's size is cached for 30 seconds.
        """
        terms = query_terms(query)
        if not terms or ratio >= 1.0:
            return set()
        size = self._user_size(user_id, max_docs)
        if size < min_docs or size > max_docs:
            return set()
        owner = owner_token(user_id)
        limit = int(ratio * size)
        common = set()
        for term in terms:
            got = self.db.fetchone(
                f"SELECT count(*) FROM (SELECT rowid FROM {self.table} WHERE {self.table} "
                "MATCH ? LIMIT ?)",
                (f'owner:"{owner}" AND {_TEXT_COLUMNS}: {_or([term])}', limit + 1),
            )
            if got is not None and int(got[0]) > limit:
                common.add(term)
        return common

    def _user_size(self, user_id: str, cap: int) -> int:
        """How many rows ``user_id`` has in the index (counted up to ``cap + 1``)."""
        now = time.monotonic()
        with self._counts_lock:
            hit = self._user_sizes.get(user_id)
        if hit is not None and now - hit[1] < 30.0:
            return hit[0]
        got = self.db.fetchone(
            f"SELECT count(*) FROM (SELECT rowid FROM {self.table} WHERE {self.table} "
            "MATCH ? LIMIT ?)",
            (f'owner:"{owner_token(user_id)}"', cap + 1),
        )
        size = int(got[0]) if got else 0
        with self._counts_lock:
            if len(self._user_sizes) > 10_000:
                self._user_sizes.clear()
            self._user_sizes[user_id] = (size, now)
        return size

    def count(self) -> int:
        row = self.db.fetchone(f"SELECT count(*) FROM {self.map_table}")
        return int(row[0]) if row else 0

    def all_ids(self) -> set[str]:
        return {r[0] for r in self.db.fetchall(f"SELECT memory_id FROM {self.map_table}")}

    def reset(self) -> None:
        with self.db.transaction() as conn:
            conn.execute(f"DELETE FROM {self.table}")
            conn.execute(f"DELETE FROM {self.map_table}")
        with self._counts_lock:
            self._user_sizes.clear()
            self._too_common.clear()
