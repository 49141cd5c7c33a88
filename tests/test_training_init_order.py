"""A seed gives the same initial weights as the code that wrote the first checkpoints.

Keras initialisers draw their seeds when their layer is made, so the order in which the
pretraining model makes its layers is part of its results: a refactor that made the
context heads after the motion heads changed every run of the quickstart. The reference,
``tests/data/checkpoints/init_abs_sums_seed0.json``, holds the sum of |w| of every
variable of the tiny model as the code before the MotionBranch layer built it.
"""

import json
import pathlib

import keras
import numpy as np
import pytest

from tfcmvp.config import load_config
from tfcmvp.training.pretrain_model import PretrainModel

REPO = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "checkpoints" / "init_abs_sums_seed0.json"


def test_tiny_model_initial_weights_equal_the_reference():
    config = load_config(REPO / "configs" / "pretrain_tiny_cpu.yaml")
    keras.utils.set_random_seed(0)
    model = PretrainModel.from_pretrain_config(config, motion_only_steps=210)
    model.build()
    expected = json.loads(REFERENCE.read_text())["variables"]
    assert len(model.weights) == len(expected)
    for variable, (name, total) in zip(model.weights, expected):
        assert variable.path.split("/")[-2:] == name
        assert float(np.sum(np.abs(variable.numpy()))) == pytest.approx(total, rel=1e-6), name
