"""Rendering helpers of the ``headroom-memory`` CLI: rich tables for people, plain JSON
for scripts. Text that comes from users (contents, ids, paths) is never read as markup."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .core.engine import ConsistencyReport
from .core.models import MemoryRecord, MemoryStats, SearchResult


def stdout_console() -> Console:
    # Created per call so that it writes to whatever sys.stdout is now (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def print_json(data: Any) -> None:
    """Plain JSON on stdout: no colour codes, one document, newline-terminated."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def record_json(record: MemoryRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    data["scope_level"] = record.scope_level.value
    return data


def result_json(rank: int, result: SearchResult) -> dict[str, Any]:
    return {
        "rank": rank,
        "score": round(result.score, 6),
        "similarity": None if result.similarity is None else round(result.similarity, 6),
        "vector_rank": result.vector_rank,
        "text_rank": result.text_rank,
        "memory": record_json(result.memory),
    }


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def fmt_day(value: datetime | None) -> str:
    """A date, with the time of day only when it is not midnight UTC."""
    if value is None:
        return "-"
    if (value.hour, value.minute, value.second) == (0, 0, 0):
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M")


def scope_label(record: MemoryRecord) -> str:
    """``user`` / ``session:s1`` / ``session:s1 agent:a`` ... : where a memory lives."""
    parts = []
    if record.session_id is not None:
        parts.append(f"session:{record.session_id}")
    if record.agent_id is not None:
        parts.append(f"agent:{record.agent_id}")
    if record.turn_id is not None:
        parts.append(f"turn:{record.turn_id}")
    return " ".join(parts) if parts else "user"


def status_text(record: MemoryRecord) -> Text:
    if record.is_current:
        return Text("current", style="green")
    return Text("superseded", style="yellow")


def matched_by(result: SearchResult) -> str:
    """Which index found a search result, and at which rank."""
    parts = []
    if result.vector_rank is not None:
        parts.append(f"meaning #{result.vector_rank}")
    if result.text_rank is not None:
        parts.append(f"keywords #{result.text_rank}")
    return ", ".join(parts) or "-"


def memory_detail_table(record: MemoryRecord, title: str | None = None) -> Table:
    table = Table(show_header=False, title=title, title_justify="left", box=None, padding=(0, 2))
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("id", record.id)
    table.add_row("content", Text(record.content))
    table.add_row("user", Text(record.user_id))
    table.add_row("scope", Text(scope_label(record)))
    table.add_row("category", record.category.value)
    table.add_row("importance", f"{record.importance:.2f}")
    table.add_row("status", status_text(record))
    table.add_row("valid from", fmt_time(record.valid_from))
    if record.valid_until is not None:
        table.add_row("valid until", fmt_time(record.valid_until))
    if record.supersedes:
        table.add_row("supersedes", record.supersedes)
    if record.superseded_by:
        table.add_row("superseded by", record.superseded_by)
    if record.promoted_from:
        table.add_row("promoted from", record.promoted_from)
    return table


SHORT_ID = 8
ID_CAPTION = "ids shortened: every command takes a unique prefix; --json shows full ids"


def short_id(memory_id: str) -> str:
    return memory_id[:SHORT_ID]


def _table(title: str | None = None, caption: str | None = None) -> Table:
    return Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )


def scope_cell(record: MemoryRecord) -> Text:
    return Text(scope_label(record) + (" (promoted)" if record.promoted_from else ""))


def content_cell(record: MemoryRecord) -> Text:
    text = Text(record.content)
    if not record.is_current:
        text.append("  (superseded)", style="yellow")
    return text


def records_table(records: Sequence[MemoryRecord]) -> Table:
    table = _table(caption=ID_CAPTION)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("content", ratio=1, min_width=16, overflow="fold")
    table.add_column("scope", no_wrap=True, max_width=22, overflow="ellipsis")
    table.add_column("category", no_wrap=True)
    table.add_column("imp.", justify="right", no_wrap=True)
    table.add_column("valid from", no_wrap=True)
    for r in records:
        table.add_row(
            short_id(r.id),
            content_cell(r),
            scope_cell(r),
            r.category.value,
            f"{r.importance:.2f}",
            r.valid_from.strftime("%Y-%m-%d"),
        )
    return table


def results_table(results: Sequence[SearchResult], *, show_ids: bool = True) -> Table:
    table = _table(caption=ID_CAPTION if show_ids else None)
    table.add_column("#", justify="right", no_wrap=True)
    if show_ids:
        table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("content", ratio=1, min_width=16, overflow="fold")
    table.add_column("scope", no_wrap=True, max_width=22, overflow="ellipsis")
    table.add_column("found by", max_width=12)
    for i, r in enumerate(results, 1):
        row: list[Any] = [str(i)]
        if show_ids:
            row.append(short_id(r.id))
        row += [
            f"{r.score:.2f}",
            content_cell(r.memory),
            scope_cell(r.memory),
            matched_by(r),
        ]
        table.add_row(*row)
    return table


def history_table(chain: Sequence[MemoryRecord], focus: str | None = None) -> Table:
    table = _table(caption=ID_CAPTION if focus else None)
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("content", ratio=1, min_width=16, overflow="fold")
    table.add_column("valid from", no_wrap=True)
    table.add_column("valid until", no_wrap=True)
    for i, r in enumerate(chain, 1):
        table.add_row(
            f"{i}{' <' if r.id == focus else ''}",
            short_id(r.id),
            content_cell(r) if focus is None else Text(r.content),
            fmt_day(r.valid_from),
            fmt_day(r.valid_until) if r.valid_until else Text("(still true)", style="green"),
        )
    return table


def stats_tables(stats: MemoryStats, db: str, user: str | None) -> list[Table]:
    head = Table(show_header=False, box=None, padding=(0, 2))
    head.add_column("field", style="bold")
    head.add_column("value", overflow="fold")
    head.add_row("store", Text(db))
    head.add_row("user", Text(user or "(all users)"))
    if user is None:
        head.add_row("users", str(stats.users))
    head.add_row("memories", str(stats.total))
    head.add_row("current", str(stats.current))
    head.add_row("superseded", str(stats.superseded))
    out = [head]
    for title, counts in (("by category", stats.by_category), ("by scope", stats.by_scope_level)):
        if counts:
            t = _table()
            t.add_column(title.split()[-1], style="bold")
            t.add_column("memories", justify="right")
            for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                t.add_row(key, str(n))
            out.append(t)
    return out


def consistency_table(report: ConsistencyReport) -> Table:
    table = _table()
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column("result")

    def row(name: str, ids: list[str]) -> None:
        if ids:
            sample = ", ".join(i[:8] for i in ids[:3]) + (" ..." if len(ids) > 3 else "")
            table.add_row(name, str(len(ids)), Text(f"PROBLEM ({sample})", style="red"))
        else:
            table.add_row(name, "0", Text("ok", style="green"))

    table.add_row("memories in SQLite", str(report.memories), "")
    table.add_row("vectors in Chroma", str(report.vectors), "")
    table.add_row("rows in keyword index", str(report.keywords), "")
    row("missing vectors", report.missing_vectors)
    row("orphan vectors", report.orphan_vectors)
    row("missing keywords", report.missing_keywords)
    row("orphan keywords", report.orphan_keywords)
    row("unsynced writes", report.unsynced)
    return table


def report_json(report: ConsistencyReport) -> dict[str, Any]:
    data = report.model_dump(mode="json")
    data["ok"] = report.ok
    return data
