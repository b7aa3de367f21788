"""What the HTTP embedders (OpenAI, Ollama) share: batching, dimension probing, response
decoding and error details, and the client's lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from ..core.ports import Vector
from .errors import EmbeddingError

PROBE_TEXT = "dimension probe"


class HTTPEmbedder:
    """Base of the HTTP embedders: subclasses set the fields below and ``_embed_batch``."""

    _model: str
    _base_url: str
    _dimension: int | None
    _batch_size: int
    _owns_client: bool
    _client: httpx.Client

    def _embed_batch(self, texts: list[str]) -> Vector:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def dimension(self) -> int:
        """The vector size; if not given nor yet seen, one probe request finds it out."""
        if self._dimension is None:
            self._embed_batch([PROBE_TEXT])
        assert self._dimension is not None
        return self._dimension

    @property
    def model(self) -> str:
        return self._model

    @property
    def base_url(self) -> str:
        return self._base_url

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """One L2-normalised float32 row per text, in input order.

        An empty sequence gives an array of shape ``(0, dimension)`` without sending
        anything (unless the dimension still has to be probed).
        """
        items = as_text_list(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [
            self._embed_batch(items[start : start + self._batch_size])
            for start in range(0, len(items), self._batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def embed_query(self, text: str) -> Vector:
        """One L2-normalised float32 vector of shape ``(dimension,)``."""
        if not isinstance(text, str):
            raise TypeError(f"embed_query expects a str, got {type(text).__name__}")
        return self._embed_batch([text])[0]

    def close(self) -> None:
        """Close the HTTP client if this embedder created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def as_text_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed_documents expects a sequence of strings, not one str")
    items = list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(
                f"embed_documents expects strings; item {position} is {type(text).__name__}"
            )
    return items


def normalise(matrix: np.ndarray) -> Vector:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def decode_json(response: httpx.Response, service: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        snippet = response.text[:200].replace("\n", " ")
        raise EmbeddingError(
            f"{service} at {response.request.url} answered HTTP {response.status_code} with "
            f"a body that is not valid JSON: {snippet!r}",
            status_code=response.status_code,
        ) from exc


def error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """The service's error message and code, or the start of the body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code") or error.get("type")
            return str(error["message"]), str(code) if code else None
        if isinstance(error, str) and error:
            return error, None
    text = response.text.strip().replace("\n", " ")
    return (text[:300] or response.reason_phrase or "no details"), None
