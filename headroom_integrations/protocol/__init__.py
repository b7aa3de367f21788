"""The inline ``<memory>`` protocol shared by every adapter.

- :mod:`.instructions`: the system-prompt addendum asking the model for ``<memory>`` blocks;
- :mod:`.parser`: extracting memories from a finished answer and hiding the blocks;
- :mod:`.stream`: the same, chunk by chunk, for streamed answers;
- :mod:`.injection`: rendering stored memories into the prompt, safely and within a budget;
- :mod:`.guard`: dropping memories the user typed in their own ``<memory>`` tags.

Pure logic: no I/O apart from loading the tiktoken vocabulary.
"""

from __future__ import annotations

from headroom_integrations.protocol.guard import drop_typed, normalise_memory_text, typed_memories
from headroom_integrations.protocol.injection import (
    BLOCK_CLOSE,
    BLOCK_OPEN,
    DEFAULT_HEADER,
    InjectedMemories,
    format_memories,
    resolve_ref,
    sanitize_memory_text,
)
from headroom_integrations.protocol.instructions import EXTRACTION_INSTRUCTION, build_instruction
from headroom_integrations.protocol.parser import (
    ExtractedMemory,
    ParseResult,
    parse_block_content,
    parse_memory_blocks,
)
from headroom_integrations.protocol.stream import (
    MemoryStreamStripper,
    astrip_stream,
    strip_stream,
)

__all__ = [
    "BLOCK_CLOSE",
    "BLOCK_OPEN",
    "DEFAULT_HEADER",
    "EXTRACTION_INSTRUCTION",
    "ExtractedMemory",
    "InjectedMemories",
    "MemoryStreamStripper",
    "ParseResult",
    "astrip_stream",
    "build_instruction",
    "drop_typed",
    "format_memories",
    "normalise_memory_text",
    "parse_block_content",
    "parse_memory_blocks",
    "resolve_ref",
    "sanitize_memory_text",
    "strip_stream",
    "typed_memories",
]
