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
  is none, the I-frame nearest to the span (earliest on a tie). With
  ``iframe_excludes_clip_frames`` (the default) the I-frames whose index is
  one of the clip's own frame indices are no candidates: read from the same
  decode as the clip they would be pixel-identical to one of its frames, a
  shortcut for context matching (the authors' I-frames come from a separate
  low-bitrate re-encode, so never identical; with such records, extraction
  ``--iframe_source reencode``, switching it off reproduces their sampling).
  When no other I-frame lies in the window, the nearest I-frame that is not
  a clip frame is taken (it may lie outside the window); when every I-frame
  of the video is a clip frame, the nearest one.
* Indices past the last frame are clamped to it: a clip longer than its
  video repeats the last frame (evaluation and finetuning pad this way).

Evaluation clip positions (``positions`` of :func:`eval_clip_starts`; T
frames, a span of S frames, N clips):

* ``"authors"`` (the authors' finetuning test, ``VideoDataset`` of
  alibaba/Deep-Vision Context-Motion-Decoupling): the midpoints of N equal
  segments of the valid start range ``[0, T - S]``, truncated to ints, in
  their float64 arithmetic: ``e = np.linspace(0, T - S, N + 1)``, starts
  ``((e[1:] + e[:-1]) / 2).astype(int)``. That differs from the exact
  ``floor((2i + 1)(T - S) / 2N)`` by one frame for a few lengths (e.g.
  T = 89, N = 10); we follow the float arithmetic so the starts are theirs.
  ``T <= S``: every clip starts at 0.
* ``"vcop"`` (VCOP's retrieval, ``UCF101ClipRetrievalDataset`` of
  xudejing/video-clip-order-prediction): clip centres
  ``np.linspace(S / 2, T - S / 2, N)``, starts ``int(centre - S / 2)``
  (float64 as theirs; equal to ``floor(i (T - S) / (N - 1))``). ``T < S``
  (undefined in VCOP, which slices from the end): every clip starts at 0.
* ``"sliding"`` (CoCLR's test windows, ``frame_sampler`` of TengdaHan/CoCLR
  ``dataset/lmdb_dataset.py``, with ``num_frames = clip_len`` and
  ``ds = clip_stride``): CoCLR counts a window as ``E = clip_len *
  clip_stride`` frames (one stride more than the span); when ``T > E``, starts
  ``0, h, 2h, ... <= T - E`` with ``h = E // 2 - 1`` ("half overlap - 1"; at
  least 1), so the number of clips grows with the video and the last window
  need not reach its end; when ``T <= E``, one window left-padded with frame
  0: the frames ``j * clip_stride < T`` end the clip and frame 0 fills its
  first slots, which is the start ``-(clip_len - ceil(T / clip_stride)) *
  clip_stride`` with indices clamped at 0.

