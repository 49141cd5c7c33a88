"""The pretraining networks an export holds, rebuilt from a config and a weights file.

A pretraining run (``tfcmvp pretrain``) leaves WORKDIR/config.yaml and
WORKDIR/weights/<stem>.weights.h5 (stems: ``NETWORK_WEIGHTS_STEMS``); :func:`load_trained_network`
rebuilds one network from the first and loads the second. Networks are built
for inference: plain BatchNorm (no SyncBN; the weights are the same) under
the global Keras dtype policy (float32 unless the caller set another).
"""

from __future__ import annotations

import pathlib
from typing import Optional

import keras

from tfcmvp.config import PretrainConfig, load_saved_config
from tfcmvp.errors import RunNotFoundError
from tfcmvp.export.contract import PRETRAIN_NETWORKS, ExportError
from tfcmvp.training.callbacks import read_history
from tfcmvp.training.pretrain_model import (
    build_iframe_network,
    build_motion_network,
    build_video_network,
)
from tfcmvp.training.workdir import CONFIG_NAME, HISTORY_CSV, NETWORK_WEIGHTS_STEMS, WEIGHTS_DIR

# Network name -> weights file stem written by the pretraining run
# (PretrainModel.networks() keys, saved by training.callbacks.save_network_weights).
WEIGHTS_STEMS = NETWORK_WEIGHTS_STEMS


def check_network_name(network: str) -> str:
    """`network` if it is one of video / iframe / motion, else ExportError naming it."""
    if network not in PRETRAIN_NETWORKS:
        raise ExportError(f"network must be one of {list(PRETRAIN_NETWORKS)}, got {network!r}")
    return network


def build_network(network: str, config: PretrainConfig, seed: Optional[int] = None) -> keras.Model:
    """The untrained `network` ("video", "iframe" or "motion") of `config`.

    Args:
      network: which of the three pretraining networks.
      config: the run config (its ``model`` and ``data`` sections are used).
      seed: seeds Keras' global random state before building (same seed, same
        initial weights); None leaves it alone.
    """
    builders = {
        "video": build_video_network,
        "iframe": build_iframe_network,
        "motion": build_motion_network,
    }
    check_network_name(network)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    return builders[network](config.model, config.data)


def workdir_paths(workdir, network: str) -> tuple[pathlib.Path, pathlib.Path]:
    """(config.yaml, weights file) of `network` in a pretraining WORKDIR."""
    workdir = pathlib.Path(workdir)
    stem = WEIGHTS_STEMS[check_network_name(network)]
    return workdir / CONFIG_NAME, workdir / WEIGHTS_DIR / f"{stem}.weights.h5"


def trained_epochs(workdir) -> Optional[int]:
    """The last epoch in WORKDIR/history.csv (the epoch of the saved weights), or None."""
    rows = read_history(pathlib.Path(workdir) / HISTORY_CSV)
    epochs = [row["epoch"] for row in rows if "epoch" in row]
    return max(epochs) if epochs else None


def unfinished_run(workdir, config: PretrainConfig, epoch: Optional[int]) -> Optional[str]:
    """Why a pretraining WORKDIR's weights are not those of a finished run, or None.

    `epoch` is :func:`trained_epochs`; the run is finished when it reached
    the ``train.epochs`` of its config.yaml (the last start's value, so a run
    resumed with more epochs counts as unfinished until it gets there).
    """
    planned = config.train.epochs
    if epoch is None:
        return (
            f"{workdir} has no finished epoch in its history.csv (of {planned} planned): "
            f"exporting its weights file as it is"
        )
    if epoch < planned:
        return (
            f"{workdir} finished {epoch} of {planned} epochs (a stopped or still running "
            f"pretraining); exporting the epoch-{epoch} weights"
        )
    return None


def load_trained_network(workdir, network: str) -> tuple[keras.Model, PretrainConfig]:
    """Rebuilds `network` of a pretraining WORKDIR and loads its trained weights.

    Raises:
      FileNotFoundError: WORKDIR, its config.yaml or the network's weights file
        is missing (the message names the file).
      ExportError: the weights file does not fit the network of the config.
    """
    workdir = pathlib.Path(workdir)
    config_path, weights_path = workdir_paths(workdir, network)
    if not workdir.is_dir():
        raise RunNotFoundError(f"pretraining workdir {workdir} does not exist")
    if not config_path.is_file():
        raise RunNotFoundError(
            f"{config_path} is missing: is {workdir} the --workdir of `tfcmvp pretrain`?"
        )
    if not weights_path.is_file():
        raise RunNotFoundError(
            f"no trained weights: run tfcmvp pretrain first ({weights_path} is missing)"
        )
    config = load_saved_config(config_path)  # old runs: legacy architecture values
    model = build_network(network, config)
    load_network_weights(model, weights_path)
    return model, config


def load_network_weights(model: keras.Model, path) -> None:
    """`model.load_weights(path)` with an error that names the file and the network."""
    try:
        model.load_weights(str(path))
    except (ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ExportError(
            f"{path} does not fit the {model.name} network built from its config (was the "
            f"config changed after training?): {first_line}"
        ) from error
