"""MkDocs hook: publish ``bench/results/`` (Markdown reports and plots) inside the site.

Every file of ``bench/results/`` is added to the build under ``benchmarks/results/`` (no copy
is kept in ``docs/``), and the ``<!-- bench-results -->`` marker of ``benchmarks.md`` is
replaced by links to the reports and the plots themselves, or by a note that no results
have been produced yet. Relative links of a report that point outside ``bench/results/``
are turned into plain text, so ``mkdocs build --strict`` never fails on them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

MARKER = "<!-- bench-results -->"
TARGET = "benchmarks/results"
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)(\s+\"[^\"]*\")?\)")
_SUFFIXES = {".md", ".png", ".svg", ".jpg", ".jpeg"}


def _results_dir(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent / "bench" / "results"


def _published(config: Any) -> list[Path]:
    folder = _results_dir(config)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)


def _rewrite_links(text: str, names: set[str]) -> str:
    def fix(match: re.Match[str]) -> str:
        bang, label, target, title = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, re.IGNORECASE):
            return match.group(0)
        if target.split("#")[0] in names:
            return match.group(0)
        return f"{label} (`{target}`)" if not bang else f"*(image `{target}` not published)*"

    return _LINK.sub(fix, text)


def on_files(files: Files, config: Any) -> Files:
    paths = _published(config)
    names = {p.name for p in paths}
    for path in paths:
        uri = f"{TARGET}/{path.name}"
        if path.suffix.lower() == ".md":
            content = _rewrite_links(path.read_text(encoding="utf-8"), names)
            files.append(File.generated(config, uri, content=content))
        else:
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if MARKER not in markdown:
        return markdown
    paths = _published(config)
    reports = [p for p in paths if p.suffix.lower() == ".md"]
    plots = [p for p in paths if p.suffix.lower() in {".png", ".svg", ".jpg", ".jpeg"}]
    if not reports and not plots:
        note = (
            '!!! note "No results yet"\n'
            "    `bench/results/` holds no report in this checkout: run a benchmark as shown "
            "below and rebuild the docs to see its report and plots here.\n"
        )
        return markdown.replace(MARKER, note)
    lines = ["### Reports", ""]
    lines += [f"- [{p.stem}]({TARGET}/{p.name})" for p in reports] or ["- (none)"]
    if plots:
        lines += ["", "### Plots", ""]
        for p in plots:
            lines += [f"![{p.stem}]({TARGET}/{p.name})", "", f"*{p.name}*", ""]
    return markdown.replace(MARKER, "\n".join(lines) + "\n")
