"""Embedding throughput: the default ``FastEmbedEmbedder`` (new) against a peer (old).

    python -m bench.embed_throughput                     # int8 default vs float, ~1 minute
    python -m bench.embed_throughput --old fastembed     # float batches vs fastembed's path
    python -m bench.embed_throughput --rounds 9 --ingest 1000 --locomo 600

Both run the same local model folder (all-MiniLM-L6-v2 int8 weights, packaged) in ONE
process, alternately, for ``--rounds`` rounds (the order of the two is shuffled each round),
so a neighbour taking a core slows both alike; medians and the median of the per-round
ratios are reported, with the load average.

- ``--old float`` (default): ``FastEmbedEmbedder(quantize=False)``, the default before
  session 6: float arithmetic, texts sorted by token count, batches of <= 256 padded tokens,
  one onnxruntime call at a time on its default intra-op threads.
- ``--old fastembed``: ``fastembed.TextEmbedding`` (``fastembed_local_model``) as
  ``FastEmbedEmbedder`` used it before session 4 (texts sorted by characters,
  ``embed(batch_size=32)``); then ``new`` is ``FastEmbedEmbedder(quantize=False)``, as in
  session 4's table.
- new (with ``--old float``): ``FastEmbedEmbedder()``: the int8 graph (fused attention and
  GELU, per-token int8 matrix products), texts batched by equal token count, batches side
  by side on one-thread calls (``workers``, up to 4).

Texts, fed ``--chunk`` (100) at a time as ``add_many`` does: the latency benchmark's ingest
texts (``bench.latency.make_texts``) and LoCoMo turns (text + image caption, as
``bench.locomo`` stores them; a fixed shuffled sample). Also: query embedding p50 (one
text), and the agreement of the two (lowest and mean cosine over every text embedded).
Writes bench/results/embed_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS_DIR, machine_info, write_json

LOCOMO_PATH = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "locomo10.json"

Embed = Callable[[Sequence[str]], np.ndarray]


class OldPath:
    """``FastEmbedEmbedder.embed_documents`` / ``embed_query`` as they were: fastembed."""

    def __init__(self, folder: Path, batch_size: int = 32, threads: int | None = None) -> None:
        from headroom_integrations.embedders.fastembed import fastembed_local_model

        self.model = fastembed_local_model(folder, threads=threads)
        self.batch_size = batch_size

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        from headroom_integrations.embedders.fastembed import _normalise

        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        got = list(self.model.embed([texts[i] for i in order], batch_size=self.batch_size))
        out = np.empty((len(texts), len(got[0])), dtype=np.float32)
        out[order] = np.asarray(got, dtype=np.float32)
        return _normalise(out)

    def embed_query(self, text: str) -> np.ndarray:
        from headroom_integrations.embedders.fastembed import _normalise

        row = next(iter(self.model.query_embed([text])))
        return _normalise(np.asarray(row, dtype=np.float32).reshape(1, -1))[0]


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def locomo_texts(path: Path, n: int, seed: int) -> list[str]:
    from .locomo import load_locomo, plain_content

    turns = [plain_content(t, c.turns) for c in load_locomo(path) for t in c.turns]
    random.Random(seed).shuffle(turns)
    return turns[:n]


def timed(fn: Embed, texts: Sequence[str], chunk: int) -> tuple[float, np.ndarray]:
    """Texts per second embedding ``texts`` ``chunk`` at a time, and the vectors."""
    parts = []
    start = time.perf_counter()
    for i in range(0, len(texts), chunk):
        parts.append(fn(texts[i : i + chunk]))
    elapsed = time.perf_counter() - start
    return len(texts) / elapsed, np.concatenate(parts)


def compare(
    paths: dict[str, Embed], texts: Sequence[str], rounds: int, chunk: int, seed: int
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {k: [] for k in paths}
    ratios: list[float] = []
    loads = [loadavg()]
    vectors: dict[str, np.ndarray] = {}
    rng = random.Random(seed)
    for _ in range(rounds):
        names = list(paths)
        rng.shuffle(names)
        for name in names:
            rate, vectors[name] = timed(paths[name], texts, chunk)
            rates[name].append(round(rate, 1))
        ratios.append(rates["new"][-1] / rates["old"][-1])
        loads.append(loadavg())
    cosine = (vectors["old"] * vectors["new"]).sum(axis=1)
    return {
        "texts": len(texts),
        "tokens_mean": None,
        "old_per_s": round(statistics.median(rates["old"]), 1),
        "new_per_s": round(statistics.median(rates["new"]), 1),
        "ratio_median": round(statistics.median(ratios), 2),
        "rounds_old": rates["old"],
        "rounds_new": rates["new"],
        "load_1m": loads,
        "min_cosine": float(cosine.min()),
        "mean_cosine": float(cosine.mean()),
    }


def query_latency(paths: dict[str, Callable[[str], Any]], queries: Sequence[str],
                  rounds: int) -> dict[str, Any]:
    """p50 ms of one query embedding per path, blocks of queries alternating per round."""
    times: dict[str, list[float]] = {k: [] for k in paths}
    loads = [loadavg()]
    blocks = np.array_split(np.arange(len(queries)), rounds)
    for r, block in enumerate(blocks):
        names = list(paths) if r % 2 == 0 else list(paths)[::-1]
        for name in names:
            for i in block:
                start = time.perf_counter()
                paths[name](queries[i])
                times[name].append(time.perf_counter() - start)
        loads.append(loadavg())
    out: dict[str, Any] = {
        f"{k}_p50_ms": round(1000 * float(np.median(v)), 2) for k, v in times.items()
    }
    out.update({f"{k}_p95_ms": round(1000 * float(np.percentile(v, 95)), 2)
                for k, v in times.items()})
    out["queries"] = len(queries)
    out["load_1m"] = loads
    return out


def mean_tokens(embedder: Any, texts: Sequence[str]) -> float:
    local = getattr(embedder, "_local", None)
    if local is None:
        return float("nan")
    return round(float(np.mean([len(e.ids) for e in local.tokenizer.encode_batch(list(texts))])), 1)


OLD_LABEL = {
    "float": "`FastEmbedEmbedder(quantize=False)`: float arithmetic, texts sorted by token "
    "count, batches of <= 256 padded tokens (and <= 32 texts), one onnxruntime call at a time "
    "on its default intra-op threads (the default before session 6)",
    "fastembed": "`fastembed.TextEmbedding` on the local folder as `FastEmbedEmbedder` used it "
    "before session 4 (texts sorted by characters, `embed(batch_size=32)`, onnxruntime's "
    "default intra-op threads with spinning)",
}
NEW_LABEL = {
    "float": "`FastEmbedEmbedder()`: int8 graph (`int8_model_file`: fused attention and GELU, "
    "int8 matrix products with per-token activation scales), texts batched with texts of "
    "the same token count (so a text's vector never depends on its batch), batches side by "
    "side on one-thread calls",
    "fastembed": "`FastEmbedEmbedder(quantize=False)`: one tokenization, sorted by token "
    "count, batches of <= 256 padded tokens (and <= 32 texts), one onnxruntime call at a time "
    "with its default intra-op threads",
}


def write_md(result: dict[str, Any], path: Path) -> None:
    m = result["machine"]
    peer = result.get("old", "fastembed")
    lines = [
        "# Embedding throughput: " + ("int8 default (new) vs float (old)" if peer == "float"
                                      else "fastembed path (old) vs FastEmbedEmbedder (new)"),
        "",
        f"Measured {m['when']} on {m['cpu_count']} cores, Python {m['python']}, "
        f"fastembed {m['versions'].get('fastembed')}, onnxruntime {m['versions'].get('onnxruntime')}. "
        f"Command: `{result['command']}`.",
        "",
        "Same model folder (all-MiniLM-L6-v2, int8 weights, mean pooling, L2 norm). Both "
        f"alternate in one process for {result['rounds']} rounds (order shuffled each round), "
        f"texts fed {result['chunk']} at a time as `add_many` does; texts/s medians, the median "
        "of the per-round new/old ratios, and the 1-minute load average before and after each "
        "round (the machine is shared: compare the ratio, not the absolute rates, across runs).",
        "",
        "| texts | n | mean tokens | old texts/s | new texts/s | new/old | load 1m | cosine old vs new (min / mean) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, r in result["sets"].items():
        lines.append(
            f"| {name} | {r['texts']} | {r['tokens_mean']} | {r['old_per_s']} | {r['new_per_s']} "
            f"| {r['ratio_median']} | {min(r['load_1m'])}-{max(r['load_1m'])} | "
            f"{r['min_cosine']:.4f} / {r.get('mean_cosine', float('nan')):.4f} |"
        )
    lines += ["", "Per round (texts/s, old / new):", ""]
    for name, r in result["sets"].items():
        pairs = ", ".join(f"{o:.0f}/{n:.0f}" for o, n in zip(r["rounds_old"], r["rounds_new"]))
        lines.append(f"- {name}: {pairs}")
    q = result.get("query")
    if q:
        lines += [
            "",
            f"One query embedding ({q['queries']} distinct queries, blocks alternating): old p50 / "
            f"p95 {q['old_p50_ms']} / {q['old_p95_ms']} ms, new {q['new_p50_ms']} / "
            f"{q['new_p95_ms']} ms (load {min(q['load_1m'])}-{max(q['load_1m'])}).",
        ]
    lines += ["", f"old = {OLD_LABEL[peer]}. new = {NEW_LABEL[peer]}.", ""]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    from .latency import make_queries, make_texts

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ingest", type=int, default=500, help="ingest texts per round")
    ap.add_argument("--locomo", type=int, default=300, help="LoCoMo turns per round")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=100, help="texts per embed call")
    ap.add_argument("--locomo-path", type=Path, default=LOCOMO_PATH)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--old", choices=("float", "fastembed"), default="float",
                    help="the peer: the float default before session 6, or fastembed's path")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)

    new: Any
    old: Any
    if args.old == "float":
        new = FastEmbedEmbedder()
        old = FastEmbedEmbedder(quantize=False)
    else:
        new = FastEmbedEmbedder(quantize=False)
        old = OldPath(Path(new.source), batch_size=new.batch_size)
    sets = {"ingest (bench.latency.make_texts)": make_texts(args.ingest, seed=args.seed + 17)}
    if args.locomo and args.locomo_path.is_file():
        sets["LoCoMo turns"] = locomo_texts(args.locomo_path, args.locomo, args.seed)
    elif args.locomo:
        print(f"LoCoMo data not found at {args.locomo_path}: skipped")
    for fn in (old.embed_documents, new.embed_documents):  # warm both up
        fn(make_texts(args.chunk, seed=args.seed + 99))

    paths: dict[str, Embed] = {"old": old.embed_documents, "new": new.embed_documents}
    result: dict[str, Any] = {
        "machine": machine_info(),
        "command": "python -m bench.embed_throughput"
        + (" " + " ".join(argv) if argv else ""),
        "old": args.old,
        "rounds": args.rounds,
        "chunk": args.chunk,
        "sets": {},
    }
    for name, texts in sets.items():
        r = compare(paths, texts, args.rounds, args.chunk, args.seed)
        r["tokens_mean"] = mean_tokens(new, texts)
        result["sets"][name] = r
        print(f"{name}: old {r['old_per_s']}/s new {r['new_per_s']}/s ratio {r['ratio_median']} "
              f"min cos {r['min_cosine']:.6f} load {r['load_1m']}")
    if args.queries:
        queries = make_queries(args.queries, seed=args.seed + 5)
        result["query"] = query_latency(
            {"old": old.embed_query, "new": new.embed_query}, queries, rounds=4
        )
        q = result["query"]
        print(f"query p50: old {q['old_p50_ms']} ms new {q['new_p50_ms']} ms load {q['load_1m']}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "embed_throughput.json", result)
    write_md(result, args.out / "embed_throughput.md")
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
