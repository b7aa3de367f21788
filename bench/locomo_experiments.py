"""Fast offline prototyping of ranking ideas on LoCoMo (categories 1-4).

    python -m bench.locomo_experiments

Mirrors the engine's two sides outside it so many fusions can be scored in seconds:
vector side = exact cosine over the conversation's memory vectors (the engine's Chroma
search over a store of this size returned the same recall, checked: 0.2168 both),
keyword side = an SQLite FTS5 table with the engine's tokenizer and the engine's
``build_match_query`` (bm25 order). Embeddings come from the same cache as bench.locomo.
Ideas that win here are then run end to end through the engine (bench.tuned, bench.locomo).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Sequence

import numpy as np

from headroom_integrations.embedders.fastembed import FastEmbedEmbedder
from headroom_integrations.storage.fts_index import build_match_query

from .common import CACHE_DIR, CachingEmbedder
from .locomo import DATA_DEFAULT, Turn, evidence_ids, load_locomo, plain_content, recall_at

N = 100  # candidates per side, as the engine's pool for top_k=25


def speaker_content(t: Turn, turns: Sequence[Turn]) -> str:
    return f"{t.speaker}: {plain_content(t, turns)}"


def dated_content(t: Turn, turns: Sequence[Turn]) -> str:
    return f"[{t.date}] {t.speaker}: {plain_content(t, turns)}"


def window_content(t: Turn, turns: Sequence[Turn], before: int = 1, after: int = 1) -> str:
    i = t.index
    parts = []
    for j in range(max(0, i - before), min(len(turns), i + after + 1)):
        u = turns[j]
        if u.session != t.session:
            continue
        parts.append(speaker_content(u, turns))
    return "\n".join(parts)


def window_prev(t: Turn, turns: Sequence[Turn]) -> str:
    return window_content(t, turns, 1, 0)


def window2(t: Turn, turns: Sequence[Turn]) -> str:
    return window_content(t, turns, 2, 1)


FORMATS: dict[str, Callable[[Turn, Sequence[Turn]], str]] = {
    "plain": plain_content,
    "speaker": speaker_content,
    "dated": dated_content,
    "win_prev": window_prev,
    "win1": window_content,
    "win2": window2,
}


class Sides:
    """Per question: vector ranking (ids, sims) and keyword ranking (ids, scores) of one format."""

    def __init__(self, convs, embedder, fmt: str, vec: bool = True) -> None:
        self.vec: list[tuple[list[int], np.ndarray]] = []
        self.txt: list[tuple[list[int], np.ndarray]] = []
        fn = FORMATS[fmt]
        for c in convs:
            texts = [fn(t, c.turns) for t in c.turns]
            M = embedder.embed_documents(texts) if vec else None
            db = sqlite3.connect(":memory:")
            db.execute("CREATE VIRTUAL TABLE f USING fts5(content, tokenize='porter unicode61 remove_diacritics 2')")
            db.executemany("INSERT INTO f(rowid, content) VALUES (?, ?)", [(i, x) for i, x in enumerate(texts)])
            for qa in c.qa:
                q = qa["question"]
                if M is not None:
                    sims = M @ embedder.embed_query(q)
                    order = np.argsort(-sims)[:N]
                    self.vec.append((order.tolist(), sims[order]))
                m = build_match_query(q)
                rows = db.execute("SELECT rowid, bm25(f) s FROM f WHERE f MATCH ? ORDER BY s LIMIT ?", (m, N)).fetchall() if m else []
                self.txt.append(([r[0] for r in rows], np.array([-r[1] for r in rows])))
        if hasattr(embedder, "save"):
            embedder.save()


def evaluate(convs, ranked_fn, cats=(1, 2, 3, 4)) -> tuple[float, float, float]:
    out = {5: [], 10: [], 25: []}
    qi = 0
    for c in convs:
        for qa in c.qa:
            idx = qi
            qi += 1
            ev = evidence_ids(qa)
            if not ev or qa["category"] not in cats:
                continue
            ranked = [c.turns[i].dia_id for i in ranked_fn(idx)]
            for k in out:
                out[k].append(recall_at(ranked, ev, k))
    return tuple(round(float(np.mean(v)), 4) for v in out.values())


def rrf(lists: Sequence[tuple[Sequence[int], float]], k: int = 60) -> list[int]:
    score: dict[int, float] = {}
    for ids, w in lists:
        for r, i in enumerate(ids, 1):
            score[i] = score.get(i, 0.0) + w / (k + r)
    return sorted(score, key=lambda i: -score[i])


def minmax(vals: np.ndarray) -> np.ndarray:
    if len(vals) == 0:
        return vals
    lo, hi = float(vals.min()), float(vals.max())
    return (vals - lo) / (hi - lo) if hi > lo else np.ones_like(vals)


def convex(lists: Sequence[tuple[Sequence[int], np.ndarray, float]]) -> list[int]:
    """sum of weight * min-max normalised score; missing side counts 0."""
    score: dict[int, float] = {}
    for ids, vals, w in lists:
        for i, v in zip(ids, minmax(np.asarray(vals, dtype=np.float64))):
            score[i] = score.get(i, 0.0) + w * float(v)
    return sorted(score, key=lambda i: -score[i])


def main() -> None:
    convs = load_locomo(DATA_DEFAULT)
    emb = CachingEmbedder(FastEmbedEmbedder(), CACHE_DIR / "locomo_embeddings.npz")
    fmts = sys.argv[1].split(",") if len(sys.argv) > 1 else list(FORMATS)
    sides = {f: Sides(convs, emb, f) for f in fmts}
    log = []

    def rec(name, fn):
        r = evaluate(convs, fn)
        log.append((name, r))
        print(f"{name:60s} {r[0]:.3f} {r[1]:.3f} {r[2]:.3f}", flush=True)

    for f, s in sides.items():
        rec(f"{f}: text", lambda i, s=s: s.txt[i][0])
        rec(f"{f}: vector", lambda i, s=s: s.vec[i][0])
        rec(f"{f}: rrf k60 1:1", lambda i, s=s: rrf([(s.vec[i][0], 1), (s.txt[i][0], 1)]))
        for wv in (0.3, 0.5, 0.7):
            rec(f"{f}: rrf k60 vec {wv}", lambda i, s=s, wv=wv: rrf([(s.vec[i][0], wv), (s.txt[i][0], 1)]))
        for wv in (0.3, 0.5, 0.7, 1.0):
            rec(f"{f}: convex minmax vec {wv}", lambda i, s=s, wv=wv: convex([(*s.vec[i], wv), (*s.txt[i], 1)]))
    # cross-format combos: keyword on one format, vector on another
    names = list(sides)
    for a in names:
        for b in names:
            if a == b:
                continue
            for wv in (0.5, 1.0):
                rec(f"text {a} + vec {b}: convex vec {wv}",
                    lambda i, a=a, b=b, wv=wv: convex([(*sides[b].vec[i], wv), (*sides[a].txt[i], 1)]))
    print("best:", sorted(log, key=lambda x: -x[1][0])[:8])


if __name__ == "__main__":
    main()
