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
``SamplingConfig.min_frames`` or without I-frames are filtered out in the
graph; with ``count_skipped`` a cheap scan at construction logs how many and
which.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import tensorflow as tf

from tfcmvp import schema
from tfcmvp.data import augment, features, pipeline, reader, sampling
from tfcmvp.data.augment import AugmentConfig, ColorJitter, GaussianBlur
from tfcmvp.data.sampling import SamplingConfig

_S = SamplingConfig
_A = AugmentConfig


def pretrain_augmentation(config: AugmentConfig, *, num_negatives: int) -> augment.Op:
    """The pretraining recipe over keys CLIP, IFRAME, MOTION (target) and NEGATIVES."""
    crop = dict(min_area=config.min_crop_area, ratio=config.crop_ratio)
    mv_method = {features.MOTION: config.mv_resize_method}
    s = config.crop_size
    iframe_config = config
    if config.iframe_color_jitter is not None:  # the I-frame's own colour recipe
        iframe_config = dataclasses.replace(config, color_jitter=config.iframe_color_jitter)
    ops = [
        # Clip and target share one region and one flip: the target is the
        # motion of the scene the clip shows.
        augment.random_resized_crop(
            (features.CLIP, features.MOTION),
            s,
            **crop,
            extent_keys={features.MOTION: features.MV_EXTENT},
            methods=mv_method,
        ),
        augment.random_flip(
            (features.CLIP, features.MOTION),
            prob=config.flip_prob,
            mv_keys=features.MOTION,
            negate_mv_x=config.flip_negates_mv_x,
        ),
        augment.random_resized_crop(features.IFRAME, s, **crop),
        augment.random_flip(features.IFRAME, prob=config.flip_prob),
        augment.rgb_photometric(features.CLIP, config),
        augment.rgb_photometric(features.IFRAME, iframe_config),
        augment.scale_motion(features.MOTION, clip=config.mv_clip, div=config.mv_div),
    ]
    if num_negatives:
        ops.append(augment.negative_motion(config))
    return augment.chain(*ops)


def make_pretrain_sample(
    serialized, seed, sampling_config: SamplingConfig, augment_config: AugmentConfig
) -> dict:
    """One serialized record + a stateless seed ``[2]`` -> one pretraining sample.

    The video must be eligible (``num_frames >= sampling_config.min_frames``,
    at least one I-frame). Returns CLIP float32 ``[T, S, S, 3]``, IFRAME
    ``[S, S, 3]``, MOTION ``[1 + K, L, S, S, 2]``, LABEL int64 ``[]``,
    VIDEO_ID string ``[]``.
    """
    parsed = reader.parse_record(serialized)
    windows = sampling.sample_pretrain_windows(
        parsed[schema.NUM_FRAMES], parsed[schema.IFRAME_INDICES], seed, sampling_config
    )
    motion = tf.gather(parsed[schema.MV_ENCODED], windows["motion_indices"])  # [1+K, L, h, w, 2]
    data = {
        features.CLIP: reader.decode_frames(
            parsed[schema.RGB_ENCODED], windows["clip_indices"]
        ),  # uint8 [T, H, W, 3]
        features.IFRAME: reader.decode_jpeg(
            parsed[schema.IFRAME_ENCODED][windows["iframe"]]
        ),  # uint8 [H, W, 3]
        features.MOTION: motion[0],  # [L, h, w, 2]
        features.NEGATIVES: motion[1:],  # [K, L, h, w, 2]
        features.MV_EXTENT: reader.mv_extent(parsed),
        features.SEED: seed,
    }
    data = pretrain_augmentation(augment_config, num_negatives=sampling_config.num_negatives)(data)
    parts = [data[features.MOTION][None]]  # [1, L, S, S, 2]: the target first
    if sampling_config.num_negatives:
        parts.append(data[features.NEGATIVES])  # [K, L, S, S, 2]
    return {
        features.CLIP: data[features.CLIP],
        features.IFRAME: data[features.IFRAME],
        features.MOTION: tf.concat(parts, axis=0),
        features.LABEL: parsed[schema.LABEL],
        features.VIDEO_ID: parsed[schema.VIDEO_ID],
    }


