"""LoCoMo retrieval benchmark: recall@k of the engine's search over real long conversations.

    python -m bench.locomo                      # baseline + tuned, all 10 conversations
    python -m bench.locomo --variants baseline  # the stock ranking only
    python -m bench.locomo --conversations 1 --questions 20   # a quick slice
    python -m bench.locomo --layout per-conversation          # one store per conversation

Each LoCoMo conversation is one user; by default (``--layout shared``, the realistic case)
all 10 users live in one store, so they share one FTS5 table (and its BM25 statistics) and
one Chroma client (one collection per user). Each dialog turn is one memory (speaker,
session, date and dia_id kept as metadata, the speaker as its ``entity_refs``, the session
date as ``valid_from``). Each
question searches its conversation's user. recall@k = fraction of the question's evidence
dia_ids found among the top-k turns, averaged over questions that have evidence. Reported
for categories 1-4 together, per category, and category 5 (adversarial) apart; for the
engine's hybrid search and, in the same run and store, keyword-only (``mode="text"``) and
vector-only (``mode="vector"``); each once more as ``<mode>-plain`` with the engine's entity
and date boosts off (``entity_weight=0``, ``date_weight=0``): pure retrieval.

Variants (``--variants``), both the stock ``SyncHierarchicalMemory``:
- ``baseline``: the ranking before score fusion (``fusion="rrf"``, weights 1/1, no query
  word left out, no entity or date boost, no vector context window) and the turn text
  (+ image caption) as content, no ``search_text``;
- ``tuned``: ``bench.tuned`` - default ``MemoryConfig`` (score fusion, text 1.0 / vector
  0.8, ``common_term_ratio`` 0.7, ``entity_weight`` 0.25, ``date_weight`` 0.5,
  ``search_text_weight`` 0.5, vector context 2 before / 1 after), content "Speaker: text",
  ``search_text`` = session date + neighbouring turns. A session's turns share its date as
  ``valid_from`` and sessions are at least 28 hours apart, so the vector context window
  (which ends at a pause of more than ``vector_context_gap_minutes``, 60) stays inside a
  session.

Nothing reads answers or evidence except the scoring. The top-k lists are prefixes of one
top-25 search per question and method (the engine's candidate pool is then
max(25 * candidate_multiplier, min_candidates) = 100 per side). Writes
bench/results/locomo.json (summaries), locomo_<variant>_questions.json.gz (per-question
ranked ids), locomo.md and locomo.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .common import CACHE_DIR, RESULTS_DIR, CachingEmbedder, machine_info, write_json

DATA_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "locomo10.json"
EVIDENCE_ID = re.compile(r"D\d+:\d+")
KS = (5, 10, 25)
METHODS = ("hybrid", "text", "vector", "hybrid-plain", "text-plain", "vector-plain")
"""``-plain``: the same search with the engine's entity and date boosts off (pure retrieval)."""
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
REFERENCE = {
    "plain script, categories 1-4": {
        "bm25": [0.471, 0.551, 0.653],
        "vector": [0.416, 0.504, 0.645],
        "plain RRF": [0.511, 0.605, 0.719],
    },
    "LoCoMo paper DRAGON (all categories)": [0.567, 0.662, 0.767],
}


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str
    caption: str
    session: int
    date: str
    when: datetime | None
    index: int  # position in the whole conversation


@dataclass
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    turns: list[Turn]
    qa: list[dict[str, Any]] = field(default_factory=list)


