"""Latency and footprint of the engine at 1k / 10k / 100k memories.

    nice -n 10 python -m bench.latency                    # 1000,10000,100000
    python -m bench.latency --sizes 1000,10000 --profile-sizes 10000
    python -m bench.latency --sizes 100000 --profile-sizes 100000 --merge   # add 100k rows

``--profile-sizes`` runs 200 fresh searches and 50 fresh adds under pyinstrument after the
timed part (bench/results/profile_*.txt); ``--merge`` keeps the other sizes' rows of an
existing latency.json. Stores past ``--embed-limit`` (default 10,000) reuse embedded
vectors plus noise for the build only (said in latency.md).

For each size N and each layout (``spread``: N memories over 1,000 users; ``single``: all in
one user) a fresh on-disk store (SQLite + FTS5 + embedded Chroma) is built from
reproducible synthetic memories (templates, fixed seed), then measured:

- ``search`` p50/p95 (hybrid, top_k=5) over distinct never-seen queries, query embedding
  included: ``cold`` = the first search of a user in the process (it loads that user's
  vectors; spread: one per distinct user, single: the one first search), ``steady`` (the
  ``search_p50_ms`` keys) = users already searched once; the steady queries again = query-embedding cache hits, reported apart; text-only
  and vector-only p50 for comparison;
- one ``add`` (embedding, dedup check, SQLite, FTS5, the in-memory matrix), p50/p95/p99/max,
  timed in a tight loop of adds; the Chroma write is queued to the engine's writer thread,
  which runs during the loop (embedded Chroma holds the GIL for a whole call, so its batches
  show up in the slower adds); ``add loop /s`` = adds per second of that loop including a
  final ``flush()`` (every vector in Chroma);
- batch ingest rate: ``add_many`` of fresh memories (batches of 100, embedding included),
  timed until ``flush()`` returns (every vector in Chroma);
- injection: search + ``protocol.format_memories`` within a 400-token budget;
- process RSS / USS after the build and bytes on disk per memory.

Building the stores embeds each generated text once: vectors are kept in a memory-mapped
file under bench/.cache and reused by later stores of the same run (the build is not what is
timed; the add / ingest figures always embed fresh text with the real embedder).
Writes bench/results/latency.json, latency.md, latency.png.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import CACHE_DIR, RESULTS_DIR, embedder_slug, machine_info, percentile, write_json

N_USERS_SPREAD = 1000
NOTES = RESULTS_DIR / "latency_notes.md"  # hand-written notes, appended to latency.md

NAMES = ["Alice", "Bob", "Priya", "Diego", "Mei", "Olu", "Sven", "Fatima", "Kenji", "Lucia",
         "Omar", "Hana", "Jonas", "Amara", "Tariq", "Ingrid", "Ravi", "Chloe", "Mateo", "Yara"]
THINGS = ["Go", "Rust", "Python", "TypeScript", "PostgreSQL", "SQLite", "Kubernetes", "Terraform",
          "dark mode", "vim", "VS Code", "tabs", "spaces", "pytest", "Docker", "React", "Svelte",
          "jazz", "sourdough", "climbing", "chess", "running", "cycling", "sushi", "green tea",
          "espresso", "oat milk", "the Berlin office", "remote work", "standups", "pair programming",
          "a standing desk", "mechanical keyboards", "podcasts", "sci-fi novels", "hiking", "yoga"]
PLACES = ["Lisbon", "Nairobi", "Osaka", "Toronto", "Berlin", "Austin", "Seoul", "Lagos", "Oslo",
          "Melbourne", "Bogota", "Krakow", "Pune", "Dublin", "Marseille", "Hanoi"]
PROJECTS = ["billing service", "mobile app", "data pipeline", "search ranking", "auth rewrite",
            "onboarding flow", "metrics dashboard", "payments API", "ML feature store",
            "design system", "CI migration", "support chatbot", "recommendation engine"]
WHEN = ["on Monday", "last week", "in March", "yesterday", "next Friday", "in the summer",
        "after the offsite", "before the launch", "every morning", "on weekends", "in Q3"]
TEMPLATES = [
    "{name} prefers {thing} over {thing2} for most work.",
    "{name} is moving to {place} {when}.",
    "The {project} deadline was moved to {when}; {name} owns the rollout.",
    "{name} said the {project} is blocked on a {thing} upgrade.",
    "User likes {thing} and dislikes {thing2}.",
    "{name} visited {place} {when} and loved the food.",
    "Remember that {name} is allergic to {food}.",
    "{name} asked to get a reminder about the {project} review {when}.",
    "The team decided to use {thing} for the {project}.",
    "{name}'s favourite way to relax is {thing}.",
    "{name} mentioned their sister lives in {place}.",
    "For the {project}, {name} wants weekly status updates {when}.",
    "{name} switched from {thing2} to {thing} {when} and is happier now.",
    "User's manager is {name}; 1:1s happen {when}.",
    "{name} is learning {thing} {when} to help with the {project}.",
]
FOODS = ["peanuts", "shellfish", "gluten", "lactose", "sesame", "kiwi", "eggs"]
QUESTIONS = [
    "What does {name} prefer for work?",
    "Where is {name} moving?",
    "Who owns the {project} rollout?",
    "What is {name} allergic to?",
    "When is the {project} review?",
    "What does the user think about {thing}?",
    "Which tool did the team pick for the {project}?",
    "How does {name} like to relax?",
    "What is {name} learning?",
    "Who lives in {place}?",
]


def _fill(rng: random.Random, template: str) -> str:
    t1, t2 = rng.sample(THINGS, 2)
    return template.format(
        name=rng.choice(NAMES), thing=t1, thing2=t2, place=rng.choice(PLACES),
        project=rng.choice(PROJECTS), when=rng.choice(WHEN), food=rng.choice(FOODS),
    )


def make_texts(n: int, seed: int) -> list[str]:
    """n reproducible, distinct memory sentences."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        s = _fill(rng, rng.choice(TEMPLATES))
        if s in seen:  # make it distinct the way real notes differ: a detail appended
            s = s[:-1] + f" (noted #{len(out)})."
        seen.add(s)
        out.append(s)
    return out


