"""The OpenAI and Ollama embedders, against fake servers (``httpx.MockTransport``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from headroom_integrations.core.ports import Embedder
from headroom_integrations.embedders import openai as openai_module
from headroom_integrations.embedders.errors import EmbeddingError
from headroom_integrations.embedders.ollama import OllamaEmbedder, resolve_ollama_url
from headroom_integrations.embedders.openai import OpenAIEmbedder

Handler = Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Records requests and answers them with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def raw_vector(text: str, dim: int) -> list[float]:
    """A deterministic, deliberately non-unit vector for a text."""
    seed = sum(ord(c) for c in text) + len(text)
    return [float((seed * (i + 3)) % 17 + 1) for i in range(dim)]


def unit(values: list[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def openai_ok(dim: int, *, reverse: bool = False) -> Handler:
    """An OpenAI-style server; ``reverse`` lists the items last-index first."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        size = body.get("dimensions", dim)
        items = [
            {"object": "embedding", "index": i, "embedding": raw_vector(t, size)}
            for i, t in enumerate(body["input"])
        ]
        if reverse:
            items.reverse()
        return httpx.Response(
            200, json={"object": "list", "data": items, "model": body["model"], "usage": {}}
        )

    return handler


def make_openai(server: FakeServer, **kwargs: Any) -> OpenAIEmbedder:
    kwargs.setdefault("api_key", "sk-test")
    kwargs.setdefault("base_url", "https://api.example.test/v1")
    kwargs.setdefault("backoff_base", 0.001)
    return OpenAIEmbedder(http_client=server.client(), **kwargs)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits of the OpenAI embedder, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(openai_module, "_sleep", recorded.append)
    return recorded


# -- OpenAI ---------------------------------------------------------------------------


def test_openai_sends_the_request_the_api_expects() -> None:
    server = FakeServer(openai_ok(1536))
    embedder = make_openai(server)

    vectors = embedder.embed_documents(["alpha", "beta"])

    assert vectors.shape == (2, 1536) and vectors.dtype == np.float32
    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.example.test/v1/embeddings"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "text-embedding-3-small",
        "input": ["alpha", "beta"],
        "encoding_format": "float",
    }


def test_openai_sends_dimensions_only_when_asked() -> None:
    server = FakeServer(openai_ok(3072))
    embedder = make_openai(server, model="text-embedding-3-large", dimensions=256)

    vectors = embedder.embed_documents(["alpha"])

    assert server.bodies()[0]["dimensions"] == 256
    assert vectors.shape == (1, 256)
    assert embedder.dimension == 256
    assert embedder.name == "openai:text-embedding-3-large:256"


def test_openai_batches_split_and_keep_input_order() -> None:
    server = FakeServer(openai_ok(8, reverse=True))
    embedder = make_openai(server, model="custom-model", dimensions=8, batch_size=3)
    texts = [f"text number {i}" for i in range(7)]

    vectors = embedder.embed_documents(texts)

    assert [b["input"] for b in server.bodies()] == [texts[0:3], texts[3:6], texts[6:7]]
    expected = np.stack([unit(raw_vector(t, 8)) for t in texts])
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)


def test_openai_vectors_are_unit_length_and_query_matches_document() -> None:
    server = FakeServer(openai_ok(1536))
    embedder = make_openai(server)

    docs = embedder.embed_documents(["alpha", "beta", "gamma"])
    query = embedder.embed_query("beta")

    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-6)
    assert query.shape == (1536,) and query.dtype == np.float32
    np.testing.assert_allclose(query, docs[1], rtol=1e-6)
    assert isinstance(embedder, Embedder)


def test_openai_known_model_needs_no_request_for_dimension_or_name() -> None:
    server = FakeServer(openai_ok(3072))
    embedder = make_openai(server, model="text-embedding-3-large")

    assert embedder.dimension == 3072
    assert embedder.name == "openai:text-embedding-3-large:3072"
    assert server.requests == []


def test_openai_unknown_model_probes_dimension_once() -> None:
    server = FakeServer(openai_ok(384))
    embedder = make_openai(server, model="my-local-embedder")

    assert embedder.name == "openai:my-local-embedder:384"
    assert embedder.dimension == 384
    embedder.embed_documents(["alpha"])
    assert len(server.requests) == 2  # the probe and the real call


def test_openai_empty_input_returns_empty_matrix_without_a_request() -> None:
    server = FakeServer(openai_ok(1536))
    embedder = make_openai(server)

    vectors = embedder.embed_documents([])

    assert vectors.shape == (0, 1536) and vectors.dtype == np.float32
    assert server.requests == []


