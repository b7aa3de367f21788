"""HeadroomMemoryRetriever: the LangChain standard retriever suite plus scope and metadata."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from headroom_integrations import SyncHierarchicalMemory
from headroom_integrations.langchain import HeadroomMemoryRetriever

FACTS = [
    ("User's favourite language is Python", "preference", 0.8),
    ("User writes Python scripts for data cleaning", "fact", 0.5),
    ("User learned Python at university", "fact", 0.4),
    ("User teaches a Python course on weekends", "context", 0.6),
    ("User's dog is called Pixel", "entity", 0.5),
]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[SyncHierarchicalMemory]:
    path = str(tmp_path_factory.mktemp("retriever") / "memory.db")
    engine = SyncHierarchicalMemory.create(db_path=path, embedder=embedder)
    for text, cat, imp in FACTS:
        engine.add(text, user_id="alice", category=cat, importance=imp)
    engine.add("User is debugging a Python import error", user_id="alice", session_id="s1", category="context")
    engine.add("Bob likes Python too", user_id="bob")
    yield engine
    engine.close()


class TestHeadroomRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _engine(self, populated: SyncHierarchicalMemory) -> None:
        self._memory = populated

    @property
    def retriever_constructor(self) -> type[HeadroomMemoryRetriever]:
        return HeadroomMemoryRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": self._memory, "user_id": "alice"}

    @property
    def retriever_query_example(self) -> str:
        return "Which programming language does the user use?"


def test_documents_carry_id_and_memory_fields(populated: SyncHierarchicalMemory) -> None:
    docs = HeadroomMemoryRetriever(memory=populated, user_id="alice", k=2).invoke("favourite language")
    assert [d.page_content for d in docs][0] == "User's favourite language is Python"
    top = docs[0]
    assert top.id == top.metadata["id"] and populated.get(top.id) is not None  # type: ignore[arg-type]
    meta = top.metadata
    assert meta["category"] == "preference" and meta["importance"] >= 0.8
    assert meta["scope"] == "user" and meta["user_id"] == "alice" and meta["session_id"] is None
    assert 0 < meta["score"] <= 1 and meta["created_at"] and meta["valid_from"]
    assert meta["is_current"] is True


def test_scope_isolation_and_session_visibility(populated: SyncHierarchicalMemory) -> None:
    user_only = HeadroomMemoryRetriever(memory=populated, user_id="alice", k=10).invoke("Python")
    texts = {d.page_content for d in user_only}
    assert "Bob likes Python too" not in texts
    assert "User is debugging a Python import error" not in texts  # session memory hidden
    in_session = HeadroomMemoryRetriever(memory=populated, user_id="alice", session_id="s1", k=10)
    texts = {d.page_content for d in in_session.invoke("Python import error")}
    assert "User is debugging a Python import error" in texts
    assert "User's favourite language is Python" in texts  # user scope is visible from a session


@pytest.mark.parametrize("search_type", ["hybrid", "similarity", "keyword"])
def test_search_types_find_the_keyword_match(populated: SyncHierarchicalMemory, search_type: str) -> None:
    r = HeadroomMemoryRetriever(memory=populated, user_id="alice", search_type=search_type, k=1)  # type: ignore[arg-type]
    assert r.invoke("dog Pixel")[0].page_content == "User's dog is called Pixel"


def test_keyword_search_returns_only_keyword_hits_and_per_call_overrides(populated: SyncHierarchicalMemory) -> None:
    r = HeadroomMemoryRetriever(memory=populated, user_id="alice", search_type="keyword", k=10)
    assert [d.page_content for d in r.invoke("Pixel")] == ["User's dog is called Pixel"]
    docs = r.invoke("Python", categories=["fact"], k=5)
    assert docs and all(d.metadata["category"] == "fact" for d in docs)


async def test_async_matches_sync(populated: SyncHierarchicalMemory) -> None:
    r = HeadroomMemoryRetriever(memory=populated, user_id="alice", k=3)
    sync_docs: list[Document] = r.invoke("teaching Python")
    async_docs = await r.ainvoke("teaching Python")
    assert [d.id for d in async_docs] == [d.id for d in sync_docs]
