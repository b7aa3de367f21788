"""Smoke test of the benchmark harnesses (bench/): structure of their result files only.

Runs LoCoMo on a slice (first two sessions of the first conversation, its questions whose
evidence lies there, plus one verbatim-turn question that must be found) and the latency
harness at a tiny size. Recall values are not compared between methods here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "locomo10.json"


@pytest.mark.skipif(not DATA.is_file(), reason="LoCoMo data not present")
def test_locomo_harness_slice(tmp_path: Path) -> None:
    from bench import locomo

    sample = json.loads(DATA.read_text())[0]
    conv = sample["conversation"]
    keep = {k: conv[k] for k in ("speaker_a", "speaker_b", "session_1", "session_1_date_time",
                                 "session_2", "session_2_date_time")}
    ids = {t["dia_id"] for s in ("session_1", "session_2") for t in conv[s]}
    qa = [q for q in sample["qa"]
          if locomo.evidence_ids(q) and set(locomo.evidence_ids(q)) <= ids][:6]
    easy = conv["session_1"][2]  # "I went to a LGBTQ support group yesterday ..."
    qa.append({"question": easy["text"], "answer": "-", "evidence": [easy["dia_id"]], "category": 4})
    data = tmp_path / "slice.json"
    data.write_text(json.dumps([{"sample_id": "conv-test", "conversation": keep, "qa": qa}]))
    out = tmp_path / "out"
    res = locomo.main(["--data", str(data), "--variants", "baseline,tuned", "--out", str(out),
                       "--no-cache", "--quiet"])
    import gzip

    saved = json.loads((out / "locomo.json").read_text())
    assert {"machine", "reference", "results"} <= set(saved)
    assert [r["variant"] for r in saved["results"]] == ["baseline", "tuned"]
    for summary in saved["results"]:
        assert "per_question" not in summary  # details live in the .json.gz files
        assert summary["questions"] == len(qa)
        for group, by_method in summary["metrics"].items():
            assert set(by_method) == {"hybrid", "text", "vector", "hybrid-plain", "text-plain",
                                      "vector-plain"}
            for entry in by_method.values():
                for k in (5, 10, 25):
                    v = entry[f"r@{k}"]
                    assert v is None or 0.0 <= v <= 1.0
    for name in ("baseline", "tuned"):
        with gzip.open(out / f"locomo_{name}_questions.json.gz", "rt") as fh:
            details = json.load(fh)
        assert len(details["per_question"]) == len(qa)
        last = details["per_question"][-1]
        for method in locomo.METHODS:
            # tuned keyword search indexes neighbour context, so a neighbour may tie: top 3
            assert easy["dia_id"] in last[method][:3], (name, method, last[method][:3])
    assert (out / "locomo.md").read_text().startswith("# LoCoMo")
    assert (out / "locomo.png").stat().st_size > 0
    assert len(res["results"]) == 2


def test_latency_harness_tiny(tmp_path: Path) -> None:
    from bench import latency

    out = tmp_path / "out"
    res = latency.main(["--sizes", "60", "--layouts", "spread,single", "--queries", "5",
                        "--adds", "3", "--ingest", "20", "--out", str(out),
                        "--cache-dir", str(tmp_path / "cache")])
    saved = json.loads((out / "latency.json").read_text())
    assert saved["machine"]["cpu_count"]
    assert [(r["size"], r["layout"]) for r in saved["runs"]] == [(60, "spread"), (60, "single")]
    for r in saved["runs"]:
        for key in ("search_p50_ms", "search_p95_ms", "search_cached_p50_ms", "add_p50_ms",
                    "add_p99_ms", "add_max_ms", "add_loop_per_s",
                    "search_cold_p50_ms", "search_cold_p95_ms",
                    "ingest_per_s", "rss_mib_after_build", "disk_bytes_per_memory"):
            assert r[key] > 0, key
    spread, single = saved["runs"]
    assert spread["cold_searches"] == 5 and single["cold_searches"] == 1
    assert (out / "latency.md").read_text().startswith("# Latency")
    assert (out / "latency.png").stat().st_size > 0
    assert res["runs"]
