"""Message-list transforms applied before a request goes to the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headroom_integrations.tokens import (
    DEFAULT_ENCODING,
    TOKENS_PER_REPLY,
    message_tokens,
)

__all__ = ["RollingWindowTransform"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
_TOOL_ROLES = frozenset({"tool", "function"})


def _role(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    return role if isinstance(role, str) else ""


class RollingWindowTransform:
    """Keep the system messages and the most recent turns that fit a token budget.

    Rules, in order:

    - With ``keep_system=True`` every ``system``/``developer`` message is kept (they count
      against the budget); with ``False`` they are windowed like any other message.
    - The other messages are grouped into units: an ``assistant`` message with ``tool_calls``
      (or a legacy ``function_call``) and the ``tool``/``function`` messages right after it form
      one unit, kept or dropped together; every other message is a unit of its own.
      A ``tool`` message with no such assistant before it (an orphan) joins the unit before it,
      or is dropped when it would start the kept history.
    - The current turn -- the latest ``user`` message and everything after it -- is always kept,
      *even when it alone exceeds the budget* (dropping it would make the request pointless).
      With no user message, the newest unit is always kept.
    - Older units are then added newest first while the total stays within ``max_tokens``; the
      first that does not fit stops the window, so the kept history is a contiguous suffix.

    The total is :func:`~headroom_integrations.tokens.count_message_tokens` of the result.
    :meth:`apply` returns a new list holding the original message objects (not copies) in their
    original order; the input is never modified. :attr:`dropped_count` and :attr:`last_tokens`
    describe the last call (not thread-safe: use one instance per thread if you read them).
    """

    def __init__(
        self, max_tokens: int = 4000, keep_system: bool = True, encoding: str = DEFAULT_ENCODING
    ) -> None:
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        self.max_tokens = max_tokens
        self.keep_system = keep_system
        self.encoding = encoding
        self.dropped_count = 0
        """Messages the last :meth:`apply` left out."""
        self.last_tokens = 0
        """Estimated tokens of the last :meth:`apply` result."""

    @staticmethod
    def _units(indices: list[int], messages: Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """Group message indices into units kept or dropped together."""
        units: list[list[int]] = []
        for index in indices:
            if _role(messages[index]) in _TOOL_ROLES:
                # Answers join the tool-call unit before them; an orphan rides with whatever
                # unit precedes it, and one at the very start is dropped.
                if units:
                    units[-1].append(index)
                continue
            units.append([index])
        return units

    def apply(self, messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Return the windowed messages (a new list; ``messages`` is not modified)."""
        items = list(messages)
        cost = [message_tokens(m, self.encoding) for m in items]
        pinned: set[int] = set()
        windowed: list[int] = []
        for index, message in enumerate(items):
            if self.keep_system and _role(message) in _SYSTEM_ROLES:
                pinned.add(index)
            else:
                windowed.append(index)
        units = self._units(windowed, items)

        last_user_unit = None
        for position in range(len(units) - 1, -1, -1):
            if _role(items[units[position][0]]) == "user":
                last_user_unit = position
                break
        if last_user_unit is None:
            last_user_unit = len(units) - 1  # -1 when there are no units at all

        kept_units: list[list[int]] = units[max(last_user_unit, 0) :] if units else []
        total = TOKENS_PER_REPLY + sum(cost[i] for i in pinned)
        total += sum(cost[i] for unit in kept_units for i in unit)
        for position in range(max(last_user_unit, 0) - 1, -1, -1):
            unit_cost = sum(cost[i] for i in units[position])
            if total + unit_cost > self.max_tokens:
                break
            total += unit_cost
            kept_units.insert(0, units[position])

        kept = sorted(pinned | {i for unit in kept_units for i in unit})
        result = [items[i] for i in kept]
        self.dropped_count = len(items) - len(result)
        self.last_tokens = total if result else 0
        return result
