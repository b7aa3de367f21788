"""SIGKILL in the middle of batch ingest and of supersede, in real child processes.

Each drill kills a writer at a random moment while it writes, reopens the store in a new
process (which repairs on open and verifies), and repeats; the last process only verifies.
Checked after every kill: every write whose call returned before the kill is stored, no
content is stored twice, every superseded memory points to a successor that points back, at
most one current version per chain, and SQLite, Chroma and FTS5 agree.
"""

from __future__ import annotations

import json
import threading

import pytest

from .rel_drills import crash_drill

pytestmark = pytest.mark.slow

KILLS = 2  # per drill here; bench/reliability.py runs more


def test_sigkill_mid_ingest_and_mid_supersede(tmp_path, record_property):
    results: dict[str, dict] = {}
    failures: list[BaseException] = []

    def run(kind: str, seed: int) -> None:
        try:
            results[kind] = crash_drill(kind, str(tmp_path / kind), kills=KILLS, seed=seed)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k, s)) for k, s in (("ingest", 7), ("supersede", 11))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]

    for kind, res in results.items():
        figures = {
            "kills": res["kills"],
            "kill_delays_s": res["kill_delays_s"],
            "acknowledged_writes_per_run": res["writes_acknowledged_per_run"],
            "promised_total": res["final"]["promised"],
            "rows_after": res["final"]["stored_rows"],
            "lost": sum(c["n_lost"] for c in res["checks"]),
            "broken_links": sum(c["n_broken"] for c in res["checks"]),
            "inconsistent_reopens": sum(not c["consistent"] for c in res["checks"]),
            "seconds": res["seconds"],
        }
        print(f"[crash:{kind}] {json.dumps(figures)}")
        record_property(f"crash_{kind}", json.dumps(figures))
        for n, check in enumerate(res["checks"]):
            where = f"{kind}: check after kill {n}"
            assert check["n_lost"] == 0, f"{where}: lost acknowledged writes {check['lost']}"
            assert check["n_broken"] == 0, f"{where}: half-superseded {check['broken_links']}"
            assert check["multi_current_chains"] == [], f"{where}: two current versions"
            assert check["duplicated_contents"] == 0, f"{where}: a write stored twice"
            assert check["consistent"], f"{where}: indexes disagree after reopen {check['report']}"
        assert res["final"]["promised"] > 0, f"{kind}: nothing was written before the kills"
