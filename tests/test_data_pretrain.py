"""The pretraining dataset on painted records: windows, shared crop, flips, skips, seeds."""

import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.config import ColorJitterConfig, DataConfig
from tfcmvp.data import keys, pretrain_dataset, synthetic
from tfcmvp.data.pretrain import make_pretrain_sample

# Tiny windows: clip 4 x 2 (span 7), motion 3 frames starting 2 after the clip's end,
# 2 negatives, I-frame within 2 frames; a sample needs 7 + 1 + 3 = 11 frames.
TINY = DataConfig(
    clip_len=4,
    clip_stride=2,
    motion_len=3,
    motion_gap=2,
    num_negatives=2,
    iframe_window=2,
    crop_size=16,
)
PLAIN = dataclasses.replace(TINY, color_jitter=None, blur=None)


def plain(**changes) -> DataConfig:
    """PLAIN (tiny windows, no jitter, no blur) with `changes`."""
    return dataclasses.replace(PLAIN, **changes)


GOP = 6
LABELS = {"v0": 0, "v1": 1, "v2": 2, "short0": 3, "short1": 4, "noiframe": 5}
LENGTHS = {"v0": 24, "v1": 30, "v2": 39, "short0": 9, "short1": 10, "noiframe": 20}


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain")
    records = [
        synthetic.painted_record(
            v, LENGTHS[v], label=LABELS[v], gop=GOP, iframe_indices=[] if v == "noiframe" else None
        )
        for v in LENGTHS
    ]
    synthetic.write_shards(records, str(folder / "train"), num_shards=2)
    return str(folder / "train-*.tfrecord.gz")


def samples(ds, num_batches):
    """Unbatched NumPy samples of the first ``num_batches`` batches."""
    out = []
    for batch in ds.take(num_batches).as_numpy_iterator():
        for i in range(len(batch[keys.VIDEO_ID])):
            out.append({k: v[i] for k, v in batch.items()})
    return out


def motion_frames(motion_clip):
    """Frame indices of a scaled motion clip [L, S, S, 2] (x = index / 4 px, mv_div 10)."""
    return synthetic.frame_index_from_mv(motion_clip[..., 0] * 10.0)


def test_batch_shapes_dtypes_and_graph_only(pattern):
    ds = pretrain_dataset(pattern, 2, TINY, seed=0)
    batch = next(iter(ds))
    assert batch["clip"].shape == (2, 4, 16, 16, 3) and batch["clip"].dtype == tf.float32
    assert batch["iframe"].shape == (2, 16, 16, 3) and batch["iframe"].dtype == tf.float32
    assert batch["motion"].shape == (2, 3, 3, 16, 16, 2) and batch["motion"].dtype == tf.float32
    assert batch["label"].shape == (2,) and batch["label"].dtype == tf.int64
    assert batch["video_id"].dtype == tf.string
    assert ds.element_spec["clip"].shape == (2, 4, 16, 16, 3)  # static: drop_remainder
    # TF ops end to end: no Python callbacks anywhere in the input graph.
    assert b"PyFunc" not in ds._as_serialized_graph().numpy()


def test_windows_and_content(pattern):
    ds = pretrain_dataset(pattern, 2, PLAIN, seed=1, deterministic=True)
    got = samples(ds, 10)
    for s in got:
        vid = s["video_id"].decode()
        assert vid in ("v0", "v1", "v2")  # short videos and videos without I-frames never do
        assert s["label"] == LABELS[vid]
        clip = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["clip"]))
        start = clip[0]
        np.testing.assert_array_equal(clip, start + 2 * np.arange(4))  # decoded JPEG frames
        assert 0 <= start <= LENGTHS[vid] - 11
        end = clip[-1]
        target = motion_frames(s["motion"][0])
        np.testing.assert_array_equal(target, end + 2 + np.arange(3))  # clip end + gap
        for negative in s["motion"][1:]:
            frames = motion_frames(negative)
            np.testing.assert_array_equal(frames, frames[0] + np.arange(3))
            assert abs(frames[0] - target[0]) >= 3  # no overlap with the target window
            assert frames[-1] < LENGTHS[vid]
        iframe = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["iframe"]))
        # Never one of the clip's frames (iframe_excludes_clip_frames); within 2 frames of the
        # span unless every I-frame there is a clip frame (then the nearest other one).
        assert iframe % GOP == 0 and iframe not in clip
        in_window = [
            i for i in range(0, LENGTHS[vid], GOP) if start - 2 <= i <= end + 2 and i not in clip
        ]
        assert start - 2 <= iframe <= end + 2 or not in_window


