"""Ranking experiments on LoCoMo, end to end through the engine (``SyncHierarchicalMemory``).

    python -m bench.locomo_experiments            # all experiments, ~10 min on 2 cores
    python -m bench.locomo_experiments --only fusion,pool

One store is built per variant and layout (embeddings from bench.locomo's cache), then
searched under several settings by changing the engine's fusion weights / candidate pool
between passes (``engine.weights``, ``engine.config``) - the same code path as a store opened
with that ``MemoryConfig``. Query rewrites get the question and the conversation's two
speaker names only (never answers or evidence). Prints one line per setting and writes
bench/results/locomo_experiments.json; the write-up is locomo_experiments.md (by hand).

Every weight here is chosen on this data set: no held-out split.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .common import CACHE_DIR, RESULTS_DIR, CachingEmbedder, machine_info, write_json
from .locomo import (
    DATA_DEFAULT,
    KS,
    Conversation,
    build_engines,
    close_engines,
    get_variant,
    load_locomo,
    run_questions,
    score,
)

# words that make a question a question but say nothing about the answer (beyond the
# engine's stop words, which already drop what/when/who/did/...)
QUESTION_FILLER = frozenset(
    """kind type sort likely would might think ever yet also anything something someone
    many much specific particular probably considered consider describe mention mentioned
    name named""".split()
)
_WORD = re.compile(r"\w+|\W+")


def drop_filler(q: str, conv: Conversation) -> str:
    return "".join(t for t in _WORD.findall(q) if t.lower() not in QUESTION_FILLER)


def _names(conv: Conversation) -> set[str]:
    out = set()
    for s in conv.speakers:
        out |= {s.lower(), s.lower() + "s"}
    return out


def drop_speakers(q: str, conv: Conversation) -> str:
    """Remove the conversation's speaker names (and "Name's") from the question."""
    names = _names(conv)
    kept = "".join(t for t in _WORD.findall(q) if t.lower() not in names)
    return kept if re.search(r"\w", kept) else q


def drop_both(q: str, conv: Conversation) -> str:
    return drop_speakers(drop_filler(q, conv), conv)


REWRITES: dict[str, Callable[[str, Conversation], str]] = {
    "drop question filler": drop_filler,
    "drop speaker names": drop_speakers,
    "drop filler + names": drop_both,
}


class Log:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, experiment: str, setting: str, per_q: list[dict[str, Any]],
            timings: dict[str, list[float]], methods: Sequence[str]) -> None:
        m = score(per_q, methods)
        for meth in methods:
            row = {
                "experiment": experiment, "setting": setting, "method": meth,
                "cat1-4": [m["1-4"][meth][f"r@{k}"] for k in KS],
                "cat5": [m["cat5"][meth][f"r@{k}"] for k in KS],
                "per_category_r@5": {g: m[g][meth]["r@5"] for g in ("cat1", "cat2", "cat3", "cat4")},
                "mean_ms": round(1000 * sum(timings[meth]) / max(1, len(timings[meth])), 2),
            }
            self.rows.append(row)
            a, b = row["cat1-4"], row["cat5"]
            print(f"{experiment:10s} {setting:42s} {meth:6s} 1-4 {a[0]:.3f} {a[1]:.3f} {a[2]:.3f}"
                  f" | cat5 {b[0]:.3f} {b[1]:.3f} {b[2]:.3f} | {row['mean_ms']} ms", flush=True)


def set_pool(engine: Any, multiplier: int, minimum: int) -> None:
    engine.config.candidate_multiplier = multiplier
    engine.config.min_candidates = minimum


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="fusion,pool,topk,rewrite,rewritew,layout")
    ap.add_argument("--conversations", type=int, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "locomo_experiments.json")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))

    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    convs = load_locomo(DATA_DEFAULT)[: args.conversations]
    emb = CachingEmbedder(FastEmbedEmbedder(), CACHE_DIR / "locomo_embeddings.npz")
    log = Log()
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="locomo-exp-"))
    try:
        tuned = get_variant("tuned")
        engines, _, _ = build_engines(tuned, convs, emb, tmp / "shared", progress=False)
        eng = next(iter(engines.values()))
        default_w = eng.weights

        def run(exp: str, setting: str, methods: Sequence[str] = ("hybrid",), **kw: Any) -> None:
            per_q, timings, _ = run_questions(engines, convs, methods=methods, progress=False, **kw)
            log.add(exp, setting, per_q, timings, methods)

        run("default", "tuned, shared store (engine defaults)", ("hybrid", "text", "vector"))
        if "fusion" in only:
            for vw in (0.3, 0.4, 0.6, 0.7, 1.0):
                eng.weights = replace(default_w, vector=vw)
                run("fusion", f"score, text 1.0 / vector {vw}")
            for vw in (1.0, 0.5, 0.3):
                eng.weights = replace(default_w, fusion="rrf", vector=vw)
                run("fusion", f"rrf k=60, text 1.0 / vector {vw}")
            eng.weights = default_w
        if "pool" in only:
            for pool in (25, 40, 200):
                set_pool(eng, 1, pool)
                run("pool", f"candidate pool {pool} per side (top_k 25)")
            set_pool(eng, 4, 40)
        if "topk" in only:
            # what a caller asking for 5 / 10 gets (pool max(4k, 40)), not a top-25 prefix
            for k in (5, 10):
                per_q, timings, _ = run_questions(engines, convs, methods=("hybrid",), top_k=k,
                                                  progress=False)
                log.add("topk", f"search(top_k={k}) itself (pool {max(4 * k, 40)})", per_q,
                        timings, ("hybrid",))
        if "rewrite" in only:
            for name, fn in REWRITES.items():
                run("rewrite", name, ("hybrid", "text", "vector"), rewrite=fn)
        if "rewritew" in only:  # speaker names dropped: the vector side is stronger
            for vw in (0.7, 1.0, 1.5):
                eng.weights = replace(default_w, vector=vw)
                run("rewritew", f"drop speaker names, score, vector {vw}", rewrite=drop_speakers)
            eng.weights = replace(default_w, fusion="rrf", vector=1.0)
            run("rewritew", "drop speaker names, rrf 1:1", rewrite=drop_speakers)
            eng.weights = default_w
        close_engines(engines)
        if "layout" in only:
            for vname in ("tuned", "baseline"):
                v = get_variant(vname)
                if vname == "baseline":
                    shared, _, _ = build_engines(v, convs, emb, tmp / "b-shared", progress=False)
                    per_q, timings, _ = run_questions(shared, convs, methods=("text",), progress=False)
                    log.add("layout", "baseline, shared store", per_q, timings, ("text",))
                    close_engines(shared)
                per, _, _ = build_engines(v, convs, emb, tmp / f"{vname}-per", progress=False,
                                          layout="per-conversation")
                methods = ("hybrid", "text", "vector") if vname == "tuned" else ("text",)
                per_q, timings, _ = run_questions(per, convs, methods=methods, progress=False)
                log.add("layout", f"{vname}, one store per conversation", per_q, timings, methods)
                if vname == "tuned" and "rewrite" in only:
                    per_q, timings, _ = run_questions(per, convs, methods=methods, progress=False,
                                                      rewrite=drop_speakers)
                    log.add("layout", "tuned, per conversation, drop speaker names", per_q,
                            timings, methods)
                close_engines(per)
    finally:
        emb.save()
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.out, {"machine": machine_info(),
                          "command": "python -m bench.locomo_experiments " + " ".join(
                              argv if argv is not None else sys.argv[1:]),
                          "seconds": round(time.perf_counter() - t_start, 1), "rows": log.rows})


if __name__ == "__main__":
    main()
