"""``headroom-memory``: the command line of headroom-integrations.

Store, search, list and maintain memories in a local store (a SQLite file plus a Chroma
folder beside it, embeddings by a local ONNX model: no server, no API key, no network).

Exit codes: 0 ok; 1 not found or bad input; 2 bad usage (unknown option, missing argument);
3 store problem (corrupted database, embedder mismatch, no embedding model); 130 interrupted.
"""

from __future__ import annotations

import io
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import cli_render as render
from .core.config import MemoryConfig
from .core.engine import SyncHierarchicalMemory
from .core.errors import (
    AlreadySupersededError,
    EmbedderMismatchError,
    HeadroomMemoryError,
    InvalidInputError,
    MemoryNotFoundError,
    StoreCorruptedError,
)
from .core.models import MemoryCategory, MemoryFilter, utcnow

ENV_DB = "HEADROOM_MEMORY_PATH"
DEFAULT_DB = "~/.headroom/memory.db"  # the same default as MemoryConfig and Memory()

EXIT_OK = 0
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_INTERRUPTED = 130

MIN_ID_PREFIX = 4
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


class SearchModeChoice(str, Enum):
    hybrid = "hybrid"
    vector = "vector"
    text = "text"


class ConflictChoice(str, Enum):
    skip = "skip"
    replace = "replace"  # type: ignore[assignment]  # the member shadows str.replace
    error = "error"


@dataclass
class State:
    db: str
    json: bool


app = typer.Typer(
    name="headroom-memory",
    help=(
        "Persistent, hierarchical, temporal memory for LLM apps, from the command line.\n\n"
        "Memories live in a local store (--db: a SQLite file plus a '<db>-vectors' Chroma "
        "folder); embeddings come from a local ONNX model, so nothing needs a server, an API "
        "key or the network. New here? Run: headroom-memory demo\n\n"
        "Exit codes: 0 ok, 1 not found / bad input, 2 bad usage, 3 store problem."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    db: str = typer.Option(
        DEFAULT_DB,
        "--db",
        envvar=ENV_DB,
        show_envvar=True,
        metavar="PATH",
        help="The memory store (SQLite file; vectors go to PATH-vectors/).",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print plain JSON on stdout (for scripts); errors as JSON on stderr."
    ),
) -> None:
    ctx.obj = State(db=os.path.expanduser(db), json=json_out)


# ---------------------------------------------------------------------- errors and opening
def _state(ctx: typer.Context) -> State:
    state = ctx.find_object(State)
    assert state is not None
    return state


def _fail(
    state: State, message: str, code: int, kind: str = "error", hint: str | None = None
) -> NoReturn:
    """Report an expected error on stderr (never a traceback) and exit with ``code``."""
    if state.json:
        payload: dict[str, Any] = {"error": kind, "message": message, "exit_code": code}
        if hint:
            payload["hint"] = hint
        import json

        sys.stderr.write(json.dumps(payload, ensure_ascii=False) + "\n")
    else:
        err = render.stderr_console()
        err.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        if hint:
            err.print(f"[dim]Hint:[/] {escape(hint)}", soft_wrap=True)
    raise typer.Exit(code)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, (MemoryNotFoundError, InvalidInputError, AlreadySupersededError)):
        return EXIT_USER
    return EXIT_STORE


def _hint(exc: BaseException, state: State) -> str | None:
    if isinstance(exc, MemoryNotFoundError):
        return "list ids with: headroom-memory list --user USER"
    if isinstance(exc, AlreadySupersededError):
        return "see the chain with: headroom-memory history ID"
    if isinstance(exc, StoreCorruptedError):
        return f"check that --db points at a memory store (now: {state.db})"
    if isinstance(exc, InvalidInputError) and "on_conflict" in str(exc):
        return "use --on-conflict skip (keep existing) or --on-conflict replace"
    if isinstance(exc, EmbedderMismatchError):
        return "run `headroom-memory reindex` to re-embed every memory with the current model"
    return None