def test_openai_retries_429_then_succeeds_honouring_retry_after(sleeps: list[float]) -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                headers={"Retry-After": "0.25"},
                json={"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
            ),
            httpx.Response(503, text="upstream unavailable"),
        ]
    )
    ok = openai_ok(1536)
    server = FakeServer(lambda request: next(answers, None) or ok(request))
    embedder = make_openai(server, max_retries=3)

    vectors = embedder.embed_documents(["alpha"])

    assert vectors.shape == (1, 1536)
    assert len(server.requests) == 3
    assert sleeps[0] == pytest.approx(0.25)  # what the server asked for
    assert 0 < sleeps[1] <= 0.002  # exponential backoff from backoff_base=0.001


def test_openai_retry_after_is_capped_by_max_backoff(sleeps: list[float]) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3600"})])
    ok = openai_ok(1536)
    server = FakeServer(lambda request: next(answers, None) or ok(request))
    embedder = make_openai(server, max_backoff=0.01)

    embedder.embed_documents(["alpha"])

    assert sleeps == [0.01]


def test_openai_gives_up_after_max_retries(sleeps: list[float]) -> None:
    server = FakeServer(
        lambda request: httpx.Response(
            429, json={"error": {"message": "Rate limit reached for requests"}}
        )
    )
    embedder = make_openai(server, max_retries=2)

    with pytest.raises(EmbeddingError, match="rate limit.*gave up after 3 attempts") as info:
        embedder.embed_documents(["alpha"])

    assert len(server.requests) == 3 and len(sleeps) == 2
    assert info.value.status_code == 429


