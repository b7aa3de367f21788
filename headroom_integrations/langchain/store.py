"""``HeadroomStore``: a LangGraph ``BaseStore`` backed by the hierarchical memory engine.

Namespace mapping (``namespace`` is a tuple of strings)::

    (label,)                                  -> user ``default_user_id``, user scope
    (label, user_id)                          -> user scope of ``user_id``
    (label, user_id, session_id)              -> session scope
    (label, user_id, session_id, agent_id)    -> agent scope
    (label, user_id, session_id, agent_id, *rest) -> turn scope (turn id = "/".join(rest))

``label`` (e.g. ``"memories"``) is free; each item is one memory whose text is
``value["content"]``, else ``value["text"]``, else the JSON of ``value`` (or the fields named
by ``index=[...]``). The exact namespace, key and ``value`` are kept in the memory's
metadata, so values round-trip unchanged; the memory's id is derived from the namespace and
key (:meth:`HeadroomStore.item_id`), so ``get`` / ``put`` / ``delete`` are lookups by id. Because items *are* memories, the chat model
and retriever of this package see them (by user / session scope), and memories written
by the chat model's ``<memory>`` blocks appear here under ``(memory_label, user_id[,
session_id[, agent_id]])`` with the memory id as key and
``{"content", "category", "importance"}`` as value.

``search`` without ``query`` lists items under a namespace prefix (newest update first);
with ``query`` it ranks them with the engine's hybrid search (one search over all the
scopes of each user concerned); items put with
``index=False`` are never ranked, they fill the end of a result list (score ``None``).
Value filters support equality and ``$eq``/``$ne``/``$gt``/``$gte``/``$lt``/``$lte``.
TTL is not supported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path

from ..core.engine import SyncHierarchicalMemory
from ..core.errors import InvalidInputError, MemoryNotFoundError
from ..core.models import MemoryCategory, MemoryFilter, MemoryRecord, Provenance, utcnow
from ._common import resolve_engine

__all__ = ["HeadroomStore"]

_META = "langgraph_store"


class HeadroomStore(BaseStore):
    """LangGraph long-term store over a headroom memory store (see the module doc for the
    namespace -> scope mapping).

    >>> store = HeadroomStore(memory=engine)
    >>> store.put(("memories", "alice"), "lang", {"content": "Alice codes in Go"})
    >>> agent = create_agent(model, tools, store=store)
    """

    supports_ttl: bool = False

    def __init__(
        self,
        *,
        memory: Any = None,
        db_path: str | None = None,
        default_user_id: str = "langgraph",
        memory_label: str = "memories",
    ) -> None:
        self.engine: SyncHierarchicalMemory = resolve_engine(memory, db_path)
        self.default_user_id = default_user_id
        self.memory_label = memory_label

    # ------------------------------------------------------------------ mapping
    def scope_of(self, namespace: tuple[str, ...]) -> dict[str, str | None]:
        """The engine scope (user_id, session_id, agent_id, turn_id) of a namespace."""
        ns = tuple(namespace)
        if not ns or not all(isinstance(p, str) and p for p in ns):
            raise ValueError(f"namespace must be a non-empty tuple of non-empty strings: {ns!r}")
        return {
            "user_id": ns[1] if len(ns) > 1 else self.default_user_id,
            "session_id": ns[2] if len(ns) > 2 else None,
            "agent_id": ns[3] if len(ns) > 3 else None,
            "turn_id": "/".join(ns[4:]) if len(ns) > 4 else None,
        }

    def _view(self, record: MemoryRecord) -> tuple[tuple[str, ...], str, dict[str, Any], bool, datetime] | None:
        """(namespace, key, value, indexed, updated_at) of a memory, or None to hide it."""
        if record.promoted_from is not None:
            return None  # a user-scope copy made by bubbling: the original is the item
        meta = record.metadata.get(_META)
        if isinstance(meta, dict):
            updated = meta.get("updated_at")
            return (
                tuple(meta["namespace"]),
                str(meta["key"]),
                dict(meta["value"]),
                bool(meta.get("indexed", True)),
                datetime.fromisoformat(updated) if updated else record.created_at,
            )
        ns: tuple[str, ...] = (self.memory_label, record.user_id)
        if record.session_id is not None or record.agent_id is not None:
            ns += (record.session_id or "",)
        if record.agent_id is not None:
            ns += (record.agent_id,)
        value = {
            "content": record.content,
            "category": record.category.value,
            "importance": record.importance,
        }
        return ns, record.id, value, True, record.created_at

    def _item(self, record: MemoryRecord, score: float | None = None, search: bool = False) -> Item:
        view = self._view(record)
        assert view is not None
        ns, key, value, _indexed, updated = view
        if search:
            return SearchItem(ns, key, value, record.created_at, updated, score=score)
        return Item(value=value, key=key, namespace=ns, created_at=record.created_at, updated_at=updated)

    @staticmethod
    def item_id(namespace: tuple[str, ...], key: str) -> str:
        """The memory id of the item ``(namespace, key)`` put through this store: a sha256
        (hex) of both, so ``get`` / ``put`` / ``delete`` are lookups by id."""
        raw = json.dumps([list(namespace), key], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def _head(self, memory_id: str) -> MemoryRecord | None:
        """The current version of the memory ``memory_id`` (following supersessions)."""
        record = self.engine.get(memory_id)
        seen: set[str] = set()
        while record is not None and not record.is_current and record.superseded_by:
            if record.id in seen:
                return None
            seen.add(record.id)
            record = self.engine.get(record.superseded_by)
        return record if record is not None and record.is_current else None

    def _find(self, namespace: tuple[str, ...], key: str) -> MemoryRecord | None:
        """The current memory holding the item, by id: the one this store keyed by
        ``item_id``, else (for memories written elsewhere, e.g. by the chat model) the
        memory whose id is ``key``."""
        ns = tuple(namespace)
        self.scope_of(ns)  # validates the namespace
        for memory_id in (self.item_id(ns, key), key):
            record = self._head(memory_id)
            if record is not None:
                view = self._view(record)
                if view is not None and view[0] == ns and view[1] == key:
                    return record
        return None

    def _users(self, prefix: tuple[str, ...]) -> list[str]:
        return [prefix[1]] if len(prefix) >= 2 else self.engine.users()

    def _all_records(self, prefix: tuple[str, ...]) -> Iterable[MemoryRecord]:
        """Every current memory that may be an item under ``prefix`` (one query per user)."""
        for user in self._users(prefix):
            yield from self.engine.query(MemoryFilter(user_id=user, all_scopes=True))

    # ------------------------------------------------------------------ operations
    def _get(self, op: GetOp) -> Item | None:
        record = self._find(op.namespace, op.key)
        return self._item(record) if record is not None else None

    def _put(self, op: PutOp) -> None:
        ns = tuple(op.namespace)
        existing = self._find(ns, op.key)
        if op.value is None:
            if existing is not None:
                self._delete_item(existing)
            return
        value = dict(op.value)
        text = _text_of(value, op.index)
        now = utcnow()
        meta = {
            _META: {
                "namespace": list(ns),
                "key": op.key,
                "value": value,
                "indexed": op.index is not False,
                "updated_at": now.isoformat(),
            }
        }
        category = MemoryCategory.parse(value.get("category"), default=MemoryCategory.FACT) if isinstance(value.get("category"), str) else MemoryCategory.FACT
        importance = value.get("importance")
        if isinstance(importance, bool) or not isinstance(importance, (int, float)) or not 0 <= importance <= 1:
            importance = 0.5
        fields = {"content": text, "category": category, "importance": float(importance), "metadata": meta}
        if existing is not None:
            self.engine.update(existing.id, **fields)  # type: ignore[arg-type]
            return
        memory_id = self.item_id(ns, op.key)
        stale = self.engine.get(memory_id)
        if stale is not None:  # an old version whose current one was deleted: start afresh
            self._delete_item(stale)
        try:
            self.engine.add(
                text,
                **self.scope_of(ns),  # type: ignore[arg-type]
                category=category,
                importance=float(importance),
                metadata=meta,
                provenance=Provenance(source="langgraph_store"),
                dedup=False,
                memory_id=memory_id,
            )
        except InvalidInputError:
            if self.engine.get(memory_id) is None:
                raise
            # another writer put the same item meanwhile: the last put wins
            self.engine.update(memory_id, **fields)  # type: ignore[arg-type]

    def _delete_item(self, record: MemoryRecord) -> None:
        """Delete an item: every version of its memory, so no old value can resurface."""
        try:
            chain = self.engine.get_history(record.id)
        except MemoryNotFoundError:
            return
        for version in reversed(chain):
            self.engine.delete(version.id)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        flt = op.filter or {}
        matching: list[tuple[MemoryRecord, tuple[Any, ...]]] = []
        for record in self._all_records(prefix):
            view = self._view(record)
            if view is None or view[0][: len(prefix)] != prefix:
                continue
            if not all(_matches(view[2].get(k), v) for k, v in flt.items()):
                continue
            matching.append((record, view))
        if not op.query or not op.query.strip():
            matching.sort(key=lambda rv: rv[1][4], reverse=True)
            page = matching[op.offset : op.offset + op.limit]
            return [self._item(r, search=True) for r, _ in page]  # type: ignore[misc]
        ranked = self._rank(op.query, [r for r, v in matching if v[3]])
        scoreless: list[tuple[MemoryRecord, float | None]] = [
            (r, None) for r, v in matching if not v[3]
        ]
        scored = (ranked + scoreless)[op.offset : op.offset + op.limit]
        return [self._item(r, score=s, search=True) for r, s in scored]  # type: ignore[misc]

    def _rank(self, query: str, records: list[MemoryRecord]) -> list[tuple[MemoryRecord, float | None]]:
        """Rank ``records`` for ``query`` with the engine's hybrid search: one ``all_scopes``
        search per user (whatever the sessions / agents / turns the records are in).

        For one user the engine's fused score is used; when the records belong to several
        users the results are merged by cosine similarity (comparable across searches).
        """
        by_user: dict[str, list[MemoryRecord]] = {}
        for r in records:
            by_user.setdefault(r.user_id, []).append(r)
        single = len(by_user) == 1
        out: list[tuple[MemoryRecord, float | None]] = []
        for user, group in by_user.items():
            wanted = {r.id for r in group}
            results = self.engine.search(
                query, user_id=user, all_scopes=True, top_k=min(1000, max(len(group) * 2, 10))
            )
            hits = [res for res in results if res.memory.id in wanted]
            found = {res.memory.id for res in hits}
            for res in hits:
                out.append((res.memory, res.score if single else (res.similarity or 0.0)))
            out.extend((r, 0.0) for r in group if r.id not in found)
        out.sort(key=lambda rs: -(rs[1] or 0.0))
        return out

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        seen: set[tuple[str, ...]] = set()
        for record in (
            r for user in self.engine.users() for r in self.engine.iter_memories(user) if r.is_current
        ):
            view = self._view(record)
            if view is None:
                continue
            ns = view[0]
            if op.match_conditions and not all(_ns_matches(c, ns) for c in op.match_conditions):
                continue
            if op.max_depth is not None:
                ns = ns[: op.max_depth]
            seen.add(ns)
        return sorted(seen)[op.offset : op.offset + op.limit]

    # ------------------------------------------------------------------ BaseStore
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run get / put / search / list-namespaces operations in order."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ValueError(f"unknown store operation: {op!r}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` on the store's worker threads (the event loop is never blocked)."""
        return await self.engine.aio.run_sync(self.batch, list(ops))


def _text_of(value: Mapping[str, Any], index: Any) -> str:
    if isinstance(index, list) and index:
        parts: list[str] = []
        for path in index:
            for piece in get_text_at_path(value, path):
                if piece:
                    parts.append(str(piece))
        if parts:
            return "\n".join(parts)
    for field in ("content", "text"):
        text = value.get(field)
        if isinstance(text, str) and text.strip():
            return text
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping) and expected and all(str(k).startswith("$") for k in expected):
        ops = {
            "$eq": lambda a, b: a == b,
            "$ne": lambda a, b: a != b,
            "$gt": lambda a, b: a is not None and a > b,
            "$gte": lambda a, b: a is not None and a >= b,
            "$lt": lambda a, b: a is not None and a < b,
            "$lte": lambda a, b: a is not None and a <= b,
        }
        try:
            return all(ops[k](actual, v) for k, v in expected.items())
        except (KeyError, TypeError):
            return False
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return all(_matches(actual.get(k), v) for k, v in expected.items())
    return bool(actual == expected)


def _ns_matches(cond: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = tuple(cond.path)
    if len(path) > len(ns):
        return False
    part = ns[: len(path)] if cond.match_type == "prefix" else ns[len(ns) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part))
