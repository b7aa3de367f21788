"""An ``Embedder`` backed by the OpenAI embeddings API (or any API compatible with it).

It talks plain HTTP through ``httpx`` (the ``openai`` package is not needed)::

    from headroom_integrations.embedders.openai import OpenAIEmbedder

    embedder = OpenAIEmbedder("text-embedding-3-small")           # key from OPENAI_API_KEY
    vectors = embedder.embed_documents(["first memory", "second"])  # (2, 1536), unit rows

Texts are sent ``batch_size`` at a time to ``POST {base_url}/embeddings``; rows come back in
the order of the input whatever order the service lists them in. Rate limits (HTTP 429,
except an exhausted quota) and server errors (5xx), time-outs and dropped connections are
retried ``max_retries`` times with exponential backoff, honouring ``Retry-After``; every
wait is capped at ``max_backoff`` seconds. Any other failure raises ``EmbeddingError``
with a message that says what went wrong.
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import httpx
import numpy as np

from ..core.ports import Vector
from ._http import HTTPEmbedder, decode_json, error_detail, normalise
from .errors import EmbeddingError

__all__ = ["DEFAULT_BASE_URL", "KNOWN_DIMENSIONS", "OpenAIEmbedder"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: The native output size of OpenAI's embedding models.
KNOWN_DIMENSIONS: Mapping[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

# Models that accept the ``dimensions`` request field (shortened embeddings).
_SHORTENABLE = frozenset({"text-embedding-3-small", "text-embedding-3-large"})
_MAX_INPUTS_PER_REQUEST = 2048

# Indirection so tests can observe the waits without really sleeping.
_sleep = time.sleep


class OpenAIEmbedder(HTTPEmbedder):
    """Embeds text with an OpenAI embedding model over HTTP.

    Args:
        model: The embedding model, e.g. ``"text-embedding-3-small"``.
        api_key: The API key; defaults to ``$OPENAI_API_KEY``. Required for
            ``api.openai.com``; optional for other (compatible, self-hosted) base URLs.
        base_url: The API root; defaults to ``$OPENAI_BASE_URL``, then
            ``https://api.openai.com/v1``.
        dimensions: Ask the service for shorter vectors (``text-embedding-3-*`` only).
        batch_size: How many texts go in one request (1 to 2048).
        timeout: Seconds allowed for each HTTP request.
        max_retries: How many times a rate-limited, failed (5xx) or timed-out request is
            retried before giving up.
        backoff_base: The first retry waits about this many seconds, doubling after each
            further failure (with jitter), unless the service says how long via
            ``Retry-After``.
        max_backoff: No single wait is longer than this many seconds.
        http_client: A client to send requests with (e.g. to share a connection pool, set
            a proxy, or test with ``httpx.MockTransport``). It is not closed by
            :meth:`close`; a client the embedder creates itself is.

    ``dimension`` is known without any request for the models in ``KNOWN_DIMENSIONS`` or
    when ``dimensions`` is given. For any other model it is learnt from the first response;
    reading ``dimension`` (or ``name``) before anything was embedded then makes one small
    probe request.

    Note: on Python < 3.12, ``isinstance(obj, Embedder)`` reads every property of the
    protocol, so it makes that probe request too (and raises if it fails).
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 256,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        max_backoff: float = 20.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not model:
            raise ValueError("model must be a non-empty model name")
        if not 1 <= batch_size <= _MAX_INPUTS_PER_REQUEST:
            raise ValueError(
                f"batch_size must be between 1 and {_MAX_INPUTS_PER_REQUEST}, got {batch_size}"
            )
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if backoff_base < 0 or max_backoff < 0:
            raise ValueError("backoff_base and max_backoff must be >= 0")
        native = KNOWN_DIMENSIONS.get(model)
        if dimensions is not None:
            if dimensions <= 0:
                raise ValueError(f"dimensions must be a positive integer, got {dimensions}")
            if native is not None and model not in _SHORTENABLE:
                raise ValueError(
                    f"{model} does not support the dimensions option; leave it unset "
                    f"(its vectors have {native} dimensions)"
                )
            if native is not None and dimensions > native:
                raise ValueError(f"{model} gives at most {native} dimensions, not {dimensions}")

        self._model = model
        self._base_url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self._url = f"{self._base_url}/embeddings"
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not self._api_key and httpx.URL(self._base_url).host == "api.openai.com":
            raise EmbeddingError(
                "No OpenAI API key: pass api_key=... or set the OPENAI_API_KEY "
                "environment variable"
            )
        self._requested_dimensions = dimensions
        self._dimension: int | None = dimensions if dimensions is not None else native
        self._batch_size = batch_size
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._max_backoff = max_backoff
        self._owns_client = http_client is None
        self._client = http_client if http_client is not None else httpx.Client()
        self._lock = threading.Lock()

    # -- Embedder protocol ------------------------------------------------------------

    @property
    def name(self) -> str:
        """``openai:{model}:{dimension}`` (may make a probe request, see ``dimension``)."""
        return f"openai:{self._model}:{self.dimension}"

    def __repr__(self) -> str:  # never shows the API key
        return (
            f"OpenAIEmbedder(model={self._model!r}, base_url={self._base_url!r}, "
            f"dimension={self._dimension!r})"
        )

    # -- internals --------------------------------------------------------------------

    def _embed_batch(self, batch: list[str]) -> Vector:
        payload = self._post(batch)
        matrix = self._parse(payload, len(batch))
        return normalise(matrix)

    def _body(self, batch: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "input": batch, "encoding_format": "float"}
        if self._requested_dimensions is not None:
            body["dimensions"] = self._requested_dimensions
        return body

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _post(self, batch: list[str]) -> Any:
        """Send one batch, retrying transient failures; the decoded JSON answer."""
        body = self._body(batch)
        attempt = 0
        while True:
            retry_after: float | None = None
            cause: Exception | None = None
            try:
                response = self._client.post(
                    self._url, json=body, headers=self._headers(), timeout=self._timeout
                )
            except httpx.TimeoutException as exc:
                error = EmbeddingError(
                    f"OpenAI embeddings request to {self._url} timed out after "
                    f"{self._timeout:g}s"
                )
                cause = exc
            except httpx.TransportError as exc:
                error = EmbeddingError(
                    f"Could not reach the OpenAI embeddings API at {self._url}: "
                    f"{type(exc).__name__}: {exc}"
                )
                cause = exc
            else:
                if response.is_success:
                    return decode_json(response, "OpenAI embeddings API")
                error, retryable = self._status_error(response)
                if not retryable:
                    raise error
                retry_after = _retry_after_seconds(response.headers)
            if attempt >= self._max_retries:
                raise EmbeddingError(
                    f"{error} (gave up after {attempt + 1} attempts)",
                    status_code=error.status_code,
                ) from cause
            _sleep(self._delay(attempt, retry_after))
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            wait = retry_after
        else:
            wait = self._backoff_base * (2**attempt) * (0.5 + random.random() / 2)
        return max(0.0, min(wait, self._max_backoff))

    def _status_error(self, response: httpx.Response) -> tuple[EmbeddingError, bool]:
        """The error for a failed response and whether it is worth retrying."""
        status = response.status_code
        detail, code = error_detail(response)
        where = f"{self._url} (HTTP {status})"
        if status == 401:
            message = (
                f"OpenAI rejected the API key at {where}: {detail}. Check OPENAI_API_KEY "
                "or the api_key argument"
            )
            return EmbeddingError(message, status_code=status), False
        if status == 403:
            message = f"OpenAI refused access to {self._model!r} at {where}: {detail}"
            return EmbeddingError(message, status_code=status), False
        if status == 404:
            message = (
                f"Embedding model {self._model!r} or the endpoint was not found at {where}: "
                f"{detail}. Check the model name and base_url"
            )
            return EmbeddingError(message, status_code=status), False
        if status == 429:
            if code == "insufficient_quota":
                message = (
                    f"OpenAI quota exhausted at {where}: {detail}. Check the account's "
                    "plan and billing"
                )
                return EmbeddingError(message, status_code=status), False
            message = f"OpenAI rate limit hit at {where}: {detail}"
            return EmbeddingError(message, status_code=status), True
        if status >= 500:
            message = f"OpenAI server error at {where}: {detail}"
            return EmbeddingError(message, status_code=status), True
        message = f"OpenAI rejected the embeddings request at {where}: {detail}"
        return EmbeddingError(message, status_code=status), False

    def _parse(self, payload: Any, expected: int) -> np.ndarray:
        where = f"the OpenAI embeddings API at {self._url}"
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise EmbeddingError(f"Unexpected response from {where}: no 'data' list")
        if len(data) != expected:
            raise EmbeddingError(
                f"{where} returned {len(data)} embeddings for {expected} inputs"
            )
        try:
            ordered = sorted(data, key=lambda item: int(item["index"]))
            indices = [int(item["index"]) for item in ordered]
            rows = [item["embedding"] for item in ordered]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(
                f"Unexpected response from {where}: items need 'index' and 'embedding' ({exc})"
            ) from exc
        if indices != list(range(expected)):
            raise EmbeddingError(
                f"{where} returned indices {indices[:10]}..., expected 0..{expected - 1}"
            )
        if any(isinstance(row, str) for row in rows):
            raise EmbeddingError(
                f"{where} returned base64 strings although encoding_format='float' was sent"
            )
        return self._check_matrix(rows, where)

    def _check_matrix(self, rows: list[Any], where: str) -> np.ndarray:
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
                f"{self._dimension}; pass dimensions=... matching what the model produces"
            )
        return matrix


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """How long the service asked us to wait: ``retry-after-ms`` or ``Retry-After``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