def ramp(rgb_normalised):
    """Frame-position ramp of a clip frame (blue / 255) [S, S]."""
    return synthetic.denormalize_rgb(rgb_normalised)[..., 2] / 255.0


def test_clip_and_target_share_crop_and_flip(pattern):
    ds = pretrain_dataset(pattern, 2, PLAIN, seed=2, deterministic=True)
    got = samples(ds, 10)
    flipped, iframe_differs, negative_differs = 0, 0, 0
    for s in got:
        clip_ramp = ramp(s["clip"][0])
        target_ramp = s["motion"][0, 0, ..., 1]  # y = 10 u px, / mv_div 10 = u
        # Same scene positions (JPEG and border clamping of the coarse grid aside).
        np.testing.assert_allclose(clip_ramp, target_ramp, atol=0.045)
        for t in range(1, 4):
            np.testing.assert_allclose(ramp(s["clip"][t]), clip_ramp, atol=0.02)
        if clip_ramp[:, 0].mean() > clip_ramp[:, -1].mean():  # mirrored
            flipped += 1
            assert np.all(s["motion"][0, ..., 0] <= 0)  # x negated with the flip
        else:
            assert np.all(s["motion"][0, ..., 0] >= 0)
        iframe_differs += np.abs(ramp(s["iframe"]) - clip_ramp).max() > 0.1
        negative_differs += np.abs(s["motion"][1, 0, ..., 1] - target_ramp).max() > 0.1
    assert 0 < flipped < len(got)
    # The I-frame and the negatives are cropped and flipped on their own.
    assert iframe_differs > len(got) // 2 and negative_differs > len(got) // 2


@pytest.mark.parametrize("negate", [True, False])
def test_flip_negates_vector_x_only_when_asked(pattern, negate):
    data = plain(flip_prob=1.0, flip_negates_mv_x=negate)
    ds = pretrain_dataset(pattern, 2, data, seed=3)
    for s in samples(ds, 2):
        clip_ramp = ramp(s["clip"][0])
        assert clip_ramp[:, 0].mean() > clip_ramp[:, -1].mean()  # always mirrored
        x = s["motion"][..., 0]  # target and negatives: index / 40 >= 0 before the flip
        if negate:
            assert np.all(x <= 0) and x.min() < 0
        else:
            assert np.all(x >= 0) and x.max() > 0


def test_current_period_target_under_clip_without_negatives(pattern):
    ds = pretrain_dataset(pattern, 2, plain(period="current", num_negatives=0), seed=4)
    assert ds.element_spec["motion"].shape == (2, 1, 3, 16, 16, 2)
    for s in samples(ds, 3):
        start = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["clip"][0]))
        # 3 frames centred in the 7-frame span: offset (7 - 3) // 2 = 2.
        np.testing.assert_array_equal(motion_frames(s["motion"][0]), start + 2 + np.arange(3))


def test_short_videos_are_skipped_counted_and_logged(pattern, caplog):
    with caplog.at_level(logging.WARNING, logger="tfcmvp.data"):
        ds = pretrain_dataset(pattern, 1, plain(shuffle_buffer=0), seed=0, repeat=False)
    assert "skipping 2 of 6 videos with fewer than 11 frames, e.g. short0, short1" in caplog.text
    assert "skipping 1 of 6 videos with no I-frame, e.g. noiframe" in caplog.text
    ids = sorted(s["video_id"].decode() for s in samples(ds, 100))
    assert ids == ["v0", "v1", "v2"]  # one epoch: each usable video once


def test_no_usable_video_is_an_error(tmp_path):
    synthetic.write_shards([synthetic.painted_record("tiny", 5)], str(tmp_path / "train"))
    with pytest.raises(ValueError, match="none of the 1 videos .* 1 fewer than 11 frames"):
        pretrain_dataset(str(tmp_path / "train-*"), 1, TINY)


def test_same_seed_same_batches_other_seed_differs(pattern):
    def first_batches(seed):
        ds = pretrain_dataset(
            pattern, 2, TINY, seed=seed, deterministic=True, count_skipped=False
        )  # with jitter and blur
        return list(ds.take(3).as_numpy_iterator())

    a, b, c = first_batches(5), first_batches(5), first_batches(6)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    assert any(not np.array_equal(x["clip"], z["clip"]) for x, z in zip(a, c))


