"""The in-memory matrix of a user's vectors (``chroma_index._UserVectors``): loading all
rows at once (whole-column writes) leaves the same state as writing them one at a time;
and a batch of writes for users not loaded in this process still finds their twins."""

from __future__ import annotations

import numpy as np
import pytest

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.storage.chroma_index import _UserVectors

ARRAYS = ("matrix", "alive", "current", "level", "prev", "next")


def _rows(count: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    ids = [f"m{i}" for i in range(count)]
    vecs = rng.normal(size=(count, 8)).astype(np.float32)
    sessions = ["", "s1", "s2"]
    metas = [
        {
            "session_id": sessions[i % 3],
            "agent_id": "a" if i % 4 == 0 and i % 3 else "",
            "turn_id": "t" if i % 8 == 0 and i % 3 else "",
            "category": ("fact", "preference")[i % 2],
            "is_current": i % 5 != 0,
            "valid_from": 1000.0 + 60 * i + (7200 if i == 10 else 0),  # a pause after row 9
        }
        for i in range(count)
    ]
    return ids, vecs, metas


def _state(u: _UserVectors) -> dict:
    n = u.n
    out = {name: getattr(u, name)[:n].copy() for name in ARRAYS}
    out.update({f"col_{k}": v[:n].copy() for k, v in u.cols.items()})
    out.update(ids=list(u.ids), row=dict(u.row), codes=dict(u.codes), live=u.live, n=n)
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("count", [1, 2, 25])
def test_a_load_at_once_equals_one_row_at_a_time(count):
    ids, vecs, metas = _rows(count)
    whole = _UserVectors(8, 1, capacity=4)
    whole.put(ids, vecs, metas)
    single = _UserVectors(8, 1, capacity=4)
    for n in range(count):
        single.put(ids[n : n + 1], vecs[n : n + 1], metas[n : n + 1])
    _assert_same(_state(whole), _state(single))
    if count == 25:  # the rows are linked into conversations, and the pause breaks one
        assert whole.prev[12] == 9 and whole.next[9] == 12  # same scope, 3 minutes apart
        assert whole.prev[7] == 1  # row 4 between them is another agent's
        assert whole.prev[10] == -1  # two hours after row 7


def test_a_batch_with_a_known_or_repeated_id_overwrites_in_place():
    ids, vecs, metas = _rows(6)
    u = _UserVectors(8, 1)
    u.put(ids[:4], vecs[:4], metas[:4])
    newer = vecs[2] * 2
    u.put(
        [ids[2], ids[4], ids[4]],
        np.stack([newer, vecs[4], vecs[5]]),
        [metas[2], metas[4], metas[5]],
    )
    assert u.n == 5 and u.live == 5 and u.ids == ids[:5]
    np.testing.assert_array_equal(u.matrix[u.row[ids[2]]], newer)
    np.testing.assert_array_equal(u.matrix[u.row[ids[4]]], vecs[5])  # the last write wins


def test_a_batch_for_users_not_loaded_yet_still_finds_their_twins(db_path, embedder):
    config = MemoryConfig(db_path=db_path)
    with SyncHierarchicalMemory.create(config, embedder=embedder) as m:
        blue = m.add("The user's favourite colour is dark blue", user_id="ann")
        cats = m.add("Lives in Berlin with two cats", user_id="bob")
    # a new process: no user's vectors are in memory when the batch arrives
    with SyncHierarchicalMemory.create(config, embedder=embedder) as m:
        assert not m.vector_index._cache
        out = m.add_many(
            [
                {"content": "The user's favorite color is dark blue", "user_id": "ann"},
                {"content": "Lives in Berlin with 2 cats", "user_id": "bob"},
                {"content": "Lives in Berlin with 2 cats", "user_id": "cy"},  # another user
            ]
        )
        assert [r.id for r in out[:2]] == [blue.id, cats.id]
        assert out[2].id not in (blue.id, cats.id) and out[2].user_id == "cy"
        assert m.stats().total == 3


def test_a_batch_whose_embedding_fails_writes_nothing(db_path, embedder):
    class Broken:
        name = embedder.name
        dimension = embedder.dimension

        def embed_documents(self, texts):
            raise RuntimeError("embedding service down")

        def embed_query(self, text):
            return embedder.embed_query(text)

    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        m.add("Seeds the store", user_id="ann")
    with SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=Broken()) as m:
        with pytest.raises(RuntimeError, match="embedding service down"):
            m.add_many([{"content": f"fact {i}", "user_id": "ann"} for i in range(3)])
        assert m.stats().total == 1
