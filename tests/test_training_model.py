"""PretrainModel: output shapes, losses against NumPy, ablations, train / test steps."""

import keras
import numpy as np
import pytest

from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import METRIC_NAMES, PretrainModel

from harness import run_config_file_test, run_serialization_test
from training_support import tiny_config

B = 2


def random_batch(config, seed=0, batch=B):
    rng = np.random.default_rng(seed)
    d = config.data
    s = d.crop_size
    return {
        "clip": rng.normal(size=(batch, d.clip_len, s, s, 3)).astype("float32"),
        "iframe": rng.normal(size=(batch, s, s, 3)).astype("float32"),
        "motion": rng.uniform(
            -1, 1, size=(batch, 1 + d.num_negatives, d.motion_len, s, s, 2)
        ).astype("float32"),
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
    mot, mot_hit = numpy_infonce(
        out["motion_query"].reshape(-1, 16), keys.reshape(-1, 16), positives, tau
    )
    np.testing.assert_allclose(got["motion_loss"], mot.reshape(B, n).mean(-1), rtol=1e-4)
    np.testing.assert_allclose(got["motion_acc"], mot_hit.reshape(B, n).mean(-1), rtol=1e-6)
    # The minimised objective: loss.scale (2, the authors' loss_m + loss_i) x Eq. 3.
    assert config.loss.scale == 2.0
    np.testing.assert_allclose(
        got["loss"], 2.0 * (0.5 * ctx + 0.5 * mot.reshape(B, n).mean(-1)), rtol=1e-4
    )


@pytest.mark.parametrize("alpha, ctx_weight, motion_weight", [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0)])
def test_alpha_selects_the_objective(alpha, ctx_weight, motion_weight):
    config, model = build(f"loss.alpha={alpha}")
    batch = random_batch(config)
    got = model.per_example_losses(batch, model(batch, training=False))
    np.testing.assert_allclose(
        got["loss"].numpy(),
        config.loss.scale
        * (ctx_weight * got["context_loss"].numpy() + motion_weight * got["motion_loss"].numpy()),
        rtol=1e-6,
    )


@pytest.mark.parametrize("kind, shape", [("mse", (B, 4, 2)), ("ce", (B, 4, 2, 21))])
def test_value_ablations_predict_motion_values(kind, shape):
    config, model = build(f"loss.motion_loss={kind}")
    _, infonce_model = build()
    batch = random_batch(config)
    out = model(batch, training=False)
    assert set(out) == {"context_query", "context_key", "motion_values"}
    assert tuple(out["motion_values"].shape) == shape
    # The motion network and the motion heads are not part of these objectives.
    assert not model.motion_network.trainable and not model.motion_head.trainable
    trainable = {v.path for v in model.trainable_variables}
    assert not any(
        path.startswith(("r3d_10", "motion_head", "prediction_head")) for path in trainable
    )
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
    # R3D-10 as a (tiny) video network: layer3 and layer4 feed the memory.
    config, model = build("model.video_network=r3d_10", "data.clip_len=8")
    assert model.memory_stages == ("layer3", "layer4")
    out = model(random_batch(config), training=False)
    assert tuple(out["motion_query"].shape) == (B, 4, 16)


