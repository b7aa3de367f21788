"""Ranking ideas on LoCoMo, tried offline against a replica of the engine's hybrid search.

    python -m bench.locomo_lab                 # sessions 2-3 experiments, ~2 min on 2 cores (cached embeddings)
    python -m bench.locomo_lab --only rocchio,diversity,adaptive,vecwindow,vecheldout   # session 4, ~14 min
    python -m bench.locomo_lab --only fusion,window

Why a replica: trying a ranking idea through the engine means a new store per idea. Here the
keyword side comes from SQLite FTS5 exactly as the engine queries it (same tokenizer, owner
token, turn and context in two columns weighted 1.0 / 0.5 in ``bm25()``; one table for the
10 users) and the vector side is the exact cosine over the same MiniLM vectors, fused with
the engine's own ``ranking.relevance`` and boosted by the engine's own entity and date code.
The ``replica`` rows replay the session-4 engine (vector weight 0.5, entity weight 0.2, no
context window) and equalled its numbers. The session-5 engine (context window 2 before /
1 after, vector weight 0.8, entity weight 0.25) is the ``vecwindow`` row "p2n1 meancos,
vector weight 0.8, entity_weight 0.25": 0.713 / 0.804 / 0.868 here against 0.713 / 0.803 /
0.868 from the engine in bench/results/locomo.md.

Every setting is chosen on this data set (the ``heldout`` rows pick on one half and look at
the other); nothing reads answers or evidence except the scoring. Writes bench/results/locomo_lab.json; the write-up is in
locomo_experiments.md (by hand).
"""

from __future__ import annotations

import argparse
import collections
import math
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .common import CACHE_DIR, RESULTS_DIR, CachingEmbedder, machine_info, write_json
from .locomo import DATA_DEFAULT, KS, Conversation, Turn, evidence_ids, load_locomo, recall_at
from .tuned import speaker_content

Ranked = list[str]
POOL = 100  # the engine's candidate pool per side for a top-25 search


def _window(t: Turn, turns: Sequence[Turn], before: int, after: int, *, self_too: bool,
            date: bool) -> str:
    lines = [
        speaker_content(u, turns)
        for u in turns[max(0, t.index - before): t.index + after + 1]
        if u.session == t.session and (self_too or u.index != t.index)
    ]
    return "\n".join(([f"[{t.date}]"] if date else []) + lines)


