"""The SQLite file is read through memory mapping (``MemoryConfig.sqlite_mmap_mb``), and 0
turns it off (for file systems where mapping is unsafe, such as network mounts)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory


@pytest.mark.parametrize(("mb", "expected"), [(None, 1024 << 20), (0, 0), (64, 64 << 20)])
def test_mapping_is_set_on_the_connection_and_search_works(db_path, embedder, mb, expected):
    config = MemoryConfig(db_path=db_path) if mb is None else MemoryConfig(
        db_path=db_path, sqlite_mmap_mb=mb
    )
    with SyncHierarchicalMemory.create(config, embedder=embedder) as m:
        assert m.store.db.fetchone("PRAGMA mmap_size")[0] == expected
        m.add("Grows tomatoes on the balcony", user_id="u")
        assert [h.content for h in m.search("tomatoes", user_id="u")] == [
            "Grows tomatoes on the balcony"
        ]


def test_a_negative_size_is_refused():
    with pytest.raises(ValidationError, match="sqlite_mmap_mb"):
        MemoryConfig(db_path="x.db", sqlite_mmap_mb=-1)
