"""Counting the FLOPs of a traced TensorFlow graph (a train step, forward + backward).

    graph = tf.function(model.train_step).get_concrete_function(batch_spec).graph
    count = count_graph_flops(graph)         # FlopCount, by op type
    count.total                              # 2 x multiply-adds of every counted op

What is counted: the multiply-adds of every convolution and matrix product
as the graph holds them, forward and gradient ops alike (Conv2D/3D with
their input- and filter-gradient ops, MatMul, BatchMatMul, Einsum), two
FLOPs per multiply-add, from the static shapes of each op's inputs and
outputs. Everything else (BatchNorm, activations, pooling, losses, the
optimizer update) is elementwise work and not counted; it is small next to
the products in these networks and it is not what a matmul-based FLOP/s
ceiling measures.

Why not only TensorFlow's profiler (``tf.compat.v1.profiler.profile`` with
``float_operation()``): it has no FLOP statistics for Conv3DBackpropInputV2,
Conv3DBackpropFilterV2 or Einsum, so on a 3-D network it misses two thirds
of the convolution work of a train step. For the op types it does know, its
numbers and these agree exactly (:func:`profiler_flops` gives them, and
tests/test_training_flops.py compares them).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import tensorflow as tf

# Ops that run a graph of their own: their work is not visible in the outer
# graph's op list, so counting would silently miss it.
_CALL_OPS = frozenset(
    {
        "PartitionedCall",
        "StatefulPartitionedCall",
        "While",
        "StatelessWhile",
        "If",
        "StatelessIf",
        "Case",
        "StatelessCase",
    }
)


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of a graph by op type (2 per multiply-add).

    Attributes:
      by_type: {op type: FLOPs summed over the graph's ops of that type}.
      ops: {op type: number of ops of that type}.
    """

    by_type: Mapping[str, int]
    ops: Mapping[str, int]

    @property
    def total(self) -> int:
        """FLOPs of all counted ops."""
        return sum(self.by_type.values())

    def grouped(self) -> dict[str, int]:
        """{"forward": ..., "input gradient": ..., "weight gradient": ...} FLOPs.

        MatMul / BatchMatMul / Einsum ops cannot be told apart by type (a
        gradient is another product); they are grouped under "matmul".
        """
        groups: dict[str, int] = {}
        for op_type, flops in self.by_type.items():
            group = _GROUPS.get(op_type, "matmul")
            groups[group] = groups.get(group, 0) + flops
        return groups


def _static_shape(tensor: tf.Tensor, op: tf.Operation) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        raise ValueError(
            f"cannot count the FLOPs of op {op.name!r} ({op.type}): tensor "
            f"{tensor.name} has no fully static shape ({shape}); trace the function "
            f"with fully defined input shapes"
        )
    return shape.as_list()


def _conv_forward(op: tf.Operation) -> int:
    # input [B, (T,) H, W, Cin], filter [(kt,) kh, kw, Cin / groups, Cout]
    kernel = _static_shape(op.inputs[1], op)
    output = _static_shape(op.outputs[0], op)
    return 2 * math.prod(output) * math.prod(kernel[:-1])


def _conv_backprop_input(op: tf.Operation) -> int:
    # (input_sizes, filter, out_backprop): the forward product run backwards.
    kernel = _static_shape(op.inputs[1], op)
    out_backprop = _static_shape(op.inputs[2], op)
    return 2 * math.prod(out_backprop) * math.prod(kernel[:-1])


def _conv_backprop_filter(op: tf.Operation) -> int:
    # (input, filter_sizes, out_backprop) -> filter gradient [(kt,) kh, kw, Cin, Cout]
    kernel = _static_shape(op.outputs[0], op)
    out_backprop = _static_shape(op.inputs[2], op)
    return 2 * math.prod(out_backprop) * math.prod(kernel[:-1])


def _matmul(op: tf.Operation) -> int:
    a = _static_shape(op.inputs[0], op)  # [M, K], or [K, M] with transpose_a
    output = _static_shape(op.outputs[0], op)  # [M, N]
    inner = a[0] if op.get_attr("transpose_a") else a[1]
    return 2 * math.prod(output) * inner


def _batch_matmul(op: tf.Operation) -> int:
    x = _static_shape(op.inputs[0], op)  # [..., M, K], or [..., K, M] with adj_x
    output = _static_shape(op.outputs[0], op)  # [..., M, N] (broadcast batch)
    inner = x[-2] if op.get_attr("adj_x") else x[-1]
    return 2 * math.prod(output) * inner


