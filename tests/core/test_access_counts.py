"""Access counts: a search counts one access per result, without a write on its own path.

The counts are written in the background (``core.access_log.AccessLog``); reads that return
records, ``flush()`` and ``close()`` write them first.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import datetime, timezone

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.core.access_log import AccessLog


def _stored_count(db_path: str, memory_id: str) -> tuple[int, str | None]:
    """What the SQLite file itself holds, read through a connection of its own."""
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute(
            "SELECT access_count, last_accessed FROM memories WHERE id = ?", (memory_id,)
        ).fetchone()
    finally:
        conn.close()
    return int(row[0]), row[1]


def test_results_show_every_access_and_reads_see_them(memory):
    rec = memory.add("Drinks oat milk in coffee", user_id="u")
    first = memory.search("coffee", user_id="u")[0].memory
    second = memory.search("oat milk", user_id="u")[0].memory
    assert (first.access_count, second.access_count) == (1, 2)
    got = memory.get(rec.id)
    assert got.access_count == 2 and got.last_accessed == second.last_accessed
    assert memory.get_history(rec.id)[0].access_count == 2
    assert memory.get_all(user_id="u")[0].access_count == 2


def test_counts_reach_the_file_in_the_background(memory, db_path):
    memory._accesses.delay = 0.05
    rec = memory.add("Runs a marathon every spring", user_id="u")
    memory.search("marathon", user_id="u")
    deadline = time.monotonic() + 5
    while _stored_count(db_path, rec.id)[0] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    count, last = _stored_count(db_path, rec.id)
    assert count == 1 and last is not None


def test_close_writes_what_is_owed(db_path, embedder):
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        rec = m.add("Keeps bees on the roof", user_id="u")
        for _ in range(3):
            m.search("bees", user_id="u")
    assert _stored_count(db_path, rec.id)[0] == 3
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        assert m.get(rec.id).access_count == 3


def test_a_search_is_not_held_up_by_another_process_writing(db_path, embedder):
    """Another connection holds the write lock: the search still answers at once (it used to
    wait for the lock to write its access counts), and the counts follow once it is free."""
    config = MemoryConfig(db_path=db_path, busy_timeout_ms=10_000)
    with SyncHierarchicalMemory.create(config, embedder=embedder) as m:
        rec = m.add("Plays chess on Sundays", user_id="u")
        m.flush()
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            start = time.monotonic()
            hits = m.search("chess", user_id="u")
            took = time.monotonic() - start
        finally:
            other.execute("COMMIT")
            other.close()
        assert [h.memory.id for h in hits] == [rec.id]
        assert took < 5  # the writer's lock was held for the whole search: no wait on it
        m.flush()
        assert _stored_count(db_path, rec.id)[0] == 1


def test_track_access_off_counts_nothing(db_path, embedder):
    config = MemoryConfig(db_path=db_path, track_access=False)
    with SyncHierarchicalMemory.create(config, embedder=embedder) as m:
        rec = m.add("Reads poetry at night", user_id="u")
        assert m.search("poetry", user_id="u")[0].memory.access_count == 0
        m.flush()
        assert m.get(rec.id).access_count == 0


def test_a_failed_write_is_logged_not_raised(caplog):
    def broken(owed):
        raise sqlite3.OperationalError("disk I/O error")

    log = AccessLog(broken, delay=60)
    log.note(["a", "b"], datetime.now(timezone.utc))
    log.note(["a"], datetime.now(timezone.utc))
    assert (log.owed("a"), log.owed("b"), log.owed("c")) == (2, 1, 0)
    with caplog.at_level(logging.WARNING, logger="headroom_integrations.core.access_log"):
        log.flush()
    assert "could not write 2 access counts" in caplog.text
    assert log.owed("a") == 0
    log.close()


def test_counts_are_merged_per_memory_before_writing():
    written = []
    log = AccessLog(lambda owed: written.append(dict(owed)), delay=60)
    t1 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    t2 = datetime(2026, 1, 2, tzinfo=timezone.utc)
    log.note(["a", "b"], t1)
    log.note(["a"], t2)
    log.close()
    assert written == [{"a": (2, t2), "b": (1, t1)}]
    log.note(["a"], t2)  # after close: nothing is counted or written
    log.flush()
    assert len(written) == 1


def test_a_script_that_never_closes_its_store_keeps_its_counts(db_path, tmp_path):
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from headroom_integrations import SyncHierarchicalMemory
            m = SyncHierarchicalMemory.create(db_path={db_path!r})
            rec = m.add("Collects stamps from Iceland", user_id="u")
            m.search("stamps", user_id="u")
            print(rec.id)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=True
    )
    assert _stored_count(db_path, done.stdout.strip())[0] == 1


def test_a_store_without_batched_writes_gets_each_search_written_at_once(db_path, embedder):
    from headroom_integrations.storage.factory import build_components

    class OneByOne:
        """The SQLite store without ``record_accesses`` (an older or custom store)."""

        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            if name == "record_accesses":
                raise AttributeError(name)
            return getattr(self._inner, name)

    config = MemoryConfig(db_path=db_path)
    parts = build_components(config, embedder=embedder)
    parts["store"] = OneByOne(parts["store"])
    m = SyncHierarchicalMemory(config, **parts)
    try:
        assert m._accesses is None
        rec = m.add("Bakes sourdough on Saturdays", user_id="u")
        assert m.search("sourdough", user_id="u")[0].memory.access_count == 1
        assert _stored_count(db_path, rec.id)[0] == 1  # no flush needed
    finally:
        m.close()
