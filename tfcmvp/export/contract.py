"""``assets/tfcmvp_export.json``: what an export eats, what it is and where it came from.

An export folder (see :mod:`tfcmvp.export`) carries one JSON file that says,
without TensorFlow or tfcmvp, how to feed the SavedModel and what it returns::

    {"format_version": 1, "network": "video", "backbone": "c3d",
     "input": {"shape": [16, 112, 112, 3], "dtype": "float32", "frames": 16,
               "stride": 4, "size": [112, 112], "channels": 3, ...},
     "embedding_dim": 512, "feature_shape": [2, 7, 7, 512],
     "signatures": ["embed", "features"],
     "source": {"kind": "pretrained", "workdir": "...", "epoch": 120},
     "tfcmvp_version": "0.1.0", "tensorflow_version": "2.21.0",
     "keras_version": "3.15.1", "created": "2025-01-01T00:00:00+00:00"}

The input contract is derived from the run's ``DataConfig`` by
:func:`input_contract`: the clip the network was trained on, with the value
scaling of :func:`tfcmvp.data.eval_dataset` (ImageNet-normalised RGB, or
motion vectors clamped to +-``mv_clip`` px and divided by ``mv_div``).
:func:`tfcmvp.export.contract_checks.validate_export_info` checks a description
before it is written and after it is read, naming every problem.

Video exports written since ``embed_frames`` exists also carry
``"frames_signature"`` (:func:`frames_contract`: clips, positions, stored
short side, JPEG quality of the in-graph preprocessing) and list
``"embed_frames"`` in ``signatures``. The key is optional, so the format
version stays 1: older exports (without it) remain valid, and older tfcmvp
versions read newer exports (they ignore the key and the extra signature).
"""

from __future__ import annotations

import datetime
import json
from typing import Mapping, Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp import __version__
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD  # what the input pipeline uses
from tfcmvp.errors import ExportError

FORMAT_VERSION = 1
ASSETS_DIR = "assets"
INFO_NAME = "tfcmvp_export.json"  # the description (this module)
CONFIG_NAME = "config.yaml"  # the resolved training config
WEIGHTS_NAME = "network.weights.h5"  # Keras weights of the exported network

# Pretraining networks (rebuilt from a PretrainConfig) and finetuned classifiers.
PRETRAIN_NETWORKS = ("video", "iframe", "motion")
NETWORKS = PRETRAIN_NETWORKS + ("classifier",)
SOURCE_KINDS = ("pretrained", "random_init", "finetuned")

INPUT_NAME = "clips"  # the one input of every signature but embed_frames
EMBED = "embed"  # clips -> {"embedding": [N, D]}
FEATURES = "features"  # clips -> {"features": [N, T', H', W', C] or [N, H', W', C]}
CLASSIFY = "classify"  # clips -> {"logits": [N, K], "probabilities": [N, K]} (classifiers)
EMBED_OUTPUT = "embedding"
FEATURES_OUTPUT = "features"
BASE_SIGNATURES = (EMBED, FEATURES)
SERVING_DEFAULT = "serving_default"  # TF Serving's default key: an alias of EMBED
# Video exports also take decoded frames (tfcmvp.export.frames); older exports lack it.
EMBED_FRAMES = "embed_frames"  # frames -> {"clip_embeddings": [N, D], "embedding": [D]}
FRAMES_INPUT = "frames"  # its one input: uint8 [T, H, W, 3]
CLIP_EMBEDDINGS_OUTPUT = "clip_embeddings"
FRAMES_SIGNATURE_KEY = "frames_signature"  # its parameters in the description
# tfcmvp embed's clips (tfcmvp.embedding.clips) and the extraction job's stored
# frames (tfcmvp.embedding.decode.StorageSettings; a test keeps them equal).
FRAMES_NUM_CLIPS = 10
FRAMES_POSITIONS = "vcop"
FRAMES_STORED_SHORT_SIDE = 128
FRAMES_JPEG_QUALITY = 90

# Test geometry of the paper: short side 128, then the centre 112 x 112. Other
# crop sizes keep the ratio (32 -> 37), as tfcmvp.retrieval does.
TEST_RESIZE_RATIO = 128 / 112