@contextmanager
def _handled(state: State) -> Iterator[None]:
    """Turn the engine's expected errors into a message and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except HeadroomMemoryError as exc:
        _fail(state, str(exc), _exit_code(exc), type(exc).__name__, _hint(exc, state))
    except sqlite3.DatabaseError as exc:
        _fail(
            state,
            f"{state.db} cannot be used as a memory store ({exc})",
            EXIT_STORE,
            "StoreCorruptedError",
            _hint(StoreCorruptedError(), state),
        )
    except KeyboardInterrupt:
        _fail(state, "interrupted", EXIT_INTERRUPTED, "Interrupted")


@contextmanager
def _store(ctx: typer.Context, *, create: bool = False) -> Iterator[SyncHierarchicalMemory]:
    """Open the store of ``--db`` for one command, and close it afterwards.

    Read-only commands refuse a path with no store rather than create an empty one there.
    """
    state = _state(ctx)
    if not create and not Path(state.db).exists():
        _fail(
            state,
            f"no memory store at {state.db}",
            EXIT_USER,
            "StoreNotFound",
            f"pass --db PATH (or set {ENV_DB}), or create one with `add` or `import`",
        )
    if Path(state.db).is_dir():
        _fail(state, f"{state.db} is a directory, not a memory store", EXIT_USER, "InvalidInput")
    with _handled(state):
        memory = SyncHierarchicalMemory.create(MemoryConfig(db_path=state.db))
        try:
            yield memory
        finally:
            memory.close()


def _resolve_id(memory: SyncHierarchicalMemory, memory_id: str) -> str:
    """A full memory id from an id or a unique prefix of at least 4 characters."""
    memory_id = memory_id.strip()
    if memory.get(memory_id) is not None:
        return memory_id
    key = memory_id.lower()
    if MIN_ID_PREFIX <= len(key) < 32 and all(c in "0123456789abcdef" for c in key):
        matches = sorted(i for i in memory.store.all_ids() if i.startswith(key))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidInputError(
                f"id prefix {memory_id!r} matches {len(matches)} memories "
                f"({', '.join(m[:12] for m in matches[:3])}...); give more characters"
            )
    raise MemoryNotFoundError(memory_id)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=render.stderr_console(),
        transient=False,
    )


# ---------------------------------------------------------------------- commands
USER_OPT = typer.Option(..., "--user", "-u", help="The user the memories belong to.")
SESSION_OPT = typer.Option(None, "--session", "-s", help="A session of that user.")
AGENT_OPT = typer.Option(None, "--agent", "-a", help="An agent of that user.")


@app.command()
def add(
    ctx: typer.Context,
    text: str = typer.Argument(..., metavar="TEXT", help="What to remember."),
    user: str = USER_OPT,
    session: Optional[str] = SESSION_OPT,
    agent: Optional[str] = AGENT_OPT,
    category: MemoryCategory = typer.Option(
        MemoryCategory.FACT, "--category", "-c", case_sensitive=False, help="Kind of memory."
    ),
    importance: float = typer.Option(
        0.5, "--importance", "-i", min=0.0, max=1.0, help="0..1; at 0.8 or more a session or "
        "agent memory is also promoted to user scope."
    ),
    valid_from: Optional[datetime] = typer.Option(
        None, "--valid-from", formats=DATE_FORMATS, metavar="DATE",
        help="Since when it is true (UTC; default now).",
    ),
) -> None:
    """Store a memory (a current one with the same text in the same scope is reused)."""
    state = _state(ctx)
    with _store(ctx, create=True) as memory, _handled(state):
        started = utcnow()
        record = memory.add(
            text,
            user_id=user,
            session_id=session,
            agent_id=agent,
            category=category,
            importance=importance,
            valid_from=valid_from,
        )
        created = record.created_at >= started
        promoted = memory.store.find_promoted_copy(record.id) if record.scope_level.rank else None
        if state.json:
            render.print_json(
                {
                    "created": created,
                    "promoted_copy_id": promoted.id if promoted else None,
                    "memory": render.record_json(record),
                }
            )
            return
        out = render.stdout_console()
        if created:
            out.print(f"[green]Stored[/] memory [cyan]{record.id}[/]")
        else:
            out.print(
                f"[yellow]Already known:[/] the same memory is stored as [cyan]{record.id}[/] "
                f"(importance raised to {record.importance:.2f})"
            )
        out.print(render.memory_detail_table(record))
        if promoted is not None:
            out.print(
                f"Important enough ({record.importance:.2f}) to be promoted to user scope as "
                f"[cyan]{promoted.id}[/]."
            )


@app.command()
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., metavar="QUERY", help="What to look for, in plain words."),
    user: str = USER_OPT,
    session: Optional[str] = typer.Option(
        None, "--session", "-s", help="Search from this session (sees user + session memories)."
    ),
    agent: Optional[str] = typer.Option(
        None, "--agent", "-a", help="Search from this agent (sees user + agent memories)."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=1000, help="How many results."),
    mode: SearchModeChoice = typer.Option(
        SearchModeChoice.hybrid,
        "--mode",
        "-m",
        case_sensitive=False,
        help="hybrid: meaning + keywords; vector: meaning only; text: keywords only (BM25).",
    ),
    include_superseded: bool = typer.Option(
        False, "--include-superseded", help="Also search replaced versions."
    ),
    min_similarity: Optional[float] = typer.Option(
        None, "--min-similarity", min=-1.0, max=1.0,
        help="Drop results whose meaning is further from the query (cosine, e.g. 0.2).",
    ),
) -> None:
    """Find the memories most relevant to QUERY that are visible from the given scope."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        results = memory.search(
            query,
            user_id=user,
            session_id=session,
            agent_id=agent,
            top_k=top_k,
            mode=mode.value,  # type: ignore[arg-type]
            include_superseded=include_superseded,
            min_similarity=min_similarity,
        )
        if state.json:
            render.print_json(
                {
                    "query": query,
                    "mode": mode.value,
                    "results": [render.result_json(i, r) for i, r in enumerate(results, 1)],
                }
            )
            return
        out = render.stdout_console()
        if not results:
            out.print(escape(f"No memories of user {user!r} match {query!r} in this scope."))
            return
        where = ", ".join(f"{k} {v!r}" for k, v in (("session", session), ("agent", agent)) if v)
        out.print(
            f"[bold]{render.plural(len(results), 'result')}[/] for {escape(repr(query))} "
            + escape(f"(user {user!r}{', ' + where if where else ''}, {mode.value} search)")
        )
        out.print(render.results_table(results))


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    user: str = USER_OPT,
    session: Optional[str] = typer.Option(
        None, "--session", "-s", help="Only what this session sees (user + session memories)."
    ),
    agent: Optional[str] = typer.Option(
        None, "--agent", "-a", help="Only what this agent sees (user + agent memories)."
    ),
    include_superseded: bool = typer.Option(
        False, "--include-superseded", help="Also list replaced versions."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most this many."),
    at: Optional[datetime] = typer.Option(
        None, "--at", formats=DATE_FORMATS, metavar="DATE",
        help="Point in time (UTC): what was true then, replaced versions included.",
    ),
) -> None:
    """List a user's memories, oldest first (every scope unless --session/--agent)."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        records = memory.query(
            MemoryFilter(
                user_id=user,
                session_id=session,
                agent_id=agent,
                all_scopes=session is None and agent is None,
                include_superseded=include_superseded or at is not None,
                valid_at=at,
                limit=limit,
            )
        )
        if state.json:
            render.print_json(
                {"count": len(records), "memories": [render.record_json(r) for r in records]}
            )
            return
        out = render.stdout_console()
        if not records:
            when = f" valid at {render.fmt_day(at)}" if at is not None else ""
            out.print(escape(f"User {user!r} has no memories{when} in this scope."))
            return
        heading = f"[bold]{render.plural(len(records), 'memory', 'memories')}[/] of user "
        heading += escape(repr(user))
        if at is not None:
            heading += f" valid at {render.fmt_day(at)}"
        out.print(heading + " (oldest first)")
        out.print(render.records_table(records))


@app.command()
def history(
    ctx: typer.Context,
    memory_id: str = typer.Argument(..., metavar="ID", help="A memory id (or a unique prefix)."),
) -> None:
    """Show the supersession chain through a memory, oldest version first."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        full_id = _resolve_id(memory, memory_id)
        chain = memory.get_history(full_id)
        if state.json:
            render.print_json({"id": full_id, "chain": [render.record_json(r) for r in chain]})
            return
        out = render.stdout_console()
        out.print(
            f"[bold]History of {render.short_id(full_id)}[/]: "
            f"{render.plural(len(chain), 'version')}, oldest first (< marks it)"
        )
        out.print(render.history_table(chain, full_id))


