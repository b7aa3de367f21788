"""Parsing the ``<memory>`` blocks a model appends to its answer.

:func:`parse_memory_blocks` splits a model's text into what the user sees (``clean_text``) and
the memories it asked to store. It never raises: a block it cannot understand is logged on the
``headroom_integrations.protocol`` logger, reported in ``errors`` and dropped -- but still hidden.

What a block may hold (after an optional ```` ``` ```` / ```` ```json ```` fence):

- ``{"memories": [...]}``, a bare list ``[...]``, or a single object ``{"content": ...}``;
  list items may be objects or plain strings. JSON with trailing commas, single quotes or
  Python literals (``True``/``None``) is repaired. Unknown fields are ignored.
- Plain text that does not start with ``{`` or ``[``: each non-empty line is one memory (bullets
  and numbering such as ``-``, ``*``, ``1.`` removed; a leading ``preference:``-style known
  category name sets the category, otherwise ``fact``). Lines such as ``none`` or
  ``nothing to remember`` are ignored.
- Text starting with ``{`` or ``[`` that cannot be parsed is malformed: the block is dropped.

Fields: ``content`` (also ``memory``/``text``/``fact``/``value``); ``category`` (synonyms and
plurals mapped, unknown -> ``fact``); ``importance`` (numbers, numeric strings, ``"70%"``,
``"high"``/``"medium"``/``"low"``...; a value in (1, 10] is read as a 0-10 scale, in (10, 100] as
a percentage; then clamped to 0..1; missing or unreadable -> 0.5); ``supersedes`` (also
``replaces``/``updates``); ``entity_refs`` (also ``entities``). Contents are sanitised
(:func:`~headroom_integrations.protocol.injection.sanitize_memory_text`), stripped, capped at
:data:`MAX_CONTENT_CHARS`; empty ones are dropped, and repeated contents (case-insensitive) are
kept once.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headroom_integrations.core.models import MemoryCategory
from headroom_integrations.protocol._tags import (
    CLOSE,
    OPEN,
    Tidier,
    is_truncated_open,
    partial_open_start,
)
from headroom_integrations.protocol.injection import sanitize_memory_text

__all__ = [
    "MAX_CONTENT_CHARS",
    "MAX_MEMORIES_PER_BLOCK",
    "DEFAULT_IMPORTANCE",
    "ExtractedMemory",
    "ParseResult",
    "parse_memory_blocks",
    "parse_block_content",
]

logger = logging.getLogger("headroom_integrations.protocol")

MAX_CONTENT_CHARS = 2000
MAX_MEMORIES_PER_BLOCK = 50
MAX_ENTITY_REFS = 20
MAX_REF_CHARS = 200
DEFAULT_IMPORTANCE = 0.5


@dataclass(frozen=True)
class ExtractedMemory:
    """One memory a model asked to store."""

    content: str
    category: MemoryCategory = MemoryCategory.FACT
    importance: float = DEFAULT_IMPORTANCE
    supersedes: str | None = None
    """The ref (``"m2"``) or id the model says this memory replaces, as written; resolve it
    with :func:`~headroom_integrations.protocol.injection.resolve_ref`."""
    entity_refs: tuple[str, ...] = ()


@dataclass
class ParseResult:
    """The visible text and the memories found in a model's answer."""

    clean_text: str | None
    """The text without any memory block (``None`` when the input was ``None``)."""
    memories: list[ExtractedMemory] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """One message per malformed block or dropped item (also logged)."""


# ---------------------------------------------------------------------------- field mapping