class NotAnExportError(ExportError, FileNotFoundError):
    """A folder is missing, not a SavedModel, or a SavedModel without a tfcmvp description."""


# ---------------------------------------------------------------------------
# Input contracts
# ---------------------------------------------------------------------------


def _resize_short(crop_size: int) -> int:
    return int(round(crop_size * TEST_RESIZE_RATIO))


def _rgb_fields() -> dict:
    return {
        "value_range": "RGB scaled to [0, 1] (uint8 / 255), then normalised",
        "normalisation": "(x - mean) / std per channel, ImageNet statistics",
        "mean": [float(v) for v in IMAGENET_MEAN],
        "std": [float(v) for v in IMAGENET_STD],
    }


def video_input_contract(clip_len: int, clip_stride: int, crop_size: int) -> dict:
    """Input of a video network: ``clip_len`` RGB frames at ``clip_stride``, ``crop_size``^2."""
    span = (clip_len - 1) * clip_stride + 1
    return {
        "shape": [clip_len, crop_size, crop_size, 3],
        "dtype": "float32",
        "layout": "[N, T, H, W, C], RGB channels last",
        "frames": clip_len,
        "stride": clip_stride,
        "size": [crop_size, crop_size],
        "channels": 3,
        **_rgb_fields(),
        "resize_short": _resize_short(crop_size),
        "preprocessing": (
            f"{clip_len} frames {clip_stride} apart (spanning {span} frames); short side resized "
            f"to resize_short, centre {crop_size}x{crop_size} crop; as "
            f"tfcmvp.data.eval_dataset(modality='rgb') yields them"
        ),
    }


def iframe_input_contract(crop_size: int) -> dict:
    """Input of an I-frame network: one RGB image, ``crop_size``^2."""
    return {
        "shape": [crop_size, crop_size, 3],
        "dtype": "float32",
        "layout": "[N, H, W, C], RGB channels last",
        "frames": None,
        "stride": None,
        "size": [crop_size, crop_size],
        "channels": 3,
        **_rgb_fields(),
        "resize_short": _resize_short(crop_size),
        "preprocessing": (
            f"one decoded I-frame; short side resized to resize_short, centre "
            f"{crop_size}x{crop_size} crop; as tfcmvp.data.eval_dataset(modality='iframe') "
            f"yields them"
        ),
    }


def motion_input_contract(
    motion_len: int,
    crop_size: int,
    mv_clip: float,
    mv_div: float,
    mv_resize_method: str = "bilinear",
) -> dict:
    """Input of a motion network: ``motion_len`` consecutive motion-vector maps, 2 channels."""
    bound = float(mv_clip) / float(mv_div)
    return {
        "shape": [motion_len, crop_size, crop_size, 2],
        "dtype": "float32",
        "layout": "[N, T, H, W, 2], motion vector x then y",
        "frames": motion_len,
        "stride": 1,
        "size": [crop_size, crop_size],
        "channels": 2,
        "value_range": f"[{-bound:g}, {bound:g}]",
        "normalisation": (
            f"per-pixel motion vectors in pixels of the decoded frame (displacement from the "
            f"reference frame), clamped to +-{float(mv_clip):g} px, then divided by "
            f"{float(mv_div):g}"
        ),
        "mv_clip": float(mv_clip),
        "mv_div": float(mv_div),
        "mv_resize_method": mv_resize_method,
        "resize_short": _resize_short(crop_size),
        "preprocessing": (
            f"{motion_len} consecutive vector frames; maps resized ({mv_resize_method}) with "
            f"the frame (short side to resize_short, centre {crop_size}x{crop_size} crop) "
            f"without rescaling the vectors; as tfcmvp.data.eval_dataset(modality='motion') "
            f"yields them"
        ),
    }