def make_queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        q = _fill(rng, rng.choice(QUESTIONS))
        if q in seen:
            q = q[:-1] + f" ({len(out)})?"
        seen.add(q)
        out.append(q)
    return out


class DocVectorCache:
    """Embeds the generated corpus once (memory-mapped on disk); queries and any text not
    in the corpus go to the real embedder."""

    def __init__(self, inner: Any, texts: Sequence[str], path: Path) -> None:
        self.inner = inner
        self.index = {t: i for i, t in enumerate(texts)}
        self.path = path
        n = len(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        done_path = path.with_suffix(".done")
        done = int(done_path.read_text()) if done_path.is_file() and path.is_file() else 0
        mode = "r+" if done else "w+"
        self.vecs = np.lib.format.open_memmap(path, mode=mode, dtype=np.float32,
                                              shape=(n, inner.dimension))
        self.done = done
        self.done_path = done_path
        if not done:  # reuse the vectors of a smaller corpus of the same seed (a prefix)
            for other in sorted(path.parent.glob(path.name.rsplit("_", 1)[0] + "_*.npy")):
                o_done = other.with_suffix(".done")
                if other == path or not o_done.is_file():
                    continue
                prev = np.load(other, mmap_mode="r")
                m = min(int(o_done.read_text()), n, prev.shape[0])
                if m > self.done:
                    self.vecs[:m] = prev[:m]
                    self.done = m
            if self.done:
                self.vecs.flush()
                done_path.write_text(str(self.done))

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def ensure(self, upto: int, texts: Sequence[str], embed_limit: int | None = None) -> None:
        """Embed the corpus up to ``upto``. Past ``embed_limit`` texts are not embedded: their
        vectors are an embedded text's vector (i mod embed_limit) plus small seeded noise,
        re-normalised (a documented shortcut when the machine is too slow to embed 100k)."""
        from tqdm import tqdm

        if embed_limit is not None and upto > embed_limit:
            self.ensure(embed_limit, texts)
            if self.done < upto:
                rng = np.random.default_rng(upto)
                for start in range(self.done, upto, 10000):
                    end = min(upto, start + 10000)
                    base = np.asarray(self.vecs[[i % embed_limit for i in range(start, end)]])
                    noisy = base + rng.normal(0, 0.02, base.shape).astype(np.float32)
                    self.vecs[start:end] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
                    self.done = end
                self.vecs.flush()
                self.done_path.write_text(str(self.done))
            return
        if upto <= self.done:
            return
        with tqdm(total=upto - self.done, desc=f"embedding corpus to {upto}", unit="text") as bar:
            for start in range(self.done, upto, 512):
                end = min(upto, start + 512)
                self.vecs[start:end] = self.inner.embed_documents(list(texts[start:end]))
                bar.update(end - start)
                self.done = end
        self.vecs.flush()
        self.done_path.write_text(str(self.done))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        idx = [self.index.get(t) for t in texts]
        if all(i is not None and i < self.done for i in idx):
            return np.asarray(self.vecs[idx])
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def profile_block(name: str, fn: Any, out_dir: Path | None) -> dict[str, Any] | None:
    """Run ``fn()`` under pyinstrument; write a flat self-time list (top 40 lines) and the
    call tree (percent of total, trimmed) to ``out_dir/profile_<name>.txt``."""
    if out_dir is None:
        fn()
        return None
    from pyinstrument import Profiler

    prof = Profiler(interval=0.0005)
    prof.start()
    fn()
    prof.stop()
    flat = prof.output_text(flat=True, time="percent_of_total").splitlines()
    tree = prof.output_text(time="percent_of_total", short_mode=True).splitlines()
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "\n".join([f"# {name}", "", "## flat (self time)", *flat[:48], "", "## tree",
                      *tree[:160], ""])
    (out_dir / f"profile_{name}.txt").write_text(text)
    return {"file": f"profile_{name}.txt"}


def build_store(db: Path, n: int, users: Sequence[str], texts: Sequence[str], embedder: Any,
                *, desc: str = "build", quiet: bool = False) -> Any:
    """A fresh store at ``db`` holding ``texts[:n]``, memory i owned by ``users[i % len(users)]``
    (added grouped by user, dedup off), with every vector written to Chroma."""
    from tqdm import tqdm

    from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
    from headroom_integrations.core.engine import MemoryInput

    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db)), embedder=embedder)
    order = sorted(range(n), key=lambda i: (i % len(users), i))
    with tqdm(total=n, desc=desc, unit="mem", disable=quiet) as bar:
        for start in range(0, n, 1000):
            items = [MemoryInput(content=texts[i], user_id=users[i % len(users)])
                     for i in order[start:start + 1000]]
            engine.add_many(items, dedup=False)
            bar.update(len(items))
    engine.flush()  # the build's Chroma writes must not run during a timed part
    return engine


