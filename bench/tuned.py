"""The "tuned" LoCoMo ingest: the stock engine, fed the way a conversation should be fed.

No engine code here any more: fusion (``MemoryConfig(fusion="score")``, text 1.0 / vector
0.5) and keyword-only context (``search_text``) are native. What this variant changes is
only what the benchmark writes:

- content (shown and embedded) = "Speaker: text" (+ the shared image's caption);
- ``search_text`` (FTS5 only, indexed after the content) = "[session date]" + the two
  previous and the next turn of the same session ("Speaker: text" lines). The turn itself
  is not repeated: the content is indexed already.

Nothing reads answers or evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .locomo import Turn, Variant, plain_content

WINDOW_BEFORE = 2
WINDOW_AFTER = 1


def speaker_content(t: Turn, turns: Sequence[Turn]) -> str:
    return f"{t.speaker}: {plain_content(t, turns)}"


def window_text(t: Turn, turns: Sequence[Turn], before: int = WINDOW_BEFORE,
                after: int = WINDOW_AFTER) -> str:
    """'[date]' + same-session neighbours of ``t`` (not ``t`` itself), one per line."""
    lines = [
        speaker_content(u, turns)
        for u in turns[max(0, t.index - before): t.index + after + 1]
        if u.session == t.session and u.index != t.index
    ]
    return "\n".join([f"[{t.date}]", *lines])


def open_engine(db_path: str, embedder: Any, **config: Any) -> Any:
    from headroom_integrations import MemoryConfig, SyncHierarchicalMemory

    return SyncHierarchicalMemory.create(MemoryConfig(db_path=db_path, **config), embedder=embedder)


def drop_speaker_names(question: str, conv: Any) -> str:
    """The question without the conversation's two speaker names ("Caroline", "Caroline's").

    Every memory of the conversation carries one of the two names ("Speaker: text" and the
    window), so within the user a name selects nothing, while in the shared FTS5 table it is
    a rare, heavily weighted term; in the query embedding it pulls towards turns that
    address the person. The names come from the conversation (an integration knows its
    participants), never from answers or evidence."""
    import re

    names = {n.lower() for n in conv.speakers} | {n.lower() + "s" for n in conv.speakers}
    kept = "".join(t for t in re.findall(r"\w+|\W+", question) if t.lower() not in names)
    return kept if re.search(r"\w", kept) else question


def variant_names() -> Variant:
    v = variant()
    v.name = "tuned-names"
    v.description = v.description + "; queries without the two speaker names"
    v.rewrite = drop_speaker_names
    return v


def variant() -> Variant:
    return Variant(
        "tuned",
        "stock engine, default MemoryConfig (fusion='score', text 1.0 / vector 0.8, "
        "common_term_ratio 0.7: the speakers' names, on every turn, leave the query; "
        "entity_weight 0.25: a turn whose speaker the question names ranks higher; date_weight "
        "0.5: a turn of a session in the period the question names ranks higher; vector "
        "context 2 before / 1 after: a turn's vector score is the mean of its cosine and the "
        "mean cosine of itself, its 2 previous and 1 next turns of the same session); content "
        "'Speaker: text' (+ caption), entity_refs = [speaker], valid_from = session date; "
        "search_text (own FTS5 column, BM25 weight 0.5) = '[session date]' + 2 previous + 1 "
        "next turn of the same session",
        speaker_content,
        open_engine,
        search_text=window_text,
    )
