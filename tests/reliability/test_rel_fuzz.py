"""Hostile and bad input: fuzzed parser / stream stripper / search queries, odd ids, giant
queries, close() racing searches. (Empty/oversize/NUL content, corrupted and truncated files
and another embedding dimension are in tests/core/test_storage_maintenance.py.)"""

from __future__ import annotations

import json
import re
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.errors import (
    InvalidInputError,
    MemoryNotFoundError,
    StoreClosedError,
)
from headroom_integrations.core.models import MemoryFilter
from headroom_integrations.protocol import MemoryStreamStripper, parse_memory_blocks

FUZZ = settings(max_examples=200, deadline=None)
SLOW_FUZZ = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
counts: dict[str, int] = {}
OPEN_TAG = re.compile(r"<\s*memory\b[^>]*>", re.IGNORECASE)

pieces = st.sampled_from([
    "<memory>", "</memory>", "<MEMORY >", "< / memory>", "<mem", "ory>", "{", "}", "[", "]",
    '"content": "x"', "```json", "```", "\n", " ", "\x00", "\ud800", "</known_memories>",
    '{"memories": [{"content": "a", "importance": "high"}]}', "- item", "none", "\u202e",
])
texts = st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=25).map("".join)
FTS_SYNTAX = st.lists(st.sampled_from(
    ['"', "'", "AND", "OR", "NOT", "NEAR(", ")", "*", ":", "-", "^", "+", "col:", "{", "}",
     "\x00", "🙂", "ﬁ", "NEAR", "(", "a*b", "\\", "%", "_"]), max_size=12).map(" ".join)


def _n(name: str) -> None:
    counts[name] = counts.get(name, 0) + 1


@FUZZ
@given(text=texts)
def test_parser_never_raises_and_hides_every_block(text):
    _n("parser")
    res = parse_memory_blocks(text)
    assert isinstance(res.clean_text, str)
    for m in res.memories:
        assert m.content and "\x00" not in m.content
        assert not OPEN_TAG.search(m.content)  # stored text can never open a block