class Lab:
    """The 10 conversations, their FTS5 tables and vectors, and the scoring."""

    def __init__(self, convs: Sequence[Conversation], emb: Any) -> None:
        from headroom_integrations.storage.fts_index import query_terms

        self.convs = list(convs)
        """The conversations scored (a subset for the held-out rows)."""
        self.all = list(convs)
        """The conversations indexed: one shared table, as in the engine's store."""
        self.emb = emb
        self.query_terms = query_terms
        self.ids = {c.sample_id: [t.dia_id for t in c.turns] for c in self.convs}
        self.pos = {c.sample_id: {t.dia_id: t for t in c.turns} for c in self.convs}
        self._dbs: dict[tuple[Any, ...], tuple[sqlite3.Connection, dict[int, str]]] = {}
        self._docs: dict[str, dict[str, np.ndarray]] = {}
        self.rows: list[dict[str, Any]] = []
        self._norms: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

    # -- keyword side ------------------------------------------------------------------
    def fts(self, before: int = 2, after: int = 1, columns: bool = False) -> tuple[sqlite3.Connection, dict[int, str]]:
        """One FTS5 table holding every conversation: ``content`` = "Speaker: text" +
        ``search_text`` (one column, as the engine indexes it) or, with ``columns``, the
        turn and its context in two columns."""
        key = (before, after, columns)
        if key in self._dbs:
            return self._dbs[key]
        db = sqlite3.connect(":memory:")
        cols = "content, ctx, owner" if columns else "content, owner"
        db.execute(f"CREATE VIRTUAL TABLE f USING fts5({cols}, "
                   "tokenize = 'porter unicode61 remove_diacritics 2')")
        rowids: dict[int, str] = {}
        for c in self.all:
            for t in c.turns:
                ctx = _window(t, c.turns, before, after, self_too=False, date=True)
                own = speaker_content(t, c.turns)
                vals = (own, ctx, c.sample_id) if columns else (f"{own}\n{ctx}", c.sample_id)
                cur = db.execute(f"INSERT INTO f({cols}) VALUES ({', '.join('?' * len(vals))})", vals)
                rowids[int(cur.lastrowid or 0)] = t.dia_id
        self._dbs[key] = (db, rowids)
        return db, rowids

    def text_hits(self, c: Conversation, query: str, *, before: int = 2, after: int = 1,
                  weights: tuple[float, float] | None = (1.0, 0.5),
                  n: int = POOL) -> list[tuple[str, float]]:
        """BM25 hits; ``weights`` = (content, context) columns as the engine has them
        (``search_text_weight`` 0.5), or None for the one column of the engine before."""
        terms = self.query_terms(query)
        if not terms:
            return []
        db, rowids = self.fts(before, after, columns=weights is not None)
        bm = f"bm25(f, {weights[0]}, {weights[1]}, 0.0)" if weights else "bm25(f, 1.0, 0.0)"
        match = f'owner:"{c.sample_id}" AND (' + " OR ".join(f'"{t}"' for t in terms) + ")"
        rows = db.execute(f"SELECT rowid, {bm} AS s FROM f WHERE f MATCH ? ORDER BY s LIMIT ?",
                          (match, n)).fetchall()
        return [(rowids[r], -float(s)) for r, s in rows]

    def common_terms(self, c: Conversation, query: str, ratio: float) -> set[str]:
        """The engine's ``common_terms`` (one-column table, owner token), per conversation."""
        db, _ = self.fts()
        out = set()
        for term in self.query_terms(query):
            n = db.execute("SELECT count(*) FROM f WHERE f MATCH ?",
                           (f'owner:"{c.sample_id}" AND content:"{term}"',)).fetchone()[0]
            if n > int(ratio * len(c.turns)):
                out.add(term)
        return out

    # -- vector side -------------------------------------------------------------------
    def docs(self, name: str, fn: Callable[[Turn, Sequence[Turn]], str]) -> dict[str, np.ndarray]:
        if name not in self._docs:
            self._docs[name] = {
                c.sample_id: np.asarray(self.emb.embed_documents([fn(t, c.turns) for t in c.turns]))
                for c in self.all
            }
        return self._docs[name]

    def cosines(self, c: Conversation, query: str, doc_sets: Sequence[str] = ("speaker",),
                combine: str = "mean") -> dict[str, float]:
        q = np.asarray(self.emb.embed_query(query))
        sims = [self._docs[name][c.sample_id] @ q for name in doc_sets]
        s = sims[0] if len(sims) == 1 else (np.max(sims, 0) if combine == "max" else np.mean(sims, 0))
        return dict(zip(self.ids[c.sample_id], s.tolist()))

    def window_cosines(self, c: Conversation, vec: dict[str, float], before: int, after: int,
                       mode: str = "meancos") -> dict[str, float]:
        """Query-time window of vectors, no new embedding: (own cosine + window score) / 2,
        where the window is the memory and its same-session neighbours ``before`` back and
        ``after`` on, and its score is the mean of their cosines (``meancos``) or their sum
        over the norm of their summed vectors (``norm``, the cosine with the window's mean
        vector). Needs every cosine of the user, which the brute-force index computes anyway."""
        turns = c.turns
        s = np.array([vec[t.dia_id] for t in turns])
        ses = np.array([t.session for t in turns])
        n = len(s)
        tot, cnt = s.copy(), np.ones(n)
        for d in [*range(-before, 0), *range(1, after + 1)]:
            j = np.arange(n) + d
            ok = (j >= 0) & (j < n)
            ok[ok] &= ses[j[ok]] == ses[ok]
            tot[ok] += s[j[ok]]
            cnt[ok] += 1
        if mode == "norm":
            key = ("norm", before, after)
            norms = self._norms.setdefault(key, {})
            if c.sample_id not in norms:
                D = self._docs["speaker"][c.sample_id]
                summed = D.copy()
                for d in [*range(-before, 0), *range(1, after + 1)]:
                    j = np.arange(n) + d
                    ok = (j >= 0) & (j < n)
                    ok[ok] &= ses[j[ok]] == ses[ok]
                    summed[ok] += D[j[ok]]
                norms[c.sample_id] = np.linalg.norm(summed, axis=1)
            win = tot / norms[c.sample_id]
        else:
            win = tot / cnt
        return dict(zip(self.ids[c.sample_id], ((s + win) / 2).tolist()))

    # -- scoring -----------------------------------------------------------------------
    def evaluate(self, experiment: str, setting: str, rank: Callable[[Conversation, dict[str, Any]], Ranked]) -> dict[str, Any]:
        per: dict[str, list[float]] = collections.defaultdict(list)
        for c in self.convs:
            for qa in c.qa:
                ev = evidence_ids(qa)
                if not ev:
                    continue
                ranked = rank(c, qa)
                cat = int(qa["category"])
                for k in KS:
                    per[f"cat{cat}@{k}"].append(recall_at(ranked, ev, k))
                    if cat != 5:
                        per[f"1-4@{k}"].append(recall_at(ranked, ev, k))
        row = {"experiment": experiment, "setting": setting,
               "cat1-4": [round(float(np.mean(per[f"1-4@{k}"])), 4) for k in KS],
               "cat5": [round(float(np.mean(per[f"cat5@{k}"])), 4) for k in KS],
               "per_category_r@5": {f"cat{g}": round(float(np.mean(per[f"cat{g}@5"])), 4)
                                    for g in (1, 2, 3, 4)}}
        self.rows.append(row)
        a, b, pc = row["cat1-4"], row["cat5"], row["per_category_r@5"]
        print(f"{experiment:9s} {setting:58s} {a[0]:.3f} {a[1]:.3f} {a[2]:.3f} | cat5 {b[0]:.3f} "
              f"| {' '.join(f'{v:.3f}' for v in pc.values())}", flush=True)
        return row


