"""The ``headroom-memory`` command line, end to end on real stores (SQLite + Chroma + the
local ONNX embedder): what a person or a script sees, and the exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headroom_integrations import MemoryConfig, SyncHierarchicalMemory
from headroom_integrations.cli import app

runner = CliRunner()
ENTRY_POINT = Path(sys.executable).with_name("headroom-memory")


def run(db: str | Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["--db", str(db), *args], env=env)


def run_json(db: str | Path, *args: str) -> Any:
    result = run(db, "--json", *args)
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stdout
    return json.loads(result.stdout)


def add(db: str | Path, text: str, *args: str) -> str:
    return run_json(db, "add", text, *args)["memory"]["id"]


def assert_clean_error(result: Any, code: int, *needles: str) -> None:
    """An expected error: the exit code, the message on stderr, never a traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


# ---------------------------------------------------------------------- add / search / list
def test_add_prints_the_stored_memory_and_search_finds_it(db: Path) -> None:
    result = run(db, "add", "Prefers dark roast coffee", "--user", "ann", "-c", "preference")
    assert result.exit_code == 0, result.output
    assert "Stored memory" in result.stdout
    assert "Prefers dark roast coffee" in result.stdout
    assert "preference" in result.stdout
    add(db, "Has a meeting with Bob on Friday", "--user", "ann")

    found = run_json(db, "search", "what hot drink do I like?", "--user", "ann", "-k", "1")
    assert [r["memory"]["content"] for r in found["results"]] == ["Prefers dark roast coffee"]
    assert found["results"][0]["rank"] == 1
    assert 0.0 < found["results"][0]["score"] <= 1.0

    human = run(db, "search", "coffee", "--user", "ann")
    assert human.exit_code == 0, human.output
    assert "Prefers dark roast coffee" in human.stdout
    assert "keywords #1" in human.stdout  # the word itself matched the keyword index


def test_adding_the_same_memory_twice_reuses_it(db: Path) -> None:
    first = run_json(db, "add", "Uses uv, not pip", "--user", "dev")
    again = run_json(db, "add", "Uses uv, not pip", "--user", "dev")
    assert first["created"] is True and again["created"] is False
    assert again["memory"]["id"] == first["memory"]["id"]
    human = run(db, "add", "Uses uv, not pip", "--user", "dev")
    assert "Already known" in human.stdout
    assert run_json(db, "stats")["total"] == 1


def test_scopes_decide_what_list_and_search_see(db: Path) -> None:
    user_level = add(db, "Lives in Lisbon", "--user", "ann")
    trip = add(db, "Planning a trip to Lisbon in May", "--user", "ann", "--session", "trip")
    other_session = add(db, "Lisbon hotel booked", "--user", "ann", "--session", "work")
    bob = add(db, "Bob also lives in Lisbon", "--user", "bob")

    everything = run_json(db, "list", "--user", "ann")
    assert {m["id"] for m in everything["memories"]} == {user_level, trip, other_session}
    seen_by_trip = run_json(db, "list", "--user", "ann", "--session", "trip")
    assert {m["id"] for m in seen_by_trip["memories"]} == {user_level, trip}

    def hits(*scope: str) -> set[str]:
        out = run_json(db, "search", "Lisbon", "--user", "ann", *scope)
        return {r["memory"]["id"] for r in out["results"]}

    assert hits() == {user_level}  # user scope: no session's memories, never bob's
    assert hits("--session", "trip") == {user_level, trip}
    assert bob not in hits("--session", "work")

    listed = run(db, "list", "--user", "ann", "--limit", "2")
    assert listed.exit_code == 0
    assert "2 memories of user 'ann'" in listed.stdout
    assert "session:trip" in listed.stdout


def test_text_that_looks_like_markup_is_shown_literally(db: Path) -> None:
    text = "Use [bold]brackets[/] and [/x] freely"
    memory_id = add(db, text, "--user", "[ann]")
    for command in (
        ["list", "--user", "[ann]"],
        ["search", "brackets", "--user", "[ann]"],
        ["supersede", memory_id, "Now [red]plain[/red]"],
        ["history", memory_id],
    ):
        result = run(db, *command)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
    wide = {"COLUMNS": "200"}
    listed = run(db, "list", "--user", "[ann]", "--include-superseded", env=wide).stdout
    assert text in listed and "'[ann]'" in listed
    assert "Now [red]plain[/red]" in run(db, "history", memory_id, env=wide).stdout


