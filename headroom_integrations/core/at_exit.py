"""``call_at_exit``: one ``atexit`` hook that finishes the pending work of live objects.

The Chroma writer waits for its queue and the access log writes the counts it owes when the
interpreter exits, so a script that never closes its store loses nothing. Owners are held
weakly: one that is closed (``cancel_at_exit``) or collected is passed over.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_actions: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_hooked = False


def call_at_exit(owner: Any, action: Callable[[Any], None]) -> None:
    """Run ``action(owner)`` at interpreter exit if ``owner`` is still alive then.
    ``action`` must not hold ``owner`` itself (a function of it, not a bound method)."""
    global _hooked
    with _lock:
        if not _hooked:
            atexit.register(_run_all)
            _hooked = True
        _actions[owner] = action


def cancel_at_exit(owner: Any) -> None:
    """Forget ``owner``'s exit action (it finished its work itself)."""
    with _lock:
        _actions.pop(owner, None)


def _run_all() -> None:
    with _lock:
        pending = list(_actions.items())
    for owner, action in pending:  # in registration order
        try:
            action(owner)
        except Exception:  # noqa: BLE001 - never fail the interpreter's exit
            logger.exception("finishing %s at exit failed", type(owner).__name__)
