"""Property tests: no API returns one user's memory to another user, or one session's memory
to another session of the same user (user-level memories are visible to all its sessions).

Every memory's text carries its owner tag (``own-u1-s2``, ``own-u1-user``) and shares its
other words with every other memory, so a leak would rank well if filters failed.
Covered: engine search (hybrid, vector, text), text_search, query, get_all, export_jsonl,
the LangChain retriever, store and chat history, the LlamaIndex retriever and memory, and
what the OpenAI wrapper injects into the request the model receives.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.models import MemoryFilter

USERS = ["u0", "u1", "u2"]
SESSIONS = ["s0", "s1"]
WORDS = ["garden", "python", "coffee", "travel", "music", "budget", "doctor", "movie"]
TAG = re.compile(r"own-(u\d)-(s\d|user)")
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
tried: dict[str, int] = {}


def allowed(user: str, session: str | None) -> set[tuple[str, str]]:
    ok = {(user, "user")}
    ok |= {(user, s) for s in SESSIONS} if session is None else {(user, session)}
    return ok


def owners(text: str) -> set[tuple[str, str]]:
    return set(TAG.findall(text))


@pytest.fixture(scope="module")
def grid(tmp_path_factory, embedder):
    path = str(tmp_path_factory.mktemp("iso") / "iso.db")
    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=path, bubbling=False),
                                           embedder=embedder)
    items = []
    for u in USERS:
        for n, w in enumerate(WORDS):
            items.append({"content": f"{w} and {WORDS[n - 1]} notes own-{u}-user", "user_id": u})
            for s in SESSIONS:
                items.append({"content": f"{w} and {WORDS[n - 2]} notes own-{u}-{s}",
                              "user_id": u, "session_id": s})
    engine.add_many(items, dedup=False)
    yield engine
    engine.close()


def _check(api: str, user: str, session: str | None, texts: list[str]) -> None:
    tried[api] = tried.get(api, 0) + 1
    seen = set().union(*(owners(t) for t in texts)) if texts else set()
    leak = seen - allowed(user, session)
    assert not leak, f"{api} for {user}/{session} returned memories of {sorted(leak)}"


queries = st.one_of(
    st.lists(st.sampled_from(WORDS + ["notes", "own", "u0", "u1", "s0", "user"]), min_size=1,
             max_size=4).map(" ".join),
    st.text(max_size=40),
)
users = st.sampled_from(USERS)
sessions = st.sampled_from([None, *SESSIONS])


@SETTINGS
@given(q=queries, user=users, session=sessions,
       mode=st.sampled_from(["hybrid", "vector", "text"]), superseded=st.booleans())
def test_engine_search_never_crosses_scopes(grid, q, user, session, mode, superseded):
    hits = grid.search(q, user_id=user, session_id=session, mode=mode, top_k=50,
                       include_superseded=superseded)
    _check(f"search:{mode}", user, session, [h.content for h in hits])
    hits = grid.text_search(q, user_id=user, session_id=session, top_k=50)
    _check("text_search", user, session, [h.content for h in hits])


@SETTINGS
@given(user=users, session=sessions, all_scopes=st.booleans())
def test_query_get_all_export_never_cross(grid, user, session, all_scopes):
    got = grid.query(MemoryFilter(user_id=user, session_id=session,
                                  all_scopes=all_scopes and session is None))
    _check("query", user, session, [r.content for r in got])
    got = grid.get_all(user_id=user, session_id=session)
    _check("get_all", user, session, [r.content for r in got])
    buf = io.StringIO()
    grid.export_jsonl(buf, user_id=user)
    _check("export_jsonl", user, None, [json.loads(line)["content"] for line in buf.getvalue().splitlines()])


@SETTINGS
@given(q=queries, user=users, session=sessions,
       kind=st.sampled_from(["hybrid", "similarity", "keyword"]))
def test_langchain_retriever_never_crosses(grid, q, user, session, kind):
    from headroom_integrations.langchain import HeadroomMemoryRetriever

    r = HeadroomMemoryRetriever(memory=grid, user_id=user, session_id=session, search_type=kind, k=50)
    _check(f"langchain.retriever:{kind}", user, session, [d.page_content for d in r.invoke(q)])


@SETTINGS
@given(q=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join), user=users,
       session=sessions)
def test_langchain_store_never_crosses(grid, q, user, session):
    from headroom_integrations.langchain import HeadroomStore

    store = HeadroomStore(memory=grid)
    ns = ("memories", user) if session is None else ("memories", user, session)
    items = store.search(ns, query=q, limit=50)
    texts = [json.dumps(i.value) for i in items]
    # a session namespace may see its user-level memories; a user namespace sees all sessions
    _check("langchain.store.search", user, session, texts)


@SETTINGS
@given(q=queries, user=users, session=sessions, mode=st.sampled_from(["hybrid", "vector", "text"]))
def test_llama_index_retriever_never_crosses(grid, q, user, session, mode):
    from headroom_integrations.llama_index import HeadroomRetriever

    r = HeadroomRetriever(grid, user_id=user, session_id=session, top_k=50, mode=mode)
    _check(f"llama_index.retriever:{mode}", user, session,
           [n.node.get_content() for n in r.retrieve(q or "x")])


@SETTINGS
@given(q=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join), user=users,
       session=st.sampled_from(SESSIONS))
def test_llama_index_memory_and_histories_never_cross(grid, q, user, session):
    from langchain_core.messages import HumanMessage
    from llama_index.core.llms import ChatMessage

    from headroom_integrations.langchain import HeadroomChatMessageHistory
    from headroom_integrations.llama_index import HeadroomMemory

    mem = HeadroomMemory(engine=grid, user_id=user, session_id=session)
    if not mem.get_all():
        mem.put(ChatMessage(role="user", content=f"chat line own-{user}-{session}"))
    out = mem.get(input=q)
    _check("llama_index.memory.get", user, session, [str(m.content) for m in out])
    _check("llama_index.memory.get_all", user, session, [str(m.content) for m in mem.get_all()])
    # the same session id as the LlamaIndex memory: each framework reads only its own entries
    hist = HeadroomChatMessageHistory(session, user_id=user, memory=grid)
    if not hist.messages:
        hist.add_messages([HumanMessage(f"history own-{user}-{session}")])
    _check("langchain.history", user, session, [str(m.content) for m in hist.messages])


@SETTINGS
@given(q=queries, user=users, session=sessions, placement=st.sampled_from(["system", "user"]))
def test_openai_wrapper_injects_only_visible_memories(grid, q, user, session, placement):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "openai"))
    from oai_fakes import FakeLLM

    from headroom_integrations import with_memory

    fake = FakeLLM(["Sure."])
    client = with_memory(fake.client(), user_id=user, session_id=session, memory=grid,
                         placement=placement, top_k=10, min_similarity=-1.0)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
    sent = json.dumps(fake.last["messages"])
    bad = owners(sent) - allowed(user, session)
    tried["openai.with_memory"] = tried.get("openai.with_memory", 0) + 1
    assert not bad, f"{user}/{session} was shown {sorted(bad)}"


def test_isolation_figures(record_property):
    """Runs last in this module: prints how many generated cases each API was checked on."""
    print(f"[isolation] {json.dumps(tried)}")
    record_property("isolation_cases", json.dumps(tried))
    assert sum(tried.values()) > 0