def measure_store(n: int, layout: str, texts: Sequence[str], queries: Sequence[str],
                  embedder: DocVectorCache, real: Any, seed: int, n_adds: int,
                  n_ingest: int = 1000, profile_dir: Path | None = None,
                  quiet: bool = False) -> dict[str, Any]:
    import psutil

    from headroom_integrations.core.engine import MemoryInput

    rng = random.Random(seed + n)
    users = [f"user-{i:04d}" for i in range(N_USERS_SPREAD)] if layout == "spread" else ["user-0000"]
    tmp = Path(tempfile.mkdtemp(prefix=f"latency-{n}-{layout}-"))
    db = tmp / "memory.db"
    t0 = time.perf_counter()
    engine = build_store(db, n, users, texts, embedder, desc=f"build {n} {layout}", quiet=quiet)
    build_s = time.perf_counter() - t0
    # from here the real embedder only
    engine.embedder = real
    gc.collect()
    proc = psutil.Process()
    mem = proc.memory_full_info()
    out: dict[str, Any] = {"size": n, "layout": layout, "users": len(users),
                           "build_seconds_index_only": round(build_s, 1)}

    def q_user() -> str:
        return rng.choice(users)

    # search. cold = the first search of a user in this process (the engine loads that
    # user's vectors on it); steady = users already searched once. Both use distinct
    # never-seen queries (query embedding included); cached = the steady queries again.
    lat: dict[str, list[float]] = {"cold": [], "hybrid": [], "hybrid_cached": [], "text": [],
                                   "vector": [], "inject": []}
    # warm the process (ONNX session, SQLite, FTS5, the Chroma client and its get path) with
    # a search for a user who has no memories: no stored user's vectors get loaded
    engine.search("warm up", user_id="warm-up-user-without-memories", top_k=5)
    cold_queries = [f"{q} (first)" for q in make_queries(len(queries), seed + 31)]
    if layout == "spread":
        cold_users = rng.sample(users, min(len(users), len(queries)))
        cold_plan = list(zip(cold_queries, cold_users))
        steady_users = [rng.choice(cold_users) for _ in queries]  # each searched before
    else:  # one user: the first search loads all its vectors once
        cold_plan = cold_queries[:1] and [(cold_queries[0], users[0])]
        steady_users = [users[0]] * len(queries)
    for q, u in cold_plan:
        s = time.perf_counter()
        engine.search(q, user_id=u, top_k=5)
        lat["cold"].append(time.perf_counter() - s)
    plan = list(zip(queries, steady_users))
    # the peer: the same kind of search with the two sides one after the other
    # (parallel_search=False), on queries of its own, interleaved with the steady ones
    seq_plan = list(zip(make_queries(len(plan), seed + 53), steady_users))
    lat["sequential"] = []
    for (q, u), (sq, su) in zip(plan, seq_plan):
        s = time.perf_counter()
        engine.search(q, user_id=u, top_k=5)
        lat["hybrid"].append(time.perf_counter() - s)
        engine.config.parallel_search = False
        s = time.perf_counter()
        engine.search(sq, user_id=su, top_k=5)
        lat["sequential"].append(time.perf_counter() - s)
        engine.config.parallel_search = True
    for q, u in plan:
        s = time.perf_counter()
        engine.search(q, user_id=u, top_k=5)
        lat["hybrid_cached"].append(time.perf_counter() - s)
    for q, u in plan:
        s = time.perf_counter()
        engine.search(q, user_id=u, top_k=5, mode="text")
        lat["text"].append(time.perf_counter() - s)
    # cached embedding: vector index time only; its peer, interleaved: the same search
    # ranked by each memory's own cosine (no context window)
    lat["vector_no_window"] = []
    window = getattr(engine, "_context_window", None)
    for q, u in plan:
        s = time.perf_counter()
        engine.search(q, user_id=u, top_k=5, mode="vector")
        lat["vector"].append(time.perf_counter() - s)
        engine._context_window = None
        s = time.perf_counter()
        engine.search(q, user_id=u, top_k=5, mode="vector")
        lat["vector_no_window"].append(time.perf_counter() - s)
        engine._context_window = window
    emb_t = []
    for q, _ in plan[: min(100, len(plan))]:
        s = time.perf_counter()
        real.embed_query(q + " ?")
        emb_t.append(time.perf_counter() - s)
    try:
        from headroom_integrations.protocol import format_memories
    except ImportError:
        format_memories = None
    if format_memories is not None:
        for q, u in plan:
            q2 = "inject: " + q
            s = time.perf_counter()
            format_memories(engine.search(q2, user_id=u, top_k=8), max_tokens=400)
            lat["inject"].append(time.perf_counter() - s)
    # single add (fresh text: embedding + dedup check + SQLite + FTS5 + Chroma)
    fresh = make_texts(n_adds + n_ingest, seed + 7 + n)
    fresh = [f"{t} [{layout}-{n}-{i}]" for i, t in enumerate(fresh)]
    touched = {u for _, u in cold_plan} | set(steady_users)
    adds, adds_warm, adds_cold = [], [], []
    loop_start = time.perf_counter()
    for t in fresh[:n_adds]:
        u = q_user()
        s = time.perf_counter()
        engine.add(t, user_id=u)
        d = time.perf_counter() - s
        adds.append(d)
        (adds_warm if u in touched else adds_cold).append(d)  # cold: loads the user's vectors
        touched.add(u)
    s = time.perf_counter()
    engine.flush()  # what the writer thread still had queued
    add_flush_s = time.perf_counter() - s
    add_loop_s = time.perf_counter() - loop_start
    # batch ingest: add_many in batches of 100, fresh text, embedding included, until every
    # vector is in Chroma
    rest = fresh[n_adds:]
    ingest_users = [q_user() for _ in rest]
    s = time.perf_counter()
    for start in range(0, len(rest), 100):
        engine.add_many([MemoryInput(content=t, user_id=u) for t, u in
                         zip(rest[start:start + 100], ingest_users[start:start + 100])])
    engine.flush()
    ingest_s = time.perf_counter() - s
    touched.update(ingest_users)
    if profile_dir is not None:  # fresh queries and fresh adds, after the timed parts
        pq = [f"profile {q}" for q in make_queries(len(plan), seed + 99)]
        # steady state: users already searched in this process
        profile_block(f"search_{n}_{layout}",
                      lambda: [engine.search(q, user_id=u, top_k=5)
                               for q, (_, u) in zip(pq, plan)], profile_dir)
        untouched = [u for u in users if u not in touched]
        if untouched:  # first search of users never touched (includes loading their vectors)
            cq = [f"profile cold {q}" for q in make_queries(min(len(plan), len(untouched)),
                                                             seed + 77)]
            profile_block(f"search_cold_{n}_{layout}",
                          lambda: [engine.search(q, user_id=u, top_k=5)
                                   for q, u in zip(cq, untouched)], profile_dir)
        pa = [f"{t} [profile-{layout}-{n}-{i}]" for i, t in
              enumerate(make_texts(max(50, n_adds), seed + 555 + n))]
        profile_block(f"add_{n}_{layout}",
                      lambda: [engine.add(t, user_id=q_user()) for t in pa], profile_dir)
    engine.close()
    disk = sum(dir_bytes(p) for p in tmp.iterdir())
    total = n + len(fresh)
    ms = lambda v, q: round(1000 * percentile(v, q), 3)  # noqa: E731
    out.update({
        "search_cold_p50_ms": ms(lat["cold"], 50), "search_cold_p95_ms": ms(lat["cold"], 95),
        "cold_searches": len(lat["cold"]),
        "search_p50_ms": ms(lat["hybrid"], 50), "search_p95_ms": ms(lat["hybrid"], 95),
        "sequential_p50_ms": ms(lat["sequential"], 50),
        "sequential_p95_ms": ms(lat["sequential"], 95),
        "search_cached_p50_ms": ms(lat["hybrid_cached"], 50),
        "search_cached_p95_ms": ms(lat["hybrid_cached"], 95),
        "text_only_p50_ms": ms(lat["text"], 50),
        "vector_only_cached_embedding_p50_ms": ms(lat["vector"], 50),
        "vector_only_no_window_p50_ms": ms(lat["vector_no_window"], 50),
        "embed_query_p50_ms": ms(emb_t, 50),
        "inject_p50_ms": ms(lat["inject"], 50) if lat["inject"] else None,
        "inject_p95_ms": ms(lat["inject"], 95) if lat["inject"] else None,
        "add_p50_ms": ms(adds, 50), "add_p95_ms": ms(adds, 95), "add_p99_ms": ms(adds, 99),
        "add_max_ms": round(1000 * max(adds), 3),
        "add_loop_per_s": round(len(adds) / add_loop_s, 1),
        "add_final_flush_ms": round(1000 * add_flush_s, 3),
        "add_warm_user_p50_ms": ms(adds_warm, 50) if adds_warm else None,
        "add_cold_user_p50_ms": ms(adds_cold, 50) if adds_cold else None,
        "adds_cold_user": len(adds_cold),
        "ingest_per_s": round(len(rest) / ingest_s, 1),
        "rss_mib_after_build": round(mem.rss / 2**20, 1),
        "uss_mib_after_build": round(mem.uss / 2**20, 1),
        "disk_bytes_per_memory": round(disk / total),
        "queries": len(plan), "adds": len(adds), "ingest_items": len(rest),
    })
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def cache_hit_micro(real: Any) -> dict[str, float]:
    """embed_query through the engine's LRU cache: the cost of a hit alone."""
    from headroom_integrations.storage.cache import LRUCache

    cache = LRUCache(1024)
    key = f"{real.name}\x00hello"
    cache.put(key, real.embed_query("hello"))
    t = []
    for _ in range(2000):
        s = time.perf_counter()
        cache.get(key)
        t.append(time.perf_counter() - s)
    return {"lru_get_p50_us": round(1e6 * percentile(t, 50), 2)}