# ---------------------------------------------------------------------- supersede / history
def test_supersede_history_and_point_in_time(db: Path) -> None:
    old = add(db, "Works at Acme as a data engineer", "--user", "ann", "--valid-from", "2020-01-01")
    result = run(
        db, "supersede", old[:8], "Works at Globex as an ML engineer", "--valid-from", "2024-06-01"
    )
    assert result.exit_code == 0, result.output
    assert "Superseded" in result.stdout and "Globex" in result.stdout

    chain = run_json(db, "history", old)["chain"]
    assert [m["content"] for m in chain] == [
        "Works at Acme as a data engineer",
        "Works at Globex as an ML engineer",
    ]
    assert [m["is_current"] for m in chain] == [False, True]
    assert chain[0]["valid_until"].startswith("2024-06-01")
    new = chain[1]["id"]

    human = run(db, "history", new[:6])
    assert human.exit_code == 0, human.output
    assert "2 versions" in human.stdout and "(still true)" in human.stdout

    found = run_json(db, "search", "where does ann work?", "--user", "ann")
    assert [r["memory"]["id"] for r in found["results"]] == [new]
    then = run_json(db, "list", "--user", "ann", "--at", "2022-03-01")
    assert [m["content"] for m in then["memories"]] == ["Works at Acme as a data engineer"]
    assert len(run_json(db, "list", "--user", "ann", "--include-superseded")["memories"]) == 2

    again = run(db, "supersede", old, "Works somewhere else")
    assert_clean_error(again, 1, "no longer current", "history")


# ---------------------------------------------------------------------- delete / errors
def test_delete_removes_the_memory(db: Path) -> None:
    memory_id = add(db, "Temporary note", "--user", "ann")
    result = run(db, "delete", memory_id)
    assert result.exit_code == 0, result.output
    assert "Deleted" in result.stdout and "Temporary note" in result.stdout
    assert run_json(db, "list", "--user", "ann")["memories"] == []
    assert_clean_error(run(db, "delete", memory_id), 1, f"no memory with id {memory_id!r}")


@pytest.mark.parametrize(
    "command", [["history", "0123456789abcdef"], ["delete", "nope"], ["supersede", "nope", "x"]]
)
def test_unknown_id_is_exit_1_with_a_message(db: Path, command: list[str]) -> None:
    add(db, "Something", "--user", "ann")
    assert_clean_error(run(db, *command), 1, "no memory with id", "headroom-memory list")


def test_bad_input_is_exit_1_and_json_errors_are_json(db: Path) -> None:
    assert_clean_error(run(db, "add", "   ", "--user", "ann"), 1, "content is empty")
    result = run(db, "--json", "history", "deadbeef")
    assert_clean_error(result, 1)
    error = json.loads(result.stderr)
    assert error["error"] == "MemoryNotFoundError" and error["exit_code"] == 1
    assert result.stdout == ""


def test_usage_errors_are_exit_2(db: Path) -> None:
    assert run(db, "add", "no user given").exit_code == 2
    assert run(db, "add", "x", "--user", "a", "--importance", "3").exit_code == 2
    assert run(db, "search", "x", "--user", "a", "--mode", "fuzzy").exit_code == 2


