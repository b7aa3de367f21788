"""HeadroomRetriever: memories as NodeWithScore, sync and native async."""

from __future__ import annotations

from llama_index.core.base.base_retriever import BaseRetriever

from headroom_integrations.llama_index import HeadroomRetriever


async def test_retrieves_relevant_memories_as_nodes(memory) -> None:
    rust = memory.add("User is learning Rust and loves the borrow checker", user_id="al",
                      category="preference", importance=0.7)
    memory.add("User's cat is called Miso", user_id="al", category="entity")
    memory.add("User is learning Rust too", user_id="someone-else")
    retriever = HeadroomRetriever(memory, user_id="al", top_k=2)

    nodes = retriever.retrieve("Which programming language am I learning?")
    assert nodes[0].node.node_id == rust.id
    assert nodes[0].node.get_content() == rust.content
    meta = nodes[0].node.metadata
    assert meta["category"] == "preference" and meta["importance"] == 0.7 and meta["scope"] == "user"
    assert meta["created_at"].startswith(rust.created_at.date().isoformat())
    assert nodes[0].score is not None and nodes[0].score >= (nodes[-1].score or 0)
    assert all(n.node.metadata["user_id"] == "al" for n in nodes)
    assert "user_id" not in nodes[0].node.get_content(metadata_mode="llm")

    anodes = await retriever.aretrieve("Which programming language am I learning?")
    assert [n.node.node_id for n in anodes] == [n.node.node_id for n in nodes]
    assert HeadroomRetriever._aretrieve is not BaseRetriever._aretrieve


def test_scope_and_category_filters(memory) -> None:
    memory.add("User prefers tea", user_id="b", category="preference")
    memory.add("Decided to use Postgres for this session's project", user_id="b", session_id="s1",
               category="decision")
    in_s1 = HeadroomRetriever(memory, user_id="b", session_id="s1", top_k=5).retrieve("database choice")
    in_s2 = HeadroomRetriever(memory, user_id="b", session_id="s2", top_k=5).retrieve("database choice")
    assert any("Postgres" in n.node.get_content() for n in in_s1)
    assert not any("Postgres" in n.node.get_content() for n in in_s2)
    only_pref = HeadroomRetriever(memory, user_id="b", session_id="s1", categories=["preference"]).retrieve("tea")
    assert [n.node.metadata["category"] for n in only_pref] == ["preference"]
