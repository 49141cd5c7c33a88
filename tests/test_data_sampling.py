"""Window arithmetic of tfcmvp.data.sampling: known answers, eager and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.config import DataConfig
from tfcmvp.data import sampling


def seed(n):
    return tf.constant([1234, n], tf.int64)


def test_config_derived_lengths():
    cfg = DataConfig()
    assert sampling.span(cfg) == 61
    assert sampling.min_frames(cfg) == 71  # 61 + 2 + 8, as in method_facts
    assert sampling.min_frames(DataConfig(period="current")) == 61
    assert (
        sampling.min_frames(DataConfig(clip_len=4, clip_stride=2, motion_len=3, motion_gap=2)) == 11
    )


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"period": "past"}, "period"),
        ({"clip_len": 0}, "clip_len"),
        ({"num_negatives": -1}, "num_negatives"),
        ({"motion_gap": 1.5}, "motion_gap"),
    ],
)
def test_config_rejects_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        DataConfig(**kwargs)


def test_target_start_future_and_current():
    cfg = DataConfig()
    for start in (0, 5, 40):
        # Future: the clip's last frame is start + 60; the target starts 3 later.
        assert int(sampling.target_start(start, cfg)) == start + 60 + 3
        # Current: 8 frames centred in the 61-frame span.
        assert int(sampling.target_start(start, DataConfig(period="current"))) == start + 26


def test_clip_indices_stride_and_clamp():
    np.testing.assert_array_equal(sampling.clip_indices(3, 4, 2, 100), [3, 5, 7, 9])
    # A video shorter than the span repeats its last frame.
    np.testing.assert_array_equal(sampling.clip_indices(0, 5, 4, 10), [0, 4, 8, 9, 9])
    np.testing.assert_array_equal(sampling.clip_indices([0, 2], 2, 1, 3), [[0, 1], [2, 2]])


@pytest.mark.parametrize("num_frames", [71, 100, 250])
def test_pretrain_windows_default_config(num_frames):
    cfg = DataConfig()
    iframes = np.arange(0, num_frames, 12)
    for n in range(25):
        w = {
            k: v.numpy()
            for k, v in sampling.sample_pretrain_windows(num_frames, iframes, seed(n), cfg).items()
        }
        s = w["clip_start"]
        assert 0 <= s <= num_frames - 71
        np.testing.assert_array_equal(w["clip_indices"], s + 4 * np.arange(16))
        end = w["clip_indices"][-1]
        target, negatives = w["motion_starts"][0], w["motion_starts"][1:]
        assert target == end + 3
        np.testing.assert_array_equal(w["motion_indices"][0], target + np.arange(8))
        assert w["motion_indices"].max() < num_frames
        assert negatives.shape == (3,)
        # Hard negatives never overlap the target window ...
        assert np.all(np.abs(negatives - target) >= 8)
        # ... are whole windows inside the video, and distinct (enough room here).
        assert np.all((negatives >= 0) & (negatives <= num_frames - 8))
        assert len(set(negatives.tolist())) == 3
        iframe = iframes[w["iframe"]]
        # Never one of the clip's own frames, unless every I-frame is (T = 71: 0, 12, ..., 60).
        assert iframe not in w["clip_indices"] or np.isin(iframes, w["clip_indices"]).all()
        # In the +-5 window whenever an I-frame there is not a clip frame.
        allowed = [i for i in iframes if s - 5 <= i <= end + 5 and i not in w["clip_indices"]]
        assert s - 5 <= iframe <= end + 5 or not allowed


def test_shortest_video_has_one_clip_position():
    w = sampling.sample_pretrain_windows(71, [0, 12, 24, 36, 48, 60], seed(3), DataConfig())
    assert int(w["clip_start"]) == 0
    np.testing.assert_array_equal(w["motion_indices"][0], np.arange(63, 71))


def test_current_period_target_under_clip():
    cfg = DataConfig(period="current")
    for n in range(10):
        w = sampling.sample_pretrain_windows(80, [0, 12, 24, 36, 48, 60, 72], seed(n), cfg)
        s = int(w["clip_start"])
        assert 0 <= s <= 80 - 61
        assert int(w["motion_starts"][0]) == s + 26


def test_negatives_without_replacement_when_enough():
    # T=20, L=3, target 8: allowed starts 0..5 and 11..17 (13 of them).
    allowed = set(range(0, 6)) | set(range(11, 18))
    for n in range(20):
        neg = sampling.sample_negative_starts(20, 8, 3, 5, seed(n)).numpy()
        assert set(neg.tolist()) <= allowed
        assert len(set(neg.tolist())) == 5


def test_negatives_with_replacement_when_too_few():
    # T=9, L=3, target 3: only starts 0 and 6 avoid the target window.
    seen = set()
    for n in range(20):
        neg = sampling.sample_negative_starts(9, 3, 3, 3, seed(n)).numpy()
        assert set(neg.tolist()) <= {0, 6}
        seen |= set(neg.tolist())
    assert seen == {0, 6}
    # One allowed start: every negative is that one.
    np.testing.assert_array_equal(sampling.sample_negative_starts(8, 3, 3, 3, seed(0)), [0, 0, 0])


def test_negatives_fall_back_to_any_start_when_none_fits():
    # T=4, L=3, target 1: every window overlaps the target; starts 0 or 1 are used.
    for n in range(10):
        neg = sampling.sample_negative_starts(4, 1, 3, 2, seed(n)).numpy()
        assert set(neg.tolist()) <= {0, 1}


def test_negatives_stay_inside_a_video_shorter_than_the_target():
    # Finetuning clamps: target past the last window start (12 > 10 - 3).
    for n in range(10):
        neg = sampling.sample_negative_starts(10, 12, 3, 4, seed(n)).numpy()
        assert np.all((neg >= 0) & (neg <= 7))


def test_zero_negatives():
    assert sampling.sample_negative_starts(50, 10, 8, 0, seed(0)).shape == (0,)


def test_choose_iframe_within_window_and_fallback():
    iframes = [0, 12, 24, 36, 48, 60, 72]
    got = {int(sampling.choose_iframe(iframes, 13, 20, 5, seed(n))) for n in range(30)}
    assert got == {1, 2}  # I-frames 12 and 24 lie in [8, 25]
    # None within 5 frames of [40, 50]: the nearest to the span (0 is 40 away, 100 is 50).
    assert int(sampling.choose_iframe([0, 100], 40, 50, 5, seed(0))) == 0
    assert int(sampling.choose_iframe([0, 100], 52, 70, 5, seed(0))) == 1
    # Ties go to the earlier I-frame.
    assert int(sampling.nearest_iframe([0, 100], 50)) == 0


def test_nearest_iframes_vector():
    np.testing.assert_array_equal(
        sampling.nearest_iframes([0, 6, 12, 18], [5, 9, 15, 40]), [1, 1, 2, 3]
    )


# ----------------------------------------------------------------------------- I-frame choice


def clip_frames(start, clip_len=16, stride=4):
    return start + stride * np.arange(clip_len)


def test_choose_iframe_never_a_clip_frame_when_another_lies_in_the_window():
    # GOP 12, clip 16 x 4 from 20: frames 20, 24, ..., 80 hold the I-frames 24, 36, ..., 72;
    # 84 is no clip frame and lies in the window [15, 85]: it is the only candidate.
    iframes = np.arange(0, 200, 12)
    exclude = clip_frames(20)
    got = {
        int(iframes[sampling.choose_iframe(iframes, 20, 80, 5, seed(n), exclude=exclude)])
        for n in range(40)
    }
    assert got == {84}
    # Start 23: frames 23, 27, ..., 83 (odd) never hold an I-frame: every one in [18, 88] counts.
    got = {
        int(iframes[sampling.choose_iframe(iframes, 23, 83, 5, seed(n), exclude=clip_frames(23))])
        for n in range(60)
    }
    assert got == {24, 36, 48, 60, 72, 84}
    # Without exclude, clip frames are candidates as before.
    got = {int(iframes[sampling.choose_iframe(iframes, 20, 80, 5, seed(n))]) for n in range(60)}
    assert got == {24, 36, 48, 60, 72, 84}


def test_choose_iframe_fallbacks_with_exclusion():
    iframes = np.arange(0, 200, 12)
    # Start 24: every I-frame in [19, 89] (24 .. 84) is a clip frame; the nearest others are
    # 12 and 96, both 12 frames from the span: the earlier wins.
    assert int(sampling.choose_iframe(iframes, 24, 84, 5, seed(0), exclude=clip_frames(24))) == 1
    # I-frames 0, 30, 96, clip 30 .. 90, window 0: 30 is a clip frame; 96 (6 frames after the
    # span) is nearer than 0 (30 before it).
    assert (
        int(sampling.choose_iframe([0, 30, 96], 30, 90, 0, seed(0), exclude=clip_frames(30, 16, 4)))
        == 2
    )
    # Every I-frame of the video is a clip frame: the nearest one, as without exclusion.
    assert int(sampling.choose_iframe([24, 36], 20, 80, 5, seed(0), exclude=clip_frames(20))) == 0
    assert int(sampling.choose_iframe([36, 24], 20, 80, 0, seed(0), exclude=clip_frames(20))) == 0


def reference_iframe_candidates(iframes, start, end, window, clip):
    """NumPy statement of the rule: I-frames in the window that are not clip frames, else the
    nearest non-clip I-frame, else the nearest I-frame (earliest on ties)."""
    iframes = np.asarray(iframes)
    allowed = ~np.isin(iframes, clip)
    near = (iframes >= start - window) & (iframes <= end + window) & allowed
    if near.any():
        return set(np.flatnonzero(near).tolist())
    distance = np.maximum(np.maximum(start - iframes, iframes - end), 0)
    pool = allowed if allowed.any() else np.ones_like(allowed)
    return {int(np.flatnonzero(pool)[np.argmin(distance[pool])])}


@pytest.mark.parametrize("gop, stride, window", [(12, 4, 5), (6, 2, 2), (12, 3, 0), (5, 5, 1)])
def test_sampled_iframe_follows_the_rule_over_many_seeds(gop, stride, window):
    cfg = DataConfig(clip_stride=stride, iframe_window=window)
    lengths = np.arange(sampling.min_frames(cfg), sampling.min_frames(cfg) + 40, 3)

    def draw(t, n):
        iframes = tf.range(0, t, gop, dtype=tf.int64)
        w = sampling.sample_pretrain_windows(
            t, iframes, tf.stack([tf.constant(9, tf.int64), n]), cfg
        )
        return t, w["clip_indices"], w["iframe"]

    pairs = [(t, n) for t in lengths for n in range(12)]
    ds = tf.data.Dataset.from_tensor_slices(
        (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))
    )
    seen_fallback = 0
    for t, clip, ordinal in ds.map(draw).as_numpy_iterator():
        iframes = np.arange(0, t, gop)
        expected = reference_iframe_candidates(iframes, clip[0], clip[-1], window, clip)
        assert ordinal in expected, (t, clip[0])
        # A clip frame only when the video has no other I-frame (T = 71, start 0, GOP 12).
        assert iframes[ordinal] not in clip or np.isin(iframes, clip).all()
        seen_fallback += len(expected) == 1 and not (
            clip[0] - window <= iframes[ordinal] <= clip[-1] + window
        )
    if gop % stride == 0:  # some clips hold every nearby I-frame: the fallback is exercised
        assert seen_fallback > 0


def test_exclusion_removes_the_identical_frame_measured_on_a_realistic_case():
    """GOP 12, stride 4, span 61, window 5, T = 120..300: the share of samples whose I-frame
    is one of the clip frames, without (about 22%) and with the exclusion (none)."""
    shares = {}
    for exclude in (False, True):
        cfg = DataConfig(iframe_excludes_clip_frames=exclude)

        def same(t, n, cfg=cfg):
            iframes = tf.range(0, t, 12, dtype=tf.int64)
            w = sampling.sample_pretrain_windows(
                t, iframes, tf.stack([t, n]), cfg
            )  # seeded by (T, n): independent draws
            return tf.reduce_any(tf.equal(w["clip_indices"], tf.gather(iframes, w["iframe"])))

        lengths = np.repeat(np.arange(120, 301, dtype=np.int64), 16)
        seeds = np.tile(np.arange(16, dtype=np.int64), 181)
        ds = tf.data.Dataset.from_tensor_slices((lengths, seeds)).map(same).batch(1024)
        shares[exclude] = np.concatenate(list(ds.as_numpy_iterator())).mean()
    print(
        f"identical I-frame in {shares[False]:.1%} of samples, {shares[True]:.1%} with the "
        f"exclusion"
    )
    assert 0.18 < shares[False] < 0.28 and shares[True] == 0.0


def test_config_rejects_a_non_bool_exclusion():
    with pytest.raises(ValueError, match="iframe_excludes_clip_frames"):
        DataConfig(iframe_excludes_clip_frames=1)


# ----------------------------------------------------------------------------- evaluation clips


def authors_starts(t, n, span):
    """The authors' VideoDataset (test mode), in NumPy as they wrote it."""
    if t <= span:
        return np.zeros(n, int)
    edges = np.linspace(0, t - span, n + 1)
    return ((edges[1:] + edges[:-1]) / 2.0).astype(int)


