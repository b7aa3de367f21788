"""Where the slow searches of one 100k-memory user spend their time (a diagnostic, session 3).

    python -m bench.latency_tail

Builds the ``bench.latency`` 100k single-user store (same texts, seed and vector shortcut),
embeds 400 queries first (so the query embedding is out of the picture), then times each
search and, inside it, the vector index query, the FTS5 search, the SQLite row fetch and
the access-tracking write. Prints p50 / p95 / max per part and the parts of the slowest
searches. Takes about 2 minutes; writes nothing.
"""
from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import CACHE_DIR, embedder_slug
from .latency import DocVectorCache, build_store, make_queries, make_texts

N, SEED, EMBED_LIMIT, QUERIES = 100_000, 1234, 10_000, 400


def main() -> None:
    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    real = FastEmbedEmbedder()
    texts = make_texts(N, SEED)
    cache = DocVectorCache(real, texts, CACHE_DIR / f"latency_vectors-{embedder_slug(real)}_{SEED}_{N}.npy")
    cache.ensure(N, texts, EMBED_LIMIT)
    tmp = Path(tempfile.mkdtemp(prefix="latency-tail-"))
    eng = build_store(tmp / "m.db", N, ["u"], texts, cache, desc="build 100000 single")
    eng.embedder = real
    gc.collect()
    parts: dict[str, list[float]] = {}

    def timed(obj: Any, name: str, key: str) -> None:
        f = getattr(obj, name)

        def g(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            r = f(*a, **k)
            parts.setdefault(key, []).append(time.perf_counter() - t)
            return r
        setattr(obj, name, g)

    timed(eng.vector_index, "query", "vector index")
    timed(eng.text_index, "search", "FTS5 search")
    timed(eng.store, "get_many", "row fetch")
    timed(eng.store, "record_access", "access tracking")
    queries = make_queries(QUERIES, SEED)
    eng.search("warm up", user_id="u")
    for q in queries:
        eng.embed_query(q)  # the embedding is not what is looked at here
    parts.clear()
    total = []
    for q in queries:
        t = time.perf_counter()
        eng.search(q, user_id="u", top_k=5)
        total.append(time.perf_counter() - t)
    tot = np.array(total) * 1000
    slow = np.argsort(tot)[-8:]
    print(f"search total p50 {np.percentile(tot, 50):.2f} p95 {np.percentile(tot, 95):.2f} ms; "
          f"slowest: {' '.join(f'{tot[i]:.1f}' for i in slow)}")
    for key, vals in parts.items():
        v = np.array(vals) * 1000
        print(f"{key:16s} p50 {np.percentile(v, 50):.2f} p95 {np.percentile(v, 95):.2f} "
              f"max {v.max():.2f}; in the slowest: {' '.join(f'{v[i]:.1f}' for i in slow)}")
    eng.close()


if __name__ == "__main__":
    main()