def test_get_config_round_trip():
    config, model = build("model.predictor=convgru", "loss.alpha=0.25")
    clone = run_serialization_test(model)
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
    before = [v.numpy().copy() for v in model.video_network.trainable_variables]
    logs = model.train_on_batch(batch, return_dict=True)
    assert set(logs) == set(METRIC_NAMES)
    assert int(optimizer.iterations.numpy()) == 1
    assert logs["lr"] == pytest.approx(config.peak_learning_rate)  # step 0, no warm-up
    changed = [
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, model.video_network.trainable_variables)
    ]
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
    norms = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) > 20
    assert all(layer.synchronized for layer in norms)
    _, plain = build("train.sync_bn=false")
    assert not any(
        layer.synchronized
        for layer in plain._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_mixed_bfloat16_computes_in_bfloat16_and_compares_in_float32():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        config, model = build("train.mixed_precision=mixed_bfloat16")
        batch = random_batch(config)
        maps = model.video_network(batch["clip"], training=False)
        assert maps["features"].dtype == "bfloat16"
        assert all(v.dtype == "float32" for v in model.trainable_variables)
        out = model(batch, training=False)
        assert {str(v.dtype) for v in out.values()} == {"<dtype: 'float32'>"}
        per_example = model.per_example_losses(batch, out)
        assert all(
            v.dtype == "float32" and np.all(np.isfinite(v.numpy())) for v in per_example.values()
        )
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# ------------------------------------------------------------------ the authors' options


def numpy_fused(layer3, layer4):
    """layer3 folded 2x in time + layer4 nearest-upsampled to its grid (NumPy)."""
    folded = np.concatenate([layer3[:, 0::2], layer3[:, 1::2]], axis=-1)
    index = lambda n_in, n_out: [min(o * n_in // n_out, n_in - 1) for o in range(n_out)]
    _, t, h, w, _ = folded.shape
    t4, h4, w4 = layer4.shape[1:4]
    return folded + layer4[:, index(t4, t)][:, :, index(h4, h)][:, :, :, index(w4, w)]


RESNET_V = ("model.video_network=r3d_10", "data.clip_len=16")


def test_fused_context_pooling_averages_the_fused_memory_map():
    # R3D-10 video network on 16 x 32 x 32: layer3 [4, 4, 4, 16] folds to [2, 4, 4, 32],
    # layer4 [2, 2, 2, 32] is upsampled to it; g_V reads the 32-channel mean.
    config, model = build(*RESNET_V)
    assert model.model_config.context_pooling == "fused"
    batch = random_batch(config)
    maps = {k: v.numpy() for k, v in model.video_network(batch["clip"], training=False).items()}
    assert maps["layer3"].shape == (B, 4, 4, 4, 16) and maps["layer4"].shape == (B, 2, 2, 2, 32)
    pooled = numpy_fused(maps["layer3"], maps["layer4"]).mean(axis=(1, 2, 3))  # [B, 32]
    assert model.clip_head.hidden.kernel.shape == (32, 32)
    out = model(batch, training=False)
    np.testing.assert_allclose(
        out["context_query"], model.clip_head(pooled, training=False), rtol=1e-4, atol=1e-5
    )
    # Not what pooling layer4 alone gives.
    layer4_only = model.clip_head(maps["layer4"].mean(axis=(1, 2, 3)), training=False)
    assert not np.allclose(out["context_query"], layer4_only, atol=1e-3)


def test_layer4_context_pooling_and_concat_fusion_set_the_head_and_memory_widths():
    config, model = build(*RESNET_V, "model.context_pooling=layer4")
    batch = random_batch(config)
    features = model.video_network(batch["clip"], training=False)["features"].numpy()
    np.testing.assert_allclose(
        model(batch, training=False)["context_query"],
        model.clip_head(features.mean(axis=(1, 2, 3)), training=False),
        rtol=1e-4,
        atol=1e-5,
    )
    # concat: the projection reads 32 + 32 channels (with a bias when asked), and the
    # fused map g_V pools is 64 wide.
    _, concat = build(*RESNET_V, "model.memory_fusion=concat", "model.memory_bias=true")
    assert [tuple(w.shape) for w in concat.memory.weights] == [(64, 16), (16,)]
    assert concat.clip_head.hidden.kernel.shape == (64, 32)
    _, added = build(*RESNET_V)
    assert [tuple(w.shape) for w in added.memory.weights] == [(32, 16)]  # bias-free


def test_c3d_context_query_is_the_same_under_both_poolings():
    config, fused = build()
    _, layer4 = build("model.context_pooling=layer4")  # same seed: same weights
    batch = random_batch(config)
    np.testing.assert_allclose(
        fused(batch, training=False)["context_query"],
        layer4(batch, training=False)["context_query"],
        rtol=1e-6,
    )


def test_options_reach_the_networks():
    _, authors = build(*RESNET_V)
    stem = authors.motion_network.get_layer("stem_conv")
    assert stem.strides == (1, 1, 1) and authors.motion_network.get_layer("stem_pool")
    # The tiny R3D-10 video network keeps its strided stem (motion_stem is the motion network's).
    assert authors.video_network.get_layer("stem_conv").strides == (1, 2, 2)
    for network in (authors.video_network, authors.iframe_network, authors.motion_network):
        gammas = [
            layer.gamma.numpy()
            for layer in network.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert sum(np.all(g == 0) for g in gammas) == 4, network.name  # one per block
    assert authors.predictor.init == authors.memory.init == authors.clip_head.init == "authors"
    _, legacy = build(
        *RESNET_V, "model.motion_stem=strided", "model.zero_init_residual=false", "model.init=keras"
    )
    assert legacy.motion_network.get_layer("stem_conv").strides == (1, 2, 2)
    assert "stem_pool" not in [layer.name for layer in legacy.motion_network.layers]
    assert all(
        np.all(layer.gamma.numpy() == 1)
        for layer in legacy.motion_network.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert legacy.predictor.init == legacy.motion_head.init == "keras"
    # Same weights either way, so a checkpoint of one loads into the other.
    assert [tuple(v.shape) for v in legacy.weights] == [tuple(v.shape) for v in authors.weights]


def test_authors_init_of_every_linear_layer_of_the_pretraining_model():
    _, model = build("model.predictor_width=64", "model.ffn_width=64", "model.num_heads=4")
    linears = [model.memory.projection]
    for layer in model.predictor.encoder_layers + model.predictor.decoder_layers:
        linears += [layer.ffn_hidden, layer.ffn_output, layer.self_attention.output_dense]
        if hasattr(layer, "cross_attention"):
            linears.append(layer.cross_attention.output_dense)
    kernels = np.concatenate([layer.kernel.numpy().ravel() for layer in linears])
    # Memory 32 -> 64 (conv5 of C3D width 4); one encoder layer (2 FFN + 1 attention
    # output) and one decoder layer (2 FFN + 2 attention outputs) of 64 x 64.
    assert kernels.size == 32 * 64 + 7 * 64 * 64
    assert abs(kernels.std() / 0.01 - 1) < 0.05 and abs(kernels.mean()) < 1e-3
    biases = [layer.bias.numpy() for layer in linears if layer.bias is not None]
    assert len(biases) == 7 and all(np.all(b == 0) for b in biases)  # memory: none
    embeddings = np.concatenate(
        [model.predictor.memory_pos.numpy().ravel(), model.predictor.query_pos.numpy().ravel()]
    )
    assert embeddings.min() >= 0 and embeddings.max() <= 1
    assert abs(embeddings.mean() - 0.5) < 0.05


@pytest.mark.parametrize(
    "override",
    [
        "model.memory_fusion=concat",
        "model.memory_bias=true",
        "model.context_pooling=layer4",
        "model.motion_stem=strided",
        "model.zero_init_residual=false",
        "model.init=keras",
    ],
)
def test_each_option_round_trips_through_the_saved_config_and_get_config(override, tmp_path):
    from tfcmvp import config as cfg

    config, model = build(override)
    key = override.split("=")[0]
    name = key.split(".")[1]
    assert getattr(config.model, name) != getattr(cfg.ModelConfig(), name)  # not the default
    path = run_config_file_test(config, tmp_path / "config.yaml")
    assert cfg.load_saved_config(path) == config  # a full saved config needs no legacy values
    clone = run_serialization_test(model)
    assert clone.model_config == model.model_config
    with pytest.raises(cfg.ConfigError, match=f"{key}='bogus'"):
        tiny_config(f"{key}=bogus")


def test_finetuning_motion_regulariser_takes_the_same_options():
    from tfcmvp.finetuning.classifier import VideoClassifier

    config, model = build(
        *RESNET_V, "model.memory_fusion=concat", "model.motion_stem=strided", "model.init=keras"
    )
    classifier = VideoClassifier(
        config.model,
        config.data,
        num_classes=3,
        motion_aux_weight=0.2,
        sync_bn=config.train.sync_bn,
    )
    classifier.build()
    assert classifier.memory.get_config() == model.memory.get_config()
    assert classifier.predictor.get_config() == model.predictor.get_config()
    assert classifier.motion_head.get_config() == model.motion_head.get_config()
    assert classifier.motion_network.get_config() == model.motion_network.get_config()
    assert [tuple(w.shape) for w in classifier.memory.weights] == [
        tuple(w.shape) for w in model.memory.weights
    ]