def test_openai_exhausted_quota_is_not_retried(sleeps: list[float]) -> None:
    server = FakeServer(
        lambda request: httpx.Response(
            429,
            json={"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}},
        )
    )
    embedder = make_openai(server)

    with pytest.raises(EmbeddingError, match="quota exhausted"):
        embedder.embed_documents(["alpha"])
    assert len(server.requests) == 1 and sleeps == []


def test_openai_401_says_the_key_was_rejected(sleeps: list[float]) -> None:
    server = FakeServer(
        lambda request: httpx.Response(
            401,
            json={"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
        )
    )
    embedder = make_openai(server, api_key="sk-wrong-secret")

    with pytest.raises(EmbeddingError) as info:
        embedder.embed_documents(["alpha"])

    message = str(info.value)
    assert "rejected the API key" in message and "OPENAI_API_KEY" in message
    assert "Incorrect API key provided" in message
    assert "sk-wrong-secret" not in message
    assert info.value.status_code == 401
    assert len(server.requests) == 1 and sleeps == []  # not retried


def test_openai_bad_request_surfaces_the_api_message() -> None:
    server = FakeServer(
        lambda request: httpx.Response(
            400, json={"error": {"message": "This model's maximum context length is 8192"}}
        )
    )
    embedder = make_openai(server)

    with pytest.raises(EmbeddingError, match="HTTP 400.*maximum context length is 8192"):
        embedder.embed_documents(["alpha"])


def test_openai_invalid_json_is_reported() -> None:
    server = FakeServer(lambda request: httpx.Response(200, text="<html>proxy login</html>"))
    embedder = make_openai(server)

    with pytest.raises(EmbeddingError, match="not valid JSON.*proxy login"):
        embedder.embed_documents(["alpha"])


def test_openai_wrong_number_of_embeddings_is_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        item = {"index": 0, "embedding": raw_vector("x", 1536)}
        return httpx.Response(200, json={"data": [item]})

    embedder = make_openai(FakeServer(handler))

    with pytest.raises(EmbeddingError, match="returned 1 embeddings for 2 inputs"):
        embedder.embed_documents(["alpha", "beta"])


def test_openai_wrong_vector_size_is_reported() -> None:
    embedder = make_openai(FakeServer(openai_ok(768)))  # claims to be text-embedding-3-small

    with pytest.raises(EmbeddingError, match="768-dimensional.*expected 1536"):
        embedder.embed_documents(["alpha"])


def test_openai_needs_a_key_for_api_openai_com(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        OpenAIEmbedder()


def test_openai_reads_key_and_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway.example.test/openai/v1/")
    server = FakeServer(openai_ok(1536))
    embedder = OpenAIEmbedder(http_client=server.client())

    embedder.embed_query("alpha")

    (request,) = server.requests
    assert str(request.url) == "https://gateway.example.test/openai/v1/embeddings"
    assert request.headers["authorization"] == "Bearer sk-from-env"
    assert "sk-from-env" not in repr(embedder)


def test_openai_a_single_string_is_refused() -> None:
    embedder = make_openai(FakeServer(openai_ok(1536)))

    with pytest.raises(TypeError, match="not one str"):
        embedder.embed_documents("alpha")


# -- Ollama ---------------------------------------------------------------------------


def ollama_ok(dim: int) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        rows = [raw_vector(t, dim) for t in body["input"]]
        return httpx.Response(200, json={"model": body["model"], "embeddings": rows})

    return handler


def make_ollama(server: FakeServer, **kwargs: Any) -> OllamaEmbedder:
    kwargs.setdefault("base_url", "http://ollama.test:11434")
    return OllamaEmbedder(http_client=server.client(), **kwargs)


def test_ollama_sends_the_request_the_api_expects_and_normalises() -> None:
    server = FakeServer(ollama_ok(768))
    embedder = make_ollama(server)

    vectors = embedder.embed_documents(["alpha", "beta"])

    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == "http://ollama.test:11434/api/embed"
    assert json.loads(request.content) == {"model": "nomic-embed-text", "input": ["alpha", "beta"]}
    assert vectors.shape == (2, 768) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], unit(raw_vector("alpha", 768)), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert embedder.name == "ollama:nomic-embed-text"
    assert isinstance(embedder, Embedder)


def test_ollama_batches_split_and_dimension_is_learnt() -> None:
    server = FakeServer(ollama_ok(384))
    embedder = make_ollama(server, model="all-minilm", batch_size=2)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]

    vectors = embedder.embed_documents(texts)

    assert [b["input"] for b in server.bodies()] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    expected = np.stack([unit(raw_vector(t, 384)) for t in texts])
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert embedder.dimension == 384
    assert len(server.requests) == 3  # no probe once a response was seen


def test_ollama_dimension_probe_and_query() -> None:
    server = FakeServer(ollama_ok(1024))
    embedder = make_ollama(server, model="mxbai-embed-large")

    assert embedder.dimension == 1024
    query = embedder.embed_query("hello")
    assert query.shape == (1024,)
    assert len(server.requests) == 2


def test_ollama_empty_input_with_known_dimension_makes_no_request() -> None:
    server = FakeServer(ollama_ok(768))
    embedder = make_ollama(server, dimension=768)

    vectors = embedder.embed_documents([])

    assert vectors.shape == (0, 768)
    assert server.requests == []


def test_ollama_missing_model_says_to_pull_it() -> None:
    server = FakeServer(
        lambda request: httpx.Response(
            404, json={"error": 'model "nomic-embed-text" not found, try pulling it first'}
        )
    )
    embedder = make_ollama(server)

    with pytest.raises(EmbeddingError, match="`ollama pull nomic-embed-text`") as info:
        embedder.embed_documents(["alpha"])
    assert info.value.status_code == 404


def test_ollama_without_the_embed_endpoint_says_to_upgrade() -> None:
    server = FakeServer(lambda request: httpx.Response(404, text="404 page not found"))
    embedder = make_ollama(server)

    with pytest.raises(EmbeddingError, match="too old to have /api/embed"):
        embedder.embed_documents(["alpha"])


def test_ollama_unreachable_says_how_to_start_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    embedder = make_ollama(FakeServer(refuse), base_url="http://localhost:11434")

    with pytest.raises(EmbeddingError) as info:
        embedder.embed_query("alpha")

    message = str(info.value)
    assert "Ollama is not reachable at http://localhost:11434" in message
    assert "ollama serve" in message and "Connection refused" in message


def test_ollama_model_that_cannot_embed_gets_a_hint() -> None:
    server = FakeServer(
        lambda request: httpx.Response(
            400, json={"error": '"llama3.2" does not support embeddings'}
        )
    )
    embedder = make_ollama(server, model="llama3.2")

    with pytest.raises(EmbeddingError, match="does not support embeddings; use an embedding"):
        embedder.embed_documents(["alpha"])


def test_ollama_wrong_count_and_bad_json_are_reported() -> None:
    short = make_ollama(
        FakeServer(lambda r: httpx.Response(200, json={"embeddings": [[1.0, 2.0]]}))
    )
    with pytest.raises(EmbeddingError, match="returned 1 embeddings for 2 inputs"):
        short.embed_documents(["alpha", "beta"])

    garbled = make_ollama(FakeServer(lambda r: httpx.Response(200, text="not json")))
    with pytest.raises(EmbeddingError, match="not valid JSON"):
        garbled.embed_documents(["alpha"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://localhost:11434"),
        ("", "http://localhost:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("myhost:8080", "http://myhost:8080"),
        ("https://ollama.example.com/", "https://ollama.example.com"),
    ],
)
def test_ollama_host_is_read_like_the_ollama_cli(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    if value is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", value)

    assert resolve_ollama_url() == expected
    with httpx.Client() as client:
        assert OllamaEmbedder(http_client=client).base_url == expected
