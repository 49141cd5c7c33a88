"""Where a video's clips lie, and the clips themselves (the retrieval sample).

Two layouts:

* **clips** (default): ``num_clips`` clips at the VCOP retrieval positions
  (:func:`tfcmvp.data.sampling.eval_clip_starts` with ``positions="vcop"``):
  the clips ``tfcmvp retrieval`` averages into a video's feature.
* **windows** (``window`` and ``stride`` in frames): segments ``[s, s + W)``
  for ``s = 0, S, 2S, ...`` while the segment fits in the video (a video
  shorter than W: one segment ``[0, T)``). Each segment gets one clip of the
  export's span, centred in it (``start = s + (W - span) // 2``; frames
  outside the video repeat its first or last frame, as retrieval's clips do).
  W defaults to the span, so each segment is exactly one clip.

A clip's frames: ``span = (clip_len - 1) * clip_stride + 1`` frames from its
start (video network: ``clip_len`` frames ``clip_stride`` apart; motion
network: ``motion_len`` consecutive vector frames; I-frame network: one
position, the I-frame nearest to it).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tfcmvp.data.sampling import clip_span
from tfcmvp.errors import ConfigError
from tfcmvp.retrieval.features import EvalOptions

RETRIEVAL_POSITIONS = "vcop"  # tfcmvp.retrieval.protocols.CLIP_POSITIONS["vcop"]


@dataclasses.dataclass(frozen=True)
class ClipLayout:
    """Which clips of a video are embedded (see the module docstring)."""

    num_clips: int = 10  # clips per video at the retrieval positions (without a window)
    window: Optional[int] = None  # segment length W in frames; None: the export's clip span
    stride: Optional[int] = None  # frames between segment starts; None with a window: W

    def __post_init__(self):
        for name in ("num_clips", "window", "stride"):
            value = getattr(self, name)
            if value is None and name != "num_clips":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")

    @property
    def sliding(self) -> bool:
        """True for segments (a window or a stride given), False for retrieval's clips."""
        return self.window is not None or self.stride is not None


def span_of(options: EvalOptions) -> int:
    """Frames one clip of the export covers (1 for an I-frame network)."""
    return clip_span(options.clip_len, options.clip_stride)


def clip_starts(num_frames: int, options: EvalOptions, layout: ClipLayout) -> tuple:
    """``(starts, segment_starts, segment_ends)`` of one video, int64 ``[N]`` each.

    ``starts`` are the clip starts fed to the sample; the segment bounds are
    what a row of the output stands for (end exclusive, clamped to the
    video): the clip's frames, or the window it is centred in.
    """
    from tfcmvp.data.sampling import eval_clip_starts

    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    span = span_of(options)
    if not layout.sliding:
        starts = np.asarray(
            eval_clip_starts(
                num_frames,
                positions=RETRIEVAL_POSITIONS,
                num_clips=layout.num_clips,
                clip_len=options.clip_len,
                clip_stride=options.clip_stride,
            ),
            np.int64,
        )  # [N]
        first = np.clip(starts, 0, num_frames - 1)
        return starts, first, np.minimum(starts + span, num_frames)
    window = layout.window or span
    stride = layout.stride or window
    segments = np.arange(0, max(num_frames - window, 0) + 1, stride, dtype=np.int64)  # [N]
    starts = segments + (window - span) // 2
    return starts, segments, np.minimum(segments + window, num_frames)


def clip_dataset(items, options: EvalOptions):
    """``tf.data`` of the clips of a stream of videos.

    ``items`` is a generator function yielding ``(serialized record,
    clip starts)``; the dataset yields float32 ``[N, *input_shape]`` per
    item, in order, cut by :func:`tfcmvp.data.evaluation.make_eval_sample`
    (retrieval's sample) with the export's
    :class:`~tfcmvp.retrieval.features.EvalOptions`. The sample runs inside
    ``tf.data``, as in retrieval: the same function traced as a
    ``tf.function`` is optimised differently and its normalised values
    differ in the last bit. Decoding (the generator, in Python) overlaps
    with cutting (the map, on TensorFlow's threads).
    """
    import tensorflow as tf

    from tfcmvp.data import evaluation, keys

    kwargs = options.sample_kwargs()
    kwargs["num_clips"] = kwargs["num_clips"] or 1  # unused: the starts are given

    def sample(serialized, starts):
        return evaluation.make_eval_sample(serialized, starts=starts, **kwargs)[keys.CLIPS]

    ds = tf.data.Dataset.from_generator(
        items, output_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.int64))
    )
    ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(1)
