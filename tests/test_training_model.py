"""PretrainModel: output shapes, losses against NumPy, ablations, train / test steps."""

import keras
import numpy as np
import pytest

from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import METRIC_NAMES, PretrainModel
from training_support import tiny_config

B = 2


def random_batch(config, seed=0, batch=B):
    rng = np.random.default_rng(seed)
    d = config.data
    s = d.crop_size
    return {
        "clip": rng.normal(size=(batch, d.clip_len, s, s, 3)).astype("float32"),
        "iframe": rng.normal(size=(batch, s, s, 3)).astype("float32"),
        "motion": rng.uniform(-1, 1, size=(batch, 1 + d.num_negatives, d.motion_len, s, s, 2))
        .astype("float32"),
    }


def build(*overrides):
    keras.utils.set_random_seed(1)
    config = tiny_config(*overrides)
    model = PretrainModel.from_pretrain_config(config)
    model.build()
    return config, model


def numpy_infonce(queries, keys, positives, temperature):
    q = queries / np.linalg.norm(queries, axis=-1, keepdims=True)
    k = keys / np.linalg.norm(keys, axis=-1, keepdims=True)
    logits = q @ k.T / temperature
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    loss = -log_softmax[np.arange(len(q)), positives]
    correct = (logits.argmax(axis=-1) == positives).astype(np.float32)
    return loss, correct


def test_output_shapes_and_unit_embeddings():
    config, model = build()
    # C3D (width 4) on 8 x 32 x 32: conv5 [1, 2, 2, 32];
    # R3D-10 on 8 x 32 x 32 motion: [1, 2, 2, 32].
    assert model.target_grid == (1, 2, 2) and model.num_positions == 4
    out = model(random_batch(config), training=False)
    assert set(out) == {"context_query", "context_key", "motion_query", "motion_keys"}
    assert tuple(out["context_query"].shape) == (B, 16)
    assert tuple(out["context_key"].shape) == (B, 16)
    assert tuple(out["motion_query"].shape) == (B, 4, 16)
    assert tuple(out["motion_keys"].shape) == (B, 2, 4, 16)  # 1 target + 1 negative
    for value in out.values():
        np.testing.assert_allclose(np.linalg.norm(value.numpy(), axis=-1), 1.0, rtol=1e-5)


def test_per_example_losses_match_numpy():
    config, model = build()
    batch = random_batch(config)
    out = {k: v.numpy() for k, v in model(batch, training=False).items()}
    got = {k: v.numpy() for k, v in model.per_example_losses(batch, out).items()}
    tau = config.loss.temperature
    # Context: clip i vs the I-frames of the batch, positive i.
    ctx, ctx_hit = numpy_infonce(out["context_query"], out["context_key"], np.arange(B), tau)
    np.testing.assert_allclose(got["context_loss"], ctx, rtol=1e-4)
    np.testing.assert_array_equal(got["context_acc"], ctx_hit)
    # Motion: query (b, n) vs every position of every clip; positive (b, clip 0, n).
    keys = out["motion_keys"]  # [B, K, N, D]
    k, n = keys.shape[1], keys.shape[2]
    positives = (np.arange(B)[:, None] * k * n + np.arange(n)[None, :]).reshape(-1)
    mot, mot_hit = numpy_infonce(out["motion_query"].reshape(-1, 16), keys.reshape(-1, 16),
                                 positives, tau)
    np.testing.assert_allclose(got["motion_loss"], mot.reshape(B, n).mean(-1), rtol=1e-4)
    np.testing.assert_allclose(got["motion_acc"], mot_hit.reshape(B, n).mean(-1), rtol=1e-6)
    # The minimised objective: loss.scale (2, the authors' loss_m + loss_i) x Eq. 3.
    assert config.loss.scale == 2.0
    np.testing.assert_allclose(got["loss"], 2.0 * (0.5 * ctx + 0.5 * mot.reshape(B, n).mean(-1)),
                               rtol=1e-4)


@pytest.mark.parametrize("alpha, ctx_weight, motion_weight", [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0)])
def test_alpha_selects_the_objective(alpha, ctx_weight, motion_weight):
    config, model = build(f"loss.alpha={alpha}")
    batch = random_batch(config)
    got = model.per_example_losses(batch, model(batch, training=False))
    np.testing.assert_allclose(
        got["loss"].numpy(),
        config.loss.scale * (ctx_weight * got["context_loss"].numpy()
                             + motion_weight * got["motion_loss"].numpy()),
        rtol=1e-6)