def input_contract(network: str, data) -> dict:
    """The input contract of pretraining network `network` under ``DataConfig`` `data`."""
    if network == "video":
        return video_input_contract(data.clip_len, data.clip_stride, data.crop_size)
    if network == "iframe":
        return iframe_input_contract(data.crop_size)
    if network == "motion":
        return motion_input_contract(
            data.motion_len, data.crop_size, data.mv_clip, data.mv_div, data.mv_resize_method
        )
    raise ExportError(f"network must be one of {PRETRAIN_NETWORKS}, got {network!r}")


def backbone_name(network: str, model) -> str:
    """The backbone of pretraining network `network` under ``ModelConfig`` `model`."""
    names = {
        "video": model.video_network,
        "iframe": model.iframe_network,
        "motion": model.motion_network,
    }
    if network not in names:
        raise ExportError(f"network must be one of {PRETRAIN_NETWORKS}, got {network!r}")
    return names[network]


def frames_contract(
    num_clips: int = FRAMES_NUM_CLIPS,
    positions: str = FRAMES_POSITIONS,
    stored_short_side: int = FRAMES_STORED_SHORT_SIDE,
    jpeg_quality: Optional[int] = FRAMES_JPEG_QUALITY,
) -> dict:
    """The ``frames_signature`` of a video export: what ``embed_frames`` does to frames.

    The defaults are ``tfcmvp embed``'s: 10 clips at the VCOP retrieval
    positions of frames stored as the extraction job stores them (short side
    128, JPEG quality 90). ``jpeg_quality`` None skips the JPEG round trip.
    See :mod:`tfcmvp.export.frames`.
    """
    return {
        "signature": EMBED_FRAMES,
        "input": FRAMES_INPUT,
        "dtype": "uint8",
        "layout": "[T, H, W, 3] decoded RGB frames in display order; any T, H, W >= 1",
        "num_clips": int(num_clips),
        "positions": positions,
        "stored_short_side": int(stored_short_side),
        "jpeg_quality": None if jpeg_quality is None else int(jpeg_quality),
        "outputs": {
            CLIP_EMBEDDINGS_OUTPUT: "float32 [num_clips, embedding_dim]",
            EMBED_OUTPUT: "float32 [embedding_dim], the mean over the clips",
        },
        "preprocessing": (
            f"{num_clips} clips at the {positions!r} positions of tfcmvp embed (a video shorter "
            f"than a clip repeats its last frame); each used frame resized to a "
            f"{stored_short_side}-px short side (area when shrinking, bilinear when enlarging), "
            + (
                f"JPEG round trip at quality {jpeg_quality}; "
                if jpeg_quality is not None
                else "no JPEG round trip; "
            )
            + "then the input contract's resize, centre crop and normalisation"
        ),
    }


# ---------------------------------------------------------------------------
# The description
# ---------------------------------------------------------------------------


def versions() -> dict:
    """tfcmvp / TensorFlow / Keras versions of this process."""
    return {
        "tfcmvp_version": __version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def make_export_info(
    *,
    network: str,
    backbone: str,
    input_spec: Mapping,
    source: Mapping,
    embedding_dim: Optional[int] = None,
    feature_shape: Optional[Sequence[int]] = None,
    signatures: Sequence[str] = BASE_SIGNATURES,
    **extra,
) -> dict:
    """A description with the versions of this process and the time filled in.

    `input_spec` is the input contract (:func:`input_contract` or one of the
    ``*_input_contract`` functions). `embedding_dim`, `feature_shape` and
    `signatures` may be left for :func:`tfcmvp.export.export_network` to fill
    from the traced network; `extra` adds keys (``num_classes`` and
    ``class_names`` for classifiers).
    """
    info = {
        "format_version": FORMAT_VERSION,
        "network": network,
        "backbone": backbone,
        "input": dict(input_spec),
        "embedding_dim": embedding_dim,
        "feature_shape": None if feature_shape is None else [int(d) for d in feature_shape],
        "signatures": list(signatures),
        "source": dict(source),
        **versions(),
        "created": utc_now(),
    }
    info.update(extra)
    return info


def dumps_export_info(info: Mapping) -> str:
    """The JSON text written to ``assets/tfcmvp_export.json``."""
    return json.dumps(info, indent=2, sort_keys=False) + "\n"
