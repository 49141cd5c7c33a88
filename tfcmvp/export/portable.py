"""Portable copies of an export's ``embed`` signature: LiteRT (.tflite) and ONNX.

    convert_export("exports/c3d", "onnx")     # -> exports/c3d.onnx + exports/c3d.onnx.json
    convert_export("exports/c3d", "litert")   # -> exports/c3d.tflite + exports/c3d.tflite.json

The file goes beside the export folder (not into it: the folder stays a
plain SavedModel that ``--overwrite`` recognises), with a JSON file that is
the export's ``assets/tfcmvp_export.json`` plus a ``portable`` entry: the
format, the input and output names and shapes, the converter versions, any
rewrite made for the format, and the parity measured at conversion time
(the same random clips through the SavedModel and through the converted
file, in its own runtime). The input contract (shape, dtype, resize, crop,
normalisation) is the export's ``input`` entry, unchanged.

Only ``embed`` is converted (clips float32 ``[N, *input.shape]`` ->
``embedding`` float32 ``[N, D]``, dynamic ``N``). ``features`` and
``embed_frames`` stay SavedModel-only: ``embed_frames`` decodes JPEG and
resizes inside the graph, operations neither LiteRT's builtins nor ONNX
have.

LiteRT: TensorFlow's converter (``tf.lite.TFLiteConverter``) maps Conv3D to
the CONV_3D builtin, but MaxPool3D has no builtin: converted as it is, C3D,
R3D-26, R(2+1)D-26 and the motion network's R3D-10 need the Flex delegate
(``FlexMaxPool3D``), which neither ``ai-edge-litert``'s interpreter nor
``tf.lite.Interpreter`` of the pip packages links, so the file would not
run. The converter here therefore rebuilds the Keras network from the
export's weights and replaces every MaxPooling3D layer by the same pooling
in builtins (:class:`FactorisedMaxPooling3D`: MAX_POOL_2D over height and
width, then an elementwise MAXIMUM of strided slices over time). A maximum
is exact, so the rewrite changes no value. The I-frame network (2-D) needs no
rewrite.

ONNX: ``tf2onnx`` converts the SavedModel's ``embed`` function as it is
(Conv and MaxPool are 3-D in ONNX); the runtime for the parity check is
``onnxruntime``.

The converters and runtimes are the ``export`` extra
(``pip install -e .[export]``); :func:`missing_dependencies` names what is
not installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pathlib
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf

from tfcmvp.export import contract as ct
from tfcmvp.export import converters
from tfcmvp.export.converters import (
    ONNX_OPSET,
    FactorisedMaxPooling3D,
    PortableExportError,
    litert_network,
    run_litert,
    run_onnx,
)
from tfcmvp.export.loading import read_export_info
from tfcmvp.outputs import OverwriteRefused

logger = logging.getLogger(__name__)

FORMATS = ("litert", "onnx")
SUFFIXES = {"litert": ".tflite", "onnx": ".onnx"}
# Modules each format needs to convert and to check parity, with their pip names.
DEPENDENCIES = {
    "litert": {"ai_edge_litert": "ai-edge-litert"},
    "onnx": {"tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime", "onnx": "onnx"},
}
INSTALL_HINT = "pip install -e '.[export]' (or: pip install 'tfcmvp[export]')"
PORTABLE_KEY = "portable"
# Parity check at conversion: max |converted - SavedModel| over random clips must stay
# within ATOL + RTOL * max |SavedModel| (float32 reordering of sums: ~1e-7 measured).
PARITY_ATOL = 1e-5
PARITY_RTOL = 1e-4
PARITY_BATCH = 2
PARITY_SEED = 0


def missing_dependencies(fmt: str) -> list[str]:
    """The pip names of the packages `fmt` needs that are not installed."""
    check_format(fmt)
    return [pip for module, pip in DEPENDENCIES[fmt].items() if not _installed(module)]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_format(fmt: str) -> str:
    """`fmt` if it is a portable format, else PortableExportError naming the choices."""
    if fmt not in FORMATS:
        raise PortableExportError(f"portable format must be one of {list(FORMATS)}, got {fmt!r}")
    return fmt


def default_path(model_dir, fmt: str) -> pathlib.Path:
    """Where the converted file goes by default: beside MODEL_DIR, e.g. ``c3d.onnx``."""
    model_dir = pathlib.Path(model_dir)
    return model_dir.with_name(model_dir.name + SUFFIXES[check_format(fmt)])


def contract_path(path) -> pathlib.Path:
    """The JSON description beside a converted file: ``<file>.json``."""
    path = pathlib.Path(path)
    return path.with_name(path.name + ".json")


def check_output(output, fmt: str, *, overwrite: bool) -> None:
    """Refuses to write the `fmt` copy to `output` (and ``<output>.json``) when they exist.

    Raises FileExistsError naming the file: it is a folder, or it exists and
    `overwrite` is False.
    """
    output = pathlib.Path(output)
    for path in (output, contract_path(output)):
        if path.is_dir():
            raise OverwriteRefused(f"{path} is a folder; pass a file name for the {fmt} copy")
        if path.exists() and not overwrite:
            raise OverwriteRefused(
                f"{path} already exists (pass overwrite=True, or --overwrite on the command "
                f"line, to replace it)"
            )


RUNTIMES = {"litert": run_litert, "onnx": run_onnx}  # by format: the parity check's runtime


# ---------------------------------------------------------------------------
# The conversion
# ---------------------------------------------------------------------------


def savedmodel_embedding(model_dir, clips: np.ndarray) -> np.ndarray:
    """`embedding` of the export's SavedModel on `clips` (the parity reference)."""
    loaded = tf.saved_model.load(str(model_dir))  # referenced: it owns the variables
    return loaded.signatures[ct.EMBED](**{ct.INPUT_NAME: tf.constant(clips)})[
        ct.EMBED_OUTPUT
    ].numpy()