@FUZZ
@given(text=texts, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_stream_stripper_equals_parser_for_any_chunking(text, cuts):
    _n("stripper")
    points = sorted({c % (len(text) + 1) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    s = MemoryStreamStripper()
    shown = "".join(s.feed(c) for c in chunks) + s.finish()
    ref = parse_memory_blocks(text)
    assert shown == ref.clean_text
    assert s.result.memories == ref.memories


@pytest.fixture(scope="module")
def store(tmp_path_factory, embedder):
    path = str(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=path), embedder=embedder)
    engine.add_many([{"content": f"fact {i}: user likes {w}", "user_id": "u"}
                     for i, w in enumerate(["tea", "jazz", "NEAR OR AND", '"quotes"', "col:x"])])
    yield engine
    engine.close()


@SLOW_FUZZ
@given(q=st.one_of(st.text(max_size=60), FTS_SYNTAX),
       mode=st.sampled_from(["hybrid", "vector", "text"]))
def test_any_unicode_query_is_a_valid_query(store, q, mode):
    _n("search_query")
    before = store.stats().total
    hits = store.search(q, user_id="u", mode=mode, top_k=10)
    assert all(h.memory.user_id == "u" for h in hits)
    assert store.stats().total == before  # a query never writes memories


@SLOW_FUZZ
@given(uid=st.text(min_size=1, max_size=20), sid=st.one_of(st.none(), st.text(min_size=1, max_size=20)))
def test_odd_scope_ids_round_trip_or_are_refused_clearly(store, uid, sid):
    _n("scope_ids")
    try:
        rec = store.add(f"odd scope note {uid!r}", user_id=uid, session_id=sid)
    except InvalidInputError as exc:
        assert "\x00" in uid + (sid or "") or "user_id" in str(exc) or "session_id" in str(exc)
        return
    assert store.get(rec.id).user_id == uid
    assert rec.id in {h.memory.id for h in store.text_search("odd scope note", user_id=uid, session_id=sid, top_k=50)}
    assert store.delete(rec.id)


@pytest.mark.parametrize("bad", ["a\x00b", "x" * 300])
def test_bad_scope_ids_named_in_search_query_delete_supersede(store, bad):
    for call in (
        lambda: store.search("tea", user_id=bad),
        lambda: store.search("tea", user_id="u", session_id=bad),
        lambda: store.text_search("tea", user_id="u", agent_id=bad),
        lambda: store.query(MemoryFilter(user_id=bad)),
        lambda: store.clear(user_id=bad),
    ):
        with pytest.raises(InvalidInputError):
            call()
    # a malformed memory id is named as such (an unknown but well-formed one is just absent)
    with pytest.raises(InvalidInputError, match="memory_id"):
        store.delete(bad)
    with pytest.raises(InvalidInputError, match="old_memory_id"):
        store.supersede(bad, "new text")
    assert store.delete("well-formed-but-unknown") is False
    with pytest.raises(MemoryNotFoundError):
        store.supersede("well-formed-but-unknown", "new text")
    assert store.stats(user_id="u").total >= 5


def test_surrogate_in_query_is_handled(store):
    store.search("likes \ud800 tea", user_id="u")  # vector and hybrid modes


@pytest.mark.parametrize("op", ["get", "delete", "supersede", "export"])
def test_surrogate_ids_are_named(store, op):
    bad = "id\ud800"
    import io

    calls = {
        "get": lambda: store.get(bad),
        "delete": lambda: store.delete(bad),
        "supersede": lambda: store.supersede(bad, "new"),
        "export": lambda: store.export_jsonl(io.StringIO(), user_id=bad),
    }
    try:
        calls[op]()
    except (InvalidInputError, MemoryNotFoundError):
        return
    except UnicodeEncodeError:
        raise
    # None / False (treated as unknown) is also acceptable


def test_query_validates_every_scope_id(store):
    with pytest.raises(InvalidInputError):
        store.query(MemoryFilter(user_id="u", session_id="s\x00"))


def test_giant_queries_are_bounded(store, record_property):
    import time

    figures = {}
    for name, q, mode in (("1MB_words_hybrid", "word " * 200_000, "hybrid"),
                          ("1MB_token_text", "zz" * 500_000, "text"),
                          ("100k_fts_ops", "NEAR( OR AND * " * 6_000, "text")):
        t0 = time.perf_counter()
        store.search(q, user_id="u", mode=mode)
        figures[name] = round(time.perf_counter() - t0, 3)
    print(f"[giant_queries_s] {json.dumps(figures)}")
    record_property("giant_queries_s", json.dumps(figures))
    assert max(figures.values()) < 20


def test_close_racing_searches_fails_cleanly(tmp_path, embedder, record_property):
    engine = SyncHierarchicalMemory.create(db_path=str(tmp_path / "c.db"), embedder=embedder)
    engine.add_many([{"content": f"race {i}", "user_id": "u"} for i in range(20)])
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    go = threading.Event()

    def searcher() -> None:
        go.wait()
        for i in range(30):
            try:
                engine.search(f"race {i}", user_id="u")
                key = "ok"
            except StoreClosedError:
                key = "StoreClosedError"
            except Exception as exc:  # noqa: BLE001 - counted
                key = f"{type(exc).__name__}: {exc}"[:120]
            with lock:
                outcomes[key] = outcomes.get(key, 0) + 1

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    import time

    time.sleep(0.15)  # let searches run, then close under them
    engine.close()
    for t in threads:
        t.join()
    print(f"[close_race] {json.dumps(outcomes)}")
    record_property("close_race", json.dumps(outcomes))
    unexpected = {k: v for k, v in outcomes.items() if k not in ("ok", "StoreClosedError")}
    assert not unexpected, unexpected
    reopened = SyncHierarchicalMemory.create(db_path=str(tmp_path / "c.db"), embedder=embedder)
    assert reopened.stats().total == 20  # nothing stored was lost
    reopened.close()


def test_fuzz_figures(record_property):
    print(f"[fuzz_inputs] {json.dumps(counts)}")
    record_property("fuzz_inputs", json.dumps(counts))
