"""Embedders: local ONNX through fastembed (default), OpenAI and Ollama over HTTP."""

from .errors import EmbeddingError
from .fastembed import EmbedderUnavailableError, FastEmbedEmbedder, default_embedder
from .ollama import OllamaEmbedder
from .openai import OpenAIEmbedder

__all__ = [
    "EmbedderUnavailableError",
    "EmbeddingError",
    "FastEmbedEmbedder",
    "OllamaEmbedder",
    "OpenAIEmbedder",
    "default_embedder",
]