def fuse(vec: dict[str, float], text: list[tuple[str, float]], *, wv: float = 0.5,
         norm: str = "minmax") -> list[tuple[str, float]]:
    """The engine's fusion (``norm="minmax"``) over top-``POOL`` pools, or a variant."""
    from headroom_integrations.core.ranking import Candidate, FusionWeights, relevance

    top = sorted(vec.items(), key=lambda x: -x[1])[:POOL]
    text = text[:POOL]
    if norm == "minmax":
        cands: dict[str, Candidate] = {}
        for r, (d, s) in enumerate(top, 1):
            cands[d] = Candidate(d, vector_rank=r, similarity=s)
        for r, (d, s) in enumerate(text, 1):
            cand = cands.setdefault(d, Candidate(d))
            cand.text_rank, cand.text_score = r, s
        fused = relevance(cands.values(), FusionWeights(vector=wv))
        return sorted(fused.items(), key=lambda x: (-x[1], -(cands[x[0]].similarity or 0.0), x[0]))
    def scaled(pairs: list[tuple[str, float]]) -> dict[str, float]:
        if not pairs:
            return {}
        v = np.array([s for _, s in pairs])
        if norm == "max":
            return {d: s / v.max() for d, s in pairs}
        z = (v - v.mean()) / (v.std() + 1e-9)  # "z": z-scores shifted to start at 0
        return {d: float(x - z.min()) for (d, _), x in zip(pairs, z)}
    t, vv = scaled(text), scaled(top)
    out = {d: t.get(d, 0.0) + wv * vv.get(d, 0.0) for d in set(t) | set(vv)}
    return sorted(out.items(), key=lambda x: -x[1])