@app.command()
def supersede(
    ctx: typer.Context,
    memory_id: str = typer.Argument(..., metavar="ID", help="The current memory to replace."),
    text: str = typer.Argument(..., metavar="TEXT", help="The new version's content."),
    category: Optional[MemoryCategory] = typer.Option(
        None, "--category", "-c", case_sensitive=False, help="Default: the old one's."
    ),
    importance: Optional[float] = typer.Option(
        None, "--importance", "-i", min=0.0, max=1.0, help="Default: the old one's."
    ),
    valid_from: Optional[datetime] = typer.Option(
        None, "--valid-from", formats=DATE_FORMATS, metavar="DATE",
        help="Since when the new version is true (UTC; default now).",
    ),
) -> None:
    """Replace a memory with a new version; the old one is kept in its history."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        full_id = _resolve_id(memory, memory_id)
        new = memory.supersede(
            full_id, text, category=category, importance=importance, valid_from=valid_from
        )
        old = memory.get(full_id)
        if state.json:
            render.print_json(
                {"old": render.record_json(old) if old else None, "new": render.record_json(new)}
            )
            return
        out = render.stdout_console()
        out.print(f"[green]Superseded[/] [cyan]{full_id}[/] with [cyan]{new.id}[/]")
        if old is not None:
            until = render.fmt_time(old.valid_until)
            out.print(f"  old: {escape(old.content)}  [dim](valid until {until} UTC)[/]")
        since = render.fmt_time(new.valid_from)
        out.print(f"  new: {escape(new.content)}  [dim](valid from {since} UTC)[/]")


@app.command()
def delete(
    ctx: typer.Context,
    memory_id: str = typer.Argument(..., metavar="ID", help="A memory id (or a unique prefix)."),
) -> None:
    """Delete a memory for good (its history neighbours are linked to each other)."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        full_id = _resolve_id(memory, memory_id)
        record = memory.get(full_id)
        if not memory.delete(full_id):
            raise MemoryNotFoundError(full_id)
        if state.json:
            render.print_json({"deleted": full_id})
            return
        content = record.content if record else ""
        render.stdout_console().print(f"[red]Deleted[/] [cyan]{full_id}[/]: {escape(content)}")


