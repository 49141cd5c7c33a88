"""The finetuning model, its train step (plain and motion-regularised) and its schedule."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp import losses
from tfcmvp.finetuning.classifier import VideoClassifier, load_backbone_weights
from tfcmvp.finetuning.finetune import find_shards, make_train_dataset
from tfcmvp.finetuning.optimizer import WarmupCosineToFinal, build_finetune_optimizer
from tfcmvp.training.pretrain_model import build_video_network

from finetune_support import CLASSES, tiny_finetune_config, write_labelled_shards
from harness import run_serialization_test
from training_support import without_grappler

B = 4  # tiny global batch
K = len(CLASSES)


@pytest.fixture(scope="module")
def train_files(tmp_path_factory):
    return find_shards(write_labelled_shards(tmp_path_factory.mktemp("data")), "train")


def compiled(config, steps_per_epoch=3, run_eagerly=False):
    """The tiny classifier, compiled. Eager steps skip the tracing of the regulariser's
    graph (seconds); the end-to-end runs of test_finetune_run.py trace it."""
    keras.utils.set_random_seed(config.train.seed)
    model = VideoClassifier.from_finetune_config(config, K)
    model.build()
    model.compile(
        optimizer=build_finetune_optimizer(config, steps_per_epoch),
        jit_compile=False,
        run_eagerly=run_eagerly,
    )
    return model


def first_batch(config, files):
    return next(iter(make_train_dataset(config, files, data_seed=7)))


def cross_entropy(logits, labels):
    """NumPy reference: -log softmax(logits)[label] per row."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), np.asarray(labels)]


def test_classifier_outputs_logits_of_the_classes():
    config = tiny_finetune_config()
    model = compiled(config)
    clips = np.random.default_rng(0).normal(size=(2, 8, 32, 32, 3)).astype(np.float32)
    logits = model(clips, training=False)
    assert tuple(logits.shape) == (2, K) and logits.dtype == "float32"
    # Inference is deterministic (dropout off); training mode drops features.
    np.testing.assert_array_equal(logits, model(clips, training=False))
    # Video network + Dense(32 -> 3) only: no regulariser networks.
    assert not hasattr(model, "m_network")
    backbone = build_video_network(config.model, config.data)
    assert model.count_params() == backbone.count_params() + 32 * K + K


def test_one_step_trains_every_weight_with_a_finite_loss(train_files):
    config = tiny_finetune_config()
    model = compiled(config)
    batch = first_batch(config, train_files)
    assert set(batch) == {"clip", "label"}
    before = [w.numpy().copy() for w in model.trainable_weights]
    with without_grappler():
        logs = model.train_on_batch(batch, return_dict=True)
    assert set(logs) == {"loss", "ce_loss", "acc", "lr"}
    assert math.isfinite(logs["loss"]) and logs["loss"] == pytest.approx(logs["ce_loss"])
    assert 0.0 <= logs["acc"] <= 1.0
    # Warm-up of 1 epoch = 3 steps: the first step runs at peak / 3 (peak = 1e-4 x B).
    assert logs["lr"] == pytest.approx(1e-4 * B / 3, rel=1e-6)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    unchanged = [w.path for c, w in zip(changed, model.trainable_weights) if not c]
    assert not unchanged, unchanged
    assert int(model.optimizer.iterations.numpy()) == 1