def parity_clips(input_shape, batch: int = PARITY_BATCH, seed: int = PARITY_SEED) -> np.ndarray:
    """float32 [batch, *input_shape] standard-normal clips (normalised inputs are ~N(0, 1))."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *input_shape)).astype(np.float32)


def measure_parity(model_dir, fmt: str, blob: bytes, clips: np.ndarray) -> dict:
    """Max |converted - SavedModel| of `embedding` on `clips`, and the reference's scale."""
    expected = savedmodel_embedding(model_dir, clips)
    got = RUNTIMES[check_format(fmt)](blob, clips)
    if got.shape != expected.shape:
        raise PortableExportError(
            f"{fmt} copy of {model_dir} returns shape {list(got.shape)}, the SavedModel "
            f"{list(expected.shape)}"
        )
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    scale = float(np.max(np.abs(expected)))
    return {
        "max_abs_diff": diff,
        "max_abs_reference": scale,
        "tolerance": PARITY_ATOL + PARITY_RTOL * scale,
        "inputs": f"{clips.shape[0]} standard-normal clips (seed {PARITY_SEED})",
    }


def _convert(model_dir: pathlib.Path, fmt: str, info: dict) -> tuple:
    """(the converted file's bytes, the rewrites made for the format)."""
    rewrites = []
    if fmt == "litert":
        blob, rewritten = converters.litert_bytes(model_dir, info)
        if rewritten:
            rewrites.append(
                {
                    "layers": rewritten,
                    "what": "MaxPooling3D -> MAX_POOL_2D over (H, W) + MAXIMUM over time "
                    "(same values; MaxPool3D has no LiteRT builtin)",
                }
            )
    else:
        blob = converters.onnx_bytes(model_dir, info)
    return blob, rewrites


def _described(info, fmt, output: pathlib.Path, model_dir: pathlib.Path, rewrites, parity):
    """The export's description plus the ``portable`` entry, for ``<output>.json``."""
    described = dict(info)
    described[PORTABLE_KEY] = {
        "format": fmt,
        "file": output.name,
        "source_export": str(model_dir.resolve()),
        "signature": ct.EMBED,
        "inputs": {
            ct.INPUT_NAME: {
                "dtype": "float32",
                "shape": [-1, *info["input"]["shape"]],
                "note": "the input contract of the 'input' entry (resize, crop, normalisation); "
                "-1: any batch size",
            }
        },
        "outputs": {ct.EMBED_OUTPUT: {"dtype": "float32", "shape": [-1, info["embedding_dim"]]}},
        "not_converted": [ct.FEATURES, ct.EMBED_FRAMES, ct.SERVING_DEFAULT + " (= embed)"],
        "rewrites": rewrites,
        "converter": converters.converter_versions(fmt),
        "parity": parity,
    }
    return described


