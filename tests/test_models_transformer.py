"""Transformer predictor against a NumPy DETR-style reference (eval mode)."""

import keras
import numpy as np
import pytest

from tfcmvp.models.predictor_transformer import (
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    TransformerPredictor,
)

from harness import run_serialization_test

WIDTH, HEADS, FFN = 8, 2, 12


def _softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _dense(layer, x):
    kernel, bias = (w.numpy() for w in (layer.kernel, layer.bias))
    return x @ kernel + bias


def _mha(mha, query, key, value):
    """keras MultiHeadAttention in NumPy: [B, N, D] x [B, M, D] -> [B, N, D]."""

    def project(dense, x):
        return np.einsum("bnd,dhk->bnhk", x, dense.kernel.numpy()) + dense.bias.numpy()

    q = project(mha.query_dense, query)
    k = project(mha.key_dense, key)
    v = project(mha.value_dense, value)
    scores = np.einsum("bnhk,bmhk->bhnm", q, k) / np.sqrt(q.shape[-1])
    mixed = np.einsum("bhnm,bmhk->bnhk", _softmax(scores), v)
    out = mha.output_dense
    return np.einsum("bnhk,hkd->bnd", mixed, out.kernel.numpy()) + out.bias.numpy()


def _layer_norm(layer, x):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * layer.gamma.numpy() + layer.beta.numpy()


def _ffn(layer, x):
    return _dense(layer.ffn_output, np.maximum(_dense(layer.ffn_hidden, x), 0.0))


def _encoder_ref(layer, x, pos):
    qk = x + pos
    x = _layer_norm(layer.attention_norm, x + _mha(layer.self_attention, qk, qk, x))
    return _layer_norm(layer.ffn_norm, x + _ffn(layer, x))


def _decoder_ref(layer, y, memory, query_pos, memory_pos):
    qk = y + query_pos
    y = _layer_norm(layer.self_attention_norm, y + _mha(layer.self_attention, qk, qk, y))
    attended = _mha(layer.cross_attention, y + query_pos, memory + memory_pos, memory)
    y = _layer_norm(layer.cross_attention_norm, y + attended)
    return _layer_norm(layer.ffn_norm, y + _ffn(layer, y))


def _predictor(num_queries=5, encoders=2, decoders=3, dropout=0.1):
    return TransformerPredictor(
        num_queries,
        width=WIDTH,
        num_heads=HEADS,
        ffn_width=FFN,
        num_encoder_layers=encoders,
        num_decoder_layers=decoders,
        dropout=dropout,
    )


def test_predictor_matches_numpy_detr_reference():
    rng = np.random.default_rng(0)
    memory = rng.standard_normal((2, 6, WIDTH)).astype(np.float32)  # [B, M, D]
    predictor = _predictor()
    out = predictor(memory, training=False).numpy()
    assert out.shape == (2, 5, WIDTH)
    memory_pos = predictor.memory_pos.numpy()[None]
    query_pos = predictor.query_pos.numpy()[None]
    x = memory.astype(np.float64)
    for layer in predictor.encoder_layers:
        x = _encoder_ref(layer, x, memory_pos)
    y = np.zeros((2, 5, WIDTH))
    for layer in predictor.decoder_layers:
        y = _decoder_ref(layer, y, x, query_pos, memory_pos)
    np.testing.assert_allclose(out, y, atol=2e-5)


def test_positions_go_to_queries_and_keys_not_values():
    # With q = k = x + pos and v = x, a zero input gives zero values: the
    # attention output is the output-projection bias whatever pos is.
    layer = TransformerEncoderLayer(WIDTH, HEADS, FFN, dropout=0.0)
    zeros = np.zeros((1, 4, WIDTH), np.float32)
    pos = np.random.default_rng(1).standard_normal((1, 4, WIDTH)).astype(np.float32)
    out_with_pos = layer(zeros, pos).numpy()
    out_without = layer(zeros, np.zeros_like(pos)).numpy()
    np.testing.assert_allclose(out_with_pos, out_without, atol=1e-6)
    # On a non-zero input the positions do change the result.
    x = pos[:, ::-1].copy()
    assert np.abs(layer(x, pos).numpy() - layer(x, np.zeros_like(pos)).numpy()).max() > 1e-3


def test_each_query_is_its_own_learned_position():
    predictor = _predictor(num_queries=4, dropout=0.0)
    memory = np.random.default_rng(2).standard_normal((1, 6, WIDTH)).astype(np.float32)
    out = predictor(memory).numpy()[0]
    # Distinct query embeddings give distinct predictions per target position.
    assert np.abs(out[:, None] - out[None]).max(axis=-1)[~np.eye(4, dtype=bool)].min() > 1e-3
    # Swapping two query embeddings swaps the two predictions.
    weights = predictor.query_pos.numpy()
    predictor.query_pos.assign(weights[[1, 0, 2, 3]])
    swapped = predictor(memory).numpy()[0]
    np.testing.assert_allclose(swapped[[1, 0, 2, 3]], out, atol=1e-5)


def test_dropout_only_in_training():
    predictor = _predictor(dropout=0.5)
    memory = np.random.default_rng(3).standard_normal((2, 6, WIDTH)).astype(np.float32)
    np.testing.assert_array_equal(predictor(memory), predictor(memory))
    assert np.abs(predictor(memory, training=True) - predictor(memory, training=True)).max() > 1e-3


def test_predictor_config_round_trip_and_functional_use():
    predictor = _predictor(encoders=1, decoders=1)
    inputs = keras.Input((6, WIDTH))
    assert tuple(predictor(inputs).shape) == (None, 5, WIDTH)
    config = predictor.get_config()
    assert config["num_queries"] == 5 and config["num_decoder_layers"] == 1
    memory = np.random.default_rng(4).standard_normal((2, 6, WIDTH)).astype(np.float32)
    run_serialization_test(predictor, memory)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: TransformerEncoderLayer(WIDTH, HEADS, FFN),
        lambda: TransformerDecoderLayer(WIDTH, HEADS),
    ],
)
def test_encoder_and_decoder_layer_configs_round_trip(make_layer):
    run_serialization_test(make_layer())


def test_paper_size_predictor_parameter_count():
    predictor = TransformerPredictor(49)
    predictor.build((None, 98, 512))
    attention = 4 * (512 * 512 + 512)
    ffn = 2 * (512 * 512 + 512)
    norm = 2 * 512
    expected = (
        2 * (attention + ffn + 2 * norm) + 4 * (2 * attention + ffn + 3 * norm) + (98 + 49) * 512
    )
    assert predictor.count_params() == expected == 13_749_760


def test_bad_sizes_are_reported():
    with pytest.raises(ValueError, match="width 10 .*num_heads 4"):
        TransformerPredictor(4, width=10, num_heads=4)
    with pytest.raises(ValueError, match=r"\[B, M, 8\]"):
        _predictor()(np.zeros((1, 3, 16), np.float32))
