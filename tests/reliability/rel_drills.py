"""Drill orchestration shared by the reliability tests and ``bench/reliability.py``.

Every drill uses real processes, real SQLite files, real Chroma (embedded or ``chroma run``)
and the real ONNX embedder, and returns plain dicts of figures.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WORKER = str(Path(__file__).with_name("rel_worker.py"))


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _read_tagged(proc: subprocess.Popen[str], tag: str, timeout: float) -> dict[str, Any]:
    """The JSON after ``tag`` on the child's stdout (FAIL lines raise)."""
    result: dict[str, Any] = {}

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(tag + " "):
                result["v"] = json.loads(line[len(tag) + 1:])
                return
            if line.startswith("FAIL "):
                result["fail"] = json.loads(line[5:])
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if "fail" in result:
        raise RuntimeError(f"worker failed:\n{result['fail']['traceback']}")
    if "v" not in result:
        proc.kill()
        err = proc.stderr.read()[-3000:] if proc.stderr else ""
        raise RuntimeError(f"worker gave no {tag} line within {timeout}s; stderr:\n{err}")
    return result["v"]


def _ledger_lines(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0


def crash_drill(kind: str, workdir: str, kills: int, seed: int = 0,
                max_delay: float = 1.5) -> dict[str, Any]:
    """Start a ``kind`` (ingest/supersede) worker, SIGKILL it at a random moment while it
    writes, start the next one on the same store (it verifies the previous kill on open), and
    so on ``kills`` times; a last worker only verifies. Returns every check and timing."""
    rng = random.Random(seed)
    os.makedirs(workdir, exist_ok=True)
    db = os.path.join(workdir, "memory.db")
    ledger = os.path.join(workdir, "ledger.txt")
    checks: list[dict[str, Any]] = []
    delays: list[float] = []
    writes_before_kill: list[int] = []
    t0 = time.perf_counter()
    for run in range(kills + 1):
        mode = kind if run < kills else "verify"
        proc = _spawn([mode, db, ledger, "--tag", f"r{run}", "--seed", str(seed * 100 + run)])
        try:
            checks.append(_read_tagged(proc, "READY", 120))
            if mode == "verify":
                proc.wait(60)
                break
            before = _ledger_lines(ledger)
            deadline = time.monotonic() + 60
            while _ledger_lines(ledger) == before and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"{kind} worker exited: {proc.stderr.read()[-3000:]}")
                time.sleep(0.02)  # it is writing now
            delay = rng.uniform(0.0, max_delay)
            time.sleep(delay)
            delays.append(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            writes_before_kill.append(_ledger_lines(ledger) - before)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    return {
        "kind": kind,
        "kills": kills,
        "kill_delays_s": [round(d, 3) for d in delays],
        "writes_acknowledged_per_run": writes_before_kill,
        "checks": checks,  # checks[i] verifies the store after kill i-1 (checks[0]: fresh)
        "final": checks[-1],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chroma_server(data_dir: str) -> Iterator[tuple[str, int]]:
    """A real ``chroma run`` server on loopback for the duration of the block."""
    import httpx

    exe = shutil.which("chroma", path=os.path.dirname(sys.executable)) or shutil.which("chroma")
    if not exe:
        raise RuntimeError("the chroma CLI ships with chromadb and must be on PATH")
    port = free_port()
    os.makedirs(data_dir, exist_ok=True)
    log_path = Path(data_dir) / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [exe, "run", "--path", data_dir, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def multiprocess_drill(workdir: str, procs: int, ops: int, *, chroma_host: str | None = None,
                       chroma_port: int = 8000, collection: str = "headroom_memories",
                       seed: int = 0) -> dict[str, Any]:
    """``procs`` processes, each its own engine on one db file (and one Chroma folder, or one
    Chroma server), each running ``ops`` mixed operations at once. Returns their reports."""
    os.makedirs(workdir, exist_ok=True)
    db = os.path.join(workdir, "memory.db")
    extra = ["--collection", collection]
    if chroma_host:
        extra += ["--chroma-host", chroma_host, "--chroma-port", str(chroma_port)]
    t0 = time.perf_counter()
    children = [
        _spawn(["mixed", db, os.devnull, "--wid", str(w), "--ops", str(ops),
                "--seed", str(seed * 100 + w), *extra])
        for w in range(procs)
    ]
    try:
        outs = [_read_tagged(p, "DONE", 300) for p in children]
        for p in children:
            p.wait(60)
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait(30)
    return {"db": db, "workers": outs, "seconds": round(time.perf_counter() - t0, 2)}


def check_multiprocess_outcome(engine: Any, outs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every acknowledged write is there exactly as the workers left it."""
    kept = [i for o in outs for i in o["kept"]]
    deleted = [i for o in outs for i in o["deleted"]]
    pairs = [tuple(p) for o in outs for p in o["superseded"]]
    stored = engine.store.get_many(kept + deleted + [p[0] for p in pairs])
    lost = [i for i in kept if i not in stored or not stored[i].is_current]
    resurrected = [i for i in deleted if i in stored]
    bad_chain = [o for o, n in pairs if o in stored and stored[o].superseded_by != n
                 and stored[o].superseded_by is not None]
    not_closed = [o for o, _ in pairs if o in stored and stored[o].is_current]
    adds = sum(o["counts"]["add"] for o in outs)
    sups = sum(o["counts"]["supersede"] for o in outs)
    dels = sum(o["counts"]["delete"] for o in outs)
    rows = engine.store.count()
    return {
        "ops": {k: sum(o["counts"][k] for o in outs) for k in ("add", "supersede", "search", "delete")},
        "errors_reaching_caller": sum(o["n_errors"] for o in outs),
        "error_samples": [e for o in outs for e in o["errors"]][:5],
        "expected_rows": adds + sups - dels,
        "rows": rows,
        "lost": len(lost),
        "resurrected": len(resurrected),
        "bad_chain_links": len(bad_chain),
        "superseded_still_current": len(not_closed),
        "max_op_s": max(o["max_op_s"] for o in outs),
    }
