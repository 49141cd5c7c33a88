"""The two converters of :mod:`tfcmvp.export.portable`: LiteRT (builtins only) and ONNX.

Each takes an export folder and returns the converted file's bytes; each has
its runtime, used for the parity check. Why and how MaxPool3D is rewritten
for LiteRT is told in :mod:`tfcmvp.export.portable`. ``tf2onnx``,
``onnxruntime`` and ``ai_edge_litert`` are the ``export`` extra: imported
where they are used.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import version

import keras
import numpy as np
import tensorflow as tf

from tfcmvp.export import contract as ct
from tfcmvp.export.loading import load_keras_network
from tfcmvp.export.savedmodel import ExportModule

ONNX_OPSET = 17  # supported by tf2onnx 1.17 and onnxruntime 1.31


class PortableExportError(ct.ExportError):
    """A conversion that cannot be made (missing converter, failed conversion, parity)."""


# ---------------------------------------------------------------------------
# LiteRT: MaxPool3D in builtins
# ---------------------------------------------------------------------------


class FactorisedMaxPooling3D(keras.layers.Layer):
    """MaxPooling3D ("valid", channels last) as a 2-D max pool plus a maximum over time.

    Max pooling is separable: the maximum over a (kt, kh, kw) window is
    the maximum over kt frames of each frame's (kh, kw) maximum. The
    2-D pool runs on ``[N * T, H, W, C]``; the temporal pool is the
    elementwise maximum of kt slices of stride st. Every op has a LiteRT
    builtin (RESHAPE, MAX_POOL_2D, STRIDED_SLICE, MAXIMUM), and the
    values equal MaxPool3D's exactly.

    Args:
      pool_size, strides: (kt, kh, kw) and (st, sh, sw), as MaxPooling3D's.
    """

    def __init__(self, pool_size, strides, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = tuple(int(k) for k in pool_size)
        self.strides = tuple(int(s) for s in strides)

    def call(self, inputs):
        kt, kh, kw = self.pool_size
        st, sh, sw = self.strides
        _, t, h, w, c = inputs.shape  # [N, T, H, W, C], static but for N
        x = tf.reshape(inputs, [-1, h, w, c])  # [N * T, H, W, C]
        x = tf.nn.max_pool2d(x, (kh, kw), (sh, sw), "VALID")  # [N * T, H', W', C]
        x = tf.reshape(x, [-1, t, x.shape[1], x.shape[2], c])  # [N, T, H', W', C]
        steps = (t - kt) // st + 1
        span = st * (steps - 1) + 1
        pooled = x[:, 0:span:st]  # [N, T', H', W', C]
        for offset in range(1, kt):
            pooled = tf.maximum(pooled, x[:, offset : offset + span : st])
        return pooled

    def compute_output_shape(self, input_shape):
        n, t, h, w, c = input_shape
        kt, kh, kw = self.pool_size
        st, sh, sw = self.strides
        return (n, (t - kt) // st + 1, (h - kh) // sh + 1, (w - kw) // sw + 1, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides}


def litert_network(network):
    """`network` (a functional Keras model) with every MaxPooling3D in LiteRT builtins.

    The other layers are the network's own (shared, not copied), so the
    weights are the same objects. Returns (the network, the list of rewritten
    layer names).

    Raises:
      PortableExportError: a MaxPooling3D that is not "valid" channels-last
        pooling (tfcmvp's backbones use only those), or a network that is not
        functional.
    """
    rewritten = []

    def clone(layer):
        if not isinstance(layer, keras.layers.MaxPooling3D):
            return layer
        if layer.padding != "valid" or layer.data_format != "channels_last":
            raise PortableExportError(
                f"layer {layer.name!r}: only 'valid' channels-last MaxPooling3D can be "
                f"rewritten for LiteRT, got padding={layer.padding!r}, "
                f"data_format={layer.data_format!r}"
            )
        rewritten.append(layer.name)
        return FactorisedMaxPooling3D(
            layer.pool_size, layer.strides, name=layer.name + "_factorised"
        )

    try:
        clone_net = keras.models.clone_model(network, clone_function=clone)
    except ValueError as error:
        raise PortableExportError(
            f"cannot rewrite network {network.name!r} for LiteRT (not a functional model?): {error}"
        ) from error
    return clone_net, rewritten


def litert_bytes(model_dir, info: dict) -> tuple[bytes, list]:
    """The .tflite bytes of the export's embed, and the rewritten layer names."""
    network, rewritten = litert_network(load_keras_network(model_dir))
    module = ExportModule(network, info["input"]["shape"])
    # From a SavedModel with only `embed`: the converter names the signature, its input
    # and output after it (from_concrete_functions would call it serving_default).
    with tempfile.TemporaryDirectory(prefix="tfcmvp_litert_") as scratch:
        tf.saved_model.save(
            module, scratch, signatures={ct.EMBED: module.concrete_functions()[ct.EMBED]}
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch, signature_keys=[ct.EMBED])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            blob = converter.convert()
        except Exception as error:  # ConverterError; its text lists the ops at fault
            raise PortableExportError(
                f"LiteRT conversion of {model_dir} failed: {_first_lines(error)}"
            ) from error
    return blob, rewritten


def run_litert(blob: bytes, clips: np.ndarray) -> np.ndarray:
    """`embedding` of a converted .tflite (bytes) on `clips`, in the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter  # optional: the export extra

    runner = Interpreter(model_content=blob).get_signature_runner(ct.EMBED)
    return runner(**{ct.INPUT_NAME: clips})[ct.EMBED_OUTPUT]


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------


def onnx_bytes(model_dir, info: dict) -> bytes:
    """The .onnx bytes of the export's embed signature (tf2onnx on the SavedModel)."""
    import tf2onnx  # optional: the export extra

    # Kept referenced while converting: the signature reads the loaded object's variables.
    loaded = tf.saved_model.load(str(model_dir))
    embed = loaded.signatures[ct.EMBED]
    spec = tf.TensorSpec([None, *info["input"]["shape"]], tf.float32, name=ct.INPUT_NAME)
    # tf2onnx wants a tf.function; the restored signature is a concrete function.
    function = tf.function(lambda clips: embed(**{ct.INPUT_NAME: clips}))
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=ONNX_OPSET)
    except Exception as error:  # tf2onnx raises plain exceptions naming the op
        raise PortableExportError(
            f"ONNX conversion of {model_dir} failed: {_first_lines(error)}"
        ) from error
    # tf2onnx names the output after the dict key ("embedding"); check, as users feed by name.
    outputs = [output.name for output in proto.graph.output]
    if outputs != [ct.EMBED_OUTPUT]:
        raise PortableExportError(
            f"ONNX conversion of {model_dir}: expected one output {ct.EMBED_OUTPUT!r}, "
            f"got {outputs}"
        )
    return proto.SerializeToString()


def run_onnx(blob: bytes, clips: np.ndarray) -> np.ndarray:
    """`embedding` of a converted .onnx (bytes) on `clips`, in onnxruntime (CPU)."""
    import onnxruntime  # optional: the export extra

    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run([ct.EMBED_OUTPUT], {ct.INPUT_NAME: clips})[0]


def converter_versions(fmt: str) -> dict:
    """The converter and runtime versions recorded in a portable file's description."""
    if fmt == "litert":
        return {
            "converter": "tf.lite.TFLiteConverter (builtins only)",
            "tensorflow": tf.__version__,
            "ai_edge_litert": version("ai-edge-litert"),
        }
    import onnxruntime  # optional: the export extra
    import tf2onnx

    return {
        "converter": "tf2onnx",
        "tf2onnx": tf2onnx.__version__,
        "opset": ONNX_OPSET,
        "tensorflow": tf.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _first_lines(error: BaseException, count: int = 12) -> str:
    """The start of a long converter message (MLIR errors run to pages)."""
    lines = str(error).strip().splitlines() or [repr(error)]
    text = "\n".join(lines[:count])
    return text + (f"\n... ({len(lines) - count} more lines)" if len(lines) > count else "")