Neither fixed-count rule repeats a clip once the video is long enough:
``"vcop"`` from ``T >= S + N - 1`` (N distinct starts exist, and its starts
are ``(T - S) / (N - 1) >= 1`` apart), ``"authors"`` from ``T >= S + N`` (its
midpoints are ``(T - S) / N`` apart, so at ``T = S + N - 1`` two of them
still share a frame: 70 frames, 16 x 4, N = 10 give 0, 1, 2, 3, 4, 4, 5, ...).
Shorter videos repeat clips, unavoidably. Frames past the last one repeat it
(the authors' test instead wraps them to frame 0; it only matters for videos
shorter than the span).
"""

from __future__ import annotations

import tensorflow as tf

from tfcmvp.config import DataConfig
from tfcmvp.errors import ConfigError

CLIP_POSITIONS = ("authors", "vcop", "sliding")  # evaluation clip rules, see the docstring

# Salts that separate the random streams of one sample (any distinct ints).
_SALT_CLIP = 1
_SALT_NEGATIVES = 2
_SALT_IFRAME = 3


def span(data: DataConfig) -> int:
    """Frames covered by one clip of `data`, first to last inclusive."""
    return clip_span(data.clip_len, data.clip_stride)


def min_frames(data: DataConfig) -> int:
    """The fewest frames a video needs to give a pretraining sample under `data`."""
    if data.period == "future":
        return span(data) + data.motion_gap - 1 + data.motion_len
    return max(span(data), data.motion_len)


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


def target_start(clip_start, data: DataConfig):
    """First frame of the target motion window of a clip starting at ``clip_start``."""
    clip_start = _i64(clip_start)
    if data.period == "future":
        return clip_start + span(data) - 1 + data.motion_gap
    return clip_start + (span(data) - data.motion_len) // 2


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
                [k], seed, minval=tf.constant(0, tf.int64), maxval=count, dtype=tf.int64
            )

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


def nearest_iframe(iframe_indices, first, last=None, allowed=None):
    """Ordinal (position in ``iframe_indices``) of the I-frame nearest to frames [first, last].

    ``last`` defaults to ``first`` (nearest to one frame). Ties go to the
    earlier I-frame. ``allowed`` (bool ``[M]``, optional) restricts the choice
    to those I-frames when any is allowed; when none is, every I-frame
    counts. ``iframe_indices`` must not be empty.
    """
    idx = _i64(iframe_indices)
    first = _i64(first)
    last = first if last is None else _i64(last)
    distance = tf.maximum(tf.maximum(first - idx, idx - last), 0)  # [M]
    if allowed is not None:
        # Disallowed I-frames lose to every allowed one, yet still win when
        # nothing is allowed (they all get the same offset).
        far = tf.reduce_max(distance) + 1
        distance = tf.where(allowed, distance, distance + far)
    return tf.argmin(distance, output_type=tf.int64)  # first minimum on ties


def choose_iframe(iframe_indices, first, last, window: int, seed, exclude=None):
    """Ordinal of a random I-frame within ``window`` frames of [first, last].

    ``exclude`` (int ``[K]``, optional): frame indices the I-frame must not
    have (the clip's own frames). Candidates are the I-frames in the window
    that are not excluded; with none, the nearest I-frame to the span that is
    not excluded, and when every I-frame is excluded the nearest one
    (:func:`nearest_iframe`).
    """
    idx = _i64(iframe_indices)
    near = (idx >= _i64(first) - window) & (idx <= _i64(last) + window)  # [M]
    allowed = None
    if exclude is not None:
        hit = tf.equal(idx[:, None], tf.reshape(_i64(exclude), [1, -1]))  # [M, K]
        allowed = ~tf.reduce_any(hit, axis=1)  # [M]
        near &= allowed
    candidates = tf.where(near)[:, 0]  # [C] ordinals
    count = tf.size(candidates, out_type=tf.int64)

    def pick():
        j = tf.random.stateless_uniform(
            [], seed, minval=tf.constant(0, tf.int64), maxval=count, dtype=tf.int64
        )
        return candidates[j]

    return tf.cond(count > 0, pick, lambda: nearest_iframe(idx, first, last, allowed))


def sample_pretrain_windows(num_frames, iframe_indices, seed, data: DataConfig) -> dict:
    """Draws one pretraining sample's windows from a video of ``num_frames`` frames.

    The video must have at least :func:`min_frames` frames and one
    I-frame (the pipelines filter the others out first). Returns int64:
    ``clip_start`` [], ``clip_indices`` [clip_len], ``motion_starts``
    [1 + num_negatives] (index 0 = target), ``motion_indices``
    [1 + num_negatives, motion_len] and ``iframe`` [] (an ordinal into
    ``iframe_indices``).
    """
    t = _i64(num_frames)
    max_start = tf.maximum(t - min_frames(data), 0)
    if data.period == "current":
        # The target lies inside the span, so only the span has to fit.
        max_start = tf.maximum(t - span(data), 0)
    start = tf.random.stateless_uniform(
        [],
        tf.random.experimental.stateless_fold_in(seed, _SALT_CLIP),
        minval=tf.constant(0, tf.int64),
        maxval=max_start + 1,
        dtype=tf.int64,
    )
    target = target_start(start, data)
    if data.period == "current":
        target = tf.clip_by_value(target, 0, tf.maximum(t - data.motion_len, 0))
    negatives = sample_negative_starts(
        t,
        target,
        data.motion_len,
        data.num_negatives,
        tf.random.experimental.stateless_fold_in(seed, _SALT_NEGATIVES),
    )
    motion_starts = tf.concat([target[None], negatives], axis=0)  # [1 + K]
    clip = clip_indices(start, data.clip_len, data.clip_stride, t)  # [clip_len]
    iframe = choose_iframe(
        iframe_indices,
        start,
        start + span(data) - 1,
        data.iframe_window,
        tf.random.experimental.stateless_fold_in(seed, _SALT_IFRAME),
        exclude=clip if data.iframe_excludes_clip_frames else None,
    )
    return {
        "clip_start": start,
        "clip_indices": clip,
        "motion_starts": motion_starts,
        "motion_indices": window_indices(motion_starts, data.motion_len, t),
        "iframe": iframe,
    }


def random_clip_start(num_frames, needed: int, seed):
    """Uniform start for a window of ``needed`` frames; 0 when the video is shorter."""
    max_start = tf.maximum(_i64(num_frames) - needed, 0)
    return tf.random.stateless_uniform(
        [], seed, minval=tf.constant(0, tf.int64), maxval=max_start + 1, dtype=tf.int64
    )


def check_positions(positions: str) -> str:
    """``positions`` if it names an evaluation clip rule (``CLIP_POSITIONS``), else ValueError."""
    if positions not in CLIP_POSITIONS:
        raise ConfigError(f"clip positions must be one of {CLIP_POSITIONS}, got {positions!r}")
    return positions


def _linspace(start, stop, num: int):
    """``np.linspace(start, stop, num)`` in float64 with NumPy's exact operations.

    NumPy computes ``arange(num) * ((stop - start) / (num - 1)) + start`` and
    then sets the last element to ``stop``; the same IEEE operations here give
    bit-identical values, so truncating them gives the same ints as the
    reference code. ``num >= 2``.
    """
    start = tf.cast(start, tf.float64)
    stop = tf.cast(stop, tf.float64)
    step = (stop - start) / (num - 1)
    inner = tf.range(num - 1, dtype=tf.float64) * step + start  # [num - 1]
    return tf.concat([inner, stop[None]], axis=0)  # [num]


def authors_clip_starts(num_frames, num_clips: int, span: int):
    """The authors' test starts: midpoints of ``num_clips`` equal segments of [0, T - span].

    See the module docstring (``"authors"``). Returns int64 ``[num_clips]``.
    """
    t = _i64(num_frames)
    edges = _linspace(0.0, tf.maximum(t - span, 0), num_clips + 1)  # [N + 1]
    middles = (edges[1:] + edges[:-1]) / 2.0  # [N], >= 0
    starts = tf.cast(tf.floor(middles), tf.int64)
    return tf.where(t > span, starts, tf.zeros_like(starts))


def vcop_clip_starts(num_frames, num_clips: int, span: int):
    """VCOP's retrieval starts: centres ``linspace(span / 2, T - span / 2, N)`` minus span / 2.

    See the module docstring (``"vcop"``). Returns int64 ``[num_clips]``.
    """
    t = _i64(num_frames)
    if num_clips == 1:
        return tf.zeros([1], tf.int64)  # linspace of one point: its start, span / 2
    half = span / 2
    centres = _linspace(half, tf.cast(tf.maximum(t, span), tf.float64) - half, num_clips)  # [N]
    return tf.cast(tf.floor(centres - half), tf.int64)  # centres >= half: floor = int()


def sliding_clip_starts(num_frames, clip_len: int, clip_stride: int):
    """CoCLR's sliding test windows; their number depends on the video length.

    See the module docstring (``"sliding"``). Returns int64 ``[N_v]``, N_v >= 1;
    a video of at most ``clip_len * clip_stride`` frames gets one window
    whose start is <= 0 (frame 0 pads its first slots).
    """
    t = _i64(num_frames)
    extent = clip_len * clip_stride  # CoCLR's window length, one stride more than the span
    hop = max(extent // 2 - 1, 1)
    starts = tf.range(0, tf.maximum(t - extent, 0) + 1, hop, dtype=tf.int64)  # [N_v]
    # ceil(T / stride) frames of the clip lie in the video; frame 0 fills the slots before them.
    in_video = (t + clip_stride - 1) // clip_stride
    padded = -(clip_len - in_video) * clip_stride
    return tf.where(t > extent, starts, tf.fill(tf.shape(starts), padded))


def eval_clip_starts(
    num_frames, *, positions: str, num_clips: int, clip_len: int, clip_stride: int
):
    """Starts of a video's evaluation clips under the rule ``positions``.

    Args:
      num_frames: frames T of the video (a scalar tensor or int).
      positions: ``"authors"``, ``"vcop"`` or ``"sliding"`` (see the module
        docstring).
      num_clips: clips N of the fixed-count rules; ``"sliding"`` ignores it.
      clip_len, clip_stride: the clip (its span is ``(clip_len - 1) *
        clip_stride + 1``).

    Returns:
      int64 ``[N]`` (``[N_v]`` for ``"sliding"``), within ``[0, max(T -
      span, 0)]`` except the one window of a short video under
      ``"sliding"``, which starts before 0; :func:`clip_indices` clamps the
      indices into the video.
    """
    check_positions(positions)
    if positions == "sliding":
        return sliding_clip_starts(num_frames, clip_len, clip_stride)
    span = clip_span(clip_len, clip_stride)
    if positions == "authors":
        return authors_clip_starts(num_frames, num_clips, span)
    return vcop_clip_starts(num_frames, num_clips, span)
