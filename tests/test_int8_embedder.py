"""The default local embedder runs the model's matrix products in int8 (``quantize=True``):
its vectors stay close to the float ones and find the same memories, the int8 model is
converted once and cached, conversion failures say what to do, and a store written by the
float embedder keeps opening (and can be moved to int8). Real model, SQLite and Chroma."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from headroom_integrations import EmbedderMismatchError, MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.cli import app
from headroom_integrations.embedders import int8_graph
from headroom_integrations.embedders.fastembed import (
    LOCAL_INT8_MODEL_NAME,
    LOCAL_MODEL_NAME,
    MODEL_FILE,
    TOKENIZER_FILES,
    EmbedderUnavailableError,
    FastEmbedEmbedder,
    int8_model_file,
)

TEXTS = [
    "User prefers Go for performance-critical code",
    "The staging database is Postgres 16 on port 5433; deploy on Fridays only after 2pm.",
    "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "Melanie: We took the kids camping at the lake last weekend, they loved the campfire.",
    "naïve café: Grüße aus Zürich, ¿qué tal? — ok",
    "emoji 🎉🚀 and symbols ∑∫√ <tag> & \"quotes\"",
    "?",
    "",
]

FACTS = [
    "Ann's cat is called Miso and sleeps on the radiator",
    "The team deploys to production every Friday afternoon",
    "Bob is allergic to peanuts and carries an epipen",
    "The staging database runs Postgres 16 on port 5433",
    "Priya is learning Rust to rewrite the ingest service",
    "Our office moved to the fourth floor of the Harbour building",
    "Diego prefers tea over coffee in the morning",
    "The quarterly review is scheduled for the second week of March",
]
QUESTIONS = [
    ("what is the name of Ann's pet?", 0),
    ("when do we ship releases?", 1),
    ("which food must Bob avoid?", 2),
    ("what port does the test database use?", 3),
    ("which programming language is Priya studying?", 4),
    ("where is the office now?", 5),
    ("what does Diego drink at breakfast?", 6),
    ("when is the quarterly review?", 7),
]


@pytest.fixture(scope="module")
def float_embedder() -> FastEmbedEmbedder:
    return FastEmbedEmbedder(quantize=False)


def model_folder(embedder: FastEmbedEmbedder) -> Path:
    return Path(embedder.source)


def copy_model_folder(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in (MODEL_FILE, *TOKENIZER_FILES):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_default_is_int8_and_named_apart(
    embedder: FastEmbedEmbedder, float_embedder: FastEmbedEmbedder
) -> None:
    assert embedder.quantized is True
    assert embedder.name == f"fastembed:{LOCAL_INT8_MODEL_NAME}"
    assert float_embedder.quantized is False
    assert float_embedder.name == f"fastembed:{LOCAL_MODEL_NAME}"
    assert embedder.dimension == float_embedder.dimension == 384


def test_int8_vectors_stay_close_to_the_float_ones(
    embedder: FastEmbedEmbedder, float_embedder: FastEmbedEmbedder
) -> None:
    got = embedder.embed_documents(TEXTS)
    want = float_embedder.embed_documents(TEXTS)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = (got * want).sum(axis=1)
    assert cosine.mean() >= 0.98, cosine.round(4)
    assert cosine.min() >= 0.93, cosine.round(4)
    assert not np.allclose(got, want, atol=1e-4)  # really another arithmetic


def test_a_text_gets_one_vector_whatever_its_batch(embedder: FastEmbedEmbedder) -> None:
    """int8 activations are scaled per token row and texts are batched only with texts of
    their own token count (no padding), so a text's vector does not depend on the texts
    beside it, nor on query or document side."""
    many = TEXTS * 3 + FACTS
    lengths = [len(e.ids) for e in embedder._local.tokenizer.encode_batch(many)]  # type: ignore[union-attr]
    assert max(lengths.count(n) for n in set(lengths)) >= 4  # real multi-row batches
    batch = embedder.embed_documents(many)  # several worker threads
    reversed_batch = embedder.embed_documents(many[::-1])[::-1]
    alone = np.stack([embedder.embed_query(t) for t in many])
    np.testing.assert_array_equal(batch, alone)
    np.testing.assert_array_equal(batch, reversed_batch)
    np.testing.assert_array_equal(embedder.embed_documents(FACTS[:2]), batch[len(TEXTS) * 3:][:2])


def test_int8_finds_what_the_float_model_finds(
    embedder: FastEmbedEmbedder, float_embedder: FastEmbedEmbedder
) -> None:
    facts = embedder.embed_documents(FACTS)
    float_facts = float_embedder.embed_documents(FACTS)
    for question, answer in QUESTIONS:
        q8 = facts @ embedder.embed_query(question)
        f32 = float_facts @ float_embedder.embed_query(question)
        assert int(np.argmax(f32)) == answer, question  # the question is answerable at all
        assert int(np.argmax(q8)) == answer, (question, q8.round(3))


def test_engine_search_with_the_int8_default(tmp_path: Path, embedder: FastEmbedEmbedder) -> None:
    with SyncHierarchicalMemory.create(
        MemoryConfig(db_path=str(tmp_path / "m.db")), embedder=embedder
    ) as memory:
        for fact in FACTS:
            memory.add(fact, user_id="ann")
        for question, answer in QUESTIONS:
            hits = memory.search(question, user_id="ann", top_k=3, mode="vector")
            assert hits[0].memory.content == FACTS[answer], question


def test_conversion_is_made_once_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: FastEmbedEmbedder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = copy_model_folder(model_folder(embedder), tmp_path / "model")
    with caplog.at_level(logging.INFO):
        fresh = FastEmbedEmbedder(folder)
    made = int8_model_file(folder / MODEL_FILE)
    assert made.is_file() and str(made).startswith(str(tmp_path / "cache"))
    assert [p.name for p in made.parent.parent.iterdir()] == [made.parent.name]  # no leftovers
    assert "converting" in caplog.text
    assert "'attention': 6, 'gelu': 6, 'int8_matmuls': 24" in caplog.text  # what was done
    # the same vectors as the session's default embedder (same source bytes, same recipe)
    np.testing.assert_allclose(
        fresh.embed_documents(TEXTS), embedder.embed_documents(TEXTS), atol=1e-5
    )

    def no_second_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(int8_graph, "build_int8", no_second_conversion)
    again = FastEmbedEmbedder(folder)
    assert again.name == fresh.name
    np.testing.assert_allclose(again.embed_query("cats"), fresh.embed_query("cats"), atol=1e-6)


def test_a_model_that_cannot_be_converted_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: FastEmbedEmbedder
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = copy_model_folder(model_folder(embedder), tmp_path / "model")
    (folder / MODEL_FILE).write_bytes(b"not an onnx model")
    with pytest.raises(EmbedderUnavailableError) as err:
        FastEmbedEmbedder(folder)
    assert str(folder / MODEL_FILE) in str(err.value)
    assert "quantize=False" in str(err.value)
    leftovers = list((tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else []
    assert not [p for p in leftovers if p.is_file()]  # nothing half-written is cached


def test_missing_onnx_package_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: FastEmbedEmbedder
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = copy_model_folder(model_folder(embedder), tmp_path / "model")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails
    with pytest.raises(EmbedderUnavailableError, match="pip install onnx"):
        FastEmbedEmbedder(folder)
    assert FastEmbedEmbedder(folder, quantize=False).name == f"fastembed:{LOCAL_MODEL_NAME}"


def _float_store(path: Path, float_embedder: FastEmbedEmbedder) -> None:
    with SyncHierarchicalMemory.create(
        MemoryConfig(db_path=str(path)), embedder=float_embedder
    ) as memory:
        for fact in FACTS:
            memory.add(fact, user_id="ann")


def test_a_store_written_by_the_float_embedder_still_opens(
    tmp_path: Path, float_embedder: FastEmbedEmbedder, embedder: FastEmbedEmbedder
) -> None:
    db = tmp_path / "old.db"
    _float_store(db, float_embedder)
    # no embedder given: the default follows the store, nothing is re-embedded
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db))) as memory:
        assert memory.embedder.name == float_embedder.name
        assert memory.store.get_meta("embedder") == float_embedder.name
        hits = memory.search("what is the name of Ann's pet?", user_id="ann", top_k=1)
        assert hits[0].memory.content == FACTS[0]
    # the int8 embedder passed on purpose: the usual mismatch error, nothing touched
    with pytest.raises(EmbedderMismatchError, match="on_embedder_mismatch='reindex'"):
        SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db)), embedder=embedder)


def test_reindex_moves_a_float_store_to_int8(
    tmp_path: Path, float_embedder: FastEmbedEmbedder
) -> None:
    db = tmp_path / "old.db"
    _float_store(db, float_embedder)
    with SyncHierarchicalMemory.create(
        MemoryConfig(db_path=str(db), on_embedder_mismatch="reindex")
    ) as memory:
        assert memory.embedder.name == f"fastembed:{LOCAL_INT8_MODEL_NAME}"
        assert memory.store.get_meta("embedder") == memory.embedder.name
        hits = memory.search("which food must Bob avoid?", user_id="ann", top_k=1)
        assert hits[0].memory.content == FACTS[2]
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db))) as memory:
        assert memory.embedder.name == f"fastembed:{LOCAL_INT8_MODEL_NAME}"


def test_cli_reindex_moves_a_float_store_to_int8(
    tmp_path: Path, float_embedder: FastEmbedEmbedder
) -> None:
    db = tmp_path / "old.db"
    _float_store(db, float_embedder)
    result = CliRunner().invoke(app, ["--db", str(db), "--json", "reindex"])
    assert result.exit_code == 0, result.output
    assert f"fastembed:{LOCAL_INT8_MODEL_NAME}" in result.stdout
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db))) as memory:
        assert memory.store.get_meta("embedder") == f"fastembed:{LOCAL_INT8_MODEL_NAME}"
        assert memory.search("where is the office now?", user_id="ann", top_k=1)[0].memory.content == FACTS[5]