def _einsum(op: tf.Operation) -> int:
    equation = op.get_attr("equation").decode()
    operands, _, _ = equation.partition("->")
    terms = operands.split(",")
    if "." in equation or len(terms) != 2 or len(op.inputs) != 2:
        raise ValueError(
            f"cannot count the FLOPs of Einsum op {op.name!r}: only two-operand "
            f"equations without ellipsis are supported, got {equation!r}"
        )
    # One multiply-add per combination of all indices of both operands.
    sizes: dict[str, int] = {}
    for term, tensor in zip(terms, op.inputs):
        for label, size in zip(term.strip(), _static_shape(tensor, op)):
            sizes[label] = max(sizes.get(label, 1), size)  # broadcast dims of size 1
    return 2 * math.prod(sizes.values())


_COUNTERS = {
    "Conv2D": _conv_forward,
    "Conv3D": _conv_forward,
    "Conv2DBackpropInput": _conv_backprop_input,
    "Conv3DBackpropInput": _conv_backprop_input,
    "Conv3DBackpropInputV2": _conv_backprop_input,
    "Conv2DBackpropFilter": _conv_backprop_filter,
    "Conv3DBackpropFilter": _conv_backprop_filter,
    "Conv3DBackpropFilterV2": _conv_backprop_filter,
    "MatMul": _matmul,
    "BatchMatMul": _batch_matmul,
    "BatchMatMulV2": _batch_matmul,
    "BatchMatMulV3": _batch_matmul,
    "Einsum": _einsum,
}
COUNTED_OP_TYPES = frozenset(_COUNTERS)

_GROUPS = {
    "Conv2D": "forward",
    "Conv3D": "forward",
    "Conv2DBackpropInput": "input gradient",
    "Conv3DBackpropInput": "input gradient",
    "Conv3DBackpropInputV2": "input gradient",
    "Conv2DBackpropFilter": "weight gradient",
    "Conv3DBackpropFilter": "weight gradient",
    "Conv3DBackpropFilterV2": "weight gradient",
}


def _executed_ops(graph: tf.Graph) -> list[tf.Operation]:
    """The ops a call of `graph` runs: for a function graph, those its outputs
    and control outputs depend on (TensorFlow prunes the rest, e.g. the input
    gradient of a first convolution, which tf.GradientTape builds but nothing
    reads); for a plain graph, all of them."""
    outputs = getattr(graph, "outputs", None)
    if outputs is None:
        return graph.get_operations()
    stack = [t.op for t in outputs] + list(getattr(graph, "control_outputs", []))
    seen = {op.name: op for op in stack}
    while stack:
        op = stack.pop()
        for parent in [t.op for t in op.inputs] + list(op.control_inputs):
            if parent.name not in seen:
                seen[parent.name] = parent
                stack.append(parent)
    return [op for op in graph.get_operations() if op.name in seen]


def count_graph_flops(graph: tf.Graph) -> FlopCount:
    """FLOPs of the convolutions and matrix products in `graph` (see the module doc).

    For a function graph (``concrete_function.graph``) only the ops its
    outputs and control outputs depend on count: TensorFlow does not run the
    others.

    Raises ValueError naming the op when a counted op has no static shape, or
    when the graph calls other graphs (function calls, while / if), whose ops
    would otherwise go uncounted.
    """
    executed = _executed_ops(graph)
    calls = [f"{op.name} ({op.type})" for op in executed if op.type in _CALL_OPS]
    if calls:
        raise ValueError(
            f"cannot count the FLOPs of graph {getattr(graph, 'name', graph)!r}: it "
            f"calls other graphs whose ops are not visible here: "
            f"{', '.join(calls[:5])}{' ...' if len(calls) > 5 else ''}"
        )
    by_type: dict[str, int] = {}
    ops: dict[str, int] = {}
    for op in executed:
        counter = _COUNTERS.get(op.type)
        if counter is None:
            continue
        by_type[op.type] = by_type.get(op.type, 0) + counter(op)
        ops[op.type] = ops.get(op.type, 0) + 1
    return FlopCount(by_type=by_type, ops=ops)


def count_function_flops(function, *args, **kwargs) -> FlopCount:
    """FLOPs of one call of `function` (a tf.function, or a Python callable to
    wrap in one) traced for `args` (tensors or fully defined tf.TensorSpecs)."""
    if not hasattr(function, "get_concrete_function"):
        function = tf.function(function)
    return count_graph_flops(function.get_concrete_function(*args, **kwargs).graph)


def profiler_flops(graph: tf.Graph) -> dict[str, int]:
    """TensorFlow profiler's FLOPs by op type (only op types with registered
    statistics; includes elementwise ops; see the module doc for what it misses)."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    root = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    counts: dict[str, int] = {}

    # The "op" view nests each op type under the previous one; float_ops is
    # the type's own count.
    def visit(node):
        if node.float_ops:
            counts[node.name] = counts.get(node.name, 0) + int(node.float_ops)
        for child in node.children:
            visit(child)

    for child in root.children:
        visit(child)
    return counts
