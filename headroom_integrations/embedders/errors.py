"""Errors raised by the HTTP embedders (OpenAI, Ollama)."""

from __future__ import annotations

from ..core.errors import HeadroomMemoryError


class EmbeddingError(HeadroomMemoryError, RuntimeError):
    """An embedding service could not produce vectors.

    The message names the problem and, where there is one, the fix: a rejected API key,
    a model to pull, a server that is not running, a malformed response. The HTTP status
    code of the failed response, if any, is kept in ``status_code``.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
