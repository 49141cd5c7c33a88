"""Every paper config builds its full-size model and runs one train step on CPU at batch 2.

The Kinetics-400 configs differ from the UCF101 config of the same network
only in the batch and the cluster (checked here), so the three UCF101 steps
cover their models too.
"""

import pathlib

import keras
import numpy as np
import pytest

from tfcmvp import config as cfg
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import METRIC_NAMES, PretrainModel

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
ARCHITECTURES = ("c3d", "r2plus1d26", "r3d26")
ON_CPU = ("train.global_batch_size=2", "runtime.strategy=default")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_k400_config_is_the_ucf101_config_with_its_batch_and_cluster(arch):
    ucf = cfg.load_config(CONFIG_DIR / f"pretrain_ucf101_{arch}.yaml")
    k400 = cfg.load_config(CONFIG_DIR / f"pretrain_k400_{arch}.yaml")
    assert cfg.config_differences(ucf, k400) == [
        "train.global_batch_size: 64 -> 512",
        "runtime.strategy: 'mirrored' -> 'multi_worker'",
    ]
    assert k400.peak_learning_rate == pytest.approx(0.256)  # 5e-4 x 512


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_paper_model_runs_one_train_step(arch):
    config = cfg.load_config(CONFIG_DIR / f"pretrain_ucf101_{arch}.yaml", ON_CPU)
    keras.utils.set_random_seed(0)
    model = PretrainModel.from_pretrain_config(config)
    model.build()
    # 8 motion frames at 112 x 112 give the paper's 1 x 7 x 7 = 49 target positions.
    assert model.target_grid == (1, 7, 7)
    # Both memories are 2 x 7 x 7 = 98 tokens (C3D conv5; ResNet layer3 folded + layer4).
    v_maps = model.video_network.output
    assert model.memory.grid([tuple(v_maps[s].shape) for s in model.memory_stages]) == (2, 7, 7)
    optimizer = build_optimizer(config, steps_per_epoch=149)
    # Eager: one step, no graph to trace for these large models.
    model.compile(optimizer=optimizer, run_eagerly=True)
    rng = np.random.default_rng(0)
    batch = {
        "clip": rng.normal(size=(2, 16, 112, 112, 3)).astype("float32"),
        "iframe": rng.normal(size=(2, 112, 112, 3)).astype("float32"),
        "motion": rng.uniform(-1, 1, size=(2, 4, 8, 112, 112, 2)).astype("float32"),
    }
    logs = model.train_on_batch(batch, return_dict=True)
    assert set(logs) == set(METRIC_NAMES)
    assert all(np.isfinite(value) for value in logs.values())
    assert int(optimizer.iterations.numpy()) == 1
    # First warm-up step of 5 epochs, peak 5e-4 x 2 at this batch.
    assert logs["lr"] == pytest.approx(config.peak_learning_rate / (5 * 149))