def vcop_starts(t, n, span):
    """VCOP's UCF101ClipRetrievalDataset: centres linspace(span / 2, T - span / 2, N), starts
    int(centre - span / 2); zeros when T < span (undefined in VCOP)."""
    if t < span:
        return np.zeros(n, int)
    return np.array([int(c - span / 2) for c in np.linspace(span / 2, t - span / 2, n)])


def coclr_indices(t, clip_len, ds):
    """CoCLR's frame_sampler in test mode: [windows, clip_len] frame indices."""
    if t - clip_len * ds <= 0:  # pad left, only sample once
        sequence = np.arange(clip_len) * ds
        seq_idx = np.zeros_like(sequence)
        sequence = sequence[sequence < t]
        seq_idx[-len(sequence) :] = sequence
        return seq_idx[None]
    available = t - clip_len * ds
    start = np.arange(0, available + 1, clip_len * ds // 2 - 1)[:, None]
    return start + np.arange(clip_len)[None] * ds


def starts(t, positions, n=10, clip_len=16, stride=4):
    return sampling.eval_clip_starts(
        t, positions=positions, num_clips=n, clip_len=clip_len, clip_stride=stride
    ).numpy()


@pytest.mark.parametrize("t", [80, 120, 186, 61, 70, 89, 30, 1000])
def test_authors_and_vcop_positions_match_their_code(t):
    np.testing.assert_array_equal(starts(t, "authors"), authors_starts(t, 10, 61))
    np.testing.assert_array_equal(starts(t, "vcop"), vcop_starts(t, 10, 61))
    # No clip repeats once the video is long enough (see test_no_repeats_from_span_plus_n).
    if t >= 61 + 10:
        assert len(set(starts(t, "authors"))) == 10
    if t >= 61 + 10 - 1:
        assert len(set(starts(t, "vcop"))) == 10


def test_no_repeats_from_span_plus_n():
    """VCOP's starts are distinct from T = span + N - 1, the authors' from T = span + N: at
    span + N - 1 their midpoints are (N - 1) / N < 1 frame apart and two share a frame."""
    for clip_len, stride, n in [(16, 4, 10), (4, 2, 3), (8, 1, 5)]:
        span = (clip_len - 1) * stride + 1
        for t in range(span + n - 1, span + n + 60):
            assert len(set(starts(t, "vcop", n, clip_len, stride))) == n, t
            if t >= span + n:
                assert len(set(starts(t, "authors", n, clip_len, stride))) == n, t
        assert len(set(starts(span + n - 1, "authors", n, clip_len, stride))) == n - 1
    np.testing.assert_array_equal(starts(70, "authors"), [0, 1, 2, 3, 4, 4, 5, 6, 7, 8])


def test_positions_known_answers():
    # T = 80: start range [0, 19]; authors' midpoints 0.95, 2.85, ... -> 0, 2, 4, ..., 18.
    np.testing.assert_array_equal(starts(80, "authors"), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    # VCOP: 19 * i / 9 truncated.
    np.testing.assert_array_equal(starts(80, "vcop"), [0, 2, 4, 6, 8, 10, 12, 14, 16, 19])
    # T = 89: the exact midpoint of segment 2 is 7 (= 28 * 2.5 / 10) but NumPy's float64 gives
    # 6.999...: the authors' code starts that clip at 6, and so do we.
    assert starts(89, "authors")[2] == 6
    # Shorter than a span (or exactly one): every clip starts at 0 and repeats the last frame.
    for rule in ("authors", "vcop"):
        np.testing.assert_array_equal(starts(30, rule), np.zeros(10))
        np.testing.assert_array_equal(starts(61, rule), np.zeros(10))
        np.testing.assert_array_equal(
            sampling.clip_indices(starts(30, rule), 16, 4, 30)[0], np.minimum(4 * np.arange(16), 29)
        )


def test_positions_over_many_lengths_and_clip_shapes_inside_tf_data():
    """Bit-exact with the NumPy references for every T, in graph mode (float64 arithmetic)."""
    for clip_len, stride, n in [(16, 4, 10), (16, 1, 10), (8, 2, 5), (3, 2, 4), (16, 4, 1)]:
        span = (clip_len - 1) * stride + 1
        lengths = np.arange(1, 450, dtype=np.int64)
        ds = tf.data.Dataset.from_tensor_slices(lengths).map(
            lambda t, n=n, clip_len=clip_len, stride=stride: tuple(
                sampling.eval_clip_starts(
                    t, positions=p, num_clips=n, clip_len=clip_len, clip_stride=stride
                )
                for p in ("authors", "vcop")
            )
        )
        for t, (a, v) in zip(lengths, ds.as_numpy_iterator()):
            np.testing.assert_array_equal(a, authors_starts(t, n, span), err_msg=f"authors {t}")
            np.testing.assert_array_equal(v, vcop_starts(t, n, span), err_msg=f"vcop {t}")


@pytest.mark.parametrize("t", [80, 120, 186, 64, 65, 95, 96, 20, 1, 500])
@pytest.mark.parametrize("clip_len, stride", [(16, 4), (32, 1), (4, 2)])
def test_sliding_windows_match_coclr(t, clip_len, stride):
    got = sampling.clip_indices(
        starts(t, "sliding", n=None, clip_len=clip_len, stride=stride), clip_len, stride, t
    )
    np.testing.assert_array_equal(got, coclr_indices(t, clip_len, stride))


def test_sliding_windows_known_answers():
    # 16 x 4 counts as 64 frames; windows every 64 // 2 - 1 = 31 frames up to T - 64.
    np.testing.assert_array_equal(starts(80, "sliding", n=None), [0])
    np.testing.assert_array_equal(starts(120, "sliding", n=None), [0, 31])
    np.testing.assert_array_equal(starts(186, "sliding", n=None), [0, 31, 62, 93])
    # T = 20: one window, frames 0, 4, 8, 12, 16 at its end and frame 0 before them.
    short = starts(20, "sliding", n=None)
    np.testing.assert_array_equal(short, [-44])
    np.testing.assert_array_equal(
        sampling.clip_indices(short, 16, 4, 20)[0], [0] * 11 + [0, 4, 8, 12, 16]
    )
    # One frame per clip (I-frame exports): CoCLR's hop would be 0; we step by 1.
    np.testing.assert_array_equal(starts(4, "sliding", n=None, clip_len=1, stride=1), [0, 1, 2, 3])


def test_unknown_positions_are_named():
    with pytest.raises(ValueError, match="'centred'"):
        starts(100, "centred")


def test_windows_identical_inside_tf_data():
    cfg = DataConfig(
        clip_len=4, clip_stride=2, motion_len=3, motion_gap=2, num_negatives=2, iframe_window=2
    )
    iframes = tf.constant([0, 6, 12, 18, 24], tf.int64)

    def draw(n):
        key = tf.stack([tf.constant(1234, tf.int64), n])
        return sampling.sample_pretrain_windows(30, iframes, key, cfg)

    graph = list(tf.data.Dataset.range(8).map(draw).as_numpy_iterator())
    for n, g in enumerate(graph):
        eager = draw(tf.constant(n, tf.int64))
        for key, value in eager.items():
            np.testing.assert_array_equal(value.numpy(), g[key], err_msg=key)
