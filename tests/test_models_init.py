"""Initialisers of the memory, predictor and heads: the authors' recipe against its
written-out distributions, and the Keras recipe it replaces."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.models.heads import MLPHead, MotionValueHead
from tfcmvp.models.initializers import (
    attention_input_initializer,
    check_init,
    linear_initializer,
    reinitialize,
)
from tfcmvp.models.memory import PredictorMemory
from tfcmvp.models.predictor_transformer import TransformerPredictor

from harness import run_serialization_test

WIDTH = 256  # large enough for sample moments within a few percent


def assert_normal(values, std, name, mean_tolerance=None, std_tolerance=0.03):
    """Sample mean ~ 0 (a few standard errors) and std within `std_tolerance` of `std`."""
    values = np.asarray(values, np.float64).ravel()
    mean_tolerance = mean_tolerance or 5 * std / math.sqrt(values.size)
    assert abs(values.mean()) < mean_tolerance, (name, values.mean())
    assert abs(values.std() / std - 1.0) < std_tolerance, (name, values.std(), std)


def assert_uniform(values, low, high, name):
    """Inside [low, high], reaching close to both ends, with the mean and std of U(low, high)."""
    values = np.asarray(values, np.float64).ravel()
    span = high - low
    assert values.min() >= low and values.max() <= high, (name, values.min(), values.max())
    assert values.min() < low + 0.01 * span and values.max() > high - 0.01 * span, name
    assert abs(values.mean() - (low + high) / 2) < 5 * span / math.sqrt(12 * values.size), name
    assert abs(values.std() / (span / math.sqrt(12)) - 1.0) < 0.03, (name, values.std())


def transformer(init, width=WIDTH):
    keras.utils.set_random_seed(0)
    predictor = TransformerPredictor(
        49,
        width=width,
        num_heads=8,
        ffn_width=width,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dropout=0.1,
        init=init,
    )
    predictor.build((None, 98, width))
    return predictor


def attention_layers(predictor):
    encoder, decoder = predictor.encoder_layers[0], predictor.decoder_layers[0]
    return {
        "encoder.self": encoder.self_attention,
        "decoder.self": decoder.self_attention,
        "decoder.cross": decoder.cross_attention,
    }


def ffn_layers(predictor):
    return {
        f"{name}.{ffn}": getattr(layer, ffn)
        for name, layer in (
            ("encoder", predictor.encoder_layers[0]),
            ("decoder", predictor.decoder_layers[0]),
        )
        for ffn in ("ffn_hidden", "ffn_output")
    }


def test_authors_linear_layers_are_n_0_001_with_zero_bias():
    predictor = transformer("authors")
    linears = {name: layer for name, layer in ffn_layers(predictor).items()}
    linears.update(
        {
            f"{name}.output": attention.output_dense
            for name, attention in attention_layers(predictor).items()
        }
    )
    assert len(linears) == 7
    for name, layer in linears.items():
        assert_normal(layer.kernel.numpy(), 0.01, name)
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    # Seven independent draws, not one repeated (unseeded Keras initialisers repeat).
    kernels = [layer.kernel.numpy().ravel()[:100] for layer in linears.values()]
    assert len({k.tobytes() for k in kernels}) == len(kernels)


def test_authors_attention_inputs_are_pytorch_xavier_uniform_of_the_stacked_matrix():
    # nn.MultiheadAttention's in_proj_weight [3 D, D]: bound sqrt(6 / (D + 3 D)).
    bound = math.sqrt(6.0 / (WIDTH + 3 * WIDTH))
    for name, attention in attention_layers(transformer("authors")).items():
        for projection in ("query_dense", "key_dense", "value_dense"):
            dense = getattr(attention, projection)
            assert tuple(dense.kernel.shape) == (WIDTH, 8, WIDTH // 8)
            assert_uniform(dense.kernel.numpy(), -bound, bound, f"{name}.{projection}")
            np.testing.assert_array_equal(dense.bias.numpy(), 0.0)


def test_authors_positional_embeddings_are_u_0_1_and_independent():
    predictor = transformer("authors")
    assert_uniform(predictor.memory_pos.numpy(), 0.0, 1.0, "memory_pos")
    assert_uniform(predictor.query_pos.numpy(), 0.0, 1.0, "query_pos")
    # Each embedding has its own draw (a shared initialiser would copy the first 49 rows).
    assert not np.array_equal(predictor.query_pos.numpy(), predictor.memory_pos.numpy()[:49])


def test_keras_init_keeps_glorot_kernels_and_normal_embeddings():
    predictor = transformer("keras")
    for name, layer in ffn_layers(predictor).items():
        bound = math.sqrt(6.0 / (2 * WIDTH))  # Glorot-uniform of a [D, D] kernel
        assert_uniform(layer.kernel.numpy(), -bound, bound, name)
    assert_normal(predictor.memory_pos.numpy(), 1.0, "memory_pos")
    assert_normal(predictor.query_pos.numpy(), 1.0, "query_pos")
    # Keras' Glorot on a [D, heads, D / heads] attention kernel: that of a [D, D] matrix.
    query = predictor.encoder_layers[0].self_attention.query_dense.kernel.numpy()
    assert_uniform(query, -math.sqrt(6.0 / (2 * WIDTH)), math.sqrt(6.0 / (2 * WIDTH)), "query")


def test_authors_memory_projection_is_bias_free_n_0_001():
    memory = PredictorMemory(width=512, time_fold=2)  # authors: add, no bias, N(0, 0.01)
    memory.build([(None, 4, 7, 7, 1024), (None, 2, 4, 4, 2048)])
    assert [tuple(w.shape) for w in memory.weights] == [(2048, 512)]
    assert_normal(memory.projection.kernel.numpy(), 0.01, "memory.projection", std_tolerance=0.01)
    biased = PredictorMemory(width=8, time_fold=1, use_bias=True)
    biased.build((None, 2, 7, 7, 512))
    np.testing.assert_array_equal(biased.projection.bias.numpy(), 0.0)


def test_authors_heads_are_kaiming_fan_out_and_the_value_head_n_0_001():
    head = MLPHead(hidden_units=2048, output_units=512)  # authors by default
    head.build((None, 1024))
    # PyTorch kaiming_normal_(mode="fan_out") on Conv1d [out, in, 1]: std sqrt(2 / out).
    assert_normal(head.hidden.kernel.numpy(), math.sqrt(2 / 2048), "hidden", std_tolerance=0.01)
    assert_normal(
        head.output_dense.kernel.numpy(), math.sqrt(2 / 512), "output", std_tolerance=0.01
    )
    np.testing.assert_array_equal(head.hidden_norm.gamma.numpy(), 1.0)
    np.testing.assert_array_equal(head.hidden_norm.beta.numpy(), 0.0)
    value = MotionValueHead(2048)
    value.build((None, 49, 512))
    assert_normal(value.readout.kernel.numpy(), 0.01, "readout")
    np.testing.assert_array_equal(value.readout.bias.numpy(), 0.0)
    keras_head = MLPHead(hidden_units=256, output_units=128, init="keras")
    keras_head.build((None, 512))
    assert np.abs(keras_head.hidden.kernel.numpy()).max() <= math.sqrt(6 / (512 + 256))


def test_reinitialize_inside_a_traced_function_runs_once_not_every_call():
    variable = tf.Variable(tf.zeros((3, 4)))

    @tf.function
    def step():
        reinitialize(variable, keras.initializers.Constant(1.0))  # at trace time only
        return variable.read_value()

    np.testing.assert_array_equal(step().numpy(), 1.0)
    variable.assign(tf.fill((3, 4), 2.0))
    np.testing.assert_array_equal(step().numpy(), 2.0)  # not reset by the second call


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: TransformerPredictor(4, width=16, num_heads=2, ffn_width=16, init="keras"),
        lambda: MLPHead(8, 4, init="keras"),
        lambda: MotionValueHead(2, init="keras"),
        lambda: PredictorMemory(4, init="keras"),
    ],
)
def test_configs_round_trip_the_init(make_layer):
    assert run_serialization_test(make_layer()).init == "keras"


def test_unknown_init_names_are_refused():
    with pytest.raises(ValueError, match="'torch'.*'authors', 'keras'"):
        check_init("torch", "owner")
    with pytest.raises(ValueError, match="MLPHead: unknown init 'xavier'"):
        MLPHead(8, 4, init="xavier")
    assert isinstance(linear_initializer("keras"), keras.initializers.GlorotUniform)
    assert attention_input_initializer("authors", 512).maxval == pytest.approx(math.sqrt(6 / 2048))
