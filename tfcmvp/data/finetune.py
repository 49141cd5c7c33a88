"""The supervised finetuning dataset: one augmented clip and its label per video visit.

The clip starts uniformly at random (a video shorter than the clip span
starts at 0 and repeats its last frame, so no training video is dropped)
and is augmented in the order of the authors' finetuning code: rotation of
the whole frame (``rotate_degrees``, +-10; the paper lists only crop, flip,
blur and jitter), random resized crop, flip, Gaussian blur, colour jitter
(p 0.5, random order; no grayscale), then ImageNet normalisation.

With ``with_motion`` the sample also carries the motion target of the clip
for the auxiliary motion-prediction loss (paper Table 6), placed as in
pretraining (``period``, ``motion_gap``) and sharing the clip's rotation
(about the frame's centre; vectors rotate too), crop and flip, plus ``num_negatives`` independently
augmented negatives. The clip start is then drawn so that the target fits
when the video is long enough; otherwise its frames are clamped to the last
one.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tfcmvp import schema
from tfcmvp.config import FinetuneDataConfig
from tfcmvp.data import augment, keys, pipeline, reader, sampling

_SALT_START = 11
_SALT_NEGATIVES = 12


def finetune_augmentation(config: FinetuneDataConfig, *, with_motion: bool) -> augment.Op:
    """The finetuning recipe over CLIP (and MOTION target, NEGATIVES).

    The authors' order: rotation of the whole frame, then random resized
    crop and flip (all three shared by the clip and its motion target), then
    the photometric ops of :func:`augment.rgb_photometric`.
    """
    crop = dict(min_area=config.min_crop_area, ratio=config.crop_ratio)
    s = config.crop_size
    shared = (keys.CLIP, keys.MOTION) if with_motion else (keys.CLIP,)
    mv_keys = (keys.MOTION,) if with_motion else ()
    mv_method = {keys.MOTION: config.mv_resize_method}
    extent = {keys.MOTION: keys.MV_EXTENT}
    ops = []
    if config.rotate_degrees > 0:
        # Before the crop, on the whole decoded frame (the authors' order):
        # the crop holds rotated scene, filled only where it reaches the
        # frame's corners (rotating the crop fills its corners every time),
        # and it is a rotation of the scene, not of the crop's resized,
        # non-square pixels (which would shear it).
        ops.append(
            augment.random_rotate(
                shared,
                config.rotate_degrees,
                mv_keys=mv_keys,
                extent_keys=extent,
                methods=mv_method,
            )
        )
    ops += [
        augment.random_resized_crop(shared, s, **crop, extent_keys=extent, methods=mv_method),
        augment.random_flip(
            shared, prob=config.flip_prob, mv_keys=mv_keys, negate_mv_x=config.flip_negates_mv_x
        ),
        augment.rgb_photometric(keys.CLIP, config),
    ]
    if with_motion:
        ops.append(augment.scale_motion(keys.MOTION, clip=config.mv_clip, div=config.mv_div))
    if with_motion and config.num_negatives:
        ops.append(augment.negative_motion(config))
    return augment.chain(*ops)


def make_finetune_sample(serialized, seed, data: FinetuneDataConfig, with_motion: bool) -> dict:
    """One serialized record + a stateless seed ``[2]`` -> one finetuning sample.

    Returns CLIP float32 ``[T, S, S, 3]``, LABEL, VIDEO_ID and, with
    ``with_motion``, MOTION ``[1 + K, L, S, S, 2]`` (index 0 = target).
    """
    parsed = reader.parse_record(serialized)
    t = parsed[schema.NUM_FRAMES]
    needed = sampling.min_frames(data) if with_motion else sampling.span(data)
    start = sampling.random_clip_start(
        t, needed, tf.random.experimental.stateless_fold_in(seed, _SALT_START)
    )
    sample = {
        keys.CLIP: reader.decode_frames(
            parsed[schema.RGB_ENCODED],
            sampling.clip_indices(start, data.clip_len, data.clip_stride, t),
        ),  # uint8 [T, H, W, 3]
        keys.SEED: seed,
    }
    if with_motion:
        target = tf.clip_by_value(
            sampling.target_start(start, data), 0, tf.maximum(t - data.motion_len, 0)
        )
        negatives = sampling.sample_negative_starts(
            t,
            target,
            data.motion_len,
            data.num_negatives,
            tf.random.experimental.stateless_fold_in(seed, _SALT_NEGATIVES),
        )
        starts = tf.concat([target[None], negatives], axis=0)  # [1 + K]
        motion = tf.gather(
            parsed[schema.MV_ENCODED], sampling.window_indices(starts, data.motion_len, t)
        )  # [1+K, L, h, w, 2]
        sample[keys.MOTION] = motion[0]
        sample[keys.NEGATIVES] = motion[1:]
        sample[keys.MV_EXTENT] = reader.mv_extent(parsed)
    sample = finetune_augmentation(data, with_motion=with_motion)(sample)
    out = {
        keys.CLIP: sample[keys.CLIP],
        keys.LABEL: parsed[schema.LABEL],
        keys.VIDEO_ID: parsed[schema.VIDEO_ID],
    }
    if with_motion:
        parts = [sample[keys.MOTION][None]]  # [1, L, S, S, 2]
        if data.num_negatives:
            parts.append(sample[keys.NEGATIVES])  # [K, L, S, S, 2]
        out[keys.MOTION] = tf.concat(parts, axis=0)
    return out


def finetune_dataset(
    file_pattern: reader.FilePattern,
    batch_size: int,
    data: Optional[FinetuneDataConfig] = None,
    *,
    with_motion: bool = False,
    seed: Optional[int] = None,
    deterministic: bool = False,
    repeat: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """Batches of augmented labelled clips from gzip TFRecord shards.

    `data` is the data section of a finetuning run
    (:class:`tfcmvp.config.FinetuneDataConfig`; None = its defaults, the
    authors' finetuning recipe); ``with_motion`` adds the motion target and
    ``data.num_negatives`` negatives; the other arguments are those of
    :func:`tfcmvp.data.pretrain_dataset`. Every video with at least one frame
    is used.

    Yields dicts: "clip" float32 ``[B, clip_len, S, S, 3]``, "label" int64
    ``[B]``, "video_id" string ``[B]`` and, with ``with_motion``, "motion"
    ``[B, 1 + num_negatives, motion_len, S, S, 2]``.
    """
    data = FinetuneDataConfig() if data is None else data
    files = reader.resolve_files(file_pattern)
    return pipeline.training_dataset(
        files,
        lambda s, sample_seed: make_finetune_sample(s, sample_seed, data, with_motion),
        batch_size=batch_size,
        keep=lambda summary: summary[schema.NUM_FRAMES] >= 1,
        data=data,
        seed=seed,
        deterministic=deterministic,
        repeat=repeat,
        num_parallel_calls=num_parallel_calls,
        drop_remainder=drop_remainder,
    )
