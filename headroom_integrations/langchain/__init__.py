"""LangChain and LangGraph adapters for the headroom memory engine.

- :class:`HeadroomChatMessageHistory`: chat transcript (``RunnableWithMessageHistory``);
- :class:`HeadroomMemoryRetriever`: hybrid / similarity / keyword retrieval of memories;
- :class:`HeadroomMemoryChatModel`: any chat model with memory injection and inline
  ``<memory>`` extraction (works in LCEL chains and ``langchain.agents.create_agent``);
- :class:`HeadroomStore`: a LangGraph ``BaseStore`` (``create_agent(..., store=...)``);
- :class:`HeadroomMemoryMiddleware`: an agent middleware injecting memories before every
  model call of ``create_agent``, the model left as it is.

The store requires ``langgraph`` (the ``langgraph`` extra), the middleware ``langchain``.
"""

from __future__ import annotations

from typing import Any

from .chat_model import HeadroomMemoryChatModel
from .history import HeadroomChatMessageHistory, history_factory
from .retriever import HeadroomMemoryRetriever, result_to_document

__all__ = [
    "HeadroomChatMessageHistory",
    "HeadroomMemoryChatModel",
    "HeadroomMemoryMiddleware",
    "HeadroomMemoryRetriever",
    "HeadroomStore",
    "history_factory",
    "result_to_document",
]


def __getattr__(name: str) -> Any:
    if name == "HeadroomStore":  # langgraph is optional
        from .store import HeadroomStore

        return HeadroomStore
    if name == "HeadroomMemoryMiddleware":  # langchain (agents) is optional
        from .middleware import HeadroomMemoryMiddleware

        return HeadroomMemoryMiddleware
    raise AttributeError(name)