def parse_date(text: str) -> datetime | None:
    """'1:56 pm on 8 May, 2023' -> datetime (UTC), or None."""
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def load_locomo(path: Path) -> list[Conversation]:
    data = json.loads(Path(path).read_text())
    out = []
    for sample in data:
        conv = sample["conversation"]
        sessions = sorted(
            int(m.group(1))
            for key in conv
            if (m := re.fullmatch(r"session_(\d+)", key)) and conv[key]
        )
        turns: list[Turn] = []
        for s in sessions:
            date = str(conv.get(f"session_{s}_date_time", ""))
            for t in conv[f"session_{s}"]:
                caption = t.get("blip_caption") or ""
                turns.append(
                    Turn(
                        dia_id=t["dia_id"],
                        speaker=t["speaker"],
                        text=t.get("text", ""),
                        caption=str(caption),
                        session=s,
                        date=date,
                        when=parse_date(date),
                        index=len(turns),
                    )
                )
        out.append(
            Conversation(
                sample_id=sample["sample_id"],
                speakers=(conv["speaker_a"], conv["speaker_b"]),
                turns=turns,
                qa=sample["qa"],
            )
        )
    return out


def evidence_ids(qa: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for ev in qa.get("evidence") or []:
        ids.extend(EVIDENCE_ID.findall(str(ev)))
    return list(dict.fromkeys(ids))


def plain_content(turn: Turn, turns: Sequence[Turn]) -> str:
    """Baseline memory text: what was said, plus the shared image's caption."""
    text = turn.text
    if turn.caption:
        text += f" [shared an image: {turn.caption}]"
    return text


# --------------------------------------------------------------------------- variants
@dataclass
class Variant:
    name: str
    description: str
    content: Callable[[Turn, Sequence[Turn]], str]
    open_engine: Callable[..., Any]  # (db_path, embedder, **MemoryConfig overrides)
    search_text: Callable[[Turn, Sequence[Turn]], str] | None = None  # keyword-only context
    config: dict[str, Any] = field(default_factory=dict)  # MemoryConfig overrides
    rewrite: Callable[[str, Conversation], str] | None = None  # query rewrite (question only)


def _stock_engine(db_path: str, embedder: Any, **config: Any) -> Any:
    from headroom_integrations import MemoryConfig, SyncHierarchicalMemory

    return SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path, **config), embedder=embedder)


BASELINE_CONFIG = {"fusion": "rrf", "vector_weight": 1.0, "text_weight": 1.0,
                   "common_term_ratio": 1.0, "entity_weight": 0.0, "date_weight": 0.0,
                   "vector_context_before": 0, "vector_context_after": 0}


def get_variant(name: str) -> Variant:
    if name == "baseline":
        return Variant(
            "baseline",
            "stock engine with the old ranking (fusion='rrf', k=60, weights 1/1, every query "
            "word kept: common_term_ratio=1.0, vector score = own cosine); content = turn "
            "text (+ image caption), no search_text",
            plain_content,
            _stock_engine,
            config=dict(BASELINE_CONFIG),
        )
    if name == "tuned":
        from . import tuned

        return tuned.variant()
    if name == "tuned-names":
        from . import tuned

        return tuned.variant_names()
    raise SystemExit(f"unknown variant {name!r}")


# --------------------------------------------------------------------------- running
def ingest(engine: Any, conv: Conversation, content: Callable[[Turn, Sequence[Turn]], str],
           search_text: Callable[[Turn, Sequence[Turn]], str] | None = None) -> int:
    from headroom_integrations.core.engine import MemoryInput

    items = [
        MemoryInput(
            content=content(t, conv.turns),
            user_id=conv.sample_id,
            category="fact",
            entity_refs=[t.speaker],
            metadata={
                "dia_id": t.dia_id,
                "speaker": t.speaker,
                "session": t.session,
                "date": t.date,
                "turn_index": t.index,
                **({"image_caption": t.caption} if t.caption else {}),
            },
            valid_from=t.when,
            search_text=search_text(t, conv.turns) if search_text else None,
        )
        for t in conv.turns
    ]
    # dedup off: a transcript legitimately repeats short turns ("Thanks!"), each its own dia_id.
    return len(engine.add_many(items, dedup=False))


