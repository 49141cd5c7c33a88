"""SavedModel export of the pretrained (or untrained) networks.

An export folder is a TensorFlow SavedModel that loads with TensorFlow alone::

    MODEL_DIR/saved_model.pb, variables/
    MODEL_DIR/assets/tfcmvp_export.json   # input contract + provenance (contract.py)
    MODEL_DIR/assets/config.yaml          # the resolved training config
    MODEL_DIR/assets/network.weights.h5   # Keras weights, for load_keras_network

Signatures taking ``clips`` float32 ``[N, *input.shape]``: ``embed``
(= ``serving_default``) -> ``{"embedding": [N, D]}`` and ``features`` ->
``{"features": [N, T', H', W', C]}``; classifiers add ``classify``. Video
exports add ``embed_frames``: decoded frames uint8 ``[T, H, W, 3]`` of one
video (any length and size) -> ``{"clip_embeddings": [10, D], "embedding":
[D]}``, ``tfcmvp embed``'s clip sampling and preprocessing inside the graph
(``frames``).

Modules: ``contract`` (the JSON description: input contracts from the data
config), ``contract_checks`` (its validation), ``savedmodel`` (writing:
:func:`export_network`), ``pretrained`` (:func:`export_pretrained`,
:func:`export_random_init`), ``networks`` (rebuilding a network from a config
and weights), ``loading`` (reading: :func:`read_export_info`,
:func:`load_export`, :func:`load_keras_network`), ``describe`` (the text of
``tfcmvp describe``), ``frames`` (the in-graph preprocessing of
``embed_frames``), ``portable`` (:func:`convert_export`:
the ``embed`` signature as a LiteRT .tflite or an ONNX file beside the
folder, with its contract JSON; the ``export`` extra).
"""

from tfcmvp.export.contract import (
    CLASSIFY,
    EMBED,
    EMBED_FRAMES,
    FEATURES,
    FORMAT_VERSION,
    INPUT_NAME,
    NETWORKS,
    PRETRAIN_NETWORKS,
    ExportError,
    NotAnExportError,
    input_contract,
    make_export_info,
)
from tfcmvp.export.contract_checks import validate_export_info
from tfcmvp.export.describe import describe_export, export_summary
from tfcmvp.export.loading import (
    load_export,
    load_keras_network,
    read_export_config_text,
    read_export_info,
)
from tfcmvp.export.portable import PortableExportError, convert_export
from tfcmvp.export.pretrained import export_pretrained, export_random_init
from tfcmvp.export.savedmodel import ExportModule, export_network

__all__ = [
    "CLASSIFY",
    "EMBED",
    "EMBED_FRAMES",
    "FEATURES",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "NETWORKS",
    "PRETRAIN_NETWORKS",
    "ExportError",
    "NotAnExportError",
    "ExportModule",
    "input_contract",
    "make_export_info",
    "validate_export_info",
    "describe_export",
    "export_summary",
    "load_export",
    "load_keras_network",
    "read_export_config_text",
    "read_export_info",
    "export_network",
    "export_pretrained",
    "export_random_init",
    "PortableExportError",
    "convert_export",
]
