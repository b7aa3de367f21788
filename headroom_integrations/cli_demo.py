"""``headroom-memory demo``: a short narrated tour on a throw-away store.

It uses the embedded default (a SQLite file and a Chroma folder in a temporary directory,
embeddings from the local ONNX MiniLM model): no server, no API key, no network.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.padding import Padding
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from . import cli_render as render
from .core.config import MemoryConfig
from .core.engine import SyncHierarchicalMemory
from .core.models import MemoryFilter, MemoryRecord, SearchResult, utcnow

MIN_SIMILARITY = 0.2
"""Results less similar in meaning than this are left out, so each search shows only real
matches (the vector index always returns *something* otherwise)."""


class _Narrator:
    """Prints the tour for a person, or collects it as JSON (``--json``)."""

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.out = None if json_mode else render.stdout_console()
        self.steps: list[dict[str, Any]] = []
        self.n = 0

    def title(self, text: str, sub: str) -> None:
        if self.out:
            self.out.print(Rule(f"[bold]{text}[/]"))
            self.out.print(sub)

    def step(self, title: str, *lines: str) -> None:
        self.n += 1
        self.steps.append({"step": self.n, "title": title, "notes": list(lines), "data": {}})
        if self.out:
            self.out.print()
            self.out.print(f"[bold cyan]Step {self.n}.[/] [bold]{title}[/]")
            for line in lines:
                self._para(line)

    def say(self, text: str) -> None:
        self.steps[-1]["notes"].append(text)
        if self.out:
            self._para(text)

    def _para(self, text: str) -> None:
        """An indented paragraph, wrapped to the terminal, without trailing blanks."""
        assert self.out is not None
        if not text:
            self.out.print()
            return
        for line in Text.from_markup(text).wrap(self.out, max(self.out.width - 3, 20)):
            line.rstrip()
            self.out.print(Text("   ") + line, soft_wrap=True)

    def data(self, key: str, value: Any) -> None:
        self.steps[-1]["data"][key] = value

    def show(self, renderable: Any) -> None:
        if self.out:
            self.out.print(Padding(renderable, (0, 0, 0, 3), expand=False))

    def search(
        self,
        memory: SyncHierarchicalMemory,
        who: str,
        query: str,
        why: str,
        **scope: str,
    ) -> list[SearchResult]:
        results = memory.search(
            query,
            user_id=who,
            top_k=3,
            min_similarity=MIN_SIMILARITY,
            **scope,  # type: ignore[arg-type]
        )
        where = ", ".join(f"{k.removesuffix('_id')} {v!r}" for k, v in scope.items())
        label = f"{who} searches {query!r}" + (f" from {where}" if where else " (user scope)")
        self.steps[-1]["data"].setdefault("searches", []).append(
            {
                "user": who,
                "query": query,
                "scope": scope,
                "results": [render.result_json(i, r) for i, r in enumerate(results, 1)],
            }
        )
        if self.out:
            self.out.print()
            self._para(f"[bold]> {label}[/]")
            if results:
                self.show(render.results_table(results, show_ids=False))
            else:
                self._para("[dim](no matching memory)[/]")
            self._para(f"[italic]Why:[/] {why}")
        return results


def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def _stored_table(records: list[MemoryRecord]) -> Table:
    table = render._table()
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("user")
    table.add_column("scope")
    table.add_column("category")
    table.add_column("content", ratio=1, overflow="fold")
    for r in records:
        table.add_row(
            r.id[:8], Text(r.user_id), Text(render.scope_label(r)), r.category.value, Text(r.content)
        )
    return table


def run_demo(*, json_mode: bool = False, keep: bool = False) -> None:
    """Run the tour; with ``keep`` the store survives and its path is printed."""
    tmp = Path(tempfile.mkdtemp(prefix="headroom-demo-"))
    db = tmp / "memory.db"
    say = _Narrator(json_mode)
    memory = None
    try:
        say.title(
            "headroom-memory demo",
            "A tour of hierarchical, temporal memory for LLM apps, on a throw-away store.",
        )

        # 1 ------------------------------------------------------------------ open
        memory = SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db)))
        say.step(
            "Open a fresh memory store",
            f"Store:    {db}  (SQLite: the source of truth, plus its keyword index)",
            f"Vectors:  {db}-vectors/  (embedded Chroma)",
            f"Embedder: {memory.embedder.name} ({memory.embedder.dimension} dimensions), "
            "a local ONNX model.",
            "No server, no API key, no network.",
        )
        say.data("db", str(db))
        say.data("embedder", memory.embedder.name)

        # 2 ------------------------------------------------------------------ store
        now = utcnow()
        # Whole days (midnight UTC) read best in the tables below.
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        joined_acme = midnight - timedelta(days=3 * 365)
        say.step(
            "Store memories for two users",
            "Every memory belongs to a user, and optionally to a session or an agent of that "
            "user: its scope.",
        )
        stored = [
            memory.add(
                "Prefers short answers with code examples",
                user_id="alice", category="preference",
            ),
            memory.add(
                "Works at Acme Corp as a data engineer",
                user_id="alice", category="fact", valid_from=joined_acme,
            ),
            memory.add("Is allergic to peanuts", user_id="alice", category="fact"),
            memory.add(
                "Planning a trip to Lisbon in May",
                user_id="alice", session_id="trip-planning", category="context",
            ),
            memory.add(
                "The project uses uv, not pip, to manage Python packages",
                user_id="alice", agent_id="coder", category="decision",
            ),
            memory.add("Lives in Lisbon and works as a chef", user_id="bob", category="fact"),
        ]
        acme = stored[1]
        say.show(_stored_table(stored))
        say.say(
            f"(The Acme memory is dated: true since {_day(joined_acme)}, when alice joined Acme.)"
        )
        say.data("stored", [render.record_json(r) for r in stored])

        # 3 ------------------------------------------------------------------ meaning
        say.step(
            "Search by meaning, not just by words",
            "Each search fuses two rankings: meaning (vector similarity) and keywords (BM25). "
            "'score' is the fused relevance (0..1); 'found by' gives each side's rank.",
        )
        say.search(
            memory, "alice", "what is my job?",
            "no memory contains the word 'job', but 'Works at Acme Corp as a data engineer' "
            "means something close, so the vector index finds it.",
        )
        say.search(
            memory, "alice", "food allergies",
            "'allergies' is not 'allergic' to a keyword index, yet the meaning matches.",
        )

        # 4 ------------------------------------------------------------------ scopes
        say.step(
            "Scopes decide what each search can see",
            "A search sees its own scope and the broader ones above it (user), never another "
            "session, agent or user.",
        )
        say.search(
            memory, "alice", "Lisbon trip",
            "the trip lives in session 'trip-planning', invisible from plain user scope; bob's "
            "Lisbon memory belongs to another user and is never shown to alice.",
        )
        say.search(
            memory, "alice", "Lisbon trip",
            "from inside the session, its memory is visible (found by meaning and keywords).",
            session_id="trip-planning",
        )
        say.search(
            memory, "alice", "which tool installs Python dependencies?",
            "agent 'coder' sees its own decision (and alice's user-level memories).",
            agent_id="coder",
        )
        say.search(
            memory, "alice", "which tool installs Python dependencies?",
            "agent 'writer' is another agent of alice: the coder's decision is not its memory.",
            agent_id="writer",
        )

        # 5 ------------------------------------------------------------------ supersede
        moved = midnight - timedelta(days=60)
        say.step(
            "Facts change: supersede instead of overwriting",
            f"alice moved to Globex on {_day(moved)}. The Acme memory is closed on that date "
            "and kept; the new version points back to it.",
        )
        globex = memory.supersede(
            acme.id, "Works at Globex as a machine-learning engineer", valid_from=moved
        )
        say.data("old_id", acme.id)
        say.data("new_id", globex.id)
        say.search(
            memory, "alice", "where does alice work?",
            "searches see current memories only: Acme is history now.",
        )
        chain = memory.get_history(globex.id)
        say.say("")
        say.say("[bold]> The supersession chain[/] (headroom-memory history ID):")
        say.show(_chain_table(chain))
        say.data("chain", [render.record_json(r) for r in chain])

        # 6 ------------------------------------------------------------------ time travel
        then = now - timedelta(days=365)
        say.step(
            "Point-in-time query: what was true back then?",
            f"List alice's memories valid on {_day(then)} (headroom-memory list --at DATE), "
            "then today.",
        )
        for when, label in ((then, f"on {_day(then)}"), (now, "today")):
            records = memory.query(MemoryFilter(user_id="alice", all_scopes=True, valid_at=when))
            jobs = [r for r in records if r.id in {acme.id, globex.id}]
            key = "valid_then" if when is then else "valid_now"
            say.data(key, [render.record_json(r) for r in jobs])
            line = "; ".join(r.content for r in jobs) or "(nothing)"
            say.say(f"[bold]> Where alice worked {label}:[/] {line}")
        say.say(
            "The old fact is not lost: asking about a past date answers as of that date."
        )

        # 7 ------------------------------------------------------------------ wrap-up
        stats = memory.stats()
        say.step(
            "What the store holds now",
            f"{stats.total} memories for {stats.users} users: {stats.current} current, "
            f"{stats.superseded} superseded (kept for history).",
        )
        say.data("stats", stats.model_dump(mode="json"))
        if keep:
            say.say(f"The store is kept. Explore it: headroom-memory --db {db} list --user alice")
        else:
            say.say("The demo store is deleted now. Try it on your own store:")
        say.say('  headroom-memory add "Prefers dark mode" --user me --category preference')
        say.say('  headroom-memory search "UI theme" --user me')
    finally:
        if memory is not None:
            memory.close()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if json_mode:
        render.print_json({"db": str(db), "kept": keep, "steps": say.steps})


def _chain_table(chain: list[MemoryRecord]) -> Table:
    return render.history_table(chain)
