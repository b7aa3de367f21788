"""Helpers shared by the benchmarks: machine info, a caching embedder, result files."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / ".cache"


def machine_info() -> dict[str, Any]:
    """Cores, memory, Python and the versions of the packages that matter."""
    info: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except Exception:  # noqa: BLE001
        pass
    versions = {}
    for pkg in ("headroom-integrations", "chromadb", "fastembed", "onnxruntime", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    import sqlite3

    versions["sqlite"] = sqlite3.sqlite_version
    info["versions"] = versions
    return info


def embedder_slug(embedder: Any) -> str:
    """The embedder's name as a file-name part: cached vectors are kept per embedder, so a
    run never scores one model's queries against another model's stored vectors."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(embedder.name)).strip("-")


class CachingEmbedder:
    """Wraps an embedder and keeps document vectors on disk by text hash, so re-running a
    benchmark (or trying another ranking over the same texts) does not re-embed them.

    Used by the LoCoMo harness only (its figures are recall, not speed); the latency
    benchmark always uses the plain embedder. The name and dimension are the wrapped one's.
    """

    def __init__(self, inner: Any, cache_file: Path | None = None) -> None:
        self.inner = inner
        if cache_file is not None:  # one file per embedder
            cache_file = cache_file.with_name(
                f"{cache_file.stem}-{embedder_slug(inner)}{cache_file.suffix}"
            )
        self.cache_file = cache_file
        self._docs: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if cache_file is not None and cache_file.is_file():
            with np.load(cache_file) as data:
                self._docs = {k: data[k] for k in data.files}

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self._docs]
        if todo:
            fresh = self.inner.embed_documents([texts[i] for i in todo])
            with self._lock:
                for i, vec in zip(todo, fresh):
                    self._docs[keys[i]] = np.asarray(vec, dtype=np.float32)
                self._dirty = True
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._docs[k] for k in keys])

    def embed_query(self, text: str) -> np.ndarray:
        key = "q" + self._key(text)
        vec = self._docs.get(key)
        if vec is None:
            vec = np.asarray(self.inner.embed_query(text), dtype=np.float32)
            with self._lock:
                self._docs[key] = vec
                self._dirty = True
        return vec

    def save(self) -> None:
        if self.cache_file is None or not self._dirty:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, **self._docs)
        os.replace(tmp, self.cache_file)
        self._dirty = False


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")