def markdown(res: dict[str, Any]) -> str:
    info = res["machine"]
    lines = [
        "# Latency and footprint",
        "",
        f"Measured {info['when']} on {info['cpu_count']} cores (shared with other work; "
        f"load {info.get('load_avg_1m')}), Python {info['python']}, chromadb "
        f"{info['versions'].get('chromadb')}, SQLite {info['versions'].get('sqlite')}. "
        f"Command: `{res['command']}`. Times in ms, hybrid search top_k=5.",
        "",
        "- **cold** = the first search of a user in the process: includes loading that user's "
        "vectors from the SQLite copy into memory. Spread layout: one fresh query for each of "
        "`cold n` distinct users never searched before; single layout: the one first search "
        "of the store's only user (n = 1).",
        "- **steady** = fresh distinct never-seen queries (query embedding included) for users "
        "already searched once in the process.",
        "- **cached** = the steady queries again (query embedding from the LRU cache).",
        "- **sequential** = the peer of steady: other fresh queries, interleaved with the "
        "steady ones, with `parallel_search=False` (query embedding and vector search after "
        "the keyword search instead of beside it, as before session 4).",
        "- **vector-only** = the steady queries again with `mode=\"vector\"` (query embedding "
        "cached): the vector index alone, ranked with the context window (the default) and, "
        "interleaved, by each memory's own cosine (`none`, as before session 5).",
        "",
        "| N | layout | cold p50 | cold p95 | cold n | steady p50 | steady p95 | sequential p50 | sequential p95 | cached p50 | cached p95 | text-only p50 | vector-only p50 (cached emb.; window / none) | embed q p50 | inject p50 | add p50 | add p95 | add p99 / max | add p50 (user loaded / not) | add loop /s | ingest /s | RSS MiB | USS MiB | disk B/mem |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["runs"]:
        lines.append(
            f"| {r['size']} | {r['layout']} | {r.get('search_cold_p50_ms', '-')} | "
            f"{r.get('search_cold_p95_ms', '-')} | {r.get('cold_searches', '-')} | "
            f"{r['search_p50_ms']} | {r['search_p95_ms']} | "
            f"{r.get('sequential_p50_ms', '-')} | {r.get('sequential_p95_ms', '-')} | "
            f"{r['search_cached_p50_ms']} | {r['search_cached_p95_ms']} | {r['text_only_p50_ms']} | "
            f"{r['vector_only_cached_embedding_p50_ms']} / {r.get('vector_only_no_window_p50_ms', '-')} | "
            f"{r['embed_query_p50_ms']} | "
            f"{r['inject_p50_ms']} | {r['add_p50_ms']} | {r['add_p95_ms']} | "
            f"{r.get('add_p99_ms', '-')} / {r.get('add_max_ms', '-')} | "
            f"{r.get('add_warm_user_p50_ms', '-')} / {r.get('add_cold_user_p50_ms', '-')} | "
            f"{r.get('add_loop_per_s', '-')} | {r['ingest_per_s']} | "
            f"{r['rss_mib_after_build']} | {r['uss_mib_after_build']} | {r['disk_bytes_per_memory']} |"
        )
    shortcut = [f"{r['size']} {r['layout']}" for r in res["runs"]
                if str(r.get("vectors", "embedded")) != "embedded"]
    lines += [
        "",
        f"LRU cache get alone: {res['cache_hit']['lru_get_p50_us']} µs (p50).",
        "",
        "`embed q p50` is the query embedding alone; add = one `add()` of fresh text to a random "
        "user of the layout, timed in a tight loop of adds (embedding, exact + near-duplicate "
        "check, SQLite rows + FTS5 + the vector's SQLite copy in one transaction, the "
        "in-memory matrix; the duplicate check loads the user's vectors when that user was not "
        "loaded yet: `add p50 (user loaded / not)` splits the two). The Chroma write is queued "
        "to the engine's writer thread, which applies it in batches while the loop runs: "
        "embedded Chroma holds the GIL for a whole call, so those calls show up in the slower "
        "adds (`add p99 / max`); `add loop /s` = adds per second of the loop including a final "
        "`flush()` (every vector in Chroma). ingest = `add_many` in batches of 100 fresh "
        "memories, dedup on, embedding included, random users of the layout, timed until "
        "`flush()` returns. Each (size, layout) row "
        "ran in its own process (RSS = that store's process after its build).",
    ]
    if shortcut:
        lines.append(
            "Store build shortcut (" + ", ".join(shortcut) + "): only the first "
            f"{res.get('corpus_embedded_texts')} corpus texts were embedded; the other stored "
            "vectors are those vectors plus Gaussian noise (sigma 0.02, re-normalised), to build "
            "the store fast. Queries, adds and ingest always embed for real.")
    if res.get("earlier_commands"):
        commands = list(dict.fromkeys([*res["earlier_commands"], res["command"]]))
        lines.append("Rows merged from: " + "; ".join(f"`{c}`" for c in commands) + ".")
    lines += ["", "Goals (issue 6): search p50 <= 10 ms / p95 <= 25 ms at 100k; add p50 <= 10 ms; "
              "ingest >= 250/s; cache hit < 1 ms.", ""]
    if NOTES.exists():  # hand-written notes live apart, so a re-run never drops them
        lines += [NOTES.read_text().rstrip(), ""]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for layout, style in (("spread", "-"), ("single", "--")):
        runs = [r for r in res["runs"] if r["layout"] == layout]
        if not runs:
            continue
        xs = [r["size"] for r in runs]
        for key, label in (("search_cold_p50_ms", "cold p50"), ("search_p50_ms", "steady p50"),
                           ("search_p95_ms", "steady p95"),
                           ("search_cached_p50_ms", "cached p50"), ("add_p50_ms", "add p50")):
            if layout == "single" and key == "search_cold_p50_ms":
                continue  # one sample per store
            ax.plot(xs, [r.get(key) for r in runs], style, marker="o", label=f"{label} ({layout})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("memories in store")
    ax.set_ylabel("ms")
    ax.set_title("headroom search / add latency vs store size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--layouts", default="spread,single")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--adds", type=int, default=100)
    ap.add_argument("--ingest", type=int, default=1000, help="fresh memories for the ingest rate")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--tag", default="")
    ap.add_argument("--merge", action="store_true",
                    help="keep the runs of other (size, layout) already in latency<tag>.json")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--profile-sizes", default="",
                    help="sizes at which search and add are profiled with pyinstrument "
                         "(bench/results/profile_*.txt)")
    ap.add_argument("--embed-limit", type=int, default=10000,
                    help="embed at most this many corpus texts; vectors of the rest are derived "
                         "from them with noise (0 = embed all)")
    args = ap.parse_args(argv)

    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    sizes = [int(s) for s in args.sizes.split(",") if s]
    layouts = [x for x in args.layouts.split(",") if x]
    real = FastEmbedEmbedder()
    texts = make_texts(max(sizes), args.seed)
    queries = make_queries(args.queries, args.seed)
    cache = DocVectorCache(real, texts, args.cache_dir / f"latency_vectors-{embedder_slug(real)}_{args.seed}_{max(sizes)}.npy")
    t0 = time.perf_counter()
    cache.ensure(max(sizes), texts, args.embed_limit or None)
    corpus_embed_s = time.perf_counter() - t0
    prof_sizes = {int(x) for x in args.profile_sizes.split(",") if x}
    runs = []
    for n in sizes:
        for layout in layouts:
            r = measure_store(n, layout, texts, queries, cache, real, args.seed, args.adds,
                              args.ingest, profile_dir=args.out if n in prof_sizes else None,
                              quiet=args.quiet)
            r["vectors"] = ("embedded" if n <= (args.embed_limit or n) else
                            f"first {args.embed_limit} embedded, rest = those + noise")
            print({k: r[k] for k in ("size", "layout", "search_p50_ms", "search_p95_ms",
                                     "add_p50_ms", "ingest_per_s")}, file=sys.stderr)
            runs.append(r)
    res = {
        "machine": machine_info(),
        "command": "python -m bench.latency " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "corpus_embedding_seconds": round(corpus_embed_s, 1),
        "corpus_embedded_texts": min(max(sizes), args.embed_limit or max(sizes)),
        "cache_hit": cache_hit_micro(real),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    prev_path = args.out / f"latency{args.tag}.json"
    if args.merge and prev_path.is_file():
        import json

        prev = json.loads(prev_path.read_text())
        have = {(r["size"], r["layout"]) for r in runs}
        kept = [r for r in prev.get("runs", []) if (r["size"], r["layout"]) not in have]
        res["runs"] = sorted(kept + runs, key=lambda r: (r["size"], r["layout"] != "spread"))
        res["earlier_commands"] = sorted({*prev.get("earlier_commands", []), prev["command"]})
    write_json(prev_path, res)
    (args.out / f"latency{args.tag}.md").write_text(markdown(res))
    plot(res, args.out / f"latency{args.tag}.png")
    return res


if __name__ == "__main__":
    main()
