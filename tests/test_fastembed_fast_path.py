"""The local-model path of ``FastEmbedEmbedder`` (own tokenization, batches cut by token
count) gives fastembed's vectors, in the order given. Real model, float arithmetic
(``quantize=False``, what fastembed runs); the int8 default is in test_int8_embedder.py."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from headroom_integrations.embedders.fastembed import (
    LOCAL_MODEL_DIM,
    LOCAL_MODEL_NAME,
    FastEmbedEmbedder,
    _normalise,
    fastembed_local_model,
)

LONG = " ".join(f"word{i} and some more filler text about topic {i % 7}" for i in range(120))
TEXTS = [
    "User prefers Go for performance-critical code",
    "",
    " ",
    "?",
    "a",
    "naïve café: Grüße aus Zürich, ¿qué tal? — ok",
    "日本語のテキストと中文文本，还有 한국어 문장",
    "emoji 🎉🚀 and symbols ∑∫√ <tag> & \"quotes\" \t tabs\nnewlines",
    "The staging database is Postgres 16 on port 5433; deploy on Fridays only after 2pm.",
    LONG,  # far past the model's 512-token limit: truncated like fastembed does
    "word " * 300,  # ~300 tokens, between 256 and 512
    "Caroline: I went to the LGBTQ support group yesterday and it was so powerful. "
    "[shared an image: a photo of a group of people sitting in a circle]",
]


@pytest.fixture(scope="module")
def embedder() -> FastEmbedEmbedder:
    """The local model run as stored (float arithmetic), as fastembed runs it."""
    return FastEmbedEmbedder(quantize=False)


@pytest.fixture(scope="module")
def reference(embedder: FastEmbedEmbedder):  # type: ignore[no-untyped-def]
    """fastembed's own TextEmbedding on the same model folder (the path used before)."""
    model = fastembed_local_model(Path(embedder.source))

    def embed(texts: list[str]) -> np.ndarray:
        rows = list(model.embed(texts, batch_size=32))
        return _normalise(np.asarray(rows, dtype=np.float32))

    return embed


def test_local_model_keeps_its_name(embedder: FastEmbedEmbedder) -> None:
    assert embedder.name == f"fastembed:{LOCAL_MODEL_NAME}"
    assert embedder.dimension == LOCAL_MODEL_DIM


def test_texts_exceed_the_model_length(embedder: FastEmbedEmbedder) -> None:
    tokens = [len(e.ids) for e in embedder._local.tokenizer.encode_batch([LONG, "word " * 300])]  # type: ignore[union-attr]
    assert tokens[0] == 512  # truncated at model_max_length, as fastembed truncates
    assert 256 < tokens[1] < 512


def test_matches_fastembed(embedder: FastEmbedEmbedder, reference) -> None:  # type: ignore[no-untyped-def]
    got = embedder.embed_documents(TEXTS)
    want = reference(TEXTS)
    assert got.shape == (len(TEXTS), LOCAL_MODEL_DIM)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = (got * want).sum(axis=1)
    assert cosine.min() >= 0.999, dict(zip(TEXTS, cosine.round(5)))


def test_order_preserved_with_shuffled_lengths(
    embedder: FastEmbedEmbedder, reference  # type: ignore[no-untyped-def]
) -> None:
    rng = random.Random(7)
    texts = [" ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(n))
             for n in rng.choices(range(1, 120), k=40)] + TEXTS
    rng.shuffle(texts)
    got = embedder.embed_documents(texts)  # many batches
    one_by_one = np.stack([embedder.embed_documents([t])[0] for t in texts])
    assert (got * one_by_one).sum(axis=1).min() >= 0.999
    assert (got * reference(texts)).sum(axis=1).min() >= 0.999


def test_one_thread_and_small_batches_give_the_same_vectors(embedder: FastEmbedEmbedder) -> None:
    serial = FastEmbedEmbedder(embedder.source, threads=1, batch_size=4, quantize=False)
    assert (serial.embed_documents(TEXTS) * embedder.embed_documents(TEXTS)).sum(axis=1).min() >= 0.999


def test_empty_list(embedder: FastEmbedEmbedder) -> None:
    out = embedder.embed_documents([])
    assert out.shape == (0, LOCAL_MODEL_DIM)
    assert out.dtype == np.float32


def test_embed_query_equals_embed_documents(embedder: FastEmbedEmbedder) -> None:
    for text in ["what language for a fast microservice?", "", LONG]:
        query = embedder.embed_query(text)
        assert query.shape == (LOCAL_MODEL_DIM,)
        np.testing.assert_allclose(query, embedder.embed_documents([text])[0], atol=1e-6)
