"""Child process for the reliability drills (run as a script; also used by bench/reliability.py).

Modes (``python rel_worker.py MODE DB LEDGER [options]``):

- ``ingest``: open the store (repairs on open), verify every id in LEDGER is stored, then add
  batches of unique memories forever, appending each returned id to LEDGER (flushed) after the
  call returns -- until the parent kills it with SIGKILL.
- ``supersede``: the same for supersession: one chain per worker, each returned new id is
  appended (``old new``) after ``supersede()`` returns.
- ``mixed``: a bounded mix of add / supersede / search / delete (for the multi-process drill);
  prints one JSON line with what it did, what it kept, and any error that reached it.
- ``verify``: open, repair, check everything in LEDGER and the chain invariants, print JSON.

Each mode prints ``READY {...}`` once open and verified, so the parent knows when to start
its kill timer. Output lines are JSON after the ``READY ``/``DONE `` prefixes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def open_engine(db: str, chroma_host: str | None = None, chroma_port: int = 8000,
                collection: str = "headroom_memories") -> Any:
    from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    config = MemoryConfig(db_path=db, chroma_host=chroma_host, chroma_port=chroma_port,
                          collection_name=collection)
    return SyncHierarchicalMemory.create(config, embedder=FastEmbedEmbedder())


def read_ledger(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Ids written by ``ingest`` lines and (old, new) pairs written by ``supersede`` lines.
    A torn last line (killed mid-write) is ignored: its call had returned but the record of it
    did not reach the file, so nothing was promised about it."""
    ids: list[str] = []
    pairs: list[tuple[str, str]] = []
    if not os.path.exists(path):
        return ids, pairs
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            parts = line.split()
            if parts[0] == "add" and len(parts) == 2:
                ids.append(parts[1])
            elif parts[0] == "sup" and len(parts) == 3:
                pairs.append((parts[1], parts[2]))
    return ids, pairs


def verify(engine: Any, ledger: str) -> dict[str, Any]:
    """Every id the ledger promises is stored; chains are whole; indexes agree with SQLite."""
    ids, pairs = read_ledger(ledger)
    promised = set(ids) | {n for _, n in pairs} | {o for o, _ in pairs}
    stored = engine.store.get_many(sorted(promised))
    lost = sorted(promised - set(stored))
    rows = list(engine.store.iter_all())
    by_id = {r.id: r for r in rows}
    broken: list[str] = []
    for r in rows:
        if not r.is_current:
            nxt = by_id.get(r.superseded_by or "")
            if nxt is None or nxt.supersedes != r.id:
                broken.append(f"{r.id}: superseded_by {r.superseded_by} missing or not linked back")
        if r.supersedes is not None:
            prev = by_id.get(r.supersedes)
            if prev is None or prev.superseded_by != r.id:
                broken.append(f"{r.id}: supersedes {r.supersedes} missing or not linked forward")
    # at most one current per chain: walk to each chain's root
    currents: dict[str, int] = {}
    for r in rows:
        root, seen = r, {r.id}
        while root.supersedes and root.supersedes in by_id and root.supersedes not in seen:
            root = by_id[root.supersedes]
            seen.add(root.id)
        currents.setdefault(root.id, 0)
        currents[root.id] += 1 if r.is_current else 0
    multi_current = sorted(k for k, v in currents.items() if v > 1)
    # promoted copies repeat their source's text on purpose; nothing else may repeat
    contents = [r.content for r in rows if r.promoted_from is None]
    duplicated = len(contents) - len(set(contents))
    report = engine.check_consistency(full=True)
    return {
        "promised": len(promised),
        "stored_rows": len(rows),
        "lost": lost[:10],
        "n_lost": len(lost),
        "broken_links": broken[:10],
        "n_broken": len(broken),
        "multi_current_chains": multi_current[:10],
        "duplicated_contents": duplicated,
        "consistent": report.ok,
        "report": {"memories": report.memories, "vectors": report.vectors,
                   "keywords": report.keywords, "unsynced": len(report.unsynced),
                   "missing_vectors": len(report.missing_vectors),
                   "orphan_vectors": len(report.orphan_vectors),
                   "missing_keywords": len(report.missing_keywords),
                   "orphan_keywords": len(report.orphan_keywords)},
    }


def _append(fh: Any, line: str) -> None:
    fh.write(line + "\n")
    fh.flush()  # into the OS page cache: survives SIGKILL of this process


