"""The pretraining dataset: clip, I-frame, target and negative motion clips per video visit.

One sample per visit of a video (see :mod:`tfcmvp.data.sampling` for where
each window lies):

* ``clip``: ``clip_len`` RGB frames at ``clip_stride`` from a random start,
  random resized crop, flip, Gaussian blur, colour jitter (its four
  adjustments in a random order), random grayscale: the authors' order, one
  draw for the whole clip; normalised with ImageNet statistics.
* ``motion[0]``: the target motion clip, cropped and flipped exactly like the
  clip (same region of the scene, same flip) and nothing else.
* ``motion[1:]``: ``num_negatives`` hard negatives from the same video, each
  with its own crop and flip.
* ``iframe``: an I-frame near the clip (by default never one of the clip's
  own frames) with its own crop, flip, blur, jitter and grayscale draws.

Vectors are clamped to +-``mv_clip`` px and divided by ``mv_div``. Only the
JPEGs the sample uses are decoded. Videos shorter than
:func:`tfcmvp.data.sampling.min_frames` or without I-frames are filtered out in the
graph; with ``count_skipped`` a cheap scan at construction logs how many and
which.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from tfcmvp import schema
from tfcmvp.config import DataConfig
from tfcmvp.data import augment, keys, pipeline, reader, sampling


def pretrain_augmentation(config: DataConfig) -> augment.Op:
    """The pretraining recipe over keys CLIP, IFRAME, MOTION (target) and NEGATIVES."""
    crop = dict(min_area=config.min_crop_area, ratio=config.crop_ratio)
    mv_method = {keys.MOTION: config.mv_resize_method}
    s = config.crop_size
    iframe_config = config
    if config.iframe_color_jitter is not None:  # the I-frame's own colour recipe
        iframe_config = dataclasses.replace(config, color_jitter=config.iframe_color_jitter)
    ops = [
        # Clip and target share one region and one flip: the target is the
        # motion of the scene the clip shows.
        augment.random_resized_crop(
            (keys.CLIP, keys.MOTION),
            s,
            **crop,
            extent_keys={keys.MOTION: keys.MV_EXTENT},
            methods=mv_method,
        ),
        augment.random_flip(
            (keys.CLIP, keys.MOTION),
            prob=config.flip_prob,
            mv_keys=keys.MOTION,
            negate_mv_x=config.flip_negates_mv_x,
        ),
        augment.random_resized_crop(keys.IFRAME, s, **crop),
        augment.random_flip(keys.IFRAME, prob=config.flip_prob),
        augment.rgb_photometric(keys.CLIP, config),
        augment.rgb_photometric(keys.IFRAME, iframe_config),
        augment.scale_motion(keys.MOTION, clip=config.mv_clip, div=config.mv_div),
    ]
    if config.num_negatives:
        ops.append(augment.negative_motion(config))
    return augment.chain(*ops)


def make_pretrain_sample(serialized, seed, data: DataConfig) -> dict:
    """One serialized record + a stateless seed ``[2]`` -> one pretraining sample.

    The video must be eligible (``num_frames >= sampling.min_frames(data)``,
    at least one I-frame). Returns CLIP float32 ``[T, S, S, 3]``, IFRAME
    ``[S, S, 3]``, MOTION ``[1 + K, L, S, S, 2]``, LABEL int64 ``[]``,
    VIDEO_ID string ``[]``.
    """
    parsed = reader.parse_record(serialized)
    windows = sampling.sample_pretrain_windows(
        parsed[schema.NUM_FRAMES], parsed[schema.IFRAME_INDICES], seed, data
    )
    motion = tf.gather(parsed[schema.MV_ENCODED], windows["motion_indices"])  # [1+K, L, h, w, 2]
    sample = {
        keys.CLIP: reader.decode_frames(
            parsed[schema.RGB_ENCODED], windows["clip_indices"]
        ),  # uint8 [T, H, W, 3]
        keys.IFRAME: reader.decode_jpeg(
            parsed[schema.IFRAME_ENCODED][windows["iframe"]]
        ),  # uint8 [H, W, 3]
        keys.MOTION: motion[0],  # [L, h, w, 2]
        keys.NEGATIVES: motion[1:],  # [K, L, h, w, 2]
        keys.MV_EXTENT: reader.mv_extent(parsed),
        keys.SEED: seed,
    }
    sample = pretrain_augmentation(data)(sample)
    parts = [sample[keys.MOTION][None]]  # [1, L, S, S, 2]: the target first
    if data.num_negatives:
        parts.append(sample[keys.NEGATIVES])  # [K, L, S, S, 2]
    return {
        keys.CLIP: sample[keys.CLIP],
        keys.IFRAME: sample[keys.IFRAME],
        keys.MOTION: tf.concat(parts, axis=0),
        keys.LABEL: parsed[schema.LABEL],
        keys.VIDEO_ID: parsed[schema.VIDEO_ID],
    }


def pretrain_dataset(
    file_pattern: reader.FilePattern,
    batch_size: int,
    data: Optional[DataConfig] = None,
    *,
    seed: Optional[int] = None,
    deterministic: bool = False,
    repeat: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    drop_remainder: bool = True,
    count_skipped: bool = True,
) -> tf.data.Dataset:
    """Batches of pretraining samples from gzip TFRecord shards.

    Args:
      file_pattern: a glob (``OUT/train-*.tfrecord.gz``) or a list of globs / paths.
      batch_size: videos per batch B.
      data: the data section of the run (:class:`tfcmvp.config.DataConfig`):
        windows, augmentation, shuffle buffer, shards read at once, cache and
        what a damaged shard does; None = the defaults.
      seed: base seed of shard order, shuffle and augmentation (None: random).
      deterministic: keep element order fixed through the parallel stages;
        with ``seed``, two runs then yield identical batches.
      repeat: cycle forever (True) or stop after one pass.
      num_parallel_calls: parallelism of reading and sample making (AUTOTUNE).
      drop_remainder: drop a last incomplete batch (static batch dim).
      count_skipped: scan the shards once at construction (ids and lengths
        only, no decoding) and log the skipped videos; raise ``ValueError``
        if none is usable.

    Yields dicts: "clip" float32 ``[B, clip_len, S, S, 3]``, "iframe"
    ``[B, S, S, 3]``, "motion" ``[B, 1 + num_negatives, motion_len, S, S, 2]``
    (index 0 = target), "label" int64 ``[B]``, "video_id" string ``[B]``.
    """
    data = DataConfig() if data is None else data
    files = reader.resolve_files(file_pattern)
    needed = sampling.min_frames(data)
    if count_skipped:
        pipeline.report_skipped(files, needed, "pretrain_dataset", on_corrupt=data.on_corrupt)
    return pipeline.training_dataset(
        files,
        lambda s, sample_seed: make_pretrain_sample(s, sample_seed, data),
        batch_size=batch_size,
        keep=lambda summary: reader.eligible(summary, needed),
        data=data,
        seed=seed,
        deterministic=deterministic,
        repeat=repeat,
        num_parallel_calls=num_parallel_calls,
        drop_remainder=drop_remainder,
    )
