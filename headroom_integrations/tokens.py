"""Offline token counting with tiktoken.

``tiktoken.get_encoding("cl100k_base")`` downloads its vocabulary the first time, which fails
behind a firewall. llama-index-core (a dependency of this package) ships ``cl100k_base`` and
``o200k_base`` in ``llama_index/core/_static/tiktoken_cache/``; :func:`get_encoding` uses that
folder when the user has not set ``TIKTOKEN_CACHE_DIR`` themselves.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "DEFAULT_ENCODING",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_REPLY",
    "IMAGE_PART_TOKENS",
    "TokenizerUnavailableError",
    "bundled_tiktoken_cache_dir",
    "get_encoding",
    "count_tokens",
    "message_tokens",
    "count_message_tokens",
]

DEFAULT_ENCODING = "cl100k_base"
TOKENS_PER_MESSAGE = 4
"""Framing overhead of one chat message (OpenAI's documented estimate)."""
TOKENS_PER_REPLY = 3
"""Every reply is primed with ``<|start|>assistant<|message|>``."""
IMAGE_PART_TOKENS = 85
"""Flat estimate for an image content part (a low-detail image costs 85 tokens)."""

_ENV = "TIKTOKEN_CACHE_DIR"
_env_lock = threading.Lock()


class TokenizerUnavailableError(RuntimeError):
    """No tiktoken encoding could be loaded (no local cache and no network)."""


def bundled_tiktoken_cache_dir() -> Path | None:
    """The tiktoken cache folder bundled with llama-index-core, or ``None`` if absent.

    Found without importing ``llama_index.core`` (a slow import).
    """
    try:
        spec = importlib.util.find_spec("llama_index.core")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "_static" / "tiktoken_cache"
        if folder.is_dir():
            return folder
    return None


def _load_with_cache_dir(name: str, cache_dir: str | None) -> tiktoken.Encoding:
    """Load ``name`` with ``TIKTOKEN_CACHE_DIR`` temporarily set (or left alone for ``None``)."""
    import tiktoken

    if cache_dir is None:
        return tiktoken.get_encoding(name)
    with _env_lock:
        previous = os.environ.get(_ENV)
        os.environ[_ENV] = cache_dir
        try:
            return tiktoken.get_encoding(name)
        finally:
            if previous is None:
                os.environ.pop(_ENV, None)
            else:
                os.environ[_ENV] = previous


@lru_cache(maxsize=8)
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """Return the tiktoken encoding ``name``, loaded offline when possible (cached).

    Order tried:

    1. ``TIKTOKEN_CACHE_DIR`` as the user set it, if they did;
    2. llama-index-core's bundled cache (``cl100k_base`` and ``o200k_base``), with the variable
       set only for the duration of the load (the process environment is left as it was);
    3. tiktoken's default behaviour (its temp-dir cache, then a download).

    Raises :class:`TokenizerUnavailableError` explaining what to do when all fail.
    """
    try:
        import tiktoken  # noqa: F401
    except ImportError as exc:  # pragma: no cover - tiktoken is a hard dependency
        raise TokenizerUnavailableError("tiktoken is not installed: pip install tiktoken") from exc

    attempts: list[str | None] = []
    user_dir = os.environ.get(_ENV)
    if user_dir is not None:
        attempts.append(None)  # the user's own setting, untouched
    bundled = bundled_tiktoken_cache_dir()
    if bundled is not None:
        attempts.append(str(bundled))
    if user_dir is None:
        attempts.append(None)  # tiktoken's default cache / download

    failures: list[str] = []
    for cache_dir in attempts:
        try:
            return _load_with_cache_dir(name, cache_dir)
        except Exception as exc:  # noqa: BLE001 - network, hash and value errors alike
            where = cache_dir if cache_dir is not None else (user_dir or "tiktoken default")
            failures.append(f"{where}: {type(exc).__name__}: {exc}")
    raise TokenizerUnavailableError(
        f"could not load tiktoken encoding {name!r} offline or online. Tried: "
        + "; ".join(failures)
        + ". Point TIKTOKEN_CACHE_DIR at a folder holding the encoding file "
        "(llama-index-core ships cl100k_base and o200k_base in "
        "llama_index/core/_static/tiktoken_cache/), or allow network access once."
    )


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Number of tokens of ``text``; special-token text such as ``<|endoftext|>`` counts as text."""
    if not text:
        return 0
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def _content_text(content: Any) -> tuple[str, int]:
    """The countable text of a message ``content`` and a flat token extra (images)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if isinstance(content, Sequence):
        texts: list[str] = []
        extra = 0
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                kind = part.get("type")
                if kind in ("image_url", "image", "input_image"):
                    extra += IMAGE_PART_TOKENS
                    continue
                for key in ("text", "refusal"):
                    value = part.get(key)
                    if isinstance(value, str):
                        texts.append(value)
        return "\n".join(texts), extra
    return str(content), 0


def _call_text(call: Any) -> str:
    if not isinstance(call, Mapping):
        return ""
    function = call.get("function", call)
    if not isinstance(function, Mapping):
        return ""
    name = function.get("name") or ""
    arguments = function.get("arguments") or ""
    if not isinstance(arguments, str):
        arguments = str(arguments)
    return f"{name}\n{arguments}" if name or arguments else ""


def message_tokens(message: Mapping[str, Any], encoding: str = DEFAULT_ENCODING) -> int:
    """Tokens one OpenAI-style message costs, framing overhead included.

    Counts ``role``, ``name``, the content (a string, ``None``, or a list of content parts whose
    ``text`` is counted; image parts cost a flat :data:`IMAGE_PART_TOKENS`), each tool call's
    function name and arguments, and a legacy ``function_call``; plus :data:`TOKENS_PER_MESSAGE`.
    """
    total = TOKENS_PER_MESSAGE
    text, extra = _content_text(message.get("content"))
    total += extra
    parts = [text]
    for key in ("role", "name"):
        value = message.get(key)
        if isinstance(value, str):
            parts.append(value)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, Sequence) and not isinstance(tool_calls, str):
        parts.extend(_call_text(call) for call in tool_calls)
    function_call = message.get("function_call")
    if function_call is not None:
        parts.append(_call_text(function_call))
    total += sum(count_tokens(part, encoding) for part in parts if part)
    return total


def count_message_tokens(
    messages: Sequence[Mapping[str, Any]], encoding: str = DEFAULT_ENCODING
) -> int:
    """Estimated prompt tokens of a list of OpenAI-style messages.

    The sum of :func:`message_tokens` plus :data:`TOKENS_PER_REPLY` for the primed reply
    (``0`` for an empty list). An estimate in the way OpenAI's cookbook documents it: exact
    framing differs slightly between models.
    """
    if not messages:
        return 0
    return TOKENS_PER_REPLY + sum(message_tokens(m, encoding) for m in messages)