def test_corrupted_database_is_exit_3(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    result = run(garbage, "list", "--user", "ann")
    assert_clean_error(result, 3, "not a readable SQLite database", str(garbage))
    as_json = run(garbage, "--json", "add", "hello", "--user", "ann")
    assert_clean_error(as_json, 3)
    assert json.loads(as_json.stderr)["error"] == "StoreCorruptedError"


def test_reading_a_store_that_does_not_exist_is_exit_1_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere.db"
    for command in (["list", "--user", "a"], ["search", "x", "--user", "a"], ["stats"]):
        assert_clean_error(run(missing, *command), 1, "no memory store at")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- stats / export / import
def test_stats_counts_and_db_from_environment(db: Path) -> None:
    add(db, "Likes tea", "--user", "ann", "-c", "preference")
    old = add(db, "Works at Acme", "--user", "ann")
    run_json(db, "supersede", old, "Works at Globex")
    add(db, "Likes coffee", "--user", "bob")

    stats = run_json(db, "stats")
    assert (stats["total"], stats["current"], stats["superseded"], stats["users"]) == (4, 3, 1, 2)
    assert run_json(db, "stats", "--user", "ann")["total"] == 3

    env = {"HEADROOM_MEMORY_PATH": str(db)}
    from_env = runner.invoke(app, ["--json", "stats", "--user", "bob"], env=env)
    assert from_env.exit_code == 0, from_env.output
    assert json.loads(from_env.stdout)["db"] == str(db)
    assert json.loads(from_env.stdout)["total"] == 1
    human = runner.invoke(app, ["stats"], env=env)
    assert "superseded" in human.stdout and "By category" in human.stdout


def test_export_import_round_trip(db: Path, tmp_path: Path) -> None:
    first = add(db, "Prefers short answers", "--user", "ann")
    run_json(db, "supersede", first, "Prefers detailed answers")
    add(db, "Bob's memory", "--user", "bob")
    dump = tmp_path / "ann.jsonl"

    exported = run(db, "export", str(dump), "--user", "ann")
    assert exported.exit_code == 0, exported.output
    assert "Exported 2 memories" in exported.stdout
    assert len(dump.read_text().splitlines()) == 2

    copy = tmp_path / "copy.db"
    imported = run(copy, "import", str(dump))
    assert imported.exit_code == 0, imported.output
    assert "Imported 2 memories" in imported.stdout
    original = run_json(db, "history", first)["chain"]
    restored = run_json(copy, "history", first)["chain"]
    assert [(m["id"], m["content"], m["is_current"]) for m in restored] == [
        (m["id"], m["content"], m["is_current"]) for m in original
    ]
    found = run_json(copy, "search", "answer style", "--user", "ann")
    assert [r["memory"]["content"] for r in found["results"]] == ["Prefers detailed answers"]

    assert run_json(copy, "import", str(dump)) == {"imported": 0, "skipped": 2, "file": str(dump)}
    assert_clean_error(
        run(copy, "import", str(dump), "--on-conflict", "error"), 1, "already exist", "--on-conflict"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content": "no user"}\n')
    assert_clean_error(run(copy, "import", str(bad)), 1, "line 1")
    assert_clean_error(run(copy, "import", str(tmp_path / "missing.jsonl")), 1, "cannot read")


# ---------------------------------------------------------------------- maintenance
def test_reindex_and_check(db: Path) -> None:
    facts = ["The project uses uv", "Deploys happen on Fridays", "Ann's cat is called Miso"]
    ids = [add(db, fact, "--user", "ann") for fact in facts]
    assert run_json(db, "reindex")["reindexed"] == 3
    human = run(db, "reindex")
    assert human.exit_code == 0 and "Reindexed 3 memories" in human.stdout

    ok = run(db, "check")
    assert ok.exit_code == 0, ok.output
    assert "Consistent" in ok.stdout

    engine = SyncHierarchicalMemory.create(MemoryConfig(db_path=str(db)))
    engine.vector_index.delete([ids[0]])  # an index drifting from SQLite
    engine.close()
    drifted = run(db, "--json", "check")
    assert drifted.exit_code == 3
    report = json.loads(drifted.stdout)
    assert report["ok"] is False and report["missing_vectors"] == [ids[0]]
    assert run(db, "check", "--repair").exit_code == 0
    assert run_json(db, "check")["ok"] is True


# ---------------------------------------------------------------------- demo and entry points
def test_demo_json_tells_the_story() -> None:
    out = run_json("unused.db", "demo")
    steps = {s["title"]: s for s in out["steps"]}
    assert not Path(out["db"]).exists()  # the throw-away store is removed
    scopes = next(s for t, s in steps.items() if t.startswith("Scopes"))
    searches = scopes["data"]["searches"]
    assert searches[0]["results"] == []  # the session's trip is invisible from user scope
    assert searches[1]["results"][0]["memory"]["content"] == "Planning a trip to Lisbon in May"
    when = next(s for t, s in steps.items() if t.startswith("Point-in-time"))["data"]
    assert [m["content"] for m in when["valid_then"]] == ["Works at Acme Corp as a data engineer"]
    assert [m["content"] for m in when["valid_now"]] == [
        "Works at Globex as a machine-learning engineer"
    ]


def test_installed_entry_point_runs_the_demo() -> None:
    assert ENTRY_POINT.exists(), "pip install -e . to get the headroom-memory script"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    proc = subprocess.run(
        [str(ENTRY_POINT), "demo"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "Step 1. Open a fresh memory store",
        "No server, no API key, no network.",
        "Step 4. Scopes decide what each search can see",
        "(no matching memory)",
        "Step 5. Facts change: supersede instead of overwriting",
        "(still true)",
        "Step 6. Point-in-time query",
        "Where alice worked today: Works at Globex",
    ):
        assert expected in out, out
    assert "Traceback" not in proc.stderr


def test_installed_entry_point_json_has_no_colour_codes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    env = {**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    add_proc = subprocess.run(
        [str(ENTRY_POINT), "--db", str(db), "--json", "add", "Project uses uv", "--user", "dev"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert add_proc.returncode == 0, add_proc.stderr
    assert "\x1b[" not in add_proc.stdout
    assert json.loads(add_proc.stdout)["memory"]["content"] == "Project uses uv"
    help_proc = subprocess.run(
        [sys.executable, "-m", "headroom_integrations", "--help"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )
    assert help_proc.returncode == 0
    for command in ("add", "search", "supersede", "export", "import", "reindex", "check", "demo"):
        assert command in help_proc.stdout
