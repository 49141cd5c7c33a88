"""Window arithmetic of tfcmvp.data.sampling: known answers, eager and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.data import sampling
from tfcmvp.data.sampling import SamplingConfig


def seed(n):
    return tf.constant([1234, n], tf.int64)


def test_config_derived_lengths():
    cfg = SamplingConfig()
    assert cfg.span == 61
    assert cfg.min_frames == 71  # 61 + 2 + 8, as in method_facts
    assert SamplingConfig(period="current").min_frames == 61
    assert SamplingConfig(clip_len=4, clip_stride=2, motion_len=3, motion_gap=2).min_frames == 11


@pytest.mark.parametrize("kwargs, word", [
    ({"period": "past"}, "period"), ({"clip_len": 0}, "clip_len"),
    ({"num_negatives": -1}, "num_negatives"), ({"motion_gap": 1.5}, "motion_gap")])
def test_config_rejects_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SamplingConfig(**kwargs)


def test_target_start_future_and_current():
    cfg = SamplingConfig()
    for start in (0, 5, 40):
        # Future: the clip's last frame is start + 60; the target starts 3 later.
        assert int(sampling.target_start(start, cfg)) == start + 60 + 3
        # Current: 8 frames centred in the 61-frame span.
        assert int(sampling.target_start(start, SamplingConfig(period="current"))) == start + 26


def test_clip_indices_stride_and_clamp():
    np.testing.assert_array_equal(sampling.clip_indices(3, 4, 2, 100), [3, 5, 7, 9])
    # A video shorter than the span repeats its last frame.
    np.testing.assert_array_equal(sampling.clip_indices(0, 5, 4, 10), [0, 4, 8, 9, 9])
    np.testing.assert_array_equal(sampling.clip_indices([0, 2], 2, 1, 3), [[0, 1], [2, 2]])


@pytest.mark.parametrize("num_frames", [71, 100, 250])
def test_pretrain_windows_default_config(num_frames):
    cfg = SamplingConfig()
    iframes = np.arange(0, num_frames, 12)
    for n in range(25):
        w = {k: v.numpy() for k, v in
             sampling.sample_pretrain_windows(num_frames, iframes, seed(n), cfg).items()}
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
        assert s - 5 <= iframe <= end + 5


def test_shortest_video_has_one_clip_position():
    w = sampling.sample_pretrain_windows(71, [0, 12, 24, 36, 48, 60], seed(3), SamplingConfig())
    assert int(w["clip_start"]) == 0
    np.testing.assert_array_equal(w["motion_indices"][0], np.arange(63, 71))


def test_current_period_target_under_clip():
    cfg = SamplingConfig(period="current")
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
        sampling.nearest_iframes([0, 6, 12, 18], [5, 9, 15, 40]), [1, 1, 2, 3])


def test_eval_clip_starts_midpoints_of_segments():
    # T=1000, span 61: centres 50, 150, ...; a clip starting at s is centred on s + 30.5.
    np.testing.assert_array_equal(
        sampling.eval_clip_starts(1000, 10, 61), 100 * np.arange(10) + 20)
    # T=200: the first and the last clips are clamped into [0, 139].
    np.testing.assert_array_equal(
        sampling.eval_clip_starts(200, 10, 61), [0, 0, 20, 40, 60, 80, 100, 120, 139, 139])
    # Shorter than one span: every clip starts at 0.
    np.testing.assert_array_equal(sampling.eval_clip_starts(30, 10, 61), np.zeros(10))


def test_eval_clip_starts_numpy_reference():
    for t, n, span in [(37, 4, 5), (120, 10, 61), (91, 7, 13)]:
        centres = (np.arange(n) + 0.5) * t / n
        expected = np.clip(np.floor(centres - span / 2 + 0.5), 0, max(t - span, 0))
        np.testing.assert_array_equal(sampling.eval_clip_starts(t, n, span), expected)


def test_windows_identical_inside_tf_data():
    cfg = SamplingConfig(clip_len=4, clip_stride=2, motion_len=3, motion_gap=2, num_negatives=2,
                         iframe_window=2)
    iframes = tf.constant([0, 6, 12, 18, 24], tf.int64)

    def draw(n):
        key = tf.stack([tf.constant(1234, tf.int64), n])
        return sampling.sample_pretrain_windows(30, iframes, key, cfg)

    graph = list(tf.data.Dataset.range(8).map(draw).as_numpy_iterator())
    for n, g in enumerate(graph):
        eager = draw(tf.constant(n, tf.int64))
        for key, value in eager.items():
            np.testing.assert_array_equal(value.numpy(), g[key], err_msg=key)
