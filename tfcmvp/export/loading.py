"""Reading an export folder: its description, its SavedModel, its Keras network.

    info = read_export_info("saved_models/c3d")          # assets/tfcmvp_export.json
    loaded, info = load_export("saved_models/c3d")        # + tf.saved_model.load
    network = load_keras_network("saved_models/c3d")     # Keras, for finetuning

Only :func:`load_keras_network` needs tfcmvp at the other end: the SavedModel
itself loads with TensorFlow alone (``tf.saved_model.load(MODEL_DIR)``).
"""

from __future__ import annotations

import pathlib

import keras
import tensorflow as tf

from tfcmvp.config import ConfigError, load_saved_config
from tfcmvp.export import contract as ct
from tfcmvp.export import contract_checks, networks


def _export_paths(model_dir) -> tuple[pathlib.Path, pathlib.Path]:
    """(folder, its JSON description), checking that both are there."""
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        raise ct.NotAnExportError(f"export folder {model_dir} does not exist")
    if not (model_dir / "saved_model.pb").is_file():
        raise ct.NotAnExportError(
            f"{model_dir} is not a tfcmvp export: it has no saved_model.pb (pass the output "
            f"folder of `tfcmvp export`)"
        )
    path = model_dir / ct.ASSETS_DIR / ct.INFO_NAME
    if not path.is_file():
        raise ct.NotAnExportError(
            f"{model_dir} is a SavedModel but not a tfcmvp export: {ct.ASSETS_DIR}/"
            f"{ct.INFO_NAME} is missing"
        )
    return model_dir, path


def read_export_info(model_dir) -> dict:
    """The checked ``assets/tfcmvp_export.json`` of an export folder.

    Raises:
      NotAnExportError (a FileNotFoundError and an ExportError): the folder,
        its saved_model.pb or its description is missing; the message names
        the folder.
      ExportError: the description is not valid JSON or breaks the contract
        (the message names the file and every problem).
    """
    _, path = _export_paths(model_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ct.ExportError(f"{path}: not UTF-8 text: {error}") from error
    return contract_checks.loads_export_info(text, str(path))


def read_export_config_text(model_dir) -> str:
    """The text of the export's ``assets/config.yaml`` (the resolved training config)."""
    model_dir, _ = _export_paths(model_dir)
    path = model_dir / ct.ASSETS_DIR / ct.CONFIG_NAME
    if not path.is_file():
        raise ct.NotAnExportError(f"{model_dir}: {ct.ASSETS_DIR}/{ct.CONFIG_NAME} is missing")
    return path.read_text(encoding="utf-8")


def load_export(model_dir):
    """``(tf.saved_model.load(model_dir), info)``, checking the signatures the info lists."""
    info = read_export_info(model_dir)
    loaded = tf.saved_model.load(str(model_dir))
    missing = [name for name in info["signatures"] if name not in loaded.signatures]
    if missing:
        raise ct.ExportError(
            f"{model_dir}: the SavedModel lacks the signatures {missing} that "
            f"{ct.ASSETS_DIR}/{ct.INFO_NAME} lists (it has "
            f"{sorted(loaded.signatures)})"
        )
    return loaded, info


def load_keras_network(model_dir) -> keras.Model:
    """The exported network as a Keras model, for finetuning.

    Rebuilds the network from ``assets/config.yaml`` (a pretraining config)
    and loads ``assets/network.weights.h5``. Works for video, iframe and
    motion exports (pretrained or random init). A config written before a
    model option existed is read with that option's old value
    (``tfcmvp.config.LEGACY_MODEL_DEFAULTS``: e.g. the strided motion network stem).

    Raises:
      NotAnExportError / ExportError: see :func:`read_export_info`; also when
        the export is a classifier (rebuilt by the finetuning code) or its
        weights do not fit the config's network.
    """
    info = read_export_info(model_dir)
    model_dir = pathlib.Path(model_dir)
    network = info["network"]
    if network not in ct.PRETRAIN_NETWORKS:
        raise ct.ExportError(
            f"{model_dir} holds a {network!r} network; load_keras_network rebuilds the "
            f"pretraining networks {list(ct.PRETRAIN_NETWORKS)} only"
        )
    config_path = model_dir / ct.ASSETS_DIR / ct.CONFIG_NAME
    weights_path = model_dir / ct.ASSETS_DIR / ct.WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ct.NotAnExportError(f"{model_dir}: {ct.ASSETS_DIR}/{path.name} is missing")
    try:
        config = load_saved_config(config_path)
    except ConfigError as error:
        raise ct.ExportError(
            f"{config_path} is not a pretraining config this tfcmvp reads: {error}"
        ) from error
    model = networks.build_network(network, config)
    networks.load_network_weights(model, weights_path)
    return model
