"""Export folders of pretraining networks: a trained WORKDIR's or an untrained one.

:func:`export_pretrained` rebuilds a network of a pretraining run from its
config and newest weights and records where they came from;
:func:`export_random_init` writes the same network untrained (the paper's
"scratch" baseline). Both describe the network's input from the run's data
config and write through :func:`tfcmvp.export.savedmodel.export_network`.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
from typing import Optional

from tfcmvp.config import dump_config
from tfcmvp.export import contract as ct
from tfcmvp.export import networks
from tfcmvp.export.savedmodel import export_network

# One logger for every step of writing an export (tfcmvp.export.savedmodel does the rest).
logger = logging.getLogger("tfcmvp.export.savedmodel")


def _frames_extra(network: str) -> dict:
    """The ``frames_signature`` entry of a pretraining network's description (video only)."""
    return {ct.FRAMES_SIGNATURE_KEY: ct.frames_contract()} if network == "video" else {}


def export_pretrained(
    workdir, output_dir, network: str = "video", *, overwrite: bool = False
) -> pathlib.Path:
    """Exports `network` ("video", "iframe" or "motion") of a pretraining WORKDIR.

    Rebuilds the network from WORKDIR/config.yaml, loads
    WORKDIR/weights/<v|i|m>_network.weights.h5 (the newest epoch's) and writes
    the export folder (source.kind "pretrained", source.epoch from
    history.csv, source.weights and its SHA-256 source.weights_sha256). A
    run that has not finished its ``train.epochs`` (stopped, or still
    running) is exported as it is, with a warning naming the epoch, and
    source.planned_epochs says how many it was meant to have.

    Raises:
      FileNotFoundError: the workdir, its config or the weights are missing.
      ExportError: the weights do not fit the config's network.
      FileExistsError: see :func:`export_network`; also when `output_dir` is
        the workdir or one of its parents.
    """
    model, config = networks.load_trained_network(workdir, network)
    _, weights_path = networks.workdir_paths(workdir, network)
    epoch = networks.trained_epochs(workdir)
    source = {
        "kind": "pretrained",
        "workdir": str(pathlib.Path(workdir).resolve()),
        "epoch": epoch,
        "weights": str(weights_path.resolve()),
        # Names the weights themselves: the workdir may train on after this export.
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
    }
    unfinished = networks.unfinished_run(workdir, config, epoch)
    if unfinished:
        logger.warning("%s", unfinished)
        source["planned_epochs"] = config.train.epochs
    info = ct.make_export_info(
        network=network,
        backbone=ct.backbone_name(network, config.model),
        input_spec=ct.input_contract(network, config.data),
        source=source,
        **_frames_extra(network),
    )
    return export_network(
        model, output_dir, info, dump_config(config), overwrite=overwrite, inputs=[workdir]
    )


def export_random_init(
    config,
    output_dir,
    network: str = "video",
    seed: Optional[int] = None,
    *,
    overwrite: bool = False,
    config_path=None,
) -> pathlib.Path:
    """Exports `network` of `config` untrained: the paper's "scratch" baseline.

    Args:
      config: a PretrainConfig (only ``model`` and ``data`` matter).
      output_dir: the export folder.
      network: "video", "iframe" or "motion".
      seed: initialisation seed (default ``config.train.seed``); the same
        seed gives the same weights.
      overwrite: see :func:`export_network`.
      config_path: the config file it came from, recorded in source.config.
    """
    seed = config.train.seed if seed is None else int(seed)
    model = networks.build_network(network, config, seed=seed)
    source = {
        "kind": "random_init",
        "workdir": None,
        "epoch": None,
        "seed": seed,
        "config": None if config_path is None else str(pathlib.Path(config_path).resolve()),
    }
    info = ct.make_export_info(
        network=network,
        backbone=ct.backbone_name(network, config.model),
        input_spec=ct.input_contract(network, config.data),
        source=source,
        **_frames_extra(network),
    )
    return export_network(model, output_dir, info, dump_config(config), overwrite=overwrite)