@app.command()
def stats(
    ctx: typer.Context,
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Only this user's memories."),
) -> None:
    """Count memories: total, current, superseded, by category and by scope."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        result = memory.stats(user)
        if state.json:
            render.print_json({"db": state.db, "user": user, **result.model_dump(mode="json")})
            return
        out = render.stdout_console()
        tables = render.stats_tables(result, state.db, user)
        out.print(tables[0])
        for table, title in zip(tables[1:], ("By category", "By scope")):
            out.print(f"[bold]{title}[/]")
            out.print(table)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="JSONL file to write ('-' for stdout)."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Only this user's memories."),
) -> None:
    """Write memories as JSON lines (every field, ids and history links kept)."""
    state = _state(ctx)
    with _store(ctx) as memory, _handled(state):
        if file == "-":
            n = memory.export_jsonl(sys.stdout, user_id=user)
            sys.stdout.flush()
            render.stderr_console().print(f"Exported {render.plural(n, 'memory', 'memories')}.")
            return
        try:
            n = memory.export_jsonl(os.path.expanduser(file), user_id=user)
        except OSError as exc:
            _fail(state, f"cannot write {file}: {exc.strerror or exc}", EXIT_USER, "OSError")
        if state.json:
            render.print_json({"exported": n, "file": file, "user": user})
            return
        render.stdout_console().print(
            f"Exported {render.plural(n, 'memory', 'memories')} to {escape(file)}"
        )


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: str = typer.Argument(
        ..., metavar="FILE", help="JSONL file from `export` ('-' for stdin)."
    ),
    on_conflict: ConflictChoice = typer.Option(
        ConflictChoice.skip,
        "--on-conflict",
        case_sensitive=False,
        help="When an id already exists: skip it, replace it, or stop with an error.",
    ),
) -> None:
    """Load memories written by `export` (all lines are checked before anything is written)."""
    state = _state(ctx)
    try:
        if file == "-":
            data = sys.stdin.read()
        else:
            data = Path(os.path.expanduser(file)).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _fail(state, f"cannot read {file}: {reason}", EXIT_USER, type(exc).__name__)
    lines = sum(1 for line in data.splitlines() if line.strip())
    with _store(ctx, create=True) as memory, _handled(state):
        if state.json:
            n = memory.import_jsonl(io.StringIO(data), on_conflict=on_conflict.value)
        else:
            # The bar starts with the first batch: every line is validated before that, and
            # a bad file fails with no half-drawn bar.
            bar = _progress()
            task = bar.add_task("Importing", total=None, start=False)

            def tick(done: int, total: int) -> None:
                if not bar.live.is_started:
                    bar.start()
                    bar.start_task(task)
                bar.update(task, completed=done, total=total)

            try:
                n = memory.import_jsonl(
                    io.StringIO(data), on_conflict=on_conflict.value, progress=tick
                )
            finally:
                if bar.live.is_started:
                    bar.stop()
        skipped = lines - n if on_conflict is ConflictChoice.skip else 0
        if state.json:
            render.print_json({"imported": n, "skipped": skipped, "file": file})
            return
        msg = f"Imported {render.plural(n, 'memory', 'memories')} from {escape(file)}"
        if skipped:
            msg += f" ({skipped} already present, skipped)"
        render.stdout_console().print(msg)


@app.command()
def reindex(ctx: typer.Context) -> None:
    """Rebuild the vector and keyword indexes from SQLite (e.g. after changing model)."""
    state = _state(ctx)
    # Opening with on_embedder_mismatch='reindex' would re-embed on open, before the bar;
    # opening normally and failing on mismatch would make this command useless. So: open
    # with the mismatch tolerated by reindexing here, with a progress bar.
    if not Path(state.db).exists():
        _fail(state, f"no memory store at {state.db}", EXIT_USER, "StoreNotFound",
              f"pass --db PATH (or set {ENV_DB})")
    with _handled(state):
        memory = _open_for_reindex(state.db)
        try:
            if state.json:
                n = memory.reindex()
                render.print_json({"reindexed": n, "embedder": memory.embedder.name})
                return
            with _progress() as bar:
                task = bar.add_task("Re-embedding", total=memory.store.count() or None)
                n = memory.reindex(progress=lambda d, t: bar.update(task, completed=d, total=t))
            render.stdout_console().print(
                f"Reindexed {render.plural(n, 'memory', 'memories')} with {memory.embedder.name}."
            )
        finally:
            memory.close()


def _open_for_reindex(db: str) -> SyncHierarchicalMemory:
    """Open a store even when its embedder changed (reindex is the cure for that)."""
    from .embedders.fastembed import default_embedder
    from .storage.factory import build_components

    config = MemoryConfig(db_path=db, check_drift_on_open=False)
    # the current default embedder, even for a store the float one wrote (which a normal
    # open keeps reading with the float one): re-embedding is what this command is for
    embedder = config.embedder or default_embedder(config.embedding_model_path)
    return SyncHierarchicalMemory(config, **build_components(config, embedder=embedder))


@app.command()
def check(
    ctx: typer.Context,
    repair: bool = typer.Option(False, "--repair", help="Fix what is found (re-index the gaps)."),
) -> None:
    """Compare the vector and keyword indexes with SQLite (exit 3 when they disagree)."""
    state = _state(ctx)
    if not Path(state.db).exists():
        _fail(state, f"no memory store at {state.db}", EXIT_USER, "StoreNotFound",
              f"pass --db PATH (or set {ENV_DB})")
    with _handled(state):
        # Opening normally repairs drift silently; check must see the store as it is.
        memory = SyncHierarchicalMemory.create(
            MemoryConfig(db_path=state.db, check_drift_on_open=False)
        )
        try:
            report = memory.check_consistency(full=True)
            repaired = False
            if repair and not report.ok:
                memory.repair(report)
                repaired = memory.check_consistency(full=True).ok
        finally:
            memory.close()
    code = EXIT_OK if report.ok or repaired else EXIT_STORE
    if state.json:
        render.print_json({**render.report_json(report), "repaired": repaired})
        raise typer.Exit(code)
    out = render.stdout_console()
    out.print("[bold]Index consistency[/] (SQLite is the source of truth)")
    out.print(render.consistency_table(report))
    if report.ok:
        out.print("[green]Consistent:[/] every memory is indexed, nothing extra.")
    elif repaired:
        out.print("[green]Repaired:[/] the indexes now match SQLite.")
    else:
        render.stderr_console().print(
            "[red]The indexes disagree with SQLite.[/] Fix with: headroom-memory check --repair "
            "(or headroom-memory reindex)"
        )
    raise typer.Exit(code)


@app.command()
def demo(
    ctx: typer.Context,
    keep: bool = typer.Option(
        False, "--keep", help="Keep the demo store afterwards and print where it is."
    ),
) -> None:
    """A narrated tour on a throw-away store: storing, search, scopes, supersession, time travel.

    Uses the embedded default (SQLite + Chroma on disk, local ONNX embeddings): no server,
    no API key, no network. --db is ignored.
    """
    from .cli_demo import run_demo

    state = _state(ctx)
    with _handled(state):
        run_demo(json_mode=state.json, keep=keep)


def main() -> None:
    """Entry point of ``headroom-memory`` and ``python -m headroom_integrations``."""
    import logging

    # The engine reports self-repairs (index drift) as warnings: show them tidily on stderr.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        app(prog_name="headroom-memory")
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    main()
