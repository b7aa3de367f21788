"""The search and scoping tests again, with vectors in a real `chroma run` server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory

from .test_scopes import (  # noqa: F401  (collected again with the server-backed fixture)
    scoped,
    test_levels_filter,
    test_search_sees_exactly_its_path,
    test_users_never_see_each_other,
)
from .test_search import (  # noqa: F401
    filled,
    test_hybrid_finds_the_right_memory_first,
    test_keyword_only_and_vector_only,
    test_min_similarity_and_categories,
)
from .test_versioning import test_search_hides_superseded_unless_asked  # noqa: F401

pytestmark = pytest.mark.chroma_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory) -> Iterator[tuple[str, int]]:
    exe = shutil.which("chroma", path=os.path.dirname(sys.executable)) or shutil.which("chroma")
    assert exe, "the chroma CLI ships with chromadb and must be on PATH"
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(Path(data) / "server.log", "w")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma server did not start: {(Path(data) / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def memory(chroma_server, tmp_path, embedder, request) -> Iterator[SyncHierarchicalMemory]:
    host, port = chroma_server
    config = MemoryConfig(
        db_path=str(tmp_path / "memory.db"),
        chroma_host=host,
        chroma_port=port,
        collection_name=f"test-{abs(hash(request.node.nodeid))}",
    )
    engine = SyncHierarchicalMemory.create(config, embedder=embedder)
    assert engine.config.resolved_vector_path() is None
    assert not (tmp_path / "memory.db-vectors").exists()
    yield engine
    engine.close()


def test_vectors_really_live_on_the_server(memory, chroma_server):
    memory.add("Server-side vector", user_id="u")
    memory.flush()  # the server is written by the writer thread; flush waits for it
    import chromadb

    client = chromadb.HttpClient(host=chroma_server[0], port=chroma_server[1])
    assert client.get_collection(memory.config.collection_name).count() == 1