def boosted(lab: Lab, c: Conversation, question: str, fused: list[tuple[str, float]], *,
            entity: float = 0.2, date: float = 0.5) -> list[tuple[str, float]]:
    """The engine's entity and date boosts (``entity_weight``, ``date_weight``) with its own
    code: + ``entity`` when the question names the turn's speaker (its ``entity_refs``),
    + ``date`` when the turn's session date (its ``valid_from``) is in the period the
    question names, give or take 7 days."""
    from headroom_integrations.core.entities import QueryNames
    from headroom_integrations.core.query_dates import query_period

    if not entity and not date:
        return fused
    names = QueryNames(question)
    period = query_period(question, datetime.now(timezone.utc)) if date else None
    turns = lab.pos[c.sample_id]
    out = []
    for d, score in fused:
        t = turns[d]
        if entity and names.names(t.speaker):
            score += entity
        if period is not None and t.when is not None and period.holds(t.when):
            score += date
        out.append((d, score))
    return sorted(out, key=lambda x: -x[1])


def ids(pairs: list[tuple[str, float]]) -> Ranked:
    return [d for d, _ in pairs]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only",
                    default="replica,boosts,common,heldout,fusion,window,columns,context,neighbours,prf")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "locomo_lab.json")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    from headroom_integrations.core.query_words import strip_words
    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    t0 = time.perf_counter()
    convs = load_locomo(DATA_DEFAULT)
    emb = CachingEmbedder(FastEmbedEmbedder(), CACHE_DIR / "locomo_embeddings.npz")
    lab = Lab(convs, emb)
    lab.docs("speaker", speaker_content)
    queries: dict[tuple[str, str], str] = {}

    def q(c: Conversation, qa: dict[str, Any], ratio: float = 0.7) -> str:
        key = (c.sample_id, qa["question"] + f"|{ratio}")
        if key not in queries:
            text = qa["question"]
            queries[key] = strip_words(text, lab.common_terms(c, text, ratio)) if ratio < 1 else text
        return queries[key]

    def hybrid(c: Conversation, qa: dict[str, Any], **kw: Any) -> Ranked:
        """The engine's search: ``sides`` "both" (hybrid), "text" or "vector"; keyword
        arguments vary one setting from the engine default."""
        query = q(c, qa, kw.pop("ratio", 0.7))
        docs = kw.pop("docs", ("speaker",))
        combine = kw.pop("combine", "mean")
        sides = kw.pop("sides", "both")
        vwin = kw.pop("vwin", None)  # (before, after, mode): query-time window of vectors
        boosts = {k: kw.pop(k) for k in ("entity", "date") if k in kw}
        text_kw = {k: kw.pop(k) for k in ("before", "after", "weights") if k in kw}
        vec = lab.cosines(c, query, docs, combine) if sides != "text" else {}
        if vwin and vec:
            vec = lab.window_cosines(c, vec, *vwin)
        text = lab.text_hits(c, query, **text_kw) if sides != "vector" else []
        return ids(boosted(lab, c, qa["question"], fuse(vec, text, **kw), **boosts))

    if "replica" in only:
        for sides, label in (("text", "keyword only"), ("vector", "vector only")):
            lab.evaluate("replica", f"engine defaults, {label}",
                         lambda c, qa, s=sides: hybrid(c, qa, sides=s))
            lab.evaluate("replica", f"engine defaults, {label}, no entity/date boost (-plain)",
                         lambda c, qa, s=sides: hybrid(c, qa, sides=s, entity=0.0, date=0.0))
        lab.evaluate("replica", "engine defaults, hybrid", hybrid)
        lab.evaluate("replica", "engine defaults, hybrid, no entity/date boost (-plain)",
                     lambda c, qa: hybrid(c, qa, entity=0.0, date=0.0))
    if "boosts" in only:
        for ew in (0.0, 0.1, 0.15, 0.3, 0.4, 0.5):
            lab.evaluate("boosts", f"entity_weight {ew}", lambda c, qa, w=ew: hybrid(c, qa, entity=w))
        for dw in (0.0, 0.3, 1.0):
            lab.evaluate("boosts", f"date_weight {dw}", lambda c, qa, w=dw: hybrid(c, qa, date=w))
        lab.evaluate("boosts", "entity 0 + date 0 + one FTS5 column (the engine before this session)",
                     lambda c, qa: hybrid(c, qa, entity=0.0, date=0.0, weights=None))
    if "common" in only:
        for ratio in (1.0, 0.5, 0.3):
            lab.evaluate("common", f"common_term_ratio {ratio}, hybrid",
                         lambda c, qa, r=ratio: hybrid(c, qa, ratio=r))
    if "heldout" in only:
        # are the weights a property of the data or of these questions? pick them on one
        # half of the conversations, look at the other half
        full = lab.convs
        for half, part in (("conversations 1-5", full[:5]), ("conversations 6-10", full[5:])):
            lab.convs = list(part)
            lab.evaluate("heldout", f"{half}: keyword only, no boosts (-plain)",
                         lambda c, qa: hybrid(c, qa, sides="text", entity=0.0, date=0.0))
            for ratio in (1.0, 0.7):
                lab.evaluate("heldout", f"{half}: common_term_ratio {ratio}, no boosts",
                             lambda c, qa, r=ratio: hybrid(c, qa, ratio=r, entity=0.0, date=0.0))
            for ew in (0.1, 0.15, 0.2, 0.3):
                for dw in (0.3, 0.5):
                    lab.evaluate("heldout", f"{half}: entity_weight {ew}, date_weight {dw}",
                                 lambda c, qa, e=ew, d=dw: hybrid(c, qa, entity=e, date=d))
        lab.convs = full
    if "fusion" in only:
        for norm in ("minmax", "max", "z"):
            for wv in (0.3, 0.5, 0.7, 1.0):
                lab.evaluate("fusion", f"{norm} normalisation, vector weight {wv}",
                             lambda c, qa, n=norm, w=wv: hybrid(c, qa, norm=n, wv=w))
    if "window" in only:
        for b, a in ((1, 1), (3, 2)):
            lab.evaluate("window", f"search_text = date + {b} previous + {a} next turns",
                         lambda c, qa, b=b, a=a: hybrid(c, qa, before=b, after=a))
    if "columns" in only:
        lab.evaluate("columns", "turn and context in one FTS5 column (the engine before)",
                     lambda c, qa: hybrid(c, qa, weights=None))
        for w in (1.0, 0.7, 0.3):
            lab.evaluate("columns", f"turn and context in two FTS5 columns, context weight {w}",
                         lambda c, qa, w=w: hybrid(c, qa, weights=(1.0, w)))
    if "context" in only:
        lab.docs("p1n1", lambda t, ts: _window(t, ts, 1, 1, self_too=True, date=False))
        lab.docs("p2n1", lambda t, ts: _window(t, ts, 2, 1, self_too=True, date=False))
        lab.docs("date", lambda t, ts: f"[{t.date}] " + speaker_content(t, ts))
        emb.save()
        for extra in ("p1n1", "p2n1", "date"):
            for combine in ("max", "mean"):
                lab.evaluate("context", f"second vector per turn ({extra}), {combine}, vector only",
                             lambda c, qa, e=extra, m=combine: ids(sorted(
                                 lab.cosines(c, q(c, qa), ("speaker", e), m).items(), key=lambda x: -x[1])))
                lab.evaluate("context", f"second vector per turn ({extra}), {combine}, hybrid",
                             lambda c, qa, e=extra, m=combine: hybrid(c, qa, docs=("speaker", e), combine=m))
    if "neighbours" in only:
        def smoothed(c: Conversation, qa: dict[str, Any], lam: float, span: int) -> Ranked:
            fused = dict(fuse(lab.cosines(c, q(c, qa)), lab.text_hits(c, q(c, qa))))
            turns = lab.pos[c.sample_id]
            by_index = {t.index: t for t in turns.values()}
            keys = set(fused)
            for d in list(fused):
                t = turns[d]
                keys |= {by_index[j].dia_id for j in range(t.index - span, t.index + span + 1)
                         if j in by_index and by_index[j].session == t.session}
            out = {}
            for d in keys:
                t = turns[d]
                near = [fused.get(by_index[j].dia_id, 0.0) for j in range(t.index - span, t.index + span + 1)
                        if j != t.index and j in by_index and by_index[j].session == t.session]
                out[d] = fused.get(d, 0.0) + lam * (max(near) if near else 0.0)
            return ids(boosted(lab, c, qa["question"], sorted(out.items(), key=lambda x: -x[1])))
        for lam in (0.1, 0.3):
            for span in (1, 2):
                lab.evaluate("neighbours", f"+ {lam} x best neighbour's score (+-{span} turns)",
                             lambda c, qa, lam=lam, span=span: smoothed(c, qa, lam, span))
    if "prf" in only:
        df = {}
        for c in convs:
            cnt: collections.Counter[str] = collections.Counter()
            for t in c.turns:
                cnt.update(set(lab.query_terms(speaker_content(t, c.turns))))
            df[c.sample_id] = cnt

        def prf(c: Conversation, qa: dict[str, Any], m: int, fb: int, beta: float) -> Ranked:
            query = q(c, qa)
            text = lab.text_hits(c, query)
            first = ids(fuse(lab.cosines(c, query), text))
            have = set(lab.query_terms(query))
            weight: collections.Counter[str] = collections.Counter()
            for d in first[:fb]:
                for term in set(lab.query_terms(speaker_content(lab.pos[c.sample_id][d], c.turns))):
                    if term not in have and not term.isdigit():
                        weight[term] += math.log(len(c.turns) / (1 + df[c.sample_id][term]))
            best = sorted(weight.items(), key=lambda x: (-x[1], x[0]))[:m]  # ties: by word
            expansion = " ".join(t for t, _ in best)
            more = dict(lab.text_hits(c, expansion)) if expansion else {}
            merged = dict(text)
            for d, s in more.items():
                merged[d] = merged.get(d, 0.0) + beta * s
            return ids(boosted(lab, c, qa["question"],
                               fuse(lab.cosines(c, query), sorted(merged.items(), key=lambda x: -x[1]))))
        for m, fb, beta in ((5, 3, 0.2), (10, 5, 0.2), (3, 2, 0.3)):
            lab.evaluate("prf", f"pseudo-relevance feedback: {m} terms of the top {fb}, weight {beta}",
                         lambda c, qa, m=m, fb=fb, beta=beta: prf(c, qa, m, fb, beta))
    # -- session 4 (helper): vector-side feedback, diversity, adaptive fusion, window of vectors
    def boosted_run(c: Conversation, qa: dict[str, Any], vec: dict[str, float], wv: float = 0.5,
                    **boosts: float) -> list[tuple[str, float]]:
        return boosted(lab, c, qa["question"], fuse(vec, lab.text_hits(c, q(c, qa)), wv=wv), **boosts)

    if "rocchio" in only:
        # vector-side pseudo-relevance feedback: q' = normalise(q + beta * mean of the top-m
        # results' vectors), the vector side scored again with q' (no second embedding or
        # FTS5 query)
        def rocchio(c: Conversation, qa: dict[str, Any], m: int, beta: float, src: str) -> Ranked:
            query = q(c, qa)
            first = boosted_run(c, qa, lab.cosines(c, query))
            if src == "fused":
                first = fuse(lab.cosines(c, query), lab.text_hits(c, query))
            D = lab._docs["speaker"][c.sample_id]
            row = {d: i for i, d in enumerate(lab.ids[c.sample_id])}
            v = np.asarray(emb.embed_query(query)) + beta * D[[row[d] for d, _ in first[:m]]].mean(0)
            v = v / np.linalg.norm(v)
            return ids(boosted_run(c, qa, dict(zip(lab.ids[c.sample_id], (D @ v).tolist()))))
        for src in ("boosted", "fused"):
            for m in (1, 2, 3):
                for beta in (0.3, 0.5, 1.0):
                    lab.evaluate("rocchio", f"top {m} of the {src} ranking, beta {beta}",
                                 lambda c, qa, m=m, b=beta, s=src: rocchio(c, qa, m, b, s))
    if "diversity" in only:
        # greedy re-ranking of the top 40: score - penalty against the memories already picked
        def greedy(c: Conversation, qa: dict[str, Any], pen: Callable[..., float], fixed: int = 0) -> Ranked:
            ranked = boosted_run(c, qa, lab.cosines(c, q(c, qa)))
            score = dict(ranked)
            head, tail = [d for d, _ in ranked[:40]], [d for d, _ in ranked[40:]]
            sel, rest = head[:fixed], head[fixed:]
            while rest:
                best = max(range(len(rest)), key=lambda k: (score[rest[k]] - pen(c, rest[k], sel), -k))
                sel.append(rest.pop(best))
            return sel + tail

        def mmr(mu: float) -> Callable[..., float]:
            def p(c: Conversation, d: str, sel: list[str]) -> float:
                if not sel:
                    return 0.0
                D = lab._docs["speaker"][c.sample_id]
                row = {x: i for i, x in enumerate(lab.ids[c.sample_id])}
                return mu * float(np.max(D[[row[x] for x in sel]] @ D[row[d]]))
            return p

        def adjacent(pv: float, w: int) -> Callable[..., float]:
            def p(c: Conversation, d: str, sel: list[str]) -> float:
                t, turns = lab.pos[c.sample_id][d], lab.pos[c.sample_id]
                near = any(turns[x].session == t.session and abs(turns[x].index - t.index) <= w for x in sel)
                return pv if near else 0.0
            return p
        for mu in (0.1, 0.2, 0.3, 0.5):
            lab.evaluate("diversity", f"MMR on memory vectors over the top 40, score - {mu} x max cosine",
                         lambda c, qa, mu=mu: greedy(c, qa, mmr(mu)))
        for w in (1, 2):
            for pv in (0.05, 0.1, 0.2):
                lab.evaluate("diversity", f"- {pv} when within {w} turns (same session) of a higher pick",
                             lambda c, qa, w=w, pv=pv: greedy(c, qa, adjacent(pv, w)))
        lab.evaluate("diversity", "top 5 kept, MMR 0.3 below", lambda c, qa: greedy(c, qa, mmr(0.3), fixed=5))
        lab.evaluate("diversity", "top 5 kept, - 0.1 within 1 turn below",
                     lambda c, qa: greedy(c, qa, adjacent(0.1, 1), fixed=5))
    if "adaptive" in only:
        # vector weight by how much the keyword side has to go on
        def gap(c: Conversation, qa: dict[str, Any]) -> float:
            h = [s for _, s in lab.text_hits(c, q(c, qa))]
            return 1.0 if len(h) < 2 else (h[0] - h[min(9, len(h) - 1)]) / (h[0] + 1e-9)
        for short in (0.7, 1.0):
            for cut in (2, 3):
                lab.evaluate("adaptive", f"vector weight {short} when <= {cut} query terms (else 0.5)",
                             lambda c, qa, s=short, k=cut: hybrid(
                                 c, qa, wv=s if len(lab.query_terms(q(c, qa))) <= k else 0.5))
        for thr in (0.2, 0.3):
            lab.evaluate("adaptive", f"vector weight 1.0 when BM25 top-1 minus top-10 < {thr} x top-1",
                         lambda c, qa, t=thr: hybrid(c, qa, wv=1.0 if gap(c, qa) < t else 0.5))
    if "vecwindow" in only:
        for b, a in ((1, 1), (2, 1), (2, 2)):
            for mode in ("meancos", "norm"):
                for wv in (0.5, 0.6, 0.7, 0.8):
                    lab.evaluate("vecwindow", f"p{b}n{a} {mode}, vector weight {wv}",
                                 lambda c, qa, b=b, a=a, m=mode, w=wv: hybrid(c, qa, vwin=(b, a, m), wv=w))
        for b, a, mode, wv in ((2, 1, "meancos", 0.6), (2, 1, "meancos", 0.8), (2, 2, "norm", 0.7)):
            for ew in (0.25, 0.3):
                lab.evaluate("vecwindow", f"p{b}n{a} {mode}, vector weight {wv}, entity_weight {ew}",
                             lambda c, qa, b=b, a=a, m=mode, w=wv, e=ew: hybrid(c, qa, vwin=(b, a, m), wv=w, entity=e))
        lab.evaluate("vecwindow", "p2n1 meancos, vector weight 0.6, vector only",
                     lambda c, qa: hybrid(c, qa, vwin=(2, 1, "meancos"), sides="vector"))
    if "vecheldout" in only:
        # pick window / vector weight / entity weight on conversations 1-5 (highest R@10 with
        # category 5 >= keyword-only without boosts there), look at 6-10
        full = lab.convs
        grid = [(b, a, m, wv, ew) for b, a in ((1, 1), (2, 1), (2, 2)) for m in ("meancos", "norm")
                for wv in (0.5, 0.6, 0.7, 0.8) for ew in (0.2, 0.25, 0.3)]
        picked: dict[str, Any] = {}
        for half, part in (("conversations 1-5", full[:5]), ("conversations 6-10", full[5:])):
            lab.convs = list(part)
            kw_plain = lab.evaluate("vecheldout", f"{half}: keyword only, no boosts (-plain)",
                                    lambda c, qa: hybrid(c, qa, sides="text", entity=0.0, date=0.0))
            lab.evaluate("vecheldout", f"{half}: keyword only", lambda c, qa: hybrid(c, qa, sides="text"))
            lab.evaluate("vecheldout", f"{half}: engine defaults, hybrid", hybrid)
            if not picked:
                best = None
                for g in grid:
                    row = lab.evaluate("vecheldout", f"{half}: p{g[0]}n{g[1]} {g[2]}, vector weight {g[3]}, entity_weight {g[4]}",
                                       lambda c, qa, g=g: hybrid(c, qa, vwin=g[:3], wv=g[3], entity=g[4]))
                    if row["cat5"][0] >= kw_plain["cat5"][0] and (best is None or row["cat1-4"][1] > best[0]["cat1-4"][1]):
                        best = (row, g)
                assert best is not None
                picked = {"grid": best[1]}
            else:
                g = picked["grid"]
                lab.evaluate("vecheldout", f"{half}: picked on 1-5: p{g[0]}n{g[1]} {g[2]}, vector weight {g[3]}, entity_weight {g[4]}",
                             lambda c, qa, g=g: hybrid(c, qa, vwin=g[:3], wv=g[3], entity=g[4]))
        lab.convs = full
    emb.save()
    write_json(args.out, {"machine": machine_info(),
                          "command": "python -m bench.locomo_lab " + " ".join(
                              argv if argv is not None else sys.argv[1:]),
                          "seconds": round(time.perf_counter() - t0, 1), "rows": lab.rows})


if __name__ == "__main__":
    main()