def test_motion_aux_loss_is_ce_plus_weighted_pointwise_infonce(train_files):
    # Dropout off everywhere, so two training-mode passes give the same outputs
    # (BatchNorm uses the batch's statistics in both).
    config = tiny_finetune_config(
        "train.motion_aux_weight=0.2", "classifier.dropout=0.0", "model.dropout=0.0"
    )
    model = compiled(config, run_eagerly=True)
    batch = first_batch(config, train_files)
    assert tuple(batch["motion"].shape) == (B, 2, 8, 32, 32, 2)  # target + 1 negative
    outputs = model.forward(batch, training=True)
    # R3D-10 on 8 x 32 x 32 motion: a 1 x 2 x 2 grid, N = 4 targets.
    assert tuple(outputs["motion_query"].shape) == (B, 4, 16)
    assert tuple(outputs["motion_keys"].shape) == (B, 2, 4, 16)
    ce = cross_entropy(outputs["logits"], batch["label"].numpy()).mean()
    j_m = float(
        tf.reduce_mean(
            losses.motion_infonce(outputs["motion_query"], outputs["motion_keys"], temperature=0.1)[
                0
            ]
        )
    )

    m_before = [w.numpy().copy() for w in model.motion_network.trainable_weights]
    with without_grappler():
        logs = model.train_on_batch(batch, return_dict=True)
    assert logs["ce_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["motion_loss"] == pytest.approx(j_m, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce + 0.2 * j_m, rel=1e-5)
    assert 0.0 <= logs["motion_acc"] <= 1.0
    # The motion network (from scratch) trains through the auxiliary loss.
    assert any(
        not np.array_equal(b, w.numpy())
        for b, w in zip(m_before, model.motion_network.trainable_weights)
    )


def test_motion_aux_batch_without_motion_is_an_error(train_files):
    config = tiny_finetune_config("train.motion_aux_weight=0.2")
    model = compiled(config, run_eagerly=True)
    batch = first_batch(tiny_finetune_config(), train_files)  # no "motion"
    with pytest.raises(KeyError, match=r"lacks \['motion'\].*with_motion=True"):
        model.train_on_batch(batch)


def test_get_config_round_trip():
    config = tiny_finetune_config("train.motion_aux_weight=0.5", "classifier.dropout=0.1")
    model = VideoClassifier.from_finetune_config(config, K)
    model.build()
    clone = run_serialization_test(model)
    clone.build()
    assert (clone.num_classes, clone.dropout, clone.motion_aux_weight) == (K, 0.1, 0.5)
    assert clone.model_config == config.model and clone.data_config == config.data
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]


def test_load_backbone_weights_copies_and_checks_shapes():
    config = tiny_finetune_config()
    model = VideoClassifier.from_finetune_config(config, K)
    model.build()
    source = build_video_network(config.model, config.data)
    load_backbone_weights(model.video_network, source)
    for mine, theirs in zip(model.video_network.weights, source.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    wider = build_video_network(tiny_finetune_config("model.video_width=8").model, config.data)
    with pytest.raises(
        ValueError,
        match=r"weight .*kernel has shape \(3, 3, 3, 3, 4\).*"
        r"\(3, 3, 3, 3, 8\).*the architectures differ",
    ):
        load_backbone_weights(model.video_network, wider)


def test_warmup_cosine_to_final_rate():
    schedule = WarmupCosineToFinal(1.0, warmup_steps=2, total_steps=6, final_learning_rate=0.1)
    rates = [float(schedule(step)) for step in range(8)]
    # Warm-up 0.1 + 0.9 x (1, 2) / 2; cosine over steps 2..5 of 4: 0.1 + 0.9 (1 + cos(pi p)) / 2.
    cosine = [0.1 + 0.9 * (1 + math.cos(math.pi * p)) / 2 for p in (0, 0.25, 0.5, 0.75)]
    np.testing.assert_allclose(rates, [0.55, 1.0, *cosine, 0.1, 0.1], rtol=1e-6)
    run_serialization_test(schedule, call=lambda s: [float(s(step)) for step in range(8)])
    with pytest.raises(ValueError, match="final_learning_rate < peak_learning_rate"):
        WarmupCosineToFinal(1e-3, 0, 10, final_learning_rate=1e-3)


def test_optimizer_uses_the_paper_finetuning_rate():
    config = tiny_finetune_config(
        "train.epochs=4", "optimizer.warmup_epochs=0", "optimizer.final_learning_rate=1.0e-6"
    )
    optimizer = build_finetune_optimizer(config, steps_per_epoch=5)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(1e-4 * B)  # lr = 1e-4 x B, no warm-up
    assert float(schedule(20)) == pytest.approx(1e-6)  # the authors' final rate
    assert optimizer.weight_decay == pytest.approx(3e-3) and optimizer.global_clipnorm is None


def test_test_step_reports_the_loss_without_training(train_files):
    config = tiny_finetune_config("classifier.dropout=0.0")
    model = compiled(config, run_eagerly=True)
    batch = first_batch(config, train_files)
    before = [w.numpy().copy() for w in model.weights]
    logs = model.test_on_batch(batch, return_dict=True)
    logits = model(batch["clip"], training=False)
    assert logs["ce_loss"] == pytest.approx(
        cross_entropy(logits, batch["label"].numpy()).mean(), rel=1e-5
    )
    for b, w in zip(before, model.weights):  # no update, no BatchNorm statistics
        np.testing.assert_array_equal(b, w.numpy())
