"""Checks on what callers pass in: each failure names the argument and the problem."""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidInputError

MAX_ID_CHARS = 256


def check_text(value: Any, *, name: str = "content", max_chars: int = 20_000) -> str:
    """A non-empty string of valid UTF-8 with no NUL byte, at most ``max_chars`` long."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{name} is empty")
    if "\x00" in value:
        raise InvalidInputError(f"{name} contains a NUL byte at position {value.index(chr(0))}")
    _check_utf8(value, name)
    if len(value) > max_chars:
        raise InvalidInputError(
            f"{name} is {len(value)} characters long; the limit is {max_chars} "
            "(MemoryConfig.max_content_chars)"
        )
    return value


def check_id(value: Any, *, name: str, required: bool = False) -> str | None:
    """An optional scope or memory id: a non-empty string without NUL, at most 256 chars."""
    if value is None:
        if required:
            raise InvalidInputError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInputError(f"{name} must not be empty (use None for no {name})")
    if "\x00" in value:
        raise InvalidInputError(f"{name} contains a NUL byte")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(f"{name} is longer than {MAX_ID_CHARS} characters")
    _check_utf8(value, name)
    return value


def check_importance(value: Any, *, name: str = "importance") -> float:
    """A number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number from 0 to 1, not {value!r}")
    if math.isnan(value) or not 0.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"{name} must be from 0 to 1, got {value!r}")
    return float(value)


def check_top_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"top_k must be a positive whole number, got {value!r}")
    return min(value, 1000)


def _check_utf8(value: str, name: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{name} is not valid UTF-8 text (lone surrogate at position {exc.start})"
        ) from None
