"""``AccessLog``: the access counts searches owe the store, written in the background.

A search that returns memories counts one access for each (``MemoryRecord.access_count``
and ``last_accessed``). Writing that at once would put a write transaction (and the
writer's lock, shared with every other thread and process writing the store) on every
search. Instead the counts are kept here and written together, ``delay`` seconds after the
first one owed, on a short-lived timer thread; reads that return records settle them first
(``flush``), so nobody sees a count that is behind. What is still owed when the interpreter
exits is written by an ``atexit`` hook (a script that never closes its store loses none).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from .at_exit import call_at_exit, cancel_at_exit

logger = logging.getLogger(__name__)

Writer = Callable[[Mapping[str, tuple[int, datetime]]], None]
"""Adds ``count`` to each id's access count and sets its last access to ``when``."""


class AccessLog:
    """Access counts owed to the store, per memory id: (accesses, latest time)."""

    def __init__(self, write: Writer, *, delay: float = 1.0) -> None:
        self._write = write
        self.delay = delay
        self._owed: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one write at a time, in order
        self._timer: threading.Timer | None = None
        self._closed = False
        call_at_exit(self, AccessLog.flush)

    def note(self, memory_ids: Sequence[str], when: datetime) -> None:
        """Count one access of each id at ``when``; the write follows within ``delay`` s."""
        with self._lock:
            if self._closed:
                return
            for mid in memory_ids:
                count, _ = self._owed.get(mid, (0, when))
                self._owed[mid] = (count + 1, when)
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self._on_timer)
                self._timer.daemon = True
                self._timer.name = "headroom-access-log"
                self._timer.start()

    def owed(self, memory_id: str) -> int:
        """Accesses of ``memory_id`` counted here and not yet written."""
        with self._lock:
            got = self._owed.get(memory_id)
        return got[0] if got else 0

    def flush(self) -> None:
        """Write every owed count now (nothing when none is owed). A failed write is
        logged and its counts are dropped: an access count is not worth failing a read."""
        if not self._owed:  # a dict's truth is read atomically: the common case is free
            return
        with self._flush_lock:
            with self._lock:
                owed, self._owed = self._owed, {}
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if not owed:
                return
            try:
                self._write(owed)
            except Exception:  # noqa: BLE001 - see the docstring
                logger.warning("could not write %d access counts", len(owed), exc_info=True)

    def close(self) -> None:
        """Write what is owed and stop counting (before the store closes)."""
        self.flush()
        cancel_at_exit(self)
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()