@pytest.mark.parametrize("kind, shape", [("mse", (B, 4, 2)), ("ce", (B, 4, 2, 21))])
def test_value_ablations_predict_motion_values(kind, shape):
    config, model = build(f"loss.motion_loss={kind}")
    _, infonce_model = build()
    batch = random_batch(config)
    out = model(batch, training=False)
    assert set(out) == {"context_query", "context_key", "motion_values"}
    assert tuple(out["motion_values"].shape) == shape
    # The M-Network and the motion heads are not part of these objectives.
    assert not model.m_network.trainable and not model.motion_head.trainable
    trainable = {v.path for v in model.trainable_variables}
    assert not any(path.startswith(("r3d_10", "motion_head", "prediction_head"))
                   for path in trainable)
    assert len(model.trainable_variables) < len(infonce_model.trainable_variables)
    got = model.per_example_losses(batch, out)
    assert tuple(got["motion_loss"].shape) == (B,)
    assert np.all(np.isfinite(got["loss"].numpy()))
    if kind == "mse":
        # Against NumPy: target = the positive clip pooled to the 1 x 2 x 2 grid.
        target = batch["motion"][:, 0].reshape(B, 1, 8, 2, 16, 2, 16, 2).mean(axis=(2, 4, 6))
        pred = out["motion_values"].numpy()
        expected = ((pred - target.reshape(B, 4, 2)) ** 2).mean(axis=(1, 2))
        np.testing.assert_allclose(got["motion_loss"].numpy(), expected, rtol=1e-4)


def test_convgru_predictor():
    config, model = build("model.predictor=convgru")
    out = model(random_batch(config), training=False)
    assert tuple(out["motion_query"].shape) == (B, 4, 16)
    assert type(model.predictor).__name__ == "ConvGRUPredictor"


def test_resnet_v_network_uses_two_stage_memory():
    # R3D-10 as a (tiny) V-Network: layer3 and layer4 feed the memory.
    config, model = build("model.backbone=r3d_10", "data.clip_len=8")
    assert model.memory_stages == ("layer3", "layer4")
    out = model(random_batch(config), training=False)
    assert tuple(out["motion_query"].shape) == (B, 4, 16)


def test_get_config_round_trip():
    config, model = build("model.predictor=convgru", "loss.alpha=0.25")
    clone = PretrainModel.from_config(model.get_config())
    clone.build()
    assert clone.model_config == model.model_config
    assert clone.loss_config == model.loss_config and clone.data_config == model.data_config
    assert clone.sync_bn == model.sync_bn
    assert [tuple(v.shape) for v in clone.weights] == [tuple(v.shape) for v in model.weights]


def test_train_and_test_steps_update_and_report_all_metrics():
    config, model = build("train.epochs=2", "optimizer.warmup_epochs=0")
    optimizer = build_optimizer(config, steps_per_epoch=3)
    # Eager here (no tracing); the pretraining tests run the same steps as graphs.
    model.compile(optimizer=optimizer, run_eagerly=True)
    batch = random_batch(config, batch=4)
    before = [v.numpy().copy() for v in model.v_network.trainable_variables]
    logs = model.train_on_batch(batch, return_dict=True)
    assert set(logs) == set(METRIC_NAMES)
    assert int(optimizer.iterations.numpy()) == 1
    assert logs["lr"] == pytest.approx(config.peak_learning_rate)  # step 0, no warm-up
    changed = [not np.array_equal(b, v.numpy())
               for b, v in zip(before, model.v_network.trainable_variables)]
    assert all(changed)
    evaluated = model.test_on_batch(batch, return_dict=True)
    assert set(evaluated) == set(METRIC_NAMES)
    assert int(optimizer.iterations.numpy()) == 1  # evaluation does not step
    assert np.isfinite(evaluated["loss"])
    # test_step is the forward pass in inference mode.
    out = model(batch, training=False)
    expected = model.per_example_losses(batch, out)["loss"].numpy().mean()
    assert evaluated["loss"] == pytest.approx(float(expected), rel=1e-4)


def test_sync_bn_reaches_every_batch_norm():
    _, model = build("train.sync_bn=true")
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 20
    assert all(layer.synchronized for layer in norms)
    _, plain = build("train.sync_bn=false")
    assert not any(layer.synchronized for layer in plain._flatten_layers()
                   if isinstance(layer, keras.layers.BatchNormalization))


def test_mixed_bfloat16_computes_in_bfloat16_and_compares_in_float32():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        config, model = build("train.mixed_precision=mixed_bfloat16")
        batch = random_batch(config)
        maps = model.v_network(batch["clip"], training=False)
        assert maps["features"].dtype == "bfloat16"
        assert all(v.dtype == "float32" for v in model.trainable_variables)
        out = model(batch, training=False)
        assert {str(v.dtype) for v in out.values()} == {"<dtype: 'float32'>"}
        per_example = model.per_example_losses(batch, out)
        assert all(v.dtype == "float32" and np.all(np.isfinite(v.numpy()))
                   for v in per_example.values())
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
