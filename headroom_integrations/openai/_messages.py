"""Reading and rewriting OpenAI chat ``messages`` without touching the caller's objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..protocol import sanitize_memory_text, typed_memories

_SYSTEM_ROLES = ("system", "developer")


def _field(message: Any, name: str) -> Any:
    if isinstance(message, Mapping):
        return message.get(name)
    return getattr(message, name, None)


def role_of(message: Any) -> str:
    role = _field(message, "role")
    return role if isinstance(role, str) else ""


def content_text(content: Any) -> str:
    """Plain text of a message content: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif _field(part, "type") == "text":
                text = _field(part, "text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(p for p in parts if p)
    return ""


def latest_user_text(messages: list[Any]) -> str | None:
    for message in reversed(messages):
        if role_of(message) == "user":
            text = content_text(_field(message, "content"))
            if text.strip():
                return text
            return None
    return None


def user_typed_memories(messages: list[Any]) -> frozenset[str]:
    """Normalised contents of the ``<memory>`` blocks the *user* typed in this request: a
    model that copies one of them back must not get it stored."""
    return typed_memories(
        content_text(_field(m, "content")) for m in messages if role_of(m) == "user"
    )


def _as_dict(message: Any) -> dict[str, Any]:
    if isinstance(message, Mapping):
        return dict(message)
    dump = getattr(message, "model_dump", None)
    if callable(dump):
        return dict(dump(exclude_none=True))
    raise TypeError(f"cannot read a chat message of type {type(message).__name__}")


def _append_text(content: Any, text: str) -> Any:
    """``content`` with ``text`` appended (string or list of parts; never mutated)."""
    if content is None or content == "":
        return text
    if isinstance(content, str):
        return content + "\n\n" + text
    return [*list(content), {"type": "text", "text": text}]


def _prepend_text(content: Any, text: str) -> Any:
    if content is None or content == "":
        return text
    if isinstance(content, str):
        return text + content
    return [{"type": "text", "text": text}, *list(content)]


def inject(messages: list[Any], system_text: str, user_prefix: str) -> list[Any]:
    """A new message list: ``system_text`` appended to the first system/developer message (one
    added at the front when there is none) and ``user_prefix`` put before the latest user
    message. Only the messages changed are copied; the caller's objects are left alone."""
    out = list(messages)
    if user_prefix:
        for i in range(len(out) - 1, -1, -1):
            if role_of(out[i]) == "user":
                message = _as_dict(out[i])
                message["content"] = _prepend_text(message.get("content"), user_prefix)
                out[i] = message
                break
    if system_text:
        for i, msg in enumerate(out):
            if role_of(msg) in _SYSTEM_ROLES:
                message = _as_dict(msg)
                message["content"] = _append_text(message.get("content"), system_text)
                out[i] = message
                break
        else:
            out.insert(0, {"role": "system", "content": system_text})
    return out


def neutral(text: str) -> str:
    """Text safe to quote inside a prompt: it can never open or close a ``<memory>`` block."""
    return sanitize_memory_text(text or "")
