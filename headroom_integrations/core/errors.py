"""Exceptions the engine raises: each names the problem and what to do about it."""

from __future__ import annotations


class HeadroomMemoryError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(HeadroomMemoryError, ValueError):
    """An argument is not acceptable (empty content, NUL byte, bad id, out-of-range value)."""


class MemoryNotFoundError(HeadroomMemoryError, KeyError):
    """No memory has the given id."""

    def __init__(self, memory_id: str) -> None:
        super().__init__(memory_id)
        self.memory_id = memory_id

    def __str__(self) -> str:
        return f"no memory with id {self.memory_id!r}"


class AlreadySupersededError(HeadroomMemoryError):
    """``supersede()`` was asked to replace a memory that is no longer current."""


class EmbedderMismatchError(HeadroomMemoryError):
    """The store was built with another embedding model or dimension."""


class StoreCorruptedError(HeadroomMemoryError):
    """The database file cannot be read as a memory store."""


class StoreClosedError(HeadroomMemoryError):
    """The memory store was used after ``close()``."""
