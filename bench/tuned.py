"""The engine changes recommended by the LoCoMo experiments, prototyped outside the package.

``TunedMemory`` subclasses ``SyncHierarchicalMemory`` with two changes:

1. **Keyword-only context** (write time): a memory may carry ``metadata["search_text"]``;
   the FTS5 index gets that text instead of ``content`` (vectors and the stored content stay
   the memory itself). The LoCoMo ingest puts the turn plus its two previous and next
   turns of the same session there ("Speaker: text" lines) after the session date, so keyword search sees the
   conversational context a single turn lacks ("Yes, every week!").
2. **Score fusion** (query time): instead of RRF, each side's scores over its candidate
   pool are min-max normalised and combined, ``1.0 * bm25_norm + 0.5 * cosine_norm``
   (a memory found by one side only gets 0 from the other). RRF throws away how far
   apart the scores are; with a weaker vector side it pulls the ranking down.

The memory content itself is "Speaker: text" (+ image caption). Nothing reads answers or
evidence. ``mode="text"`` and ``mode="vector"`` are the stock engine code over the same
store (so keyword-only already benefits from change 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.models import SearchResult
from headroom_integrations.core.ports import IndexedDoc, ScopeQuery

from .locomo import Turn, Variant, plain_content

TEXT_WEIGHT = 1.0
VECTOR_WEIGHT = 0.5
WINDOW_BEFORE = 2
WINDOW_AFTER = 1


class TunedMemory(SyncHierarchicalMemory):
    def _insert(self, items: Sequence[tuple[Any, Any]]) -> None:
        if not items:
            return
        records = [r for r, _ in items]
        with self.store.transaction():
            self.store.insert_many(records)
            self.text_index.upsert([_fts_doc(r) for r in records])
        self.vector_index.upsert([IndexedDoc.of(r) for r in records], np.stack([v for _, v in items]))
        self.store.mark_synced([r.id for r in records])

    def search(self, query: str, *, user_id: str, top_k: int = 5, mode: str = "hybrid",
               **kw: Any) -> list[SearchResult]:
        if mode != "hybrid" or kw or not query.strip():
            return super().search(query, user_id=user_id, top_k=top_k, mode=mode, **kw)  # type: ignore[arg-type]
        scope = ScopeQuery(user_id=user_id)
        n = max(top_k * self.config.candidate_multiplier, self.config.min_candidates)
        qvec = self.embed_query(query)
        vec = self.vector_index.query(qvec, n, scope)
        txt = self.text_index.search(query, n, scope)
        score: dict[str, float] = {}
        sims: dict[str, float] = {}
        ranks: dict[str, tuple[int | None, int | None]] = {}
        for weight, hits, side in ((VECTOR_WEIGHT, vec, 0), (TEXT_WEIGHT, txt, 1)):
            if not hits:
                continue
            vals = np.array([s for _, s in hits], dtype=np.float64)
            lo, hi = vals.min(), vals.max()
            norm = (vals - lo) / (hi - lo) if hi > lo else np.ones_like(vals)
            for rank, ((mid, s), v) in enumerate(zip(hits, norm), 1):
                score[mid] = score.get(mid, 0.0) + weight * float(v)
                vr, tr = ranks.get(mid, (None, None))
                ranks[mid] = (rank, tr) if side == 0 else (vr, rank)
                if side == 0:
                    sims[mid] = float(s)
        best = sorted(score, key=lambda m: (-score[m], m))[: top_k * 2]
        records = self.store.get_many(best)
        out = []
        for mid in best:
            rec = records.get(mid)
            if rec is None or not scope.sees(rec):
                continue
            out.append(SearchResult(memory=rec, score=min(1.0, score[mid] / (TEXT_WEIGHT + VECTOR_WEIGHT)),
                                    similarity=sims.get(mid), text_rank=ranks[mid][1],
                                    vector_rank=ranks[mid][0]))
            if len(out) == top_k:
                break
        return out


def _fts_doc(record: Any) -> IndexedDoc:
    doc = IndexedDoc.of(record)
    extra = record.metadata.get("search_text")
    return replace(doc, content=str(extra)) if extra else doc


def speaker_content(t: Turn, turns: Sequence[Turn]) -> str:
    return f"{t.speaker}: {plain_content(t, turns)}"


def window_text(t: Turn, turns: Sequence[Turn]) -> str:
    lines = [
        speaker_content(u, turns)
        for u in turns[max(0, t.index - WINDOW_BEFORE): t.index + WINDOW_AFTER + 1]
        if u.session == t.session
    ]
    return f"[{t.date}] " + "\n".join(lines)


def open_engine(db_path: str, embedder: Any) -> TunedMemory:
    return TunedMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)  # type: ignore[return-value]


def variant() -> Variant:
    return Variant(
        "tuned",
        "content 'Speaker: text'; FTS5 indexes '[session date]' + turn + 2 previous + 1 next "
        "turn of the session; "
        "fusion 1.0*minmax(bm25) + 0.5*minmax(cosine)",
        speaker_content,
        open_engine,
        search_text=window_text,
    )
