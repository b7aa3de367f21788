"""How vector and keyword candidates are fused into one ranking.

Two fusions are offered (``MemoryConfig.fusion``):

- ``"score"`` (default): each side's raw scores (cosine similarity, BM25) are min-max
  normalised over that side's candidate pool and added with their weights; a memory found
  by one side only gets 0 from the other. It keeps how far apart the scores are, which
  reciprocal rank fusion throws away.
- ``"rrf"``: reciprocal rank fusion, ``sum(weight / (k + rank))``.

Measured on LoCoMo (``bench/``), the score fusion with text weight 1.0 and vector weight
0.5 ranks better than RRF with the MiniLM embedder; see ``bench/results/``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Fusion = Literal["score", "rrf"]


@dataclass
class Candidate:
    """One memory found by either side of a hybrid search."""

    id: str
    vector_rank: int | None = None
    text_rank: int | None = None
    similarity: float | None = None
    """Cosine similarity of the memory itself to the query."""
    vector_score: float | None = None
    """What the vector side ranked it by, when not ``similarity`` (its context score)."""
    text_score: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the fusion and of the boosts added to it (importance, recency, a named
    entity, a named period)."""

    fusion: Fusion = "score"
    rrf_k: int = 60
    vector: float = 0.5
    text: float = 1.0
    importance: float = 0.0
    recency: float = 0.0
    recency_half_life_days: float = 30.0
    entity: float = 0.0
    """Added when the query names one of the memory's ``entity_refs``."""
    date: float = 0.0
    """Added when the memory's ``valid_from`` is in the period the query names."""

    @property
    def best_possible(self) -> float:
        """The score of a memory best on both sides with full importance and recency
        boosts (to scale to 0..1); a search adds the entity and date boosts when its query
        can earn them."""
        if self.fusion == "rrf":
            base = (self.vector + self.text) / (self.rrf_k + 1)
        else:
            base = self.vector + self.text
        return base + self.importance + self.recency


def rrf_score(c: Candidate, w: FusionWeights) -> float:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the sides that found it."""
    score = 0.0
    if c.vector_rank is not None:
        score += w.vector / (w.rrf_k + c.vector_rank)
    if c.text_rank is not None:
        score += w.text / (w.rrf_k + c.text_rank)
    return score


def _span(values: Iterable[float]) -> tuple[float, float]:
    vals = list(values)
    return (min(vals), max(vals)) if vals else (0.0, 0.0)


def relevance(candidates: Iterable[Candidate], w: FusionWeights) -> dict[str, float]:
    """The fused relevance of every candidate (before importance and recency boosts)."""
    cands = list(candidates)
    if w.fusion == "rrf":
        return {c.id: rrf_score(c, w) for c in cands}
    v_lo, v_hi = _span(v for c in cands if (v := _vector_value(c)) is not None)
    t_lo, t_hi = _span(c.text_score for c in cands if c.text_rank is not None and c.text_score is not None)
    out: dict[str, float] = {}
    for c in cands:
        score = 0.0
        v = _vector_value(c)
        if v is not None:
            score += w.vector * _norm(v, v_lo, v_hi)
        if c.text_rank is not None and c.text_score is not None:
            score += w.text * _norm(c.text_score, t_lo, t_hi)
        out[c.id] = score
    return out


def _vector_value(c: Candidate) -> float | None:
    """The vector side's score of a candidate it found (None when it did not)."""
    if c.vector_rank is None:
        return None
    return c.vector_score if c.vector_score is not None else c.similarity


_FLOOR = 0.05  # being found by a side at all is worth a little: no result scores 0


def _norm(value: float, lo: float, hi: float) -> float:
    return _FLOOR + (1.0 - _FLOOR) * ((value - lo) / (hi - lo) if hi > lo else 1.0)


def recency_factor(created_at: datetime, now: datetime, half_life_days: float) -> float:
    """1 for a memory made now, halving every ``half_life_days``."""
    age_days = max((now - created_at).total_seconds(), 0.0) / 86400.0
    return math.pow(0.5, age_days / half_life_days)
