"""The data sections of the config: sampling and augmentation of training clips.

:class:`DataConfig` (pretraining, and the geometry of evaluation clips),
:class:`FinetuneDataConfig` (finetuning: the same fields plus rotation, the
authors' finetuning jitter) and their optional subsections
:class:`ColorJitterConfig` and :class:`BlurConfig`. The data stages take
them as they are (``tfcmvp.data.pretrain_dataset(files, batch, data)``,
``finetune_dataset``, ``eval_dataset``) and the sampling
(:mod:`tfcmvp.data.sampling`) and augmentation (:mod:`tfcmvp.data.augment`)
code read their fields: each data setting, its default and its documentation
live here once. Constructing a section checks its values (a
:class:`~tfcmvp.config_io.ConfigError` naming the field); the loader prefixes
the section's key (``data.blur.kernel_size=4 must be an odd int >= 1``).

Importable from :mod:`tfcmvp.config` too, the public name of the schema.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from tfcmvp.config_io import field, raise_failed_check

PERIODS = ("future", "current")  # data.period: where the motion target lies
RESIZE_METHODS = ("bilinear", "nearest")  # data.mv_resize_method


def _int_at_least(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _probability(value) -> bool:
    return isinstance(value, (int, float)) and 0.0 <= value <= 1.0


@dataclasses.dataclass(frozen=True)
class ColorJitterConfig:
    """Colour jitter, then random grayscale, of the clip and of the I-frame
    (``tfcmvp.data.augment.color_jitter``, ``random_grayscale``).

    One draw per clip, the same for all its frames; the clip and the I-frame
    draw independently. The paper names colour jitter without values: the
    defaults are the authors' code (``dataset/transforms.py`` and the
    transform lists of ``pretrain.py``): torchvision's four adjustments at
    0.4 / 0.4 / 0.4 / 0.1 in a random order, applied with p 0.5 after the
    Gaussian blur, then a separate RandomGrayscale with p 0.2. Their
    finetuning has no grayscale (``FinetuneDataConfig`` sets 0).
    """

    brightness: float = field(0.4, "brightness factor drawn from [1 - v, 1 + v] (authors: 0.4)")
    contrast: float = field(0.4, "contrast factor drawn from [1 - v, 1 + v] (authors: 0.4)")
    saturation: float = field(0.4, "saturation factor drawn from [1 - v, 1 + v] (authors: 0.4)")
    hue: float = field(0.1, "hue shift drawn from [-v, v] turns of the colour wheel (authors: 0.1)")
    prob: float = field(
        0.5, "probability of jittering a clip at all (authors: 0.5; SimCLR / CoCLR use 0.8)"
    )
    random_order: bool = field(
        True,
        "apply the four adjustments in a random order drawn per clip, as torchvision's "
        "ColorJitter and the authors' code; false: brightness, contrast, saturation, hue",
    )
    grayscale_prob: float = field(
        0.2,
        "probability of turning the clip grey (0.299 R + 0.587 G + 0.114 B), drawn "
        "independently of the jitter and applied after it (authors: 0.2 in pretraining, "
        "none in finetuning); 0 = off",
    )

    def __post_init__(self):
        raise_failed_check(
            self,
            [
                *[
                    (name, 0.0 <= getattr(self, name) <= 1.0, "must lie in [0, 1]")
                    for name in ("brightness", "contrast", "saturation")
                ],
                ("hue", 0.0 <= self.hue <= 0.5, "must lie in [0, 0.5]"),
                ("prob", _probability(self.prob), "must be a probability in [0, 1]"),
                (
                    "grayscale_prob",
                    _probability(self.grayscale_prob),
                    "must be a probability in [0, 1]",
                ),
                ("random_order", isinstance(self.random_order, bool), "must be true or false"),
            ],
        )


@dataclasses.dataclass(frozen=True)
class BlurConfig:
    """Gaussian blur of the clip and the I-frame, one sigma per clip, applied
    before the colour jitter (``tfcmvp.data.augment.gaussian_blur``; sigma range and
    probability are the authors' code, the paper names blur without values)."""

    sigma_min: float = field(0.1, "smallest blur sigma in output pixels")
    sigma_max: float = field(2.0, "largest blur sigma in output pixels")
    prob: float = field(0.5, "probability of blurring a clip")
    kernel_size: int = field(11, "taps of the (odd) blur kernel")

    def __post_init__(self):
        raise_failed_check(
            self,
            [
                ("sigma_min", 0.0 < self.sigma_min, "must be > 0"),
                ("sigma_max", self.sigma_min <= self.sigma_max, "must be >= sigma_min"),
                ("prob", _probability(self.prob), "must be a probability in [0, 1]"),
                (
                    "kernel_size",
                    _int_at_least(self.kernel_size, 1) and self.kernel_size % 2 == 1,
                    "must be an odd int >= 1",
                ),
            ],
        )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Sampling and augmentation of pretraining samples.

    ``tfcmvp.data.pretrain_dataset`` takes this section as it is; the
    sampling (``tfcmvp.data.sampling``) and augmentation
    (``tfcmvp.data.augment``) code read its fields. Direct construction checks
    the values too (a :class:`ConfigError` naming the field).
    """

    clip_len: int = field(16, "frames in the RGB clip fed to the video network")
    clip_stride: int = field(
        4, "temporal stride between the clip's frames (16 x 4: a 61-frame span)"
    )
    motion_len: int = field(8, "consecutive motion-vector frames in each motion clip")
    motion_gap: int = field(
        3, "frames between the clip's last frame and the first future motion frame"
    )
    period: Literal["future", "current"] = field(
        "future", "motion target: the motion after the clip (paper) or under it (Table 1 ablation)"
    )
    num_negatives: int = field(
        3, "hard-negative motion clips per video, from non-overlapping windows of the same video"
    )
    iframe_window: int = field(
        5, "the I-frame is drawn among the I-frames within this many frames of the clip span"
    )
    iframe_excludes_clip_frames: bool = field(
        True,
        "never take an I-frame whose index is one of the clip's frame indices: from the "
        "same decode it is pixel-identical to a clip frame, a shortcut for context "
        "matching (~22% of samples at GOP 12, stride 4). The authors keep such indices but "
        "read I-frames from a separate low-bitrate re-encode, so never identical pixels; "
        "with such data (extraction --iframe_source reencode) false reproduces their "
        "sampling. Without another I-frame in the window: the nearest one that is not a "
        "clip frame (tfcmvp.data.sampling)",
    )
    crop_size: int = field(112, "side of the square training crop in pixels")
    min_crop_area: float = field(0.2, "smallest area fraction of the random resized crop")
    crop_ratio: tuple[float, ...] = field(
        (3 / 4, 4 / 3), "(low, high) range of the crop's width / height"
    )
    flip_prob: float = field(0.5, "probability of a horizontal flip")
    flip_negates_mv_x: bool = field(
        True,
        "negate the x component of motion vectors on a horizontal flip (CoViAR; the "
        "authors' code does not, which makes a flipped clip disagree with its vectors)",
    )
    mv_clip: float = field(10.0, "motion vectors are clamped to +-mv_clip pixels (authors: 10)")
    mv_div: float = field(10.0, "motion vectors are divided by mv_div after clamping (authors: 10)")
    mv_resize_method: Literal["bilinear", "nearest"] = field(
        "bilinear", "resampling of motion-vector maps to the crop"
    )
    color_jitter: Optional[ColorJitterConfig] = field(
        ColorJitterConfig(), "colour jitter of clip and I-frame; null = off"
    )
    iframe_color_jitter: Optional[ColorJitterConfig] = field(
        None,
        "colour jitter of the I-frame alone, replacing color_jitter for it; null = the "
        "same as the clip's (paper). hue 0.5 with prob 1 randomises the I-frame's "
        "colours, so that context matching cannot be solved by colour statistics "
        "(`tfcmvp probe` measures whether it is)",
    )
    blur: Optional[BlurConfig] = field(
        BlurConfig(), "Gaussian blur of clip and I-frame; null = off"
    )
    shuffle_buffer: int = field(256, "videos in the tf.data shuffle buffer (<= 1: no shuffle)")
    cycle_length: Optional[int] = field(None, "TFRecord shards read at once; null = min(shards, 8)")
    cache: Optional[str] = field(
        None,
        "keep the decompressed records after the first epoch: 'memory', or a local file "
        "prefix (room for the uncompressed dataset), so later epochs skip reading and "
        "gunzip (about 7 ms of CPU per 2 MB record); null = read the shards every epoch",
    )
    on_corrupt: Literal["fail", "skip"] = field(
        "fail",
        "a damaged training shard (bad CRC, broken gzip, truncated): fail = stop with "
        "an error naming the shard and the byte offset; skip = read it up to the damage, "
        "skip the rest, and log each damaged shard and how many records were skipped. "
        "Evaluation (finetuning's test split, retrieval) always stops: a score over part "
        "of a test set is not comparable",
    )

    def __post_init__(self):
        if isinstance(self.crop_ratio, (list, tuple)):
            object.__setattr__(self, "crop_ratio", tuple(float(v) for v in self.crop_ratio))
        raise_failed_check(self, data_checks(self))


def data_checks(data: DataConfig) -> list[tuple[str, bool, str]]:
    """The value checks of a :class:`DataConfig` (field-relative keys)."""
    positive = ("clip_len", "clip_stride", "motion_len", "motion_gap", "crop_size")
    ratio = data.crop_ratio
    return [
        *[
            (name, _int_at_least(getattr(data, name), 1), "must be an int >= 1")
            for name in positive
        ],
        *[
            (name, _int_at_least(getattr(data, name), 0), "must be an int >= 0")
            for name in ("num_negatives", "iframe_window")
        ],
        ("period", data.period in PERIODS, f"must be one of {PERIODS}"),
        (
            "iframe_excludes_clip_frames",
            isinstance(data.iframe_excludes_clip_frames, bool),
            "must be true or false",
        ),
        ("min_crop_area", 0 < data.min_crop_area <= 1, "must lie in (0, 1]"),
        (
            "crop_ratio",
            len(ratio) == 2 and 0 < ratio[0] <= ratio[1],
            "must be (low, high), 0 < low <= high",
        ),
        ("flip_prob", _probability(data.flip_prob), "must be a probability in [0, 1]"),
        ("flip_negates_mv_x", isinstance(data.flip_negates_mv_x, bool), "must be true or false"),
        ("mv_clip", data.mv_clip > 0, "must be > 0"),
        ("mv_div", data.mv_div > 0, "must be > 0"),
        (
            "mv_resize_method",
            data.mv_resize_method in RESIZE_METHODS,
            f"must be one of {RESIZE_METHODS}",
        ),
        *[
            (
                name,
                getattr(data, name) is None or isinstance(getattr(data, name), ColorJitterConfig),
                "must be a ColorJitterConfig or null",
            )
            for name in ("color_jitter", "iframe_color_jitter")
        ],
        (
            "blur",
            data.blur is None or isinstance(data.blur, BlurConfig),
            "must be a BlurConfig or null",
        ),
    ]


@dataclasses.dataclass(frozen=True)
class FinetuneDataConfig(DataConfig):
    """Sampling and augmentation of finetuning clips (``tfcmvp.data.finetune_dataset``).

    The fields of :class:`DataConfig`, plus ``rotate_degrees``.
    The motion fields (motion_len, motion_gap, period, num_negatives, mv_*,
    flip_negates_mv_x) only matter with ``train.motion_aux_weight > 0``;
    ``iframe_window``, ``iframe_excludes_clip_frames`` and
    ``iframe_color_jitter`` are not used. The augmentation follows the
    authors' finetuning code (``finetune.py``): rotation of the whole frame,
    random resized crop, flip, blur, colour jitter p 0.5, no grayscale. Their
    rotation fills the corners black with nearest-neighbour sampling; ours
    reflects them and samples bilinearly.
    """

    color_jitter: Optional[ColorJitterConfig] = field(
        ColorJitterConfig(grayscale_prob=0.0),
        "colour jitter of the clip; null = off (the pretraining jitter without grayscale, "
        "which the authors' finetuning does not use)",
    )
    rotate_degrees: float = field(
        10.0,
        "random rotation in [-r, r] degrees of the whole frame of the clip (and its "
        "motion target) before the crop; the authors rotate +-10 when finetuning, the "
        "paper lists only crop, flip, blur and jitter; 0 = off",
    )

    def __post_init__(self):
        super().__post_init__()
        raise_failed_check(
            self, [("rotate_degrees", 0 <= self.rotate_degrees < 180, "must lie in [0, 180)")]
        )
