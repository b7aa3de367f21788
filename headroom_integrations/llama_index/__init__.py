"""LlamaIndex adapters (llama-index-core 0.14.x).

- :class:`HeadroomMemory`: a ``BaseMemory`` for agents' ``memory=`` (persistent chat history
  plus a system message with relevant long-term memories);
- :class:`HeadroomMemoryBlock`: a ``BaseMemoryBlock`` for ``llama_index.core.memory.Memory``;
- :class:`HeadroomRetriever`: memories as ``NodeWithScore`` results;
- :class:`HeadroomMemoryLLM`: wraps any LLM with inline ``<memory>`` extraction.
"""

from __future__ import annotations

from .llm import HeadroomMemoryLLM
from .memory import HeadroomMemory
from .memory_block import HeadroomMemoryBlock
from .retriever import HeadroomRetriever, result_to_node

__all__ = [
    "HeadroomMemory",
    "HeadroomMemoryBlock",
    "HeadroomMemoryLLM",
    "HeadroomRetriever",
    "result_to_node",
]
