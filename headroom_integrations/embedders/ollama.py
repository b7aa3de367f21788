"""An ``Embedder`` backed by a local (or remote) Ollama server.

::

    from headroom_integrations.embedders.ollama import OllamaEmbedder

    embedder = OllamaEmbedder("nomic-embed-text")   # after `ollama pull nomic-embed-text`
    vectors = embedder.embed_documents(["first memory", "second"])

Texts are sent ``batch_size`` at a time to ``POST {base_url}/api/embed``. Failures raise
``EmbeddingError`` saying what to do: start Ollama when it is not reachable, ``ollama pull``
a model it does not have, use an embedding model when the model cannot embed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import numpy as np

from ..core.ports import Vector
from .errors import EmbeddingError
from ._http import HTTPEmbedder, decode_json, error_detail, normalise

__all__ = ["DEFAULT_OLLAMA_URL", "OllamaEmbedder", "resolve_ollama_url"]

DEFAULT_OLLAMA_URL = "http://localhost:11434"
_DEFAULT_PORT = 11434


def resolve_ollama_url(value: str | None = None) -> str:
    """The server URL, read like the Ollama CLI reads ``OLLAMA_HOST``.

    ``value`` (else ``$OLLAMA_HOST``, else ``http://localhost:11434``) may omit the scheme
    (``http`` is assumed) and, when it does, the port (11434 is assumed): ``"0.0.0.0"``,
    ``"myhost:8080"`` and ``"https://ollama.example.com"`` are all accepted.
    """
    raw = (value if value is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not raw:
        return DEFAULT_OLLAMA_URL
    if "://" not in raw:
        url = httpx.URL(f"http://{raw}")
        if url.port is None:
            url = url.copy_with(port=_DEFAULT_PORT)
        raw = str(url)
    return raw.rstrip("/")


class OllamaEmbedder(HTTPEmbedder):
    """Embeds text with an Ollama embedding model (``/api/embed``, Ollama 0.3 or later).

    Args:
        model: The model, e.g. ``"nomic-embed-text"``, ``"mxbai-embed-large"``,
            ``"all-minilm"``; it must have been pulled on the server.
        base_url: The server; defaults to ``$OLLAMA_HOST``, then ``http://localhost:11434``.
        dimension: The vector size if known in advance; otherwise it is learnt from the
            first response, and reading ``dimension`` before anything was embedded makes
            one small probe request.
            On Python < 3.12, ``isinstance(obj, Embedder)`` reads ``dimension`` and so
            probes too.
        batch_size: How many texts go in one request.
        timeout: Seconds allowed for each request (the first one may load the model).
        http_client: A client to send requests with; not closed by :meth:`close`.
    """

    def __init__(
        self,
        model: str = "nomic-embed-text",
        *,
        base_url: str | None = None,
        dimension: int | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not model:
            raise ValueError("model must be a non-empty model name")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if dimension is not None and dimension <= 0:
            raise ValueError(f"dimension must be a positive integer, got {dimension}")
        self._model = model
        self._base_url = resolve_ollama_url(base_url)
        self._url = f"{self._base_url}/api/embed"
        self._dimension = dimension
        self._batch_size = batch_size
        self._timeout = timeout
        self._owns_client = http_client is None
        self._client = http_client if http_client is not None else httpx.Client()
        self._lock = threading.Lock()

    # -- Embedder protocol ------------------------------------------------------------

    @property
    def name(self) -> str:
        """``ollama:{model}`` (no request needed)."""
        return f"ollama:{self._model}"

    def __repr__(self) -> str:
        return (
            f"OllamaEmbedder(model={self._model!r}, base_url={self._base_url!r}, "
            f"dimension={self._dimension!r})"
        )

    # -- internals --------------------------------------------------------------------

    def _embed_batch(self, batch: list[str]) -> Vector:
        payload = self._post(batch)
        return normalise(self._parse(payload, len(batch)))

    def _post(self, batch: list[str]) -> Any:
        body = {"model": self._model, "input": batch}
        try:
            response = self._client.post(self._url, json=body, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise EmbeddingError(
                f"Ollama is not reachable at {self._base_url} ({type(exc).__name__}: {exc}). "
                "Start it with `ollama serve` (or open the Ollama app), or point base_url / "
                "OLLAMA_HOST at a running server"
            ) from exc
        except httpx.TimeoutException as exc:
            raise EmbeddingError(
                f"Ollama at {self._base_url} did not answer within {self._timeout:g}s; the "
                "first request loads the model, so a larger timeout= may help"
            ) from exc
        except httpx.TransportError as exc:
            raise EmbeddingError(
                f"Request to Ollama at {self._url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not response.is_success:
            raise self._status_error(response)
        return decode_json(response, "Ollama")

    def _status_error(self, response: httpx.Response) -> EmbeddingError:
        status = response.status_code
        detail, _ = error_detail(response)
        has_json_error = _has_json_error(response)
        if status == 404 and has_json_error:
            return EmbeddingError(
                f"Ollama at {self._base_url} does not have the model {self._model!r} "
                f"({detail}). Run `ollama pull {self._model}` and try again",
                status_code=status,
            )
        if status == 404:
            return EmbeddingError(
                f"{self._url} was not found (HTTP 404: {detail}): the server is not Ollama or "
                "is too old to have /api/embed; upgrade Ollama or check base_url",
                status_code=status,
            )
        hint = ""
        if "does not support" in detail or "not an embedding" in detail.lower():
            hint = "; use an embedding model such as nomic-embed-text or mxbai-embed-large"
        return EmbeddingError(
            f"Ollama at {self._base_url} failed to embed with {self._model!r} "
            f"(HTTP {status}): {detail}{hint}",
            status_code=status,
        )

    def _parse(self, payload: Any, expected: int) -> np.ndarray:
        where = f"Ollama at {self._url}"
        rows = payload.get("embeddings") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise EmbeddingError(f"Unexpected response from {where}: no 'embeddings' list")
        if len(rows) != expected:
            raise EmbeddingError(f"{where} returned {len(rows)} embeddings for {expected} inputs")
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(f"{where} returned malformed embeddings ({exc})") from exc
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise EmbeddingError(f"{where} returned embeddings of shape {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise EmbeddingError(f"{where} returned non-finite numbers (NaN or infinity)")
        got = int(matrix.shape[1])
        with self._lock:
            if self._dimension is None:
                self._dimension = got
        if got != self._dimension:
            raise EmbeddingError(
                f"{where} returned {got}-dimensional vectors for {self._model!r}, expected "
                f"{self._dimension}"
            )
        return matrix


def _has_json_error(response: httpx.Response) -> bool:
    try:
        payload = response.json()
    except ValueError:
        return False
    return isinstance(payload, dict) and bool(payload.get("error"))
