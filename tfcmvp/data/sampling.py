"""Which frames a sample uses: window index arithmetic, in TensorFlow ops.

Everything here works on frame *indices* (display order, 0-based) and is
graph-safe, so it runs inside ``tf.data`` maps; the random choices are
stateless and keyed by an explicit ``seed`` (shape [2]).

Conventions (all documented once here):

* A clip of ``clip_len`` frames at ``clip_stride`` uses frames
  ``start, start + stride, ..., start + (clip_len - 1) * stride``; its *span*
  is ``(clip_len - 1) * stride + 1`` frames (61 for 16 x 4) and its *end* is
  its last frame ``start + span - 1``.
* ``period="future"``: the target motion window (``motion_len`` consecutive
  frames) starts ``motion_gap`` frames after the clip's end:
  ``end + motion_gap`` (so ``motion_gap - 1`` frames lie between them). A
  pretraining sample therefore needs ``span + motion_gap - 1 + motion_len``
  frames (61 + 2 + 8 = 71 by default).
* ``period="current"``: the target window is centred in the clip span,
  starting at ``start + (span - motion_len) // 2`` (frames 26..33 of a
  0..60 span); a sample needs ``max(span, motion_len)`` frames.
* Hard negatives: ``num_negatives`` window starts drawn uniformly from the
  starts whose window does not overlap the target window, without
  replacement when there are enough such starts and with replacement when
  there are fewer than ``num_negatives``. If there is none at all (only when a
  video is shorter than twice the motion window plus the clip, impossible
  with the defaults), they are drawn from every start, overlapping or not.
* I-frame: drawn uniformly among the I-frames whose index lies within
  ``iframe_window`` frames of the clip span ``[start - w, end + w]``; if there
  is none, the I-frame nearest to the span (earliest on a tie).
* Indices past the last frame are clamped to it: a clip longer than its
  video repeats the last frame (evaluation and finetuning pad this way).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

PERIODS = ("future", "current")

# Salts that separate the random streams of one sample (any distinct ints).
_SALT_CLIP = 1
_SALT_NEGATIVES = 2
_SALT_IFRAME = 3


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Where the clip, the motion target, the negatives and the I-frame lie.

    Attributes:
      clip_len: RGB frames per clip (16).
      clip_stride: temporal stride between clip frames (4).
      motion_len: consecutive motion-vector frames per motion clip (8).
      motion_gap: the target starts this many frames after the clip's last
        frame (3) when ``period="future"``.
      period: "future" (motion after the clip, the paper's choice) or
        "current" (motion centred under the clip, the ablation).
      num_negatives: hard-negative motion clips from the same video (3).
      iframe_window: the I-frame lies within this many frames of the clip
        span (5).
    """

    clip_len: int = 16
    clip_stride: int = 4
    motion_len: int = 8
    motion_gap: int = 3
    period: str = "future"
    num_negatives: int = 3
    iframe_window: int = 5

    def __post_init__(self):
        for name in ("clip_len", "clip_stride", "motion_len", "motion_gap"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SamplingConfig.{name} must be a positive int, got {value!r}")
        for name in ("num_negatives", "iframe_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"SamplingConfig.{name} must be an int >= 0, got {value!r}")
        if self.period not in PERIODS:
            raise ValueError(f"SamplingConfig.period must be one of {PERIODS}, got {self.period!r}")

    @property
    def span(self) -> int:
        """Frames covered by one clip, first to last inclusive."""
        return clip_span(self.clip_len, self.clip_stride)

    @property
    def min_frames(self) -> int:
        """The fewest frames a video needs to give a pretraining sample."""
        if self.period == "future":
            return self.span + self.motion_gap - 1 + self.motion_len
        return max(self.span, self.motion_len)


def clip_span(clip_len: int, clip_stride: int) -> int:
    """Frames from a clip's first to its last frame, inclusive."""
    return (clip_len - 1) * clip_stride + 1


def _i64(x):
    return tf.cast(x, tf.int64)


def clip_indices(start, clip_len: int, clip_stride: int, num_frames):
    """Frame indices of a clip, clamped to the video (last frame repeats).

    Returns int64 ``[clip_len]``; ``start`` may be a tensor of any leading
    shape ``[...]``, giving ``[..., clip_len]``.
    """
    start = _i64(start)
    offsets = tf.range(clip_len, dtype=tf.int64) * clip_stride  # [clip_len]
    idx = start[..., None] + offsets  # [..., clip_len]
    return tf.clip_by_value(idx, 0, tf.maximum(_i64(num_frames) - 1, 0))


def window_indices(start, length: int, num_frames):
    """Indices of ``length`` consecutive frames from ``start``, clamped."""
    return clip_indices(start, length, 1, num_frames)


def target_start(clip_start, config: SamplingConfig):
    """First frame of the target motion window of a clip starting at ``clip_start``."""
    clip_start = _i64(clip_start)
    if config.period == "future":
        return clip_start + config.span - 1 + config.motion_gap
    return clip_start + (config.span - config.motion_len) // 2


def centred_window_start(clip_start, span: int, length: int, num_frames):
    """Start of a ``length``-frame window centred in a clip span, clamped to the video."""
    start = _i64(clip_start) + (span - length) // 2
    return tf.clip_by_value(start, 0, tf.maximum(_i64(num_frames) - length, 0))


def sample_negative_starts(num_frames, target, motion_len: int, num_negatives: int, seed):
    """Starts of hard-negative windows that do not overlap the target window.

    A start ``p`` is allowed when ``p + motion_len <= target`` or
    ``p >= target + motion_len`` (and the window fits in the video). Returns
    int64 ``[num_negatives]`` (see the module docstring for the fallbacks).
    """
    t = _i64(num_frames)
    target = _i64(target)
    length = tf.constant(motion_len, tf.int64)
    k = num_negatives
    if k == 0:
        return tf.zeros([0], tf.int64)
    last = tf.maximum(t - length, 0)  # last start whose window fits
    n_before = tf.clip_by_value(target - length + 1, 0, last + 1)  # starts 0 .. target - L
    n_after = tf.maximum(last - (target + length) + 1, 0)  # starts target + L .. last
    n = n_before + n_after

    def ordinals_among(count):
        def without_replacement():
            scores = tf.random.stateless_uniform(tf.reshape(count, [1]), seed)  # [count]
            return _i64(tf.math.top_k(scores, k=k).indices)

        def with_replacement():
            return tf.random.stateless_uniform(
                [k], seed, minval=tf.constant(0, tf.int64), maxval=count, dtype=tf.int64)

        return tf.cond(count >= k, without_replacement, with_replacement)

    def non_overlapping():
        o = ordinals_among(n)  # [k] in [0, n)
        return tf.where(o < n_before, o, target + length + (o - n_before))

    def any_start():
        return ordinals_among(last + 1)

    return tf.cond(n > 0, non_overlapping, any_start)


def nearest_iframes(iframe_indices, frames):
    """Ordinals of the I-frames nearest to each of ``frames`` ``[N]`` (earlier on ties).

    ``iframe_indices`` must not be empty. Returns int64 ``[N]``.
    """
    distance = tf.abs(_i64(frames)[:, None] - _i64(iframe_indices)[None, :])  # [N, M]
    return tf.argmin(distance, axis=1, output_type=tf.int64)


def nearest_iframe(iframe_indices, first, last=None):
    """Ordinal (position in ``iframe_indices``) of the I-frame nearest to frames [first, last].

    ``last`` defaults to ``first`` (nearest to one frame). Ties go to the
    earlier I-frame. ``iframe_indices`` must not be empty.
    """
    idx = _i64(iframe_indices)
    first = _i64(first)
    last = first if last is None else _i64(last)
    distance = tf.maximum(tf.maximum(first - idx, idx - last), 0)  # [M]
    return tf.argmin(distance, output_type=tf.int64)  # first minimum on ties


def choose_iframe(iframe_indices, first, last, window: int, seed):
    """Ordinal of a random I-frame within ``window`` frames of [first, last].

    Falls back to :func:`nearest_iframe` when no I-frame is that close.
    """
    idx = _i64(iframe_indices)
    near = (idx >= _i64(first) - window) & (idx <= _i64(last) + window)  # [M]
    candidates = tf.where(near)[:, 0]  # [C] ordinals
    count = tf.size(candidates, out_type=tf.int64)

    def pick():
        j = tf.random.stateless_uniform(
            [], seed, minval=tf.constant(0, tf.int64), maxval=count, dtype=tf.int64)
        return candidates[j]

    return tf.cond(count > 0, pick, lambda: nearest_iframe(idx, first, last))


def sample_pretrain_windows(num_frames, iframe_indices, seed, config: SamplingConfig) -> dict:
    """Draws one pretraining sample's windows from a video of ``num_frames`` frames.

    The video must have at least ``config.min_frames`` frames and one
    I-frame (the pipelines filter the others out first). Returns int64:
    ``clip_start`` [], ``clip_indices`` [clip_len], ``motion_starts``
    [1 + num_negatives] (index 0 = target), ``motion_indices``
    [1 + num_negatives, motion_len] and ``iframe`` [] (an ordinal into
    ``iframe_indices``).
    """
    t = _i64(num_frames)
    max_start = tf.maximum(t - config.min_frames, 0)
    if config.period == "current":
        # The target lies inside the span, so only the span has to fit.
        max_start = tf.maximum(t - config.span, 0)
    start = tf.random.stateless_uniform(
        [], tf.random.experimental.stateless_fold_in(seed, _SALT_CLIP),
        minval=tf.constant(0, tf.int64), maxval=max_start + 1, dtype=tf.int64)
    target = target_start(start, config)
    if config.period == "current":
        target = tf.clip_by_value(target, 0, tf.maximum(t - config.motion_len, 0))
    negatives = sample_negative_starts(
        t, target, config.motion_len, config.num_negatives,
        tf.random.experimental.stateless_fold_in(seed, _SALT_NEGATIVES))
    motion_starts = tf.concat([target[None], negatives], axis=0)  # [1 + K]
    iframe = choose_iframe(
        iframe_indices, start, start + config.span - 1, config.iframe_window,
        tf.random.experimental.stateless_fold_in(seed, _SALT_IFRAME))
    return {
        "clip_start": start,
        "clip_indices": clip_indices(start, config.clip_len, config.clip_stride, t),
        "motion_starts": motion_starts,
        "motion_indices": window_indices(motion_starts, config.motion_len, t),
        "iframe": iframe,
    }


def random_clip_start(num_frames, needed: int, seed):
    """Uniform start for a window of ``needed`` frames; 0 when the video is shorter."""
    max_start = tf.maximum(_i64(num_frames) - needed, 0)
    return tf.random.stateless_uniform(
        [], seed, minval=tf.constant(0, tf.int64), maxval=max_start + 1, dtype=tf.int64)


def eval_clip_starts(num_frames, num_clips: int, span: int):
    """Starts of ``num_clips`` clips spread uniformly over a video.

    Clip ``i`` is centred on the midpoint of the i-th of ``num_clips`` equal
    segments, ``(i + 0.5) * T / num_clips`` (frame ``k`` covers the time
    ``[k, k + 1)``, so a clip starting at ``s`` is centred on ``s + span / 2``),
    rounded half up and clamped to the valid starts ``[0, max(T - span, 0)]``.
    Returns int64 ``[num_clips]``.
    """
    t = tf.cast(num_frames, tf.float64)
    centres = (tf.range(num_clips, dtype=tf.float64) + 0.5) * t / num_clips  # [N]
    starts = tf.cast(tf.floor(centres - span / 2 + 0.5), tf.int64)
    return tf.clip_by_value(starts, 0, tf.maximum(_i64(num_frames) - span, 0))
