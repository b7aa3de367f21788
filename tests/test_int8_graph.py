"""The graph rewrites behind the int8 embedder (``embedders.int8_graph``): the packaged
model gets one attention node and one GELU node per layer and int8 matrix products; a
fusion that would change the output is dropped; a token row's int8 result depends on that
row only; a conversion that drifts too far is refused. Real ONNX graphs run by onnxruntime."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from headroom_integrations.embedders import int8_graph
from headroom_integrations.embedders.fastembed import (
    MODEL_FILE,
    EmbedderUnavailableError,
    FastEmbedEmbedder,
    int8_model_file,
)
from headroom_integrations.embedders.int8_graph import (
    build_int8,
    fuse_attention,
    fuse_gelu,
    quantize_per_token,
)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def folded(embedder: FastEmbedEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model constant-folded by onnxruntime, as the conversion starts."""
    out = tmp_path_factory.mktemp("folded") / "folded.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    ort.InferenceSession(str(Path(embedder.source) / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    return out


def test_the_packaged_model_is_fused_and_runs_in_int8(embedder: FastEmbedEmbedder) -> None:
    model = onnx.load(str(int8_model_file(Path(embedder.source) / MODEL_FILE)))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["MultiHeadAttention"] == 6 and ops["BiasGelu"] == 6  # one per layer
    assert ops["MatMulIntegerToFloat"] == 24  # Q/K/V packed, output, two feed-forward
    assert "Softmax" not in ops and "Erf" not in ops and "MatMul" not in ops
    assert ops["QuantizeLinear"] == 24  # four activations per layer, each quantized once


def test_a_fusion_that_changes_the_output_is_dropped(folded: Path) -> None:
    # 4 heads is wrong for this model (12): the fused attention computes something else
    model, report = build_int8(onnx.load(str(folded)), num_heads=4)
    assert report["attention"] == 0 and report["fused_cosine"] < 0.9999
    assert report["int8_matmuls"] == 36  # unfused: Q, K, V, output, two feed-forward
    assert report["int8_cosine"] >= 0.95
    ops = Counter(n.op_type for n in model.graph.node)
    assert "MultiHeadAttention" not in ops and ops["Softmax"] == 6


def test_without_the_head_count_only_gelu_is_fused(folded: Path) -> None:
    model, report = build_int8(onnx.load(str(folded)), num_heads=None)
    assert report["attention"] == 0 and report["gelu"] == 6
    assert report["int8_cosine"] >= 0.95


def _mlp() -> onnx.ModelProto:
    """x -> MatMul + bias -> erf GELU -> MatMul: no attention, one GELU, two products."""
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(16, 32)).astype(np.float32)
    b1 = rng.normal(size=32).astype(np.float32)
    w2 = rng.normal(size=(32, 8)).astype(np.float32)
    consts = {"w1": w1, "b1": b1, "w2": w2, "sqrt2": np.array(2**0.5, np.float32),
              "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32)}
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h"]),
        helper.make_node("Div", ["h", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["half", "e1"], ["e2"]),
        helper.make_node("Mul", ["h", "e2"], ["g"]),
        helper.make_node("MatMul", ["g", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", 8])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_rewrites_on_a_graph_without_attention() -> None:
    model = _mlp()
    x = np.random.default_rng(4).normal(size=(3, 5, 16)).astype(np.float32)
    want = _session(model).run(None, {"x": x})[0]
    assert fuse_attention(model, num_heads=2) == 0
    assert fuse_gelu(model) == 1
    fused = _session(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(fused, want, rtol=1e-4, atol=1e-4)
    assert quantize_per_token(model) == 2
    got = _session(model).run(None, {"x": x})[0]
    cosine = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cosine.min() > 0.99
    assert not np.allclose(got, want, atol=1e-4)  # really int8


def test_a_token_row_depends_on_itself_only() -> None:
    model = _mlp()
    fuse_gelu(model)
    quantize_per_token(model)
    session = _session(model)
    rng = np.random.default_rng(5)
    row = rng.normal(size=(1, 5, 16)).astype(np.float32)
    alone = session.run(None, {"x": row})[0]
    for scale in (0.01, 1.0, 100.0):  # batch-mates far smaller or larger than the row
        others = (rng.normal(size=(3, 5, 16)) * scale).astype(np.float32)
        batch = session.run(None, {"x": np.concatenate([others, row])})[0]
        np.testing.assert_array_equal(batch[-1:], alone)


def test_a_conversion_that_drifts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: FastEmbedEmbedder
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(int8_graph, "WEIGHT_LEVELS", 1)  # weights in {-1, 0, 1}
    with pytest.raises(EmbedderUnavailableError, match="drifted") as err:
        int8_model_file(Path(embedder.source) / MODEL_FILE)
    assert "quantize=False" in str(err.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing cached
