"""Rewrites of a BERT-style ONNX graph that make it cheaper to run, used once per model file
by ``fastembed.int8_model_file``:

- ``fuse_attention``: each self-attention (the Reshape/Transpose/scale/MatMul/Softmax/MatMul
  chain an exporter writes) becomes one onnxruntime ``MultiHeadAttention`` node, with the
  three input projections packed into one matrix product and the padding taken from the
  ``attention_mask`` input;
- ``fuse_gelu``: the erf form of GELU (and its bias) becomes one ``BiasGelu``/``Gelu`` node;
- ``quantize_per_token``: every matrix product with a constant weight runs in int8 with
  *symmetric per-token* activation scales (each token row gets its own scale, from its own
  values) and per-output-channel weight scales.

Per-token scales are what make batching safe: a row's int8 values, and so every number
computed from them, depend on that row only, never on the other texts in the batch. (The
usual dynamic quantization scales a whole batch by its largest value, so a text's vector
would change with its batch-mates.)

The rewrites match patterns and leave anything they do not recognise as it is; the caller
checks the result against the original graph before using it. The few hundred nodes they
remove matter because a sentence is only ~15 tokens: onnxruntime's per-node overhead is a
large share of one run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

MS_DOMAIN = "com.microsoft"
WEIGHT_LEVELS = 63
"""Weights are quantized to [-63, 63] (7 bits): with uint8 activations the int16 pair sums
of CPUs without VNNI (AVX2 ``vpmaddubsw``) cannot saturate."""


class _Graph:
    """Index of an ONNX graph: who produces and consumes each tensor, and its constants."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.graph = model.graph
        self._index()

    def _index(self) -> None:
        self.consts = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.added: list[Any] = []

    def const(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        if name in self.consts:
            return np.asarray(numpy_helper.to_array(self.consts[name]))
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            return np.asarray(numpy_helper.to_array(node.attribute[0].t))
        return None

    def add_const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        tensor = numpy_helper.from_array(value, name)
        self.consts[name] = tensor
        self.added.append(tensor)
        return name

    def scalar(self, name: str) -> float | None:
        value = self.const(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def linear(self, name: str) -> tuple[str, np.ndarray, np.ndarray, Any] | None:
        """``name = MatMul(x, W) + b`` with constant 2-D ``W`` and 1-D ``b``: (x, W, b,
        the MatMul node), else None."""
        add = self.producer.get(name)
        if add is None or add.op_type != "Add":
            return None
        for mm_in, bias_in in ((0, 1), (1, 0)):
            mm = self.producer.get(add.input[mm_in])
            bias = self.const(add.input[bias_in])
            if mm is not None and mm.op_type == "MatMul" and bias is not None and bias.ndim == 1:
                weight = self.const(mm.input[1])
                if weight is not None and weight.ndim == 2:
                    return mm.input[0], weight, bias, mm
        return None

    def rebuild(self, nodes: list[Any]) -> None:
        """Make ``nodes`` the graph: sorted so each node follows its inputs, nodes no output
        needs dropped, unused constants dropped, added constants kept."""
        ready = {i.name for i in self.graph.input} | set(self.consts) | {""}
        order: list[Any] = []
        pending = list(nodes)
        while pending:
            waiting = []
            for node in pending:
                if all(i in ready for i in node.input):
                    order.append(node)
                    ready.update(node.output)
                else:
                    waiting.append(node)
            if len(waiting) == len(pending):
                raise ValueError(f"graph rewrite left {waiting[0].op_type} without its inputs")
            pending = waiting
        needed = {o.name for o in self.graph.output}
        kept: list[Any] = []
        for node in reversed(order):
            if set(node.output) & needed:
                kept.append(node)
                needed.update(i for i in node.input if i)
        kept.reverse()
        del self.graph.node[:]
        self.graph.node.extend(kept)
        used = {i for n in kept for i in n.input}
        initializers = [i for i in self.graph.initializer if i.name in used]
        known = {i.name for i in initializers}
        initializers += [t for t in self.added if t.name in used and t.name not in known]
        del self.graph.initializer[:]
        self.graph.initializer.extend(initializers)
        if any(n.domain == MS_DOMAIN for n in kept) and not any(
            o.domain == MS_DOMAIN for o in self.model.opset_import
        ):
            from onnx import helper

            self.model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
        self._index()


def _up(g: _Graph, name: str) -> tuple[str, float]:
    """Walk up through Reshape, Transpose and multiplications by a constant scalar: the
    tensor they started from and the product of those scalars."""
    scale = 1.0
    while True:
        node = g.producer.get(name)
        if node is None:
            return name, scale
        if node.op_type in ("Reshape", "Transpose"):
            name = node.input[0]
            continue
        if node.op_type == "Mul":
            right, left = g.scalar(node.input[1]), g.scalar(node.input[0])
            if right is not None:
                scale *= right
                name = node.input[0]
                continue
            if left is not None:
                scale *= left
                name = node.input[1]
                continue
        return name, scale


def _down(g: _Graph, name: str) -> str:
    while len(g.consumers.get(name, [])) == 1 and g.consumers[name][0].op_type in (
        "Reshape",
        "Transpose",
    ):
        name = g.consumers[name][0].output[0]
    return name


def fuse_attention(model: Any, num_heads: int) -> int:
    """Replace every self-attention block by one ``MultiHeadAttention`` node; returns how
    many. All or nothing: if one Softmax is not the expected attention, none is fused."""
    from onnx import TensorProto, helper

    g = _Graph(model)
    softmaxes = [n for n in g.graph.node if n.op_type == "Softmax"]
    if not softmaxes:
        return 0
    inputs = {i.name for i in g.graph.input}
    new: list[Any] = []
    replaced: set[str] = set()
    padding = ""
    if "attention_mask" in inputs:
        padding = "hr_attention_padding"
        new.append(helper.make_node("Cast", ["attention_mask"], [padding], to=TensorProto.INT32))
    for layer, softmax in enumerate(softmaxes):
        add = g.producer.get(softmax.input[0])
        if add is None or add.op_type != "Add":
            return 0
        scores = g.producer.get(add.input[0])
        mask = add.input[1]
        if scores is None or scores.op_type != "MatMul":
            scores, mask = g.producer.get(add.input[1]), add.input[0]
        if scores is None or scores.op_type != "MatMul":
            return 0
        query, q_scale = _up(g, scores.input[0])
        key, k_scale = _up(g, scores.input[1])
        probs = softmax.output[0]
        after = g.consumers.get(probs, [])
        if len(after) == 2 and {n.op_type for n in after} == {"IsNaN", "Where"}:
            probs = next(n for n in after if n.op_type == "Where").output[0]  # NaN guard
        users = g.consumers.get(probs, [])
        if len(users) != 1 or users[0].op_type != "MatMul" or users[0].input[0] != probs:
            return 0
        value, v_scale = _up(g, users[0].input[1])
        if v_scale != 1.0:
            return 0
        out = _down(g, users[0].output[0])
        ins = [query, key, value, "", padding, "" if padding else mask]
        lq, lk, lv = g.linear(query), g.linear(key), g.linear(value)
        if lq and lk and lv and lq[0] == lk[0] == lv[0]:  # one matrix product for all three
            width = lq[1].shape[1]
            p = f"hr_qkv{layer}_"
            weight = np.concatenate([lq[1], lk[1], lv[1]], axis=1).astype(np.float32)
            bias = np.concatenate([lq[2], lk[2], lv[2]]).astype(np.float32)
            new.append(helper.make_node("MatMul", [lq[0], g.add_const(p + "w", weight)], [p + "mm"]))
            split = g.add_const(p + "split", np.array([width] * 3, dtype=np.int64))
            new.append(
                helper.make_node("Split", [p + "mm", split], [p + "q", p + "k", p + "v"], axis=-1)
            )
            ins = [p + "q", p + "k", p + "v", g.add_const(p + "b", bias), padding, ins[5]]
        new.append(
            helper.make_node(
                "MultiHeadAttention", ins, [out], domain=MS_DOMAIN,
                num_heads=num_heads, scale=q_scale * k_scale,
            )
        )
        replaced.add(out)
    g.rebuild([n for n in g.graph.node if not set(n.output) & replaced] + new)
    return len(softmaxes)


def fuse_gelu(model: Any) -> int:
    """Replace ``x * 0.5 * (1 + erf(x / sqrt 2))`` by ``Gelu`` (``BiasGelu`` when ``x`` is a
    matrix product plus a bias); returns how many."""
    from onnx import helper

    g = _Graph(model)
    new: list[Any] = []
    replaced: set[str] = set()
    for erf in [n for n in g.graph.node if n.op_type == "Erf"]:
        div = g.producer.get(erf.input[0])
        if div is None or div.op_type != "Div" or abs((g.scalar(div.input[1]) or 0) - 2**0.5) > 1e-5:
            continue
        x = div.input[0]
        chain = [erf]
        for _ in range(3):  # Add 1, then Mul 0.5 and Mul x in either order
            users = g.consumers.get(chain[-1].output[0], [])
            if len(users) != 1:
                break
            chain.append(users[0])
        if len(chain) != 4 or [n.op_type for n in chain[1:]] != ["Add", "Mul", "Mul"]:
            continue
        plus, first, second = chain[1:]
        others = [i for i in (*first.input, *second.input) if i not in (plus.output[0], first.output[0])]
        halves = [i for i in others if i != x]
        if (
            g.scalar(next(i for i in plus.input if i != erf.output[0])) != 1.0
            or x not in others
            or len(halves) != 1
            or g.scalar(halves[0]) != 0.5
        ):
            continue
        lin = g.linear(x)
        if lin is not None:
            add = g.producer[x]
            bias = add.input[1] if add.input[0] == lin[3].output[0] else add.input[0]
            node = helper.make_node("BiasGelu", [lin[3].output[0], bias], [second.output[0]], domain=MS_DOMAIN)
        else:
            node = helper.make_node("Gelu", [x], [second.output[0]], domain=MS_DOMAIN)
        new.append(node)
        replaced.add(second.output[0])
    if new:
        g.rebuild([n for n in g.graph.node if not set(n.output) & replaced] + new)
    return len(new)


def quantize_per_token(model: Any, weight_levels: int = WEIGHT_LEVELS) -> int:
    """Run every ``MatMul`` with a constant 2-D weight in int8; returns how many.

    Activations: per token (the last axis), symmetric, ``scale = max|x| / 127``, stored as
    uint8 around 128. Weights: per output channel, symmetric, ``[-weight_levels,
    weight_levels]``. The int32 product is scaled back by both scales
    (``MatMulIntegerToFloat``, then the row scale)."""
    from onnx import helper

    g = _Graph(model)
    opset = max(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17
    )
    axes = g.add_const("hr_q_axes", np.array([-1], dtype=np.int64))
    inv127 = g.add_const("hr_q_inv127", np.array(1 / 127, dtype=np.float32))
    tiny = g.add_const("hr_q_tiny", np.array(1e-30, dtype=np.float32))
    one = g.add_const("hr_q_one", np.array(1.0, dtype=np.float32))
    middle = g.add_const("hr_q_zero_point", np.array(128, dtype=np.uint8))
    nodes: list[Any] = []
    quantized: dict[str, tuple[str, str]] = {}
    count = 0
    for node in g.graph.node:
        weight = g.const(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or weight.ndim != 2 or weight.dtype != np.float32:
            nodes.append(node)
            continue
        x = node.input[0]
        if x not in quantized:  # Q, K and V (or a shared input) are quantized once
            p = f"hr_aq{len(quantized)}_"
            nodes += [
                helper.make_node("Abs", [x], [p + "abs"]),
                helper.make_node("ReduceMax", [p + "abs", axes], [p + "max"], keepdims=1)
                if opset >= 18  # axes became an input in opset 18
                else helper.make_node("ReduceMax", [p + "abs"], [p + "max"], axes=[-1], keepdims=1),
                helper.make_node("Max", [p + "max", tiny], [p + "max1"]),  # an all-zero row
                helper.make_node("Mul", [p + "max1", inv127], [p + "scale"]),
                helper.make_node("Div", [x, p + "scale"], [p + "scaled"]),
                helper.make_node("QuantizeLinear", [p + "scaled", one, middle], [p + "q"]),
            ]
            quantized[x] = (p + "q", p + "scale")
        xq, row_scale = quantized[x]
        col_scale = np.abs(weight).max(axis=0) / weight_levels
        col_scale[col_scale == 0] = 1.0
        wq = np.clip(np.round(weight / col_scale), -weight_levels, weight_levels).astype(np.int8)
        p = f"hr_wq{count}_"
        count += 1
        nodes += [
            helper.make_node(
                "MatMulIntegerToFloat",
                [xq, g.add_const(p + "w", wq), one, g.add_const(p + "s", col_scale.astype(np.float32)), middle],
                [p + "y"],
                domain=MS_DOMAIN,
            ),
            helper.make_node("Mul", [p + "y", row_scale], [node.output[0]]),
        ]
    if count:
        g.rebuild(nodes)
    return count


def _sample_feeds(model: Any) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """A few token batches (one padded) in the shapes the embedder feeds, each with the
    mask of its real tokens."""
    names = {i.name for i in model.graph.input}
    feeds = []
    rng = np.random.default_rng(0)
    for rows, width, padded_from in ((1, 9, None), (3, 21, 11), (2, 16, None)):
        ids = rng.integers(1000, 2000, size=(rows, width)).astype(np.int64)
        ids[:, 0], ids[:, -1] = 101, 102
        mask = np.ones_like(ids)
        if padded_from is not None:
            ids[1, padded_from:], mask[1, padded_from:] = 0, 0
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds.append(({k: v for k, v in feed.items() if k in names}, mask))
    return feeds


def _pooled(model: Any, feeds: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> np.ndarray:
    """Each sample row's vector as the embedder makes it (mean-pooled, normalised)."""
    import onnxruntime as ort

    from .fastembed import _normalise, mean_pool

    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's notes on dropped initializers: not news
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    out = []
    for feed, mask in feeds:
        out.append(_normalise(mean_pool(session.run(None, feed)[0], mask)))
    return np.concatenate(out)


FUSED_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.95


def build_int8(model: Any, num_heads: int | None) -> tuple[Any, dict[str, int | float]]:
    """``model`` (float, constant-folded) with fused attention and GELU where they match
    and every constant-weight matrix product in per-token int8; also a report of what was
    done. A fusion whose output drifts from the original (cosine < 0.9999 on sample
    tokens) is dropped; an int8 result below cosine 0.95 raises ``ValueError``."""
    import copy

    feeds = _sample_feeds(model)
    reference = _pooled(model, feeds)
    fused = copy.deepcopy(model)
    report: dict[str, int | float] = {
        "attention": fuse_attention(fused, num_heads) if num_heads else 0,
        "gelu": fuse_gelu(fused),
    }
    if report["attention"] or report["gelu"]:
        agree = float((_pooled(fused, feeds) * reference).sum(axis=1).min())
        if agree < FUSED_MIN_COSINE:
            fused, report = copy.deepcopy(model), {"attention": 0, "gelu": 0, "fused_cosine": agree}
    report["int8_matmuls"] = quantize_per_token(fused, WEIGHT_LEVELS)
    agree = float((_pooled(fused, feeds) * reference).sum(axis=1).min())
    report["int8_cosine"] = round(agree, 5)
    if agree < INT8_MIN_COSINE:
        raise ValueError(f"the int8 graph drifted from the float one (cosine {agree:.3f})")
    return fused, report
