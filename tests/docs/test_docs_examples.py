"""Every ```python block of the docs (docs/**/*.md) and of README.md runs, as a user would run it.

Per page, the blocks run in order in one shared namespace, in a fresh temporary working
directory with ``HEADROOM_MEMORY_PATH`` pointing into it. Top-level ``await`` works (blocks are
compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` and awaited on one event loop per page).
LLM calls go to a loopback OpenAI-compatible server (``docs_fake_openai``) through the
standard variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_API_BASE``,
``OLLAMA_HOST``), so examples are written exactly as against the real services. Embeddings
are the real local ONNX model.

A block opts out only with a ``# docs: no-run <reason>`` comment; those are counted and
printed (run pytest with ``-s`` to see them).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from docs_fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NO_RUN = re.compile(r"#\s*docs:\s*no-run\b[:\s-]*(.*)")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


@dataclass
class Block:
    page: str
    line: int
    code: str

    @property
    def no_run_reason(self) -> str | None:
        match = NO_RUN.search(self.code)
        return (match.group(1).strip() or "no reason given") if match else None


def extract_blocks(path: Path) -> list[Block]:
    """The ```python / ```py fenced blocks of a Markdown file (indented ones too), in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match.group("fence"), match.group("indent")
        lang = (match.group("info").split() or [""])[0].lstrip(".").lower()
        start = i + 1
        j = start
        while j < len(lines) and not re.match(
            rf"^{re.escape(indent)}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", lines[j]
        ):
            j += 1
        if lang in ("python", "py", "python3"):
            body = textwrap.dedent("\n".join(lines[start:j]))
            blocks.append(Block(str(path.relative_to(ROOT)), start, body))
        i = j + 1
    return blocks


def pages() -> list[Path]:
    found = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        found.append(readme)
    return [p for p in found if extract_blocks(p)]


PAGES = pages()


@pytest.fixture(scope="module")
def fake_openai():
    with FakeOpenAIServer() as server:
        yield server


class LazyChromaServer:
    """A real ``chroma run`` on a free loopback port, started the first time an example
    needs one (examples write the documented port 8000; the test points them at this one)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            exe = shutil.which("chroma", path=os.path.dirname(sys.executable)) or "chroma"
            self.proc = subprocess.Popen(
                [exe, "run", "--path", str(self.root), "--host", "127.0.0.1", "--port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                assert self.proc.poll() is None and time.monotonic() < deadline, "chroma run failed"
                time.sleep(0.2)
            self._port = port
        return self._port

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LazyChromaServer]:
    server = LazyChromaServer(tmp_path_factory.mktemp("docs-chroma"))
    yield server
    server.stop()


def run_page(
    blocks: list[Block], loop: asyncio.AbstractEventLoop, chroma: LazyChromaServer | None = None
) -> tuple[int, list[Block]]:
    namespace: dict[str, object] = {"__name__": "__main__"}
    ran = 0
    skipped: list[Block] = []
    for block in blocks:
        if block.no_run_reason is not None:
            skipped.append(block)
            continue
        code_text = block.code
        if chroma is not None and "chroma_port=8000" in code_text:
            code_text = code_text.replace("chroma_port=8000", f"chroma_port={chroma.port}")
        source = "\n" * (block.line) + code_text  # tracebacks point at the Markdown line
        code = compile(
            source, block.page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
        )
        try:
            if code.co_flags & inspect.CO_COROUTINE:
                loop.run_until_complete(eval(code, namespace))  # noqa: S307
            else:
                exec(code, namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(
                f"{block.page}:{block.line}: example failed: {type(exc).__name__}: {exc}\n"
                f"---\n{block.code}"
            ) from exc
        ran += 1
    return ran, skipped


def _clear_chroma_cache() -> None:
    """Forget Chroma's per-path client cache between pages.

    Pages reuse relative paths such as ``memory.db`` in different working directories, and
    ``MemoryConfig.resolved_vector_path()`` keeps them relative, so Chroma (which caches one
    system per path string) would hand a page the previous page's client.
    """
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def test_docs_have_examples() -> None:
    assert any(p.is_relative_to(DOCS) for p in PAGES), "no python examples found under docs/"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(
    page: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_openai: FakeOpenAIServer,
    chroma_server: LazyChromaServer,
) -> None:
    blocks = extract_blocks(page)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HEADROOM_MEMORY_PATH", str(work / "headroom" / "memory.db"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_BASE", fake_openai.base_url)  # LlamaIndex reads this one
    monkeypatch.setenv("OLLAMA_HOST", fake_openai.root_url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _clear_chroma_cache()
    loop = asyncio.new_event_loop()
    try:
        ran, skipped = run_page(blocks, loop, chroma_server)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        _clear_chroma_cache()
    _COUNTS[str(page.relative_to(ROOT))] = (ran, [(b.line, b.no_run_reason) for b in skipped])
    print(f"\n{page.relative_to(ROOT)}: {ran} block(s) executed, {len(skipped)} opted out")
    for b in skipped:
        print(f"  no-run at line {b.line}: {b.no_run_reason}")
    assert ran + len(skipped) == len(blocks)


_COUNTS: dict[str, tuple[int, list[tuple[int, str | None]]]] = {}


def test_opt_outs_are_few_and_explained() -> None:
    """Every ``# docs: no-run`` gives a reason, and they stay a small minority."""
    total = 0
    opted: list[str] = []
    for page in PAGES:
        for block in extract_blocks(page):
            total += 1
            if block.no_run_reason is not None:
                assert block.no_run_reason != "no reason given", f"{block.page}:{block.line}"
                opted.append(f"{block.page}:{block.line}: {block.no_run_reason}")
    print(f"\ndocs examples: {total - len(opted)} executed, {len(opted)} opted out of {total}")
    for line in opted:
        print(f"  {line}")
    assert len(opted) <= max(3, total // 10), opted


def _cli_commands() -> list[list[str]]:
    """The ``headroom-memory`` lines of the first ```bash block after "## Commands"."""
    import shlex

    text = (DOCS / "adapters" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Commands", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("headroom-memory ")]


def test_cli_page_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI page's command list runs in order and every command exits 0."""
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from headroom_integrations.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADROOM_MEMORY_PATH", raising=False)
    runner = CliRunner()
    commands = _cli_commands()
    assert len(commands) >= 10
    for args in commands:
        result = runner.invoke(app, args, prog_name="headroom-memory")
        assert result.exit_code == 0, f"headroom-memory {' '.join(args)}\n{result.output}"
    # the id-prefix examples (second block), with a real prefix instead of 3f2a
    import json
    import shlex

    listed = runner.invoke(app, ["--db", "cli.db", "--json", "list", "-u", "alice"])
    first = next(m for m in json.loads(listed.stdout)["memories"] if "Google" in m["content"])
    text = (DOCS / "adapters" / "cli.md").read_text(encoding="utf-8")
    block = text.split("## Commands", 1)[1].split("```bash", 2)[2].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("headroom-memory ")]
    assert len(lines) == 3 and all(" 3f2a" in line for line in lines)
    for line in lines:  # supersede, history, delete
        args = shlex.split(line.replace(" 3f2a", " " + first["id"][:8]))[1:]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{line}\n{result.output}"
