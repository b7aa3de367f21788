"""Memory for OpenAI-compatible clients: ``with_memory(OpenAI(), user_id="alice")``.

See :func:`with_memory`. ``RollingWindowTransform`` (trim a message list to a token budget)
is re-exported for convenience.
"""

from __future__ import annotations

from ..transforms import RollingWindowTransform
from .client import AsyncMemoryClient, MemoryClient, with_fast_memory, with_memory
from .handle import AsyncMemoryHandle, MemoryHandle
from .stream import AsyncMemoryStream, MemoryStream

__all__ = [
    "AsyncMemoryClient",
    "AsyncMemoryHandle",
    "AsyncMemoryStream",
    "MemoryClient",
    "MemoryHandle",
    "MemoryStream",
    "RollingWindowTransform",
    "with_fast_memory",
    "with_memory",
]
