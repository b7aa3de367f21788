"""Reliability drills at a larger size, with figures.

    python -m bench.reliability [--kills 6] [--procs 4] [--ops 60] [--threads 8] [--fuzz 3000]

Runs: SIGKILL crash drills (mid batch-ingest and mid-supersede), 4 processes on one store with
a `chroma run` server and with embedded Chroma, 8 threads on one engine, async loop-lag probes,
and fuzzing of the parser / stream stripper / search queries. Prints and saves
bench/results/reliability.json and .md. Real SQLite, Chroma and the ONNX embedder throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.rel_drills import (  # noqa: E402
    check_multiprocess_outcome,
    chroma_server,
    crash_drill,
    multiprocess_drill,
)

RESULTS = ROOT / "bench" / "results"


def _engine(db: str, **kw: Any) -> Any:
    from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    return SyncHierarchicalMemory.create(MemoryConfig(db_path=db, **kw), embedder=FastEmbedEmbedder())


def crash(tmp: str, kills: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda k=k, s=s: out.__setitem__(
        k, crash_drill(k, os.path.join(tmp, k), kills=kills, seed=s)))
        for k, s in (("ingest", 101), ("supersede", 202))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {}
    for k, r in out.items():
        summary[k] = {
            "sigkills": r["kills"], "kill_delays_s": r["kill_delays_s"],
            "acknowledged_writes": r["final"]["promised"], "rows_after": r["final"]["stored_rows"],
            "lost": sum(c["n_lost"] for c in r["checks"]),
            "half_superseded": sum(c["n_broken"] for c in r["checks"]),
            "chains_with_two_current": sum(len(c["multi_current_chains"]) for c in r["checks"]),
            "duplicated": sum(c["duplicated_contents"] for c in r["checks"]),
            "inconsistent_after_reopen": sum(not c["consistent"] for c in r["checks"]),
            "seconds": r["seconds"],
        }
    return summary


def multiprocess(tmp: str, procs: int, ops: int) -> dict[str, Any]:
    res: dict[str, Any] = {}
    with chroma_server(os.path.join(tmp, "chroma")) as (host, port):
        d = multiprocess_drill(os.path.join(tmp, "server"), procs, ops, chroma_host=host,
                               chroma_port=port, collection="bench-mp", seed=5)
        with _engine(d["db"], chroma_host=host, chroma_port=port, collection_name="bench-mp") as e:
            o = check_multiprocess_outcome(e, d["workers"])
            rep = e.check_consistency(full=True)
            o["stale_unsynced_flags"] = len(rep.unsynced)
            e.repair()
            o["consistent_after_repair"] = e.check_consistency(full=True).ok
        o.update(processes=procs, seconds=d["seconds"])
        res["chroma_server"] = o
    d = multiprocess_drill(os.path.join(tmp, "embedded"), procs, ops, seed=6)
    with _engine(d["db"]) as e:  # opening repairs drift
        o = check_multiprocess_outcome(e, d["workers"])
        o["consistent_after_reopen"] = e.check_consistency(full=True).ok
    o.update(processes=procs, seconds=d["seconds"])
    res["embedded_chroma"] = o
    return res


def threads_drill(tmp: str, n_threads: int, ops: int) -> dict[str, Any]:
    e = _engine(os.path.join(tmp, "threads.db"))
    kept: list[str] = []
    errors: list[str] = []
    counts = {"add": 0, "supersede": 0, "search": 0}
    lock = threading.Lock()

    def worker(w: int) -> None:
        rng = random.Random(w)
        mine: list[str] = []
        for i in range(ops):
            op = rng.choice(["add", "add", "supersede", "search"]) if mine else "add"
            try:
                if op == "add":
                    mine.append(e.add(f"t{w} op{i} item {rng.randrange(40)}", user_id=f"u{i % 3}", dedup=False).id)
                elif op == "supersede":
                    mine.append(e.supersede(mine.pop(), f"t{w} op{i} revised").id)
                else:
                    e.search(f"item {rng.randrange(40)}", user_id=f"u{i % 3}")
                with lock:
                    counts[op] += 1
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(repr(exc))
        with lock:
            kept.extend(mine)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stored = e.store.get_many(kept)
    out = {"threads": n_threads, "ops": counts, "errors_reaching_caller": len(errors),
           "rows": e.store.count(), "expected_rows": counts["add"] + counts["supersede"],
           "lost": sum(1 for i in kept if i not in stored or not stored[i].is_current),
           "consistent": e.check_consistency(full=True).ok,
           "seconds": round(time.perf_counter() - t0, 2)}
    e.close()
    return out


def loop_lag(tmp: str) -> dict[str, Any]:
    from headroom_integrations import HierarchicalMemory

    async def one(mem: Any) -> dict[str, Any]:
        lags: list[float] = []
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - t - 0.005)

        t0 = time.perf_counter()
        mem.sync.add_many([{"content": f"calibration {i} tomatoes", "user_id": "c"} for i in range(32)], dedup=False)
        batch = time.perf_counter() - t0
        p = asyncio.create_task(probe())
        await asyncio.gather(*(mem.add(f"async {i} topic {i % 9}", user_id=f"u{i % 4}", dedup=False) for i in range(100)),
                             *(mem.search(f"topic {i % 9}", user_id=f"u{i % 4}") for i in range(100)))
        stop.set()
        await p
        lags.sort()
        return {"async_ops": 200, "blocking_batch_ms": round(batch * 1000, 1),
                "max_lag_ms": round(lags[-1] * 1000, 1), "p99_lag_ms": round(lags[int(len(lags) * .99) - 1] * 1000, 1),
                "median_lag_ms": round(lags[len(lags) // 2] * 1000, 2)}

    async def run() -> dict[str, Any]:
        out = {}
        e = _engine(os.path.join(tmp, "lag-embedded.db"))
        out["embedded_chroma"] = await one(e.aio)
        e.close()
        with chroma_server(os.path.join(tmp, "chroma-lag")) as (host, port):
            e = _engine(os.path.join(tmp, "lag-server.db"), chroma_host=host, chroma_port=port)
            out["chroma_server"] = await one(e.aio)
            e.close()
        return out

    _ = HierarchicalMemory
    return asyncio.run(run())


def fuzz(tmp: str, n: int) -> dict[str, Any]:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from headroom_integrations.protocol import MemoryStreamStripper, parse_memory_blocks
    from tests.reliability.test_rel_fuzz import FTS_SYNTAX, texts

    counts = {"parser_and_stripper": 0, "search_queries": 0, "failures": 0}

    @settings(max_examples=n, deadline=None, database=None)
    @given(text=texts, cut=st.integers(1, 7))
    def parser(text: str, cut: int) -> None:
        counts["parser_and_stripper"] += 1
        ref = parse_memory_blocks(text)
        s = MemoryStreamStripper()
        shown = "".join(s.feed(text[i:i + cut]) for i in range(0, len(text), cut)) + s.finish()
        assert shown == ref.clean_text

    e = _engine(os.path.join(tmp, "fuzz.db"))
    e.add_many([{"content": f"fact {w}", "user_id": "u"} for w in ["tea", "NEAR OR", '"q"']])

    @settings(max_examples=max(50, n // 10), deadline=None, database=None)
    @given(q=st.one_of(st.text(max_size=80), FTS_SYNTAX), mode=st.sampled_from(["hybrid", "vector", "text"]))
    def search(q: str, mode: str) -> None:
        counts["search_queries"] += 1
        e.search(q, user_id="u", mode=mode)

    for fn in (parser, search):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            counts["failures"] += 1
            counts[f"failure_{fn.__name__}"] = repr(exc)[:300]
    e.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--ops", type=int, default=60)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--thread-ops", type=int, default=25)
    ap.add_argument("--fuzz", type=int, default=3000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="rel-bench-") as tmp:
        for name, fn in (("crash", lambda: crash(tmp, args.kills)),
                         ("multiprocess", lambda: multiprocess(tmp, args.procs, args.ops)),
                         ("threads", lambda: threads_drill(tmp, args.threads, args.thread_ops)),
                         ("async_loop_lag", lambda: loop_lag(tmp)),
                         ("fuzz", lambda: fuzz(tmp, args.fuzz))):
            t = time.perf_counter()
            results[name] = fn()
            print(f"== {name} ({time.perf_counter() - t:.1f}s)\n{json.dumps(results[name], indent=1)}", flush=True)
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "reliability.md").write_text(render_md(results))
    print(f"saved {RESULTS / 'reliability.json'} and .md")


def render_md(r: dict[str, Any]) -> str:
    lines = ["# Reliability drills", "", f"Total {r['total_seconds']} s on {r['machine']['cpus']} CPUs, "
             f"Python {r['machine']['python']}. Produced by `python -m bench.reliability`.", "",
             "## Crashes (SIGKILL at a random moment while writing)", "",
             "| drill | kills | acknowledged writes | lost | half-superseded | 2 current | duplicated | inconsistent after reopen |",
             "|---|---|---|---|---|---|---|---|"]
    for k, c in r["crash"].items():
        lines.append(f"| {k} | {c['sigkills']} | {c['acknowledged_writes']} | {c['lost']} | {c['half_superseded']} | "
                     f"{c['chains_with_two_current']} | {c['duplicated']} | {c['inconsistent_after_reopen']} |")
    lines += ["", "## Concurrency", "", "| setup | ops (add/supersede/search/delete) | errors to caller | lost | rows / expected | indexes agree |", "|---|---|---|---|---|---|"]
    for k, o in r["multiprocess"].items():
        ops = "/".join(str(o["ops"][x]) for x in ("add", "supersede", "search", "delete"))
        agree = o.get("consistent_after_repair", o.get("consistent_after_reopen"))
        lines.append(f"| {o['processes']} processes, {k} | {ops} | {o['errors_reaching_caller']} | {o['lost']} | {o['rows']} / {o['expected_rows']} | {agree} |")
    t = r["threads"]
    lines.append(f"| {t['threads']} threads, one engine | {t['ops']['add']}/{t['ops']['supersede']}/{t['ops']['search']}/0 | {t['errors_reaching_caller']} | {t['lost']} | {t['rows']} / {t['expected_rows']} | {t['consistent']} |")
    emb = r["multiprocess"]["embedded_chroma"]
    lines += ["", f"Embedded Chroma shared by several processes: {emb['errors_reaching_caller']} errors reached callers "
              f"(e.g. `{(emb['error_samples'] or ['none'])[0][:120]}`); SQLite truth held and the store was "
              "consistent after repair on reopen. Use `chroma_host` for several processes.", "",
              "## Async event-loop lag (probe sleeping 5 ms)", "", "| vectors | ops | one blocking batch ms | max lag ms | p99 ms | median ms |", "|---|---|---|---|---|---|"]
    for k, o in r["async_loop_lag"].items():
        lines.append(f"| {k} | {o['async_ops']} | {o['blocking_batch_ms']} | {o['max_lag_ms']} | {o['p99_lag_ms']} | {o['median_lag_ms']} |")
    f = r["fuzz"]
    lines += ["", "## Fuzzing", "", f"- parser + stream stripper inputs: {f['parser_and_stripper']}",
              f"- search queries (any unicode, FTS5 syntax): {f['search_queries']}", f"- failures: {f['failures']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