_CATEGORY_SYNONYMS: dict[str, MemoryCategory] = {}
for _cat, _names in {
    MemoryCategory.PREFERENCE: (
        "pref like likes dislike dislikes taste interest hobby habit style want wish"
    ),
    MemoryCategory.FACT: (
        "personal profile info information biographical bio attribute detail knowledge "
        "personal_info user_fact background"
    ),
    MemoryCategory.CONTEXT: "situation project task goal state status current_context work",
    MemoryCategory.ENTITY: (
        "person people organization organisation org company place location contact name "
        "relationship relation pet"
    ),
    MemoryCategory.DECISION: "choice commitment plan agreement resolution",
    MemoryCategory.INSIGHT: "learning lesson observation pattern note reflection summary",
}.items():
    for _name in _names.split():
        _CATEGORY_SYNONYMS[_name] = _cat

_CATEGORY_VALUES = {member.value: member for member in MemoryCategory}
_IMPORTANCE_WORDS = {
    "critical": 0.95,
    "very high": 0.9,
    "very_high": 0.9,
    "high": 0.8,
    "important": 0.8,
    "medium": 0.5,
    "med": 0.5,
    "moderate": 0.5,
    "normal": 0.5,
    "average": 0.5,
    "low": 0.3,
    "minor": 0.3,
    "very low": 0.1,
    "very_low": 0.1,
    "trivial": 0.1,
}
_CONTENT_KEYS = ("content", "memory", "text", "fact", "value")
_SUPERSEDES_KEYS = ("supersedes", "replaces", "supersede", "updates", "replace")
_ENTITY_KEYS = ("entity_refs", "entities", "entity")
_NOTHING = re.compile(
    r"^(?:none|null|nil|n/?a|empty|no memories|nothing(?: new)?(?: (?:to|worth) "
    r"(?:remember|store|save|remembering|storing|saving))?)\.?$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?:[-*+\u2022\u2023\u25e6]|\d{1,3}[.)])\s+")
_CATEGORY_PREFIX = re.compile(r"^\[?([A-Za-z_ ]{3,20})\]?\s*[:\]]\s*(.+)$", re.DOTALL)
_FENCE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _known_category(value: str) -> MemoryCategory | None:
    """The category ``value`` names (any case, plural, or a synonym), else ``None``."""
    key = re.sub(r"[\s-]+", "_", value.strip().lower())
    for candidate in (key, key[:-1] if key.endswith("s") else key):
        if candidate in _CATEGORY_VALUES:
            return _CATEGORY_VALUES[candidate]
        if candidate in _CATEGORY_SYNONYMS:
            return _CATEGORY_SYNONYMS[candidate]
    return None


def _category(value: Any) -> MemoryCategory:
    if isinstance(value, MemoryCategory):
        return value
    if isinstance(value, str):
        return _known_category(value) or MemoryCategory.FACT
    return MemoryCategory.FACT


def _importance(value: Any) -> float:
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        percent = text.endswith("%")
        text = text.rstrip("%").strip()
        if text in _IMPORTANCE_WORDS:
            return _IMPORTANCE_WORDS[text]
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and percent:
            number /= 100.0
    if number is None or math.isnan(number):
        return DEFAULT_IMPORTANCE
    if 1.0 < number <= 10.0:
        number /= 10.0
    elif 10.0 < number <= 100.0:
        number /= 100.0
    return min(1.0, max(0.0, number))


