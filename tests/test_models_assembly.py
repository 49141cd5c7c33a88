"""The networks wired together (tiny sizes): saving, gradients, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.models import (
    ConvGRUPredictor,
    MLPHead,
    MotionValueHead,
    PredictorMemory,
    TransformerPredictor,
    build_backbone,
    memory_spec,
)

from harness import run_model_saving_test

CLIP = (16, 32, 32, 3)
MOTION = (8, 32, 32, 2)
WIDTH = 16


def _networks(
    backbone="r2plus1d_26", predictor="transformer", zero_init_residual=True, stem="authors"
):
    """Clip + motion -> the four head outputs, as one functional model.

    `zero_init_residual` and `stem` (R3D-10's, "authors" or "strided") go to the ResNets.
    """
    resnet = dict(zero_init_residual=zero_init_residual)
    video_kwargs = {} if backbone == "c3d" else {"blocks": (1, 1, 1, 1), **resnet}
    if backbone == "r3d_10":
        video_kwargs["stem"] = stem
    video_net = build_backbone(
        backbone, input_shape=CLIP, width=4, name="video_net", **video_kwargs
    )
    motion_net = build_backbone(
        "r3d_10", input_shape=MOTION, width=4, name="motion_net", stem=stem, **resnet
    )
    clip = keras.Input(CLIP, name="clip")
    motion = keras.Input(MOTION, name="motion")
    maps = video_net(clip)
    targets = motion_net(motion)["features"]  # [B, 1, 2, 2, 32]
    num_targets = int(np.prod(targets.shape[1:4]))
    spec = memory_spec(backbone)
    if predictor == "transformer":
        memory = PredictorMemory(WIDTH, spec.time_fold)([maps[s] for s in spec.stages])
        predicted = TransformerPredictor(
            num_targets,
            width=WIDTH,
            num_heads=2,
            ffn_width=WIDTH,
            num_encoder_layers=1,
            num_decoder_layers=1,
        )(memory)
    else:
        predicted = ConvGRUPredictor(targets.shape[1:4], width=WIDTH)(maps["features"])
    context = keras.layers.GlobalAveragePooling3D()(maps["features"])
    motion_tokens = keras.layers.Reshape((num_targets, targets.shape[-1]))(targets)
    outputs = {
        "context_query": MLPHead(32, 8, name="context_head")(context),
        "motion_query": MLPHead(32, 8, name="predicted_motion_head")(predicted),
        "motion_key": MLPHead(32, 8, name="motion_key_head")(motion_tokens),
        "motion_values": MotionValueHead(2)(predicted),
    }
    return keras.Model({"clip": clip, "motion": motion}, outputs)


def _inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "clip": rng.random((batch,) + CLIP, np.float32),
        "motion": rng.standard_normal((batch,) + MOTION).astype(np.float32),
    }


def test_saved_and_reloaded_networks_give_identical_outputs(tmp_path):
    model = _networks()
    inputs = _inputs()
    expected = model(inputs, training=False)
    assert {k: tuple(v.shape) for k, v in expected.items()} == {
        "context_query": (2, 8),
        "motion_query": (2, 4, 8),
        "motion_key": (2, 4, 8),
        "motion_values": (2, 4, 2),
    }
    run_model_saving_test(model, inputs, tmp_path / "networks.keras")


@pytest.mark.parametrize("backbone,predictor", [("r2plus1d_26", "transformer"), ("c3d", "convgru")])
def test_every_trainable_weight_receives_a_gradient(backbone, predictor):
    # Zero-init residual blocks (the default) pass no gradient into their branch
    # until the branch's last BN gamma moves from 0: checked here without it.
    model = _networks(backbone, predictor, zero_init_residual=False)
    inputs = _inputs()
    with tf.GradientTape() as tape:
        out = model(inputs, training=True)
        # Contrastive-style logits so the L2-normalised heads get non-zero gradients.
        logits = tf.einsum("bnc,kmc->bnkm", out["motion_query"], out["motion_key"])
        loss = (
            tf.reduce_sum(tf.nn.log_softmax(tf.reshape(logits, (2, 4, -1)))[..., 0])
            + tf.reduce_sum(out["context_query"][:, 0])
            + tf.reduce_sum(tf.square(out["motion_values"]))
        )
    grads = tape.gradient(loss, model.trainable_weights)
    missing = {
        w.path.split("/", 1)[1]
        for w, g in zip(model.trainable_weights, grads)
        if g is None or not np.any(g.numpy())
    }
    if predictor == "transformer":
        # DETR: the decoder starts from zeros, so the first self-attention sees
        # zero values: its output is the constant b_v W_o + b_o and its query,
        # key and value kernels never matter. With b_v = b_o = 0 at
        # initialisation, W_o and the following LayerNorm's gamma get zero
        # gradients too (until b_v moves).
        prefix = "decoder_0/self_attention"
        dead = {
            f"{prefix}/query/kernel",
            f"{prefix}/query/bias",
            f"{prefix}/key/kernel",
            f"{prefix}/key/bias",
            f"{prefix}/value/kernel",
        }
        zero_at_init = {f"{prefix}/attention_output/kernel", f"{prefix}_norm/gamma"}
        assert missing == dead | zero_at_init
    else:
        assert not missing


# TensorFlow has no float16 MaxPool3D kernel on CPU (GPU has one), so the
# float16 case runs the pool-free R3D-10 (strided stem) as video and motion network here.
@pytest.mark.parametrize(
    "policy,dtype,backbone",
    [("mixed_bfloat16", "bfloat16", "r2plus1d_26"), ("mixed_float16", "float16", "r3d_10")],
)
def test_mixed_precision_computes_low_and_returns_float32_heads(policy, dtype, backbone):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = _networks(backbone, stem="strided" if dtype == "float16" else "authors")
        video = model.get_layer("video_net")
        assert video.output["features"].dtype == dtype
        out = model(_inputs(), training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    for key in ("context_query", "motion_query", "motion_key", "motion_values"):
        assert out[key].dtype == tf.float32, key
        assert np.all(np.isfinite(out[key].numpy())), key
    norms = np.linalg.norm(out["motion_query"].numpy(), axis=-1)
    np.testing.assert_allclose(norms, np.ones_like(norms), atol=1e-5)