def run_ingest(engine: Any, ledger: str, tag: str, batch: int) -> None:
    n = 0
    with open(ledger, "a", encoding="utf-8") as fh:
        while True:
            items = [
                {"content": f"crash drill {tag} memory {n + i} about topic {random.randrange(50)}",
                 "user_id": f"user-{(n + i) % 3}", "session_id": f"s-{(n + i) % 2}"}
                for i in range(batch)
            ]
            records = engine.add_many(items, dedup=False)
            for r in records:
                _append(fh, f"add {r.id}")
            n += batch


def run_supersede(engine: Any, ledger: str, tag: str) -> None:
    _, pairs = read_ledger(ledger)
    head = None
    if pairs:
        rec = engine.get(pairs[-1][1])
        while rec is not None and not rec.is_current:  # a later version may have landed
            rec = engine.get(rec.superseded_by)
        head = rec
    with open(ledger, "a", encoding="utf-8") as fh:
        if head is None:
            head = engine.add(f"chain {tag} version 0", user_id="chain-user", session_id="s",
                              importance=0.9, dedup=False)  # 0.9: promoted copy superseded too
            _append(fh, f"add {head.id}")
        n = 1
        while True:
            new = engine.supersede(head.id, f"chain {tag} version {n} at {time.time_ns()}")
            _append(fh, f"sup {head.id} {new.id}")
            head = new
            n += 1


def run_mixed(engine: Any, wid: int, ops: int, seed: int) -> dict[str, Any]:
    """Bounded mix of add / supersede / search / delete on this worker's own memories, in users
    shared with the other workers (so scopes, FTS and vector pages are contended)."""
    rng = random.Random(seed)
    mine: list[str] = []  # current ids this worker added or superseded to
    deleted: list[str] = []
    superseded: list[tuple[str, str]] = []
    counts = {"add": 0, "supersede": 0, "search": 0, "delete": 0}
    errors: list[str] = []
    lat: list[float] = []
    for i in range(ops):
        op = rng.choices(["add", "supersede", "search", "delete"], [5, 2, 4, 1])[0]
        if op in ("supersede", "delete") and not mine:
            op = "add"
        t0 = time.perf_counter()
        try:
            if op == "add":
                r = engine.add(f"proc {wid} op {i} note on subject {rng.randrange(30)}",
                               user_id=f"user-{i % 2}", dedup=False)
                mine.append(r.id)
            elif op == "supersede":
                old = mine.pop(rng.randrange(len(mine)))
                new = engine.supersede(old, f"proc {wid} op {i} revised note")
                superseded.append((old, new.id))
                mine.append(new.id)
            elif op == "search":
                engine.search(f"note subject {rng.randrange(30)}", user_id=f"user-{i % 2}",
                              mode=rng.choice(["hybrid", "vector", "text"]))
            else:
                victim = mine.pop(rng.randrange(len(mine)))
                if not engine.delete(victim):
                    errors.append(f"delete {victim} returned False")
                deleted.append(victim)
            counts[op] += 1
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            errors.append(f"{op}: {type(exc).__name__}: {exc}")
        lat.append(time.perf_counter() - t0)
    return {"wid": wid, "counts": counts, "kept": mine, "deleted": deleted,
            "superseded": superseded, "errors": errors[:20], "n_errors": len(errors),
            "max_op_s": max(lat) if lat else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ingest", "supersede", "mixed", "verify"])
    ap.add_argument("db")
    ap.add_argument("ledger")
    ap.add_argument("--tag", default="t")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ops", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wid", type=int, default=0)
    ap.add_argument("--chroma-host", default=None)
    ap.add_argument("--chroma-port", type=int, default=8000)
    ap.add_argument("--collection", default="headroom_memories")
    args = ap.parse_args()
    try:
        t0 = time.perf_counter()
        engine = open_engine(args.db, args.chroma_host, args.chroma_port, args.collection)
        if args.mode == "mixed":
            print("READY " + json.dumps({"open_s": time.perf_counter() - t0}), flush=True)
            out = run_mixed(engine, args.wid, args.ops, args.seed)
            out["run_s"] = time.perf_counter() - t0
            print("DONE " + json.dumps(out), flush=True)
            engine.close()
            return
        check = verify(engine, args.ledger)
        check["open_s"] = time.perf_counter() - t0
        print("READY " + json.dumps(check), flush=True)
        if args.mode == "verify":
            engine.close()
            return
        random.seed(args.seed)
        if args.mode == "ingest":
            run_ingest(engine, args.ledger, args.tag, args.batch)
        else:
            run_supersede(engine, args.ledger, args.tag)
    except Exception:  # noqa: BLE001
        print("FAIL " + json.dumps({"traceback": traceback.format_exc()}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
