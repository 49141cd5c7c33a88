"""FLOP counting of traced graphs: analytic counts, agreement with TF's profiler."""

import pytest
import tensorflow as tf

from tfcmvp.training import flops


def _conv3d_step(x, kernel, strides=(1, 1, 1, 1, 1)):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = tf.nn.conv3d(x, kernel, strides=list(strides), padding="SAME")
        loss = tf.reduce_sum(tf.square(y))
    return tape.gradient(loss, [x, kernel])


def test_conv3d_forward_and_both_gradients_are_counted():
    x = tf.TensorSpec([2, 4, 8, 8, 3])
    kernel = tf.TensorSpec([3, 3, 3, 3, 5])
    count = flops.count_function_flops(_conv3d_step, x, kernel)
    # Output [2, 4, 8, 8, 5] = 2560 values, 3*3*3*3 = 81 multiply-adds each.
    assert count.by_type == {
        "Conv3D": 414_720,
        "Conv3DBackpropInputV2": 414_720,
        "Conv3DBackpropFilterV2": 414_720,
    }
    assert count.total == 3 * 414_720
    assert count.grouped() == {
        "forward": 414_720,
        "input gradient": 414_720,
        "weight gradient": 414_720,
    }


def test_gradients_nothing_reads_are_not_counted():
    def weight_gradient_only(x, kernel):  # as for a first layer: no gradient of the data
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            loss = tf.reduce_sum(tf.square(tf.nn.conv3d(x, kernel, [1] * 5, "SAME")))
        return tape.gradient(loss, kernel)

    graph = (
        tf.function(weight_gradient_only)
        .get_concrete_function(tf.TensorSpec([2, 4, 8, 8, 3]), tf.TensorSpec([3, 3, 3, 3, 5]))
        .graph
    )
    # The tape builds the input gradient too, but the function never runs it.
    assert "Conv3DBackpropInputV2" in {op.type for op in graph.get_operations()}
    assert flops.count_graph_flops(graph).by_type == {
        "Conv3D": 414_720,
        "Conv3DBackpropFilterV2": 414_720,
    }


def test_strided_conv3d_gradients_cost_the_forward_product():
    x = tf.TensorSpec([1, 4, 8, 8, 2])
    kernel = tf.TensorSpec([3, 3, 3, 2, 4])
    count = flops.count_function_flops(
        lambda a, b: _conv3d_step(a, b, strides=(1, 2, 2, 2, 1)), x, kernel
    )
    # Output [1, 2, 4, 4, 4] = 128 values, 3*3*3*2 = 54 multiply-adds each.
    assert count.by_type["Conv3D"] == 13_824
    assert count.by_type["Conv3DBackpropInputV2"] == 13_824
    assert count.by_type["Conv3DBackpropFilterV2"] == 13_824


def test_matmul_batch_matmul_and_einsum():
    def products(a, b, c, d):
        return (
            tf.matmul(a, b, transpose_a=True),  # [7, 5]^T [7, 3] -> [5, 3], K = 7
            tf.matmul(c, d, adjoint_b=True),  # [2, 4, 6] [2, 9, 6]^T -> [2, 4, 9], K = 6
            tf.einsum("bij,bjk->bik", c, tf.transpose(d, [0, 2, 1])),
        )

    count = flops.count_function_flops(
        products,
        tf.TensorSpec([7, 5]),
        tf.TensorSpec([7, 3]),
        tf.TensorSpec([2, 4, 6]),
        tf.TensorSpec([2, 9, 6]),
    )
    assert count.by_type["MatMul"] == 2 * 5 * 3 * 7
    # tf.einsum may lower to BatchMatMulV2 or stay an Einsum op: same count either way.
    assert count.by_type.get("BatchMatMulV2", 0) + count.by_type.get("Einsum", 0) == 2 * (
        2 * 2 * 4 * 9 * 6
    )


def test_einsum_op_is_counted_over_all_indices():
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [3, 4, 5])
        b = tf.compat.v1.placeholder(tf.float32, [5, 6])
        tf.raw_ops.Einsum(inputs=[a, b], equation="abc,cd->abd")
    assert flops.count_graph_flops(graph).by_type == {"Einsum": 2 * 3 * 4 * 5 * 6}


def test_agrees_with_tf_profiler_where_it_has_statistics():
    def step(x, kernel, w):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel, w])
            y = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=2, padding="SAME"))  # [2, 4, 4, 6]
            z = tf.matmul(tf.reshape(y, [2, -1]), w)  # [2, 10]
            loss = tf.reduce_sum(tf.square(z))
        return tape.gradient(loss, [x, kernel, w])

    graph = (
        tf.function(step)
        .get_concrete_function(
            tf.TensorSpec([2, 8, 8, 3]), tf.TensorSpec([3, 3, 3, 6]), tf.TensorSpec([96, 10])
        )
        .graph
    )
    ours = flops.count_graph_flops(graph).by_type
    theirs = flops.profiler_flops(graph)
    for op_type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul"):
        assert ours[op_type] == theirs[op_type], op_type
    # Known: [2, 4, 4, 6] outputs x 27 multiply-adds; the dense layer and its two gradients.
    assert ours["Conv2D"] == 2 * 192 * 27
    assert ours["MatMul"] == 3 * (2 * 2 * 96 * 10)


def test_profiler_misses_conv3d_gradients_that_we_count():
    graph = (
        tf.function(_conv3d_step)
        .get_concrete_function(tf.TensorSpec([1, 2, 4, 4, 1]), tf.TensorSpec([3, 3, 3, 1, 2]))
        .graph
    )
    theirs = flops.profiler_flops(graph)
    assert "Conv3DBackpropInputV2" not in theirs and "Conv3DBackpropFilterV2" not in theirs
    assert theirs["Conv3D"] == flops.count_graph_flops(graph).by_type["Conv3D"]


def test_unknown_shapes_are_refused_with_the_op_name():
    graph = (
        tf.function(lambda a, b: tf.matmul(a, b))
        .get_concrete_function(tf.TensorSpec([None, 4]), tf.TensorSpec([4, 3]))
        .graph
    )
    with pytest.raises(ValueError, match="MatMul.*no fully static shape"):
        flops.count_graph_flops(graph)


def test_graphs_that_call_other_graphs_are_refused():
    def loop(a):  # a while loop whose body (a matmul) is a graph of its own
        return tf.while_loop(
            lambda i, m: i < 3, lambda i, m: (i + 1, tf.matmul(m, m)), (tf.constant(0), a)
        )[1]

    graph = tf.function(loop).get_concrete_function(tf.TensorSpec([4, 4])).graph
    with pytest.raises(ValueError, match="calls other graphs.*While"):
        flops.count_graph_flops(graph)
