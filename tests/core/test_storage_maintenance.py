"""SQLite as the source of truth: drift detection, repair, reindex, export/import, errors."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest

from headroom_integrations import (
    EmbedderMismatchError,
    InvalidInputError,
    MemoryConfig,
    MemoryFilter,
    StoreClosedError,
    StoreCorruptedError,
    SyncHierarchicalMemory,
)


def _fill(memory):
    a = memory.add("Has two kids, Ana and Leo", user_id="u", category="fact", importance=0.7)
    b = memory.supersede(a.id, "Has three kids, Ana, Leo and Mia")
    memory.add("Planning a trip to Lisbon", user_id="u", session_id="s", category="context")
    memory.add("Likes jazz", user_id="v", category="preference")
    return b


def test_everything_lives_beside_db_path(tmp_path, embedder):
    path = tmp_path / "sub" / "memory.db"
    with SyncHierarchicalMemory.create(db_path=str(path), embedder=embedder) as m:
        m.add("x marks the spot", user_id="u")
    names = sorted(p.name for p in path.parent.iterdir())
    assert "memory.db" in names and "memory.db-vectors" in names


def test_drift_is_repaired_on_open(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        current = _fill(m)
        # simulate a crash between the SQLite commit and the Chroma write, and an orphan vector
        m.vector_index.delete([current.id])
        m.text_index.delete([current.id])
        assert m.check_consistency().ok is False
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        assert m.check_consistency().ok
        assert m.search("children", user_id="u")[0].id == current.id
        assert m.text_search("Mia", user_id="u")[0].id == current.id


def test_unsynced_write_is_replayed_on_open(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        rec = m.add("Office is in building 7", user_id="u")
        m.vector_index.delete([rec.id])
        m.store.mark_unsynced([rec.id])
        # counts now differ AND the journal says unsynced
        report = m.check_consistency(full=False)
        assert rec.id in report.unsynced
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        assert m.store.unsynced_ids() == []
        assert m.search("where is the office", user_id="u", mode="vector")[0].id == rec.id


def test_reindex_rebuilds_both_indexes(memory):
    _fill(memory)
    memory.vector_index.reset()
    memory.text_index.reset()
    assert memory.search("kids", user_id="u") == []
    seen = []
    assert memory.reindex(progress=lambda done, total: seen.append((done, total))) == 4
    assert seen[-1] == (4, 4)
    assert memory.check_consistency().ok
    assert memory.search("kids", user_id="u")[0].content.startswith("Has three kids")


def test_other_embedder_is_refused_clearly_or_reindexed(db_path, embedder, hash_embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        _fill(m)
    with pytest.raises(EmbedderMismatchError, match="dimension 384.*dimension 64"):
        SyncHierarchicalMemory.create(db_path=db_path, embedder=hash_embedder)
    with SyncHierarchicalMemory.create(
        MemoryConfig(db_path=db_path, on_embedder_mismatch="reindex"), embedder=hash_embedder
    ) as m:
        assert m.store.get_meta("embedder") == hash_embedder.name
        assert m.stats().total == 4  # nothing lost
        assert m.search("three kids", user_id="u")[0].content.startswith("Has three kids")


def test_export_import_round_trips_every_field(memory, tmp_path, embedder):
    _fill(memory)
    memory.search("kids", user_id="u")  # bump access counters
    out = tmp_path / "dump.jsonl"
    assert memory.export_jsonl(str(out)) == 4
    before = {r.id: r.model_dump() for r in memory.store.iter_all()}
    with SyncHierarchicalMemory.create(db_path=str(tmp_path / "b.db"), embedder=embedder) as m2:
        assert m2.import_jsonl(str(out)) == 4
        after = {r.id: r.model_dump() for r in m2.store.iter_all()}
        assert after == before
        assert m2.check_consistency().ok
        assert m2.search("kids", user_id="u")[0].content.startswith("Has three kids")
        assert m2.import_jsonl(str(out)) == 0  # skip existing by default
        with pytest.raises(InvalidInputError, match="already exist"):
            m2.import_jsonl(str(out), on_conflict="error")
    buf = io.StringIO()
    assert memory.export_jsonl(buf, user_id="v") == 1
    assert json.loads(buf.getvalue())["content"] == "Likes jazz"


def test_bad_import_line_is_named_and_nothing_written(memory):
    good = '{"content": "ok", "user_id": "u"}\n'
    bad = '{"content": "ok", "user_id": "u", "importance": 7}\n'
    with pytest.raises(InvalidInputError, match="line 2"):
        memory.import_jsonl(io.StringIO(good + bad))
    assert memory.stats().total == 0


def test_clear_scope(memory):
    memory.add("user level", user_id="u")
    memory.add("session one", user_id="u", session_id="s1")
    memory.add("session one agent", user_id="u", session_id="s1", agent_id="a")
    memory.add("session two", user_id="u", session_id="s2")
    memory.add("other user", user_id="v")
    assert memory.clear(user_id="u", session_id="s1") == 2
    left = {m.content for m in memory.query(MemoryFilter(user_id="u", all_scopes=True))}
    assert left == {"user level", "session two"}
    assert memory.clear(user_id="u") == 2
    assert memory.stats().total == 1
    assert memory.check_consistency().ok


def test_stats(memory):
    _fill(memory)
    s = memory.stats()
    assert (s.total, s.current, s.superseded, s.users) == (4, 3, 1, 2)
    assert s.by_category["fact"] == 1 and s.by_category["context"] == 1
    assert s.by_scope_level == {"user": 2, "session": 1, "agent": 0, "turn": 0}
    assert memory.stats("v").total == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"content": ""}, "content is empty"),
        ({"content": "a\x00b"}, "NUL byte"),
        ({"content": "bad \ud800 surrogate"}, "not valid UTF-8"),
        ({"content": "x" * 20_001}, "limit is 20000"),
        ({"content": 5}, "must be a string"),
        ({"user_id": ""}, "user_id must not be empty"),
        ({"session_id": "s\x00"}, "session_id contains a NUL"),
        ({"importance": 1.5}, "importance must be from 0 to 1"),
        ({"importance": float("nan")}, "importance"),
        ({"category": "gossip"}, "unknown memory category"),
    ],
)
def test_bad_input_is_named_and_stores_nothing(memory, kwargs, message):
    args = {"content": "fine", "user_id": "u", **kwargs}
    content = args.pop("content")
    with pytest.raises(InvalidInputError, match=message):
        memory.add(content, **args)
    assert memory.stats().total == 0


def test_odd_ids_are_fine(memory):
    for uid in ["a/b", "x'; DROP TABLE memories;--", "emoji🙂", "sp ace", "%_", '"quoted"']:
        memory.add(f"note for {uid}", user_id=uid, session_id=uid)
        hits = memory.search("note", user_id=uid, session_id=uid)
        assert [h.content for h in hits] == [f"note for {uid}"]


def test_unknown_id(memory):
    assert memory.get("missing") is None
    assert memory.delete("missing") is False


def test_corrupted_database_file_is_named(tmp_path, embedder):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorruptedError, match="garbage.db"):
        SyncHierarchicalMemory.create(db_path=str(path), embedder=embedder)
    assert path.read_bytes() == b"this is not sqlite" * 100  # untouched


def test_truncated_database_file_is_named(tmp_path, embedder):
    path = tmp_path / "t.db"
    with SyncHierarchicalMemory.create(db_path=str(path), embedder=embedder) as m:
        for i in range(50):
            m.add(f"memory number {i} " + "pad " * 50, user_id="u", dedup=False)
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreCorruptedError):
        m2 = SyncHierarchicalMemory.create(db_path=str(path), embedder=embedder)
        m2.stats()
        m2.query(MemoryFilter(user_id="u"))


def test_closed_store_says_so(db_path, embedder):
    m = SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder)
    m.close()
    with pytest.raises(StoreClosedError):
        m.add("x", user_id="u")


def test_in_memory_stores_are_separate(embedder):
    a = SyncHierarchicalMemory.create(db_path=":memory:", embedder=embedder)
    b = SyncHierarchicalMemory.create(db_path=":memory:", embedder=embedder)
    a.add("only in a", user_id="u")
    assert b.search("only in a", user_id="u") == []
    assert a.search("only in a", user_id="u")[0].content == "only in a"
    a.close()
    b.close()
