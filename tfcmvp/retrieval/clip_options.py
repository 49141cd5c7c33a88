"""What a clip is for an exported network: its export description -> :class:`EvalOptions`.

The exported SavedModel (``tfcmvp.export``; contract in its
``assets/tfcmvp_export.json``) decides the clips fed to its ``embed``
signature (table in :mod:`tfcmvp.retrieval.features`). :func:`eval_options`
turns that contract into the keyword arguments of
:func:`tfcmvp.data.evaluation.make_eval_sample`, refusing a contract the
evaluation pipeline cannot produce. The options are part of the feature cache
key (:mod:`tfcmvp.retrieval.feature_cache`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tfcmvp.config import DataConfig
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from tfcmvp.data.sampling import check_positions
from tfcmvp.errors import ConfigError, ExportError
from tfcmvp.export import contract as export_contract
from tfcmvp.export import read_export_info

NETWORK_MODALITY = {"video": "rgb", "iframe": "iframe", "motion": "motion"}


def read_export(model_dir) -> dict:
    """The checked ``assets/tfcmvp_export.json`` of an export folder.

    ``tfcmvp.export.read_export_info``: raises ``NotAnExportError`` (a
    FileNotFoundError) naming the folder when it is missing, has no
    ``saved_model.pb`` or no description, and ``ExportError`` (a ValueError)
    naming the file when the description breaks the contract.
    """
    return read_export_info(model_dir)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """What one video's clips are: the keyword arguments of ``make_eval_sample``."""

    modality: str
    positions: str  # "vcop" or "sliding" (or "authors"): see tfcmvp.data.sampling
    num_clips: Optional[int]  # None under "sliding", whose count depends on the video
    clip_len: int
    clip_stride: int
    motion_len: int
    crop_size: int
    resize_short: int
    mv_clip: float
    mv_div: float
    mv_resize_method: str

    def sample_kwargs(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def input_shape(self) -> tuple:
        """Shape of one clip as the exported network takes it."""
        s = self.crop_size
        if self.modality == "rgb":
            return (self.clip_len, s, s, 3)
        if self.modality == "iframe":
            return (s, s, 3)
        return (self.motion_len, s, s, 2)


def _modality(info: dict, shape: list) -> str:
    network = info["network"]
    if network in NETWORK_MODALITY:
        return NETWORK_MODALITY[network]
    if network == "classifier":
        # A finetuned network: its input shape says what it eats.
        if len(shape) == 3:
            return "iframe"
        if len(shape) == 4:
            return "motion" if shape[-1] == 2 else "rgb"
    raise ExportError(
        f"export network {network!r} with input shape {shape} is not one of "
        f"{sorted(NETWORK_MODALITY)} or a classifier"
    )


def _checked_shape(info: dict) -> tuple:
    """(modality, frames, crop size) of the export's input shape, or ValueError naming it."""
    contract = info["input"]
    shape = [int(d) for d in contract["shape"]]
    modality = _modality(info, shape)
    rank, channels = (3, 3) if modality == "iframe" else (4, 3 if modality == "rgb" else 2)
    if len(shape) != rank or shape[-1] != channels:
        raise ExportError(
            f"export input.shape {shape} does not fit a {info['network']!r} network "
            f"(modality {modality!r}: rank {rank}, {channels} channels)"
        )
    height, width = shape[-3], shape[-2]
    if height != width:
        raise ExportError(
            f"export input.shape {shape}: the evaluation crop is square, got {height}x{width}"
        )
    frames = shape[0] if rank == 4 else 1
    if contract.get("frames") not in (None, frames) and rank == 4:
        raise ExportError(
            f"export input.frames {contract['frames']} disagrees with input.shape {shape}"
        )
    return modality, frames, height


def _check_rgb_statistics(contract: dict, modality: str) -> None:
    if modality not in ("rgb", "iframe"):
        return
    # The pipeline normalises with ImageNet statistics only.
    for key, expected in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
        if contract.get(key) is not None and not np.allclose(contract[key], expected, atol=1e-6):
            raise ExportError(
                f"export input.{key} {contract[key]} is not the ImageNet "
                f"{key} {list(expected)} the evaluation pipeline uses"
            )


def _clip_lengths(contract: dict, modality: str, frames: int) -> tuple:
    """(clip_len, clip_stride, motion_len) of the export's clips."""
    # motion_len is unused by rgb / iframe clips, but part of the options and so of
    # the cache key: the sampling default there.
    if modality == "rgb":
        stride = contract.get("stride")
        if not isinstance(stride, int) or stride < 1:
            raise ExportError(
                f"export input.stride must be a positive int for a video network, got {stride!r}"
            )
        return frames, stride, DataConfig.motion_len
    if modality == "motion":
        # Motion windows at the clip positions: a span of T frames at stride 1.
        return frames, 1, frames
    # One frame per clip: the I-frame nearest the clip position.
    return 1, 1, DataConfig.motion_len


def eval_options(info: dict, num_clips: int, positions: str = "vcop") -> EvalOptions:
    """Clip options of an export (see :mod:`tfcmvp.retrieval.features`).

    ``num_clips`` clips per video at the positions ``positions``
    (``"sliding"`` ignores ``num_clips``: the options then hold None).

    Raises ValueError naming the offending field when the export's input
    contract cannot be produced by the evaluation pipeline (non-square crop,
    wrong channels, RGB statistics other than ImageNet's, missing stride).
    """
    check_positions(positions)
    if not isinstance(num_clips, int) or isinstance(num_clips, bool) or num_clips < 1:
        raise ConfigError(f"clips per video must be a positive int, got {num_clips!r}")
    contract = info["input"]
    modality, frames, height = _checked_shape(info)
    _check_rgb_statistics(contract, modality)
    clip_len, clip_stride, motion_len = _clip_lengths(contract, modality, frames)
    # Exports carry resize_short; the paper's 128 / 112 ratio for ones that do not.
    resize_short = contract.get("resize_short") or int(
        round(height * export_contract.TEST_RESIZE_RATIO)
    )
    defaults = DataConfig()
    return EvalOptions(
        modality=modality,
        positions=positions,
        num_clips=None if positions == "sliding" else num_clips,
        clip_len=int(clip_len),
        clip_stride=int(clip_stride),
        motion_len=int(motion_len),
        crop_size=height,
        resize_short=int(resize_short),
        mv_clip=float(contract.get("mv_clip") or defaults.mv_clip),
        mv_div=float(contract.get("mv_div") or defaults.mv_div),
        mv_resize_method=str(contract.get("mv_resize_method") or defaults.mv_resize_method),
    )
