"""How vector and keyword candidates are fused into one ranking."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Candidate:
    """One memory found by either side of a hybrid search."""

    id: str
    vector_rank: int | None = None
    text_rank: int | None = None
    similarity: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionWeights:
    """Weights of reciprocal rank fusion and of the optional importance / recency boosts."""

    rrf_k: int = 60
    vector: float = 1.0
    text: float = 1.0
    importance: float = 0.0
    recency: float = 0.0
    recency_half_life_days: float = 30.0

    @property
    def best_possible(self) -> float:
        """The score of a memory ranked first on both sides with full boosts (for 0..1)."""
        return (self.vector + self.text) / (self.rrf_k + 1) + self.importance + self.recency


def rrf_score(c: Candidate, w: FusionWeights) -> float:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the sides that found it."""
    score = 0.0
    if c.vector_rank is not None:
        score += w.vector / (w.rrf_k + c.vector_rank)
    if c.text_rank is not None:
        score += w.text / (w.rrf_k + c.text_rank)
    return score


def recency_factor(created_at: datetime, now: datetime, half_life_days: float) -> float:
    """1 for a memory made now, halving every ``half_life_days``."""
    age_days = max((now - created_at).total_seconds(), 0.0) / 86400.0
    return math.pow(0.5, age_days / half_life_days)
