"""The per-user vector matrices stay right when other writers change the store."""

from __future__ import annotations

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory


def test_a_second_writer_is_seen_by_the_first_readers_next_search(db_path, embedder):
    a = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    b = SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder)
    try:
        a.add("Plays the violin", user_id="u")
        assert [h.content for h in a.search("music", user_id="u", mode="vector")] == [
            "Plays the violin"
        ]
        b.add("Collects vinyl records of jazz music", user_id="u")  # another writer
        seen = {h.content for h in a.search("music", user_id="u", mode="vector", top_k=5)}
        assert seen == {"Plays the violin", "Collects vinyl records of jazz music"}
        old = b.search("violin", user_id="u", mode="text")[0]
        b.supersede(old.id, "Plays the cello")
        seen = {h.content for h in a.search("instrument", user_id="u", mode="vector", top_k=5)}
        assert "Plays the violin" not in seen and "Plays the cello" in seen
    finally:
        a.close()
        b.close()


def test_a_small_cache_evicts_and_reloads_without_losing_results(db_path, embedder):
    config = MemoryConfig(db_path=db_path, max_cached_vectors=3)
    with SyncHierarchicalMemory.create(config, embedder=embedder) as m:
        for user in ("u1", "u2", "u3"):
            m.add_many([{"content": f"{user} fact {i} about gardening", "user_id": user}
                        for i in range(2)], dedup=False)
        for _ in range(2):
            for user in ("u1", "u2", "u3"):
                hits = m.search("gardening", user_id=user, mode="vector", top_k=5)
                assert sorted(h.content for h in hits) == [f"{user} fact 0 about gardening",
                                                           f"{user} fact 1 about gardening"]
        cached = m.vector_index._cache
        assert sum(c.size for c in cached.values()) <= 3 or len(cached) == 1


def test_a_new_process_sees_vectors_after_reset_and_reindex(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as a:
        a.add("Speaks Portuguese", user_id="u")
        a.search("language", user_id="u")  # load the matrix
        with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as b:
            b.reindex()
        assert [h.content for h in a.search("language", user_id="u", mode="vector")] == [
            "Speaks Portuguese"
        ]


def test_a_store_without_sqlite_vector_rows_is_backfilled_from_chroma(db_path, embedder):
    import sqlite3

    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        m.add("Grows tomatoes on the balcony", user_id="u")
    con = sqlite3.connect(db_path)
    con.execute("DELETE FROM vector_rows")  # as a store written before the copy existed
    con.commit()
    con.close()
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        hits = m.search("vegetable garden", user_id="u", mode="vector")
        assert [h.content for h in hits] == ["Grows tomatoes on the balcony"]
        assert m.vector_index.rows.load("u") is not None


def test_first_search_reads_vectors_from_sqlite_not_chroma(db_path, embedder):
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        m.add("Runs marathons", user_id="u")
    with SyncHierarchicalMemory.create(db_path=db_path, embedder=embedder) as m:
        calls = []
        real = m.vector_index._col

        def spy(method, *args, **kwargs):
            calls.append(method)
            return real(method, *args, **kwargs)

        m.vector_index._col = spy
        assert [h.content for h in m.search("running", user_id="u", mode="vector")] == [
            "Runs marathons"]
        assert "get" not in calls  # the matrix came from SQLite in one read