def pretrain_dataset(
    file_pattern: reader.FilePattern,
    batch_size: int,
    *,
    clip_len: int = _S.clip_len,
    clip_stride: int = _S.clip_stride,
    motion_len: int = _S.motion_len,
    motion_gap: int = _S.motion_gap,
    period: str = _S.period,
    num_negatives: int = _S.num_negatives,
    iframe_window: int = _S.iframe_window,
    iframe_excludes_clip_frames: bool = _S.iframe_excludes_clip_frames,
    crop_size: int = _A.crop_size,
    min_crop_area: float = _A.min_crop_area,
    crop_ratio: Sequence[float] = _A.crop_ratio,
    flip_prob: float = _A.flip_prob,
    flip_negates_mv_x: bool = _A.flip_negates_mv_x,
    mv_clip: float = _A.mv_clip,
    mv_div: float = _A.mv_div,
    mv_resize_method: str = _A.mv_resize_method,
    color_jitter: Optional[ColorJitter] = _A.color_jitter,
    iframe_color_jitter: Optional[ColorJitter] = _A.iframe_color_jitter,
    blur: Optional[GaussianBlur] = _A.blur,
    shuffle_buffer: int = 256,
    seed: Optional[int] = None,
    deterministic: bool = False,
    repeat: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    drop_remainder: bool = True,
    cycle_length: Optional[int] = None,
    count_skipped: bool = True,
    cache: Optional[str] = None,
    on_corrupt: str = "fail",
) -> tf.data.Dataset:
    """Batches of pretraining samples from gzip TFRecord shards.

    Args:
      file_pattern: a glob (``OUT/train-*.tfrecord.gz``) or a list of globs / paths.
      batch_size: videos per batch B.
      clip_len ... iframe_excludes_clip_frames: windows, see :class:`SamplingConfig`.
      crop_size ... iframe_color_jitter: augmentation, see :class:`AugmentConfig`
        (``color_jitter`` / ``blur`` also accept a mapping of their fields,
        True for the defaults, or None to switch them off).
      shuffle_buffer: videos in the shuffle buffer (256; each holds its
        encoded record, about 1-2 MB for a UCF101 video); <= 1 disables it.
      seed: base seed of shard order, shuffle and augmentation (None: random).
      deterministic: keep element order fixed through the parallel stages;
        with ``seed``, two runs then yield identical batches.
      repeat: cycle forever (True) or stop after one pass.
      num_parallel_calls: parallelism of reading and sample making (AUTOTUNE).
      drop_remainder: drop a last incomplete batch (static batch dim).
      cycle_length: shards read at once (default min(#shards, 8)).
      count_skipped: scan the shards once at construction (ids and lengths
        only, no decoding) and log the skipped videos; raise ``ValueError``
        if none is usable.
      cache: None, "memory" or a local file prefix: keep the decompressed
        records after the first epoch (see ``pipeline.training_dataset``).
      on_corrupt: a damaged shard stops the pipeline ("fail") or is read up
        to its damage ("skip"; named and counted in the log).

    Yields dicts: "clip" float32 ``[B, clip_len, S, S, 3]``, "iframe"
    ``[B, S, S, 3]``, "motion" ``[B, 1 + num_negatives, motion_len, S, S, 2]``
    (index 0 = target), "label" int64 ``[B]``, "video_id" string ``[B]``.
    """
    sampling_config = SamplingConfig(
        clip_len=clip_len,
        clip_stride=clip_stride,
        motion_len=motion_len,
        motion_gap=motion_gap,
        period=period,
        num_negatives=num_negatives,
        iframe_window=iframe_window,
        iframe_excludes_clip_frames=iframe_excludes_clip_frames,
    )
    augment_config = AugmentConfig(
        crop_size=crop_size,
        min_crop_area=min_crop_area,
        crop_ratio=tuple(crop_ratio),
        flip_prob=flip_prob,
        flip_negates_mv_x=flip_negates_mv_x,
        mv_clip=mv_clip,
        mv_div=mv_div,
        mv_resize_method=mv_resize_method,
        color_jitter=color_jitter,
        blur=blur,
        iframe_color_jitter=iframe_color_jitter,
    )
    files = reader.resolve_files(file_pattern)
    if count_skipped:
        pipeline.report_skipped(
            files, sampling_config.min_frames, "pretrain_dataset", on_corrupt=on_corrupt
        )
    return pipeline.training_dataset(
        files,
        lambda s, sample_seed: make_pretrain_sample(
            s, sample_seed, sampling_config, augment_config
        ),
        batch_size=batch_size,
        keep=lambda summary: reader.eligible(summary, sampling_config.min_frames),
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        deterministic=deterministic,
        repeat=repeat,
        num_parallel_calls=num_parallel_calls,
        drop_remainder=drop_remainder,
        cycle_length=cycle_length,
        cache=cache,
        on_corrupt=on_corrupt,
    )