def test_each_visit_of_a_video_is_a_new_sample(pattern):
    ds = pretrain_dataset(pattern, 3, PLAIN, seed=7, deterministic=True, count_skipped=False)
    clips = {}
    for s in samples(ds, 6):  # 18 samples of 3 videos
        clips.setdefault(s["video_id"], []).append(s["clip"])
    for visits in clips.values():
        assert len(visits) >= 2
        assert any(not np.allclose(visits[0], v) for v in visits[1:])


def test_iframe_exclusion_reaches_the_dataset(pattern):
    """iframe_excludes_clip_frames=False restores clip frames as I-frame candidates (GOP 6,
    stride 2: every I-frame inside the span is a clip frame when the clip starts even)."""
    identical = {}
    for exclude in (False, True):
        data = plain(iframe_excludes_clip_frames=exclude)
        ds = pretrain_dataset(pattern, 2, data, seed=4, deterministic=True)
        count = 0
        for s in samples(ds, 12):
            clip = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["clip"]))
            iframe = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["iframe"]))
            count += iframe in clip
        identical[exclude] = count
    assert identical[False] > 0 and identical[True] == 0


def test_sample_is_identical_eagerly_and_inside_tf_data(pattern):
    files = tf.io.gfile.glob(pattern)
    serialized = next(iter(tf.data.TFRecordDataset(files[0], compression_type="GZIP")))
    seed = tf.constant([9, 1], tf.int64)
    eager = make_pretrain_sample(serialized, seed, TINY)  # with jitter and blur
    graph = (
        tf.data.Dataset.from_tensors((serialized, seed))
        .map(lambda s, k: make_pretrain_sample(s, k, TINY))
        .get_single_element()
    )
    assert eager["video_id"].numpy() == graph["video_id"].numpy()
    for key in ("clip", "iframe", "motion", "label"):
        np.testing.assert_allclose(eager[key].numpy(), graph[key].numpy(), atol=1e-5, err_msg=key)


@pytest.mark.parametrize("cache", ["memory", "file"])
def test_cached_records_give_the_same_batches_without_rereading_the_shards(tmp_path, cache):
    """The first epoch equals the uncached pipeline's; later epochs come from the cache:
    they still run after the shards are gone, which an uncached pipeline cannot."""
    import shutil

    folder = tmp_path / "shards"
    folder.mkdir()
    records = [
        synthetic.painted_record(v, LENGTHS[v], label=LABELS[v], gop=GOP)
        for v in ("v0", "v1", "v2")
    ]
    synthetic.write_shards(records, str(folder / "train"), num_shards=2)
    kwargs = dict(seed=3, deterministic=True, count_skipped=False)
    where = "memory" if cache == "memory" else str(tmp_path / "cache" / "records")  # (a new folder)
    files = str(folder / "train-*")
    uncached = list(
        pretrain_dataset(files, 3, plain(shuffle_buffer=1), **kwargs).take(1).as_numpy_iterator()
    )
    data = plain(shuffle_buffer=1, cache=where)
    iterator = pretrain_dataset(files, 3, data, **kwargs).as_numpy_iterator()
    first = next(iterator)  # one batch = one epoch of the 3 videos
    for key in first:
        np.testing.assert_array_equal(first[key], uncached[0][key], err_msg=key)
    second = next(iterator)  # the cache is complete once the second epoch starts
    shutil.rmtree(folder)
    later = [next(iterator) for _ in range(3)]
    assert sorted(second["video_id"]) == sorted(later[-1]["video_id"]) == [b"v0", b"v1", b"v2"]
    assert not np.array_equal(second["clip"], later[-1]["clip"])  # new windows and crops
    if cache == "file":
        assert list((tmp_path / "cache").glob("records*.index"))


def test_iframe_color_jitter_changes_the_iframe_alone(pattern):
    def first_batches(**changes):
        ds = pretrain_dataset(
            pattern, 2, plain(**changes), seed=3, deterministic=True, count_skipped=False
        )
        return list(ds.take(2).as_numpy_iterator())

    without = first_batches()
    own = first_batches(
        iframe_color_jitter=ColorJitterConfig(hue=0.5, prob=1.0, grayscale_prob=0.0)
    )
    for x, y in zip(without, own):
        # The clip and the motion clips keep the plain recipe (no jitter) ...
        np.testing.assert_array_equal(x["clip"], y["clip"])
        np.testing.assert_array_equal(x["motion"], y["motion"])
        # ... the I-frame gets its own jitter.
        assert not np.allclose(x["iframe"], y["iframe"], atol=1e-3)
    # null (the default) is the clip's recipe for the I-frame too.
    same = first_batches(iframe_color_jitter=None)
    np.testing.assert_array_equal(without[0]["iframe"], same[0]["iframe"])
