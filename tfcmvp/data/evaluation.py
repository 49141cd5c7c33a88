"""The evaluation dataset: every video once, as fixed clips.

Used for finetuning tests (softmax averaged over clips) and retrieval
(features averaged over clips). Per video:

* clip positions, by the rule ``positions`` (formulas in
  :mod:`tfcmvp.data.sampling`): ``"authors"`` (the default; the authors'
  finetuning test) puts ``num_clips`` clips at the midpoints of equal
  segments of the valid start range, ``"vcop"`` (VCOP's retrieval) spaces
  ``num_clips`` clip centres evenly from the first to the last possible one,
  ``"sliding"`` (CoCLR's retrieval) slides a window over the whole video, so
  the number of clips N varies from video to video. The two fixed-count rules
  repeat no clip when the video has at least ``span + num_clips`` frames
  (``"vcop"``: one fewer); a video shorter than one span gets clips that
  start at 0 (``"sliding"``: one clip, padded at its start with frame 0) and
  repeat its last frame;
* geometry: short side resized to ``resize_short`` then the centre
  ``crop_size`` square (stored short side 128 -> the central 112x112);
* modality "rgb": ``clip_len`` frames at ``clip_stride``, ImageNet-normalised,
  "clips" ``[N, clip_len, S, S, 3]``;
* modality "iframe": the I-frame nearest to each clip's centre frame,
  "clips" ``[N, S, S, 3]`` (a video without any I-frame, which the extractor
  never writes, falls back to the RGB frame at the clip centre);
* modality "motion": ``motion_len`` vector frames centred in each clip span
  (start + (span - motion_len) // 2, clamped; short videos repeat the last
  frame), clamped to +-``mv_clip`` px and divided by ``mv_div``, "clips"
  ``[N, motion_len, S, S, 2]``.

No randomness, no shuffling, no filtering: files in sorted order.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tfcmvp import schema
from tfcmvp.config import DataConfig
from tfcmvp.data import augment, keys, reader, sampling

MODALITIES = ("rgb", "iframe", "motion")


def make_eval_sample(
    serialized,
    *,
    modality: str,
    positions: str,
    num_clips: int,
    clip_len: int,
    clip_stride: int,
    motion_len: int,
    crop_size: int,
    resize_short: int,
    mv_clip: float,
    mv_div: float,
    mv_resize_method: str,
    starts=None,
) -> dict:
    """One serialized record -> the evaluation clips of one video (see the module docstring).

    ``starts``: int64 ``[N]`` clip starts to use instead of the rule
    ``positions`` (``tfcmvp embed --window``); each is then cut, cropped and
    scaled exactly as the rule's starts would be.
    """
    parsed = reader.parse_record(serialized)
    t = parsed[schema.NUM_FRAMES]
    check = tf.debugging.Assert(
        t > 0, [tf.strings.format("video {} has no frames", [parsed[schema.VIDEO_ID]])]
    )
    with tf.control_dependencies([check]):
        t = tf.identity(t)
    if starts is None:
        starts = sampling.eval_clip_starts(
            t, positions=positions, num_clips=num_clips, clip_len=clip_len, clip_stride=clip_stride
        )  # [N]
    starts = tf.cast(starts, tf.int64)
    centre = augment.center_crop(
        keys.CLIPS,
        crop_size,
        resize_short=resize_short,
        extent_keys={keys.CLIPS: keys.MV_EXTENT} if modality == "motion" else None,
        methods={keys.CLIPS: mv_resize_method if modality == "motion" else "bilinear"},
    )
    data, ops = _modality_clips(
        parsed,
        modality,
        starts,
        t,
        centre,
        clip_len=clip_len,
        clip_stride=clip_stride,
        motion_len=motion_len,
        mv_clip=mv_clip,
        mv_div=mv_div,
    )
    data = augment.chain(*ops)(data)
    return {
        keys.CLIPS: data[keys.CLIPS],
        keys.LABEL: parsed[schema.LABEL],
        keys.VIDEO_ID: parsed[schema.VIDEO_ID],
        keys.LABEL_NAME: parsed[schema.LABEL_NAME],
    }


def _modality_clips(
    parsed, modality: str, starts, t, centre, *, clip_len, clip_stride, motion_len, mv_clip, mv_div
):
    """The decoded frames of one modality at the clip `starts`, and the ops that crop
    and scale them (`centre` first): ``({keys.CLIPS: ..., ...}, [op, ...])``."""
    span = sampling.clip_span(clip_len, clip_stride)
    if modality == "rgb":
        idx = sampling.clip_indices(starts, clip_len, clip_stride, t)  # [N, T]
        data = {keys.CLIPS: reader.decode_frames(parsed[schema.RGB_ENCODED], idx)}
        ops = [centre, augment.to_unit_range(keys.CLIPS), augment.normalize(keys.CLIPS)]
    elif modality == "iframe":
        middle = sampling.clip_indices(starts + (span - 1) // 2, 1, 1, t)[:, 0]  # [N]
        iframes = parsed[schema.IFRAME_INDICES]
        images = tf.cond(
            tf.size(iframes) > 0,
            lambda: reader.decode_frames(
                parsed[schema.IFRAME_ENCODED], sampling.nearest_iframes(iframes, middle)
            ),
            lambda: reader.decode_frames(parsed[schema.RGB_ENCODED], middle),
        )  # [N, H, W, 3]
        data = {keys.CLIPS: images}
        ops = [centre, augment.to_unit_range(keys.CLIPS), augment.normalize(keys.CLIPS)]
    elif modality == "motion":
        first = sampling.centred_window_start(starts, span, motion_len, t)  # [N]
        idx = sampling.window_indices(first, motion_len, t)  # [N, L]
        data = {
            keys.CLIPS: tf.gather(parsed[schema.MV_ENCODED], idx),  # [N, L, h, w, 2]
            keys.MV_EXTENT: reader.mv_extent(parsed),
        }
        ops = [centre, augment.scale_motion(keys.CLIPS, clip=mv_clip, div=mv_div)]
    else:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return data, ops


def eval_dataset(
    file_pattern: reader.FilePattern,
    data: Optional[DataConfig] = None,
    *,
    modality: str = "rgb",
    positions: str = "authors",
    num_clips: int = 10,
    resize_short: int = 128,
    batch_size: Optional[int] = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Every video of the shards exactly once, as centre-cropped clips.

    Args:
      file_pattern: a glob or a list of globs / paths of gzip TFRecord shards.
      modality: "rgb", "iframe" or "motion" (see the module docstring).
      positions: where the clips lie: "authors" (the authors' finetuning
        test, default), "vcop" (VCOP's retrieval) or "sliding" (CoCLR's
        retrieval, a video-dependent number of clips); see
        :mod:`tfcmvp.data.sampling`.
      num_clips: clips per video N (10, the test protocol of the paper);
        unused by "sliding".
      data: the data section (:class:`tfcmvp.config.DataConfig`; None = the
        defaults): its clip_len, clip_stride, motion_len, crop_size (output
        side S), mv_clip, mv_div, mv_resize_method and cycle_length are used.
      resize_short: the short side is resized to this before the centre crop
        (128, the stored short side).
      batch_size: None yields one video per element; an int batches videos
        (the last batch may be smaller; not with "sliding", whose videos have
        different clip counts).
      num_parallel_calls: parallelism of reading and decoding; the order of
        the videos stays fixed.

    Yields dicts: "clips" float32 (``[N, clip_len, S, S, 3]`` rgb, ``[N, S, S,
    3]`` iframe, ``[N, motion_len, S, S, 2]`` motion; a leading batch dim
    when batched), "label" int64, "video_id" and "label_name" strings.
    """
    if modality not in MODALITIES:
        raise ValueError(f"eval_dataset: modality must be one of {MODALITIES}, got {modality!r}")
    if positions not in sampling.CLIP_POSITIONS:
        raise ValueError(
            f"eval_dataset: positions must be one of {sampling.CLIP_POSITIONS}, got {positions!r}"
        )
    if positions == "sliding" and batch_size is not None:
        raise ValueError(
            "eval_dataset: positions='sliding' gives every video its own number of "
            "clips, so videos cannot be batched; pass batch_size=None"
        )
    for name, value in (("num_clips", num_clips), ("resize_short", resize_short)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"eval_dataset: {name} must be a positive int, got {value!r}")
    data = DataConfig() if data is None else data  # checks its own values
    files = reader.resolve_files(file_pattern)
    ds = reader.records_dataset(
        files,
        cycle_length=data.cycle_length,
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    ds = ds.map(
        lambda s: make_eval_sample(
            s,
            modality=modality,
            positions=positions,
            num_clips=num_clips,
            clip_len=data.clip_len,
            clip_stride=data.clip_stride,
            motion_len=data.motion_len,
            crop_size=data.crop_size,
            resize_short=resize_short,
            mv_clip=data.mv_clip,
            mv_div=data.mv_div,
            mv_resize_method=data.mv_resize_method,
        ),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)
