"""Recipes shared by the datasets: the photometric steps of an RGB key, the negatives.

They read the fields of the data section (:class:`tfcmvp.config.DataConfig`)
directly.
"""

from __future__ import annotations

from tfcmvp.config import DataConfig
from tfcmvp.data import keys
from tfcmvp.data.augment.blur import gaussian_blur
from tfcmvp.data.augment.color import color_jitter, random_grayscale
from tfcmvp.data.augment.geometry import random_flip, random_resized_crop
from tfcmvp.data.augment.ops import Op, chain, normalize, scale_motion, to_unit_range


def rgb_photometric(key: str, config: DataConfig) -> Op:
    """The photometric part of the clip / I-frame recipe, in the authors' order.

    [0, 1], Gaussian blur, colour jitter, random grayscale, ImageNet
    normalisation (their pretraining list is crop, flip, blur, jitter,
    grayscale, normalise; finetuning the same without grayscale). Each step
    draws once for the whole of ``data[key]`` (all frames of a clip), from a
    salt of its own and the key: the clip and the I-frame, and the steps of
    one key, draw independently.
    """
    ops = [to_unit_range(key)]
    if config.blur is not None:
        ops.append(gaussian_blur(key, config.blur))
    jitter = config.color_jitter
    if jitter is not None:
        ops.append(color_jitter(key, jitter))
        if jitter.grayscale_prob > 0:
            ops.append(random_grayscale(key, jitter.grayscale_prob))
    ops.append(normalize(key))
    return chain(*ops)


def negative_motion(config: DataConfig) -> Op:
    """The recipe of the negative motion clips (key NEGATIVES ``[K, L, h, w, 2]``).

    Each negative gets its own random resized crop (grid extent MV_EXTENT)
    and flip, then the vectors are clamped and scaled like the target's.
    """
    return chain(
        random_resized_crop(
            keys.NEGATIVES,
            config.crop_size,
            min_area=config.min_crop_area,
            ratio=config.crop_ratio,
            independent=True,
            extent_keys={keys.NEGATIVES: keys.MV_EXTENT},
            methods={keys.NEGATIVES: config.mv_resize_method},
        ),
        random_flip(
            keys.NEGATIVES,
            prob=config.flip_prob,
            mv_keys=keys.NEGATIVES,
            negate_mv_x=config.flip_negates_mv_x,
            independent=True,
        ),
        scale_motion(keys.NEGATIVES, clip=config.mv_clip, div=config.mv_div),
    )