def ranked_dia_ids(results: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for r in results:
        d = r.memory.metadata.get("dia_id")
        if d and d not in out:
            out.append(d)
    return out


LAYOUTS = ("shared", "per-conversation")


def build_engines(variant: Variant, convs: Sequence[Conversation], embedder: Any, tmp: Path, *,
                  layout: str = "shared", progress: bool = True,
                  config: dict[str, Any] | None = None) -> tuple[dict[str, Any], int, float]:
    """Open the store(s) and ingest: {sample_id: engine}, memories added, seconds."""
    from tqdm import tqdm

    if layout not in LAYOUTS:
        raise SystemExit(f"unknown layout {layout!r}")
    cfg = {**variant.config, **(config or {})}
    engines: dict[str, Any] = {}
    shared = variant.open_engine(str(tmp / "memory.db"), embedder, **cfg) if layout == "shared" else None
    t0 = time.perf_counter()
    n_mem = 0
    for conv in tqdm(convs, desc=f"[{variant.name}] ingest", disable=not progress):
        eng = shared if shared is not None else variant.open_engine(str(tmp / f"{conv.sample_id}.db"), embedder, **cfg)
        engines[conv.sample_id] = eng
        n_mem += ingest(eng, conv, variant.content, variant.search_text)
    if hasattr(embedder, "save"):
        embedder.save()
    return engines, n_mem, time.perf_counter() - t0


def close_engines(engines: dict[str, Any]) -> None:
    for eng in {id(e): e for e in engines.values()}.values():
        eng.close()


def run_questions(engines: dict[str, Any], convs: Sequence[Conversation], *,
                  max_questions: int | None = None, methods: Sequence[str] = METHODS,
                  top_k: int = max(KS), rewrite: Callable[[str, Conversation], str] | None = None,
                  progress: bool = True, desc: str = "search",
                  ) -> tuple[list[dict[str, Any]], dict[str, list[float]], int]:
    """One search per question and method; (per-question rows, timings, unknown evidence ids).
    ``rewrite(question, conversation)`` may rewrite the query (it never sees the answer)."""
    from tqdm import tqdm

    per_q: list[dict[str, Any]] = []
    jobs = [(c, qa) for c in convs for qa in (c.qa[:max_questions] if max_questions else c.qa)]
    timings: dict[str, list[float]] = defaultdict(list)
    missing_ids = 0
    for conv, qa in tqdm(jobs, desc=desc, disable=not progress):
        ev = evidence_ids(qa)
        known = {t.dia_id for t in conv.turns}
        missing_ids += sum(1 for e in ev if e not in known)
        row: dict[str, Any] = {
            "sample_id": conv.sample_id,
            "category": int(qa["category"]),
            "question": qa["question"],
            "evidence": ev,
        }
        query = rewrite(qa["question"], conv) if rewrite else qa["question"]
        eng = engines[conv.sample_id]
        for method in methods:
            mode, _, plain = method.partition("-")
            weights = eng.weights
            if plain:  # the engine's entity / date boosts off for this one search
                eng.weights = dataclasses.replace(weights, entity=0.0, date=0.0)
            try:
                s = time.perf_counter()
                res = eng.search(query, user_id=conv.sample_id, top_k=top_k, mode=mode)
                timings[method].append(time.perf_counter() - s)
            finally:
                eng.weights = weights
            row[method] = ranked_dia_ids(res)
        per_q.append(row)
    return per_q, timings, missing_ids


def run_variant(
    variant: Variant,
    convs: Sequence[Conversation],
    embedder: Any,
    *,
    max_questions: int | None = None,
    progress: bool = True,
    layout: str = "shared",
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"locomo-{variant.name}-"))
    try:
        engines, n_mem, ingest_s = build_engines(variant, convs, embedder, tmp, layout=layout,
                                                 progress=progress)
        per_q, timings, missing_ids = run_questions(
            engines, convs, max_questions=max_questions, progress=progress,
            desc=f"[{variant.name}] search", rewrite=variant.rewrite)
        if hasattr(embedder, "save"):
            embedder.save()
        close_engines(engines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "variant": variant.name,
        "description": variant.description,
        "config": variant.config,
        "layout": layout,
        "memories": n_mem,
        "questions": len(per_q),
        "questions_with_evidence": sum(1 for r in per_q if r["evidence"]),
        "evidence_ids_not_in_conversation": missing_ids,
        "ingest_seconds": round(ingest_s, 2),
        "mean_search_ms": {m: round(1000 * sum(v) / len(v), 2) for m, v in timings.items() if v},
        "metrics": score(per_q),
        "per_question": per_q,
    }


