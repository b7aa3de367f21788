"""Helpers shared by the LangChain / LangGraph adapters (engine resolution, message text)."""

from __future__ import annotations

import os
import threading
from typing import Any

from langchain_core.messages import BaseMessage

from ..core.async_memory import HierarchicalMemory
from ..core.engine import SyncHierarchicalMemory
from ..core.config import default_db_path

_ENGINES: dict[str, SyncHierarchicalMemory] = {}
_ENGINES_LOCK = threading.Lock()


def resolve_engine(memory: Any = None, db_path: str | None = None) -> SyncHierarchicalMemory:
    """The synchronous engine behind ``memory`` (sync or async API), or one opened on ``db_path``.

    Engines opened from a ``db_path`` are shared per resolved path within the process, so
    several adapters on the same file use one connection and one vector index.
    """
    if memory is not None and db_path is not None:
        raise ValueError("pass either memory= or db_path=, not both")
    if isinstance(memory, SyncHierarchicalMemory):
        return memory
    if isinstance(memory, HierarchicalMemory):
        return memory.sync
    if memory is not None:
        raise TypeError(
            "memory must be a SyncHierarchicalMemory or HierarchicalMemory, "
            f"not {type(memory).__name__}"
        )
    path = db_path or default_db_path()
    key = path if path == ":memory:" else os.path.abspath(os.path.expanduser(path))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None or engine.closed:
            engine = SyncHierarchicalMemory.create(db_path=path)
            if path != ":memory:":
                _ENGINES[key] = engine
        return engine


def content_text(content: Any) -> str:
    """The plain text of a message's content (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") in ("text", "text-plain"):
                parts.append(str(block.get("text", "")))
    return "".join(parts)


def message_text(message: BaseMessage) -> str:
    """The plain text of a message."""
    return content_text(message.content)
