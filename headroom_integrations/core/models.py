"""The records the engine stores and returns, and the filters it accepts.

Everything here is plain data (pydantic v2 models and enums): no I/O, no framework.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A new memory id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


class MemoryCategory(str, Enum):
    """What kind of thing a memory holds."""

    PREFERENCE = "preference"
    FACT = "fact"
    CONTEXT = "context"
    ENTITY = "entity"
    DECISION = "decision"
    INSIGHT = "insight"

    @classmethod
    def parse(cls, value: MemoryCategory | str | None, default: MemoryCategory | None = None) -> MemoryCategory:
        """Turn a category name (any case, surrounding blanks allowed) into a category.

        Raises ``ValueError`` naming the valid categories when ``value`` is unknown and no
        ``default`` is given.
        """
        if isinstance(value, MemoryCategory):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            for member in cls:
                if member.value == key:
                    return member
        if default is not None:
            return default
        valid = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown memory category {value!r}; expected one of: {valid}")


class ScopeLevel(str, Enum):
    """The narrowest scope a memory belongs to, derived from which ids it carries.

    user > session > agent > turn: a memory with a ``turn_id`` is turn-level, else one with an
    ``agent_id`` is agent-level, else one with a ``session_id`` is session-level, else user-level.
    """

    USER = "user"
    SESSION = "session"
    AGENT = "agent"
    TURN = "turn"

    @property
    def rank(self) -> int:
        """0 for user (broadest) up to 3 for turn (narrowest)."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {ScopeLevel.USER: 0, ScopeLevel.SESSION: 1, ScopeLevel.AGENT: 2, ScopeLevel.TURN: 3}


class Provenance(BaseModel):
    """Who wrote a memory, and how."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str | None = None
    source: str = "api"
    """How it arrived: ``api``, ``inline`` (a model's ``<memory>`` block), ``import``, ``promotion``..."""
    recorded_at: datetime = Field(default_factory=utcnow)


class MemoryRecord(BaseModel):
    """One stored memory, with its scope, temporal validity and provenance."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    id: str = Field(default_factory=new_id)
    content: str
    category: MemoryCategory = MemoryCategory.FACT
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    valid_from: datetime = Field(default_factory=utcnow)
    valid_until: datetime | None = None
    is_current: bool = True
    supersedes: str | None = None
    superseded_by: str | None = None
    promoted_from: str | None = None
    entity_refs: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    search_text: str | None = None
    """Extra text indexed for keyword search only (never shown or embedded): e.g. the
    conversation around the memory, its date, the speaker."""
    provenance: list[Provenance] = Field(default_factory=list)
    access_count: int = 0
    last_accessed: datetime | None = None

    @property
    def scope_level(self) -> ScopeLevel:
        """The narrowest scope this memory belongs to."""
        return scope_level_of(self.session_id, self.agent_id, self.turn_id)

    @field_validator("created_at", "valid_from", "valid_until", "last_accessed")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


def scope_level_of(session_id: str | None, agent_id: str | None, turn_id: str | None) -> ScopeLevel:
    """The scope level a memory with these ids has."""
    if turn_id is not None:
        return ScopeLevel.TURN
    if agent_id is not None:
        return ScopeLevel.AGENT
    if session_id is not None:
        return ScopeLevel.SESSION
    return ScopeLevel.USER


class SearchResult(BaseModel):
    """A memory returned by a search, with how well it matched."""

    model_config = ConfigDict(extra="forbid")

    memory: MemoryRecord
    score: float
    """The fused relevance, 0..1, higher is better; comparable within one search only."""
    similarity: float | None = None
    """Cosine similarity of the memory to the query (vector side), when known."""
    text_rank: int | None = None
    """1-based rank on the keyword (BM25) side, when the keyword index found it."""
    vector_rank: int | None = None
    """1-based rank on the vector side, when the vector index found it."""

    @property
    def id(self) -> str:
        return self.memory.id

    @property
    def content(self) -> str:
        return self.memory.content

    @property
    def category(self) -> MemoryCategory:
        return self.memory.category

    @property
    def importance(self) -> float:
        return self.memory.importance


class MemoryFilter(BaseModel):
    """What ``query()`` returns: memories of one user visible from a scope, narrowed further.

    Visibility follows the scope path: a filter with ``session_id="s1"`` sees user-level
    memories and those of session ``s1``, never those of another session. With
    ``all_scopes=True`` every memory of the user is listed whatever its scope (for
    listing and administration).
    """

    model_config = ConfigDict(extra="forbid")

    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    levels: list[ScopeLevel] | None = None
    """Only memories of these scope levels."""
    all_scopes: bool = False
    categories: list[MemoryCategory] | None = None
    min_importance: float | None = None
    include_superseded: bool = False
    valid_at: datetime | None = None
    """Only memories valid at this instant (superseded ones included, as they were then)."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int | None = Field(default=None, ge=1)
    offset: int = Field(default=0, ge=0)

    @field_validator("valid_at", "created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class MemoryStats(BaseModel):
    """Counts over a store (or one user of it)."""

    total: int
    current: int
    superseded: int
    by_category: dict[str, int]
    by_scope_level: dict[str, int]
    users: int