def convert_export(
    model_dir,
    fmt: str,
    output: Optional[str | os.PathLike] = None,
    *,
    overwrite: bool = False,
    check_parity: bool = True,
) -> pathlib.Path:
    """Converts the ``embed`` signature of export MODEL_DIR to `fmt`; returns the file.

    Args:
      model_dir: a tfcmvp export folder (video, iframe or motion network).
      fmt: "litert" (.tflite) or "onnx" (.onnx).
      output: the file to write (default :func:`default_path`, beside
        MODEL_DIR); its description goes to ``<output>.json``.
      overwrite: replace an existing file (and its description).
      check_parity: run the converted file on random clips in its runtime and
        refuse it unless it matches the SavedModel within
        ``PARITY_ATOL + PARITY_RTOL * max |embedding|``; the numbers go to
        the description either way (None when skipped).

    Raises:
      PortableExportError: a converter or runtime is not installed (the
        message gives the install command), the conversion failed (naming
        the operations at fault), or the parity check failed.
      FileExistsError: `output` exists and `overwrite` is False, or it is a
        folder.
      NotAnExportError / ExportError: MODEL_DIR is not a valid export.
    """
    check_format(fmt)
    missing = missing_dependencies(fmt)
    if missing:
        raise PortableExportError(
            f"--format {fmt} needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}"
        )
    model_dir = pathlib.Path(model_dir)
    info = read_export_info(model_dir)
    if info["network"] not in ct.PRETRAIN_NETWORKS:
        raise PortableExportError(
            f"{model_dir} holds a {info['network']!r} network; portable copies are made of "
            f"the {list(ct.PRETRAIN_NETWORKS)} networks' embed signature"
        )
    output = default_path(model_dir, fmt) if output is None else pathlib.Path(output)
    description = contract_path(output)
    check_output(output, fmt, overwrite=overwrite)

    blob, rewrites = _convert(model_dir, fmt, info)
    parity = None
    if check_parity:
        parity = measure_parity(model_dir, fmt, blob, parity_clips(info["input"]["shape"]))
        if not parity["max_abs_diff"] <= parity["tolerance"]:  # also catches NaN
            raise PortableExportError(
                f"{fmt} copy of {model_dir} differs from the SavedModel by "
                f"{parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:.3g}); not written"
            )
        logger.info("%s parity with the SavedModel: max |diff| %.3g", fmt, parity["max_abs_diff"])

    described = _described(info, fmt, output, model_dir, rewrites, parity)
    _write_atomically(output, blob)
    _write_atomically(description, ct.dumps_export_info(described).encode("utf-8"))
    return output


def read_portable_info(path) -> dict:
    """The JSON description written beside a converted file (``<path>.json``)."""
    description = contract_path(path)
    if not description.is_file():
        raise ct.NotAnExportError(
            f"{description} is missing: {path} was not written by tfcmvp export --format"
        )
    info = json.loads(description.read_text(encoding="utf-8"))
    if PORTABLE_KEY not in info:
        raise ct.ExportError(f"{description} has no {PORTABLE_KEY!r} entry")
    return info


def portable_summary(path) -> str:
    """A few lines on a converted file: where, what to feed, parity with the SavedModel."""
    info = read_portable_info(path)
    entry = info[PORTABLE_KEY]
    ((name, spec),) = entry["inputs"].items()
    lines = [
        f"{entry['format']} copy of the embed signature: {path} "
        f"({pathlib.Path(path).stat().st_size} bytes; contract in {contract_path(path).name})",
        f"  input {name} {spec['dtype']} {spec['shape']} -> "
        f"{ct.EMBED_OUTPUT} {entry['outputs'][ct.EMBED_OUTPUT]['shape']}",
    ]
    for rewrite in entry["rewrites"]:
        lines.append(f"  rewritten: {rewrite['what']} ({', '.join(rewrite['layers'])})")
    parity = entry["parity"]
    if parity is not None:
        lines.append(
            f"  parity with the SavedModel: max |diff| {parity['max_abs_diff']:.3g} "
            f"(tolerance {parity['tolerance']:.3g}, {parity['inputs']})"
        )
    return "\n".join(lines)


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    """Writes `data` beside `path` and renames it there: no half-written file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="." + path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        # mkstemp makes the file private (0600); give it the mode open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


__all__ = [
    "FORMATS",
    "ONNX_OPSET",
    "FactorisedMaxPooling3D",
    "PortableExportError",
    "check_format",
    "check_output",
    "contract_path",
    "convert_export",
    "default_path",
    "litert_network",
    "measure_parity",
    "missing_dependencies",
    "parity_clips",
    "portable_summary",
    "read_portable_info",
    "run_litert",
    "run_onnx",
    "savedmodel_embedding",
]
