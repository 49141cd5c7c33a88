"""Shared pieces of tests/test_export*.py: a pretraining workdir without the training.

`fake_workdir` writes what `tfcmvp pretrain` leaves behind (config.yaml,
weights/{v,i,m}_network.weights.h5, history.csv) for the tiny config of
training_support, with every BatchNorm given random statistics and affine
parameters: trained-looking weights whose outputs are far from zero even on
an all-zero clip (an untrained network maps zeros to zeros).

The module-scoped fixtures built on it, `workdir` and `exports`, live in
conftest.py: every test module that asks for them gets its own fake run.
"""

import pathlib

import numpy as np

from tfcmvp import config as cfg
from tfcmvp.export import networks

from training_support import tiny_config

# Literal output grids of the tiny networks (widths 4, 8 x 32 x 32 clips):
# (input shape, feature shape, embedding dim).
TINY_SHAPES = {
    "video": ((8, 32, 32, 3), (1, 2, 2, 32), 32),  # C3D: T / 8, H / 16, 8 x width
    "iframe": ((32, 32, 3), (1, 1, 32), 32),  # R2D-10: H / 32, 8 x width
    "motion": ((8, 32, 32, 2), (1, 2, 2, 32), 32),  # R3D-10, no stem pool: T / 8, H / 16
}
EPOCHS = 2
NETWORKS = ("video", "iframe", "motion")


def randomise_batch_norm(model, seed: int) -> None:
    """Random moving statistics, gamma and beta in every BatchNormalization layer."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:  # functional backbones: a flat list of stock layers
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            layer.beta.assign(rng.normal(0.0, 0.5, shape).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))


def fake_workdir(workdir, *overrides: str) -> tuple:
    """Writes a finished tiny pretraining run; returns (config, {network: keras.Model})."""
    from tfcmvp.training.callbacks import save_network_weights, write_history
    from tfcmvp.training.pretrain import CONFIG_NAME, HISTORY_CSV, WEIGHTS_DIR

    workdir = pathlib.Path(workdir)
    config = tiny_config(*overrides)
    cfg.save_config(config, workdir / CONFIG_NAME)
    models = {}
    for index, network in enumerate(("video", "iframe", "motion")):
        model = networks.build_network(network, config, seed=100 + index)
        randomise_batch_norm(model, seed=200 + index)
        models[network] = model
    save_network_weights(
        workdir / WEIGHTS_DIR,
        {networks.WEIGHTS_STEMS[name]: model for name, model in models.items()},
    )
    write_history(
        workdir / HISTORY_CSV,
        [{"epoch": e, "step": 3 * e, "loss": 1.0 / e} for e in range(1, EPOCHS + 1)],
    )
    return config, models


def random_clips(shape, batch: int = 2, seed: int = 0) -> np.ndarray:
    """float32 [batch, *shape] standard-normal clips."""
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)