def _clean_content(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return ""
    return sanitize_memory_text(value).strip()[:MAX_CONTENT_CHARS].strip()


def _supersedes(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = f"m{value}"
    if not isinstance(value, str):
        return None
    text = sanitize_memory_text(value).strip()[:MAX_REF_CHARS]
    return text or None


def _entity_refs(value: Any) -> tuple[str, ...]:
    items: Iterable[Any]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return ()
    refs: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("name") or item.get("id")
        if not isinstance(item, str):
            continue
        ref = sanitize_memory_text(item).strip()[:MAX_REF_CHARS]
        if ref and ref not in refs:
            refs.append(ref)
        if len(refs) >= MAX_ENTITY_REFS:
            break
    return tuple(refs)


def _first(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    for key in keys:
        if key in lowered and lowered[key] is not None:
            return lowered[key]
    return None


def _memory_from_item(item: Any) -> ExtractedMemory | None:
    if isinstance(item, str):
        content = _clean_content(item)
        return ExtractedMemory(content=content) if content else None
    if not isinstance(item, Mapping):
        return None
    content = _clean_content(_first(item, _CONTENT_KEYS))
    if not content:
        return None
    return ExtractedMemory(
        content=content,
        category=_category(_first(item, ("category", "type", "kind"))),
        importance=_importance(_first(item, ("importance", "priority", "weight", "score"))),
        supersedes=_supersedes(_first(item, _SUPERSEDES_KEYS)),
        entity_refs=_entity_refs(_first(item, _ENTITY_KEYS)),
    )


# ------------------------------------------------------------------------------ JSON repair

_PY_WORDS = {"true": "True", "false": "False", "null": "None"}


def _pythonize(text: str) -> str:
    """Replace JSON's true/false/null with Python's, outside quoted strings."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch in "\"'":
            quote = ch
            out.append(ch)
            i += 1
            continue
        if ch.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            out.append(_PY_WORDS.get(word, word))
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _load_structured(text: str) -> tuple[bool, Any]:
    """Parse JSON-ish ``text``; returns ``(ok, value)``."""
    candidates = [text]
    repaired = _TRAILING_COMMA.sub(r"\1", text)
    if repaired != text:
        candidates.append(repaired)
    for candidate in candidates:
        try:
            return True, json.loads(candidate)
        except (ValueError, RecursionError):
            pass
    # A JSON value followed by chatter: take the first complete value.
    try:
        value, _ = json.JSONDecoder().raw_decode(repaired)
        return True, value
    except (ValueError, RecursionError):
        pass
    if len(repaired) <= 100_000:
        for candidate in (repaired, _pythonize(repaired)):
            try:
                return True, ast.literal_eval(candidate)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
    return False, None


def _items(value: Any) -> list[Any] | None:
    """The memory items of a parsed block, or ``None`` if its shape is unknown."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        lowered = {str(k).strip().lower(): v for k, v in value.items()}
        for key in ("memories", "memory", "items", "facts"):
            inner = lowered.get(key)
            if isinstance(inner, (list, tuple)):
                return list(inner)
            if isinstance(inner, Mapping):
                return [inner]
            if key == "memories" and inner is None and key in lowered:
                return []
        if _first(value, _CONTENT_KEYS) is not None:
            return [value]
        if not value:
            return []
    return None


def _plain_lines(text: str) -> list[ExtractedMemory]:
    memories: list[ExtractedMemory] = []
    for raw in text.splitlines():
        line = _BULLET.sub("", raw.strip()).strip()
        if not line or _NOTHING.match(line):
            continue
        category = MemoryCategory.FACT
        prefixed = _CATEGORY_PREFIX.match(line)
        if prefixed:
            known = _known_category(prefixed.group(1))
            if known is not None:
                category = known
                line = prefixed.group(2).strip()
        content = _clean_content(line)
        if content:
            memories.append(ExtractedMemory(content=content, category=category))
    return memories


def _unfence(text: str) -> str:
    if "```" not in text:
        return text
    inner = [m.group(1).strip() for m in _FENCE.finditer(text)]
    inner = [part for part in inner if part]
    return "\n".join(inner)


def _embedded_json(text: str) -> list[ExtractedMemory]:
    """Memories of a JSON value inside chatter (``Saving: {"memories": [...]}``), if any."""
    starts = [i for i in (text.find("{"), text.find("[")) if i != -1]
    if not starts:
        return []
    ok, value = _load_structured(text[min(starts) :])
    items = _items(value) if ok else None
    if not items:
        return []
    found = (_memory_from_item(item) for item in items[:MAX_MEMORIES_PER_BLOCK])
    return [memory for memory in found if memory is not None]


def parse_block_content(content: str) -> tuple[list[ExtractedMemory], list[str]]:
    """Memories in the text between one pair of ``<memory>`` tags, and any error messages.

    Never raises. An empty block yields no memories and no error.
    """
    try:
        text = _unfence(content.strip()).strip()
        if not text or _NOTHING.match(text):
            return [], []
        if text[0] in "{[":
            ok, value = _load_structured(text)
            items = _items(value) if ok else None
            if items is None:
                snippet = text[:80].replace("\n", " ")
                reason = "invalid JSON" if not ok else "unexpected JSON shape"
                return [], [f"malformed memory block ({reason}): {snippet!r}"]
            memories: list[ExtractedMemory] = []
            errors: list[str] = []
            for item in items[:MAX_MEMORIES_PER_BLOCK]:
                memory = _memory_from_item(item)
                if memory is None:
                    errors.append(f"memory item without usable content dropped: {str(item)[:80]!r}")
                else:
                    memories.append(memory)
            if len(items) > MAX_MEMORIES_PER_BLOCK:
                errors.append(f"memory block truncated to {MAX_MEMORIES_PER_BLOCK} items")
            return memories, errors
        embedded = _embedded_json(text)
        if embedded:
            return embedded[:MAX_MEMORIES_PER_BLOCK], []
        return _plain_lines(text)[:MAX_MEMORIES_PER_BLOCK], []
    except Exception as exc:  # noqa: BLE001 - the parser must never raise
        return [], [f"malformed memory block ({type(exc).__name__}: {exc})"]


def _collect(blocks: Iterable[str]) -> tuple[list[ExtractedMemory], list[str]]:
    """Parse every block, dedupe memories by content, log problems."""
    memories: list[ExtractedMemory] = []
    errors: list[str] = []
    seen: set[str] = set()
    for block in blocks:
        found, problems = parse_block_content(block)
        for problem in problems:
            logger.warning("%s", problem)
        errors.extend(problems)
        for memory in found:
            key = memory.content.casefold()
            if key not in seen:
                seen.add(key)
                memories.append(memory)
    return memories, errors


def split_blocks(text: str) -> tuple[list[str], list[str]]:
    """Split ``text`` into visible pieces and block contents (``len(pieces) == len(blocks)+1``).

    Piece ``i`` comes before block ``i``. Follows the tag grammar in ``_tags``.
    """
    pieces: list[str] = []
    blocks: list[str] = []
    pos = 0
    while True:
        opening = OPEN.search(text, pos)
        if opening is None:
            rest = text[pos:]
            cut = partial_open_start(rest)
            if cut < len(rest) and is_truncated_open(rest[cut:]):
                pieces.append(rest[:cut])
                blocks.append("")
                pieces.append("")
            else:
                pieces.append(rest)
            return pieces, blocks
        pieces.append(text[pos : opening.start()])
        closing = CLOSE.search(text, opening.end())
        if closing is None:
            blocks.append(text[opening.end() :])
            pieces.append("")
            return pieces, blocks
        blocks.append(text[opening.end() : closing.start()])
        pos = closing.end()


def parse_memory_blocks(text: str | None) -> ParseResult:
    """Split a model's answer into the text to show and the memories to store.

    ``None`` (a tool-call message) gives ``clean_text=None``; text without any block is returned
    unchanged. Otherwise every block is removed -- closed or not, anywhere in the text -- and the
    blanks around removed blocks are tidied (see ``_tags.Tidier``: none at the start or end,
    at most one blank line in between). Never raises.
    """
    if text is None:
        return ParseResult(clean_text=None)
    if not text:
        return ParseResult(clean_text=text)
    pieces, blocks = split_blocks(text)
    if not blocks:
        return ParseResult(clean_text=text)
    tidier = Tidier()
    out: list[str] = []
    for index, piece in enumerate(pieces):
        out.append(tidier.text(piece))
        if index < len(blocks):
            tidier.block()
    out.append(tidier.finish())
    memories, errors = _collect(blocks)
    return ParseResult(clean_text="".join(out), memories=memories, errors=errors)