def recall_at(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    top = set(ranked[:k])
    return sum(1 for e in evidence if e in top) / len(evidence)


def score(per_q: Sequence[dict[str, Any]], methods: Sequence[str] = METHODS) -> dict[str, Any]:
    """{group: {method: {"n": int, "r@5": .., "r@10": .., "r@25": ..}}}; groups: "1-4",
    "cat1".."cat5"."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in per_q:
        if not r["evidence"]:
            continue
        c = r["category"]
        groups[f"cat{c}"].append(r)
        if c in (1, 2, 3, 4):
            groups["1-4"].append(r)
    out: dict[str, Any] = {}
    for g in ["1-4", "cat1", "cat2", "cat3", "cat4", "cat5"]:
        rows = groups.get(g, [])
        out[g] = {}
        for m in methods:
            entry: dict[str, Any] = {"n": len(rows)}
            for k in KS:
                entry[f"r@{k}"] = (
                    round(sum(recall_at(r[m], r["evidence"], k) for r in rows) / len(rows), 4)
                    if rows
                    else None
                )
            out[g][m] = entry
    return out


# --------------------------------------------------------------------------- reporting
def markdown(results: Sequence[dict[str, Any]], info: dict[str, Any],
             command: str = "python -m bench.locomo") -> str:
    lines = [
        "# LoCoMo retrieval recall",
        "",
        f"Measured {info['when']} on {info['cpu_count']} cores, Python {info['python']}, "
        f"chromadb {info['versions'].get('chromadb')}, fastembed {info['versions'].get('fastembed')}; "
        f"embedder `{info.get('embedder', 'fastembed:local/all-MiniLM-L6-v2-int8')}` (local ONNX). "
        "Command: `" + command + "`.",
        "",
        "recall@k = share of a question's evidence turns among the top-k; averaged over "
        "questions with evidence. Methods share one store and embedder per variant; layout "
        f"`{results[0]['layout'] if results else 'shared'}` (shared = one store holding the 10 "
        "conversations as 10 users: one FTS5 table, one Chroma collection per user). "
        "The fusion weights of `tuned` (the engine defaults) were chosen on this data set "
        "(bench/results/locomo_experiments.md): these are not held-out numbers.",
        "",
        "## Summary (categories 1-4; category 5 apart)",
        "",
        "| variant | method | cat 1-4 R@5 | R@10 | R@25 | cat 5 R@5 | R@10 | R@25 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        for m in METHODS:
            a, b = res["metrics"]["1-4"][m], res["metrics"]["cat5"][m]
            fmt = lambda e: " | ".join(  # noqa: E731
                f"{e[f'r@{k}']:.3f}" if e[f"r@{k}"] is not None else "-" for k in KS)
            lines.append(f"| {res['variant']} | {m} | {fmt(a)} | {fmt(b)} |")
    lines.append("")
    for res in results:
        lines += [
            f"## {res['variant']}: {res['description']}",
            "",
            f"MemoryConfig overrides: `{res.get('config') or {}}`; ingest {res['ingest_seconds']} s "
            "(embeddings from the bench cache).",
            "",
            f"{res['memories']} memories, {res['questions']} questions "
            f"({res['questions_with_evidence']} with evidence; "
            f"{res['evidence_ids_not_in_conversation']} evidence ids name no turn and count as misses). "
            f"Mean search time per query (ms): "
            + ", ".join(f"{m} {v}" for m, v in res["mean_search_ms"].items()),
            "",
            "| group | n | method | R@5 | R@10 | R@25 |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for g, by_m in res["metrics"].items():
            label = "cat 1-4" if g == "1-4" else f"{g} {CATEGORY_NAMES[int(g[3:])]}"
            for m, e in by_m.items():
                if e["n"] == 0:
                    continue
                vals = " | ".join(f"{e[f'r@{k}']:.3f}" for k in KS)
                lines.append(f"| {label} | {e['n']} | {m} | {vals} |")
        lines.append("")
    lines += [
        "Reference (categories 1-4, plain script): BM25 0.471/0.551/0.653, vector "
        "0.416/0.504/0.645, plain RRF 0.511/0.605/0.719. LoCoMo paper, DRAGON over dialog "
        "turns (all categories): 0.567/0.662/0.767.",
        "",
    ]
    return "\n".join(lines)


def plot(results: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["1-4", "cat1", "cat2", "cat3", "cat4", "cat5"]
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        width = 0.8 / len(METHODS)
        for i, m in enumerate(METHODS):
            vals = [res["metrics"][g][m]["r@10"] or 0.0 for g in groups]
            offset = (i - (len(METHODS) - 1) / 2) * width
            ax.bar([x + offset for x in range(len(groups))], vals, width, label=m)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(["cat 1-4", "multi-hop", "temporal", "open-dom", "single-hop", "advers."],
                           fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("recall@10")
        ax.set_title(f"LoCoMo recall@10 - {res['variant']}")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """A run's result without the per-question rows (what locomo.json keeps)."""
    return {k: v for k, v in res.items() if k != "per_question"}


def write_details(path: Path, res: dict[str, Any]) -> None:
    """Per-question ranked dia_ids (top 25 per method), gzip-compressed compact JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = res["per_question"]
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump({"variant": res["variant"], "layout": res["layout"], "per_question": rows},
                  fh, separators=(",", ":"))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA_DEFAULT)
    ap.add_argument("--variants", default="baseline,tuned")
    ap.add_argument("--layout", default="shared", choices=LAYOUTS,
                    help="shared: one store, one user per conversation (default); "
                         "per-conversation: one store each")
    ap.add_argument("--conversations", type=int, default=None, help="use only the first N")
    ap.add_argument("--questions", type=int, default=None, help="first N questions of each")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    ap.add_argument("--no-details", action="store_true",
                    help="do not write the per-question .json.gz files")
    ap.add_argument("--no-cache", action="store_true", help="do not reuse cached embeddings")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    from headroom_integrations.embedders.fastembed import FastEmbedEmbedder

    convs = load_locomo(args.data)
    if args.conversations:
        convs = convs[: args.conversations]
    base = FastEmbedEmbedder()
    embedder = base if args.no_cache else CachingEmbedder(base, CACHE_DIR / "locomo_embeddings.npz")
    info = machine_info()
    info["embedder"] = base.name
    results = []
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        res = run_variant(get_variant(name), convs, embedder, max_questions=args.questions,
                          progress=not args.quiet, layout=args.layout)
        results.append(res)
        if not args.no_details:
            write_details(args.out / f"locomo_{name}{args.tag}_questions.json.gz", res)
        m = res["metrics"]["1-4"]
        print(f"[{name}] categories 1-4: " + "; ".join(
            f"{meth} " + "/".join(f"{m[meth][f'r@{k}']:.3f}" for k in KS) for meth in METHODS
        ), file=sys.stderr)
    command = "python -m bench.locomo " + " ".join(argv if argv is not None else sys.argv[1:])
    write_json(args.out / f"locomo{args.tag}.json", {
        "machine": info, "command": command.strip(), "reference": REFERENCE,
        "results": [summary(r) for r in results],
    })
    (args.out / f"locomo{args.tag}.md").write_text(markdown(results, info, command.strip()))
    plot(results, args.out / f"locomo{args.tag}.png")
    return {"machine": info, "results": results}


if __name__ == "__main__":
    main()
