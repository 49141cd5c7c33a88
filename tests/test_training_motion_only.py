"""loss.motion_only_epochs: the motion loss alone for the first steps, then the joint objective."""

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.config import ConfigError
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import PretrainModel

from training_support import tiny_config


def _model(motion_only_steps, alpha=0.5):
    config = tiny_config(f"loss.alpha={alpha}")
    model = PretrainModel.from_pretrain_config(config, motion_only_steps=motion_only_steps)
    model.build()
    model.compile(optimizer=build_optimizer(config, steps_per_epoch=3))
    return model


def test_alpha_is_one_during_the_motion_only_steps_then_the_configured_value():
    model = _model(motion_only_steps=2)
    seen = []
    for step in range(4):
        model.optimizer.iterations.assign(step)
        seen.append(float(model.current_alpha()))
    assert seen == [1.0, 1.0, 0.5, 0.5]


def test_joint_loss_follows_the_current_alpha():
    model = _model(motion_only_steps=1)
    per_video = {"context": tf.constant([2.0, 4.0]), "motion": tf.constant([1.0, 3.0])}
    from tfcmvp import losses

    for step, alpha in ((0, 1.0), (1, 0.5)):
        model.optimizer.iterations.assign(step)
        joint = losses.joint_loss(
            per_video["context"],
            per_video["motion"],
            model.current_alpha(),
            model.loss_config.scale,
        )
        expected = model.loss_config.scale * (
            (1 - alpha) * np.array([2.0, 4.0]) + alpha * np.array([1.0, 3.0])
        )
        np.testing.assert_allclose(joint.numpy(), expected, rtol=1e-6)


def test_without_motion_only_steps_alpha_is_the_plain_float():
    model = _model(motion_only_steps=0, alpha=0.25)
    assert model.current_alpha() == 0.25
    assert model.get_config()["motion_only_steps"] == 0


def test_motion_only_epochs_is_range_checked():
    with pytest.raises(
        ConfigError,
        match=r"loss.motion_only_epochs=3.0 must lie in \[0, "
        r"train.epochs = 2\]",
    ):
        tiny_config("loss.motion_only_epochs=3")
    assert tiny_config("loss.motion_only_epochs=1.5").loss.motion_only_epochs == 1.5
