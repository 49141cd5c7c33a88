"""The evaluation dataset on painted records: clip positions, padding, modalities, coverage."""

import numpy as np
import pytest

from tfcmvp.config import DataConfig
from tfcmvp.data import eval_dataset, synthetic

# 4 clips of 3 frames at stride 2 (span 5), 3 motion frames, 16x16 centre crop of 40x32 frames.
DATA = DataConfig(clip_len=3, clip_stride=2, motion_len=3, crop_size=16)
TINY = dict(num_clips=4, resize_short=32)
LENGTHS = {"long": 40, "mid": 23, "short": 3}
GOP = 6


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    records = [
        synthetic.painted_record(v, n, label=i, label_name=f"class{i}", gop=GOP)
        for i, (v, n) in enumerate(LENGTHS.items())
    ]
    synthetic.write_shards(records, str(folder / "test"), num_shards=2)
    return str(folder / "test-*.tfrecord.gz")


def by_video(ds):
    return {e["video_id"].decode(): e for e in ds.as_numpy_iterator()}


def expected_starts(num_frames, num_clips=4, span=5):
    """The authors' test positions (their VideoDataset): midpoints of N segments of [0, T - S]."""
    if num_frames <= span:
        return np.zeros(num_clips, int)
    edges = np.linspace(0, num_frames - span, num_clips + 1)
    return ((edges[1:] + edges[:-1]) / 2.0).astype(int)


def vcop_starts(num_frames, num_clips=4, span=5):
    """VCOP's retrieval positions: centres linspace(S / 2, T - S / 2, N)."""
    if num_frames < span:
        return np.zeros(num_clips, int)
    centres = np.linspace(span / 2, num_frames - span / 2, num_clips)
    return np.array([int(c - span / 2) for c in centres])


def coclr_frames(num_frames, clip_len=3, ds=2):
    """CoCLR's test-mode frame_sampler: [windows, clip_len] frame indices."""
    if num_frames - clip_len * ds <= 0:
        sequence = np.arange(clip_len) * ds
        seq_idx = np.zeros_like(sequence)
        sequence = sequence[sequence < num_frames]
        seq_idx[-len(sequence) :] = sequence
        return seq_idx[None]
    start = np.arange(0, num_frames - clip_len * ds + 1, clip_len * ds // 2 - 1)[:, None]
    return start + np.arange(clip_len)[None] * ds


def test_rgb_clip_positions_and_padding(pattern):
    videos = by_video(eval_dataset(pattern, DATA, modality="rgb", **TINY))
    assert sorted(videos) == ["long", "mid", "short"]  # every video once, short ones too
    # Default: the authors' positions, midpoints of 4 segments of the start range [0, 35].
    np.testing.assert_array_equal(expected_starts(40), [4, 13, 21, 30])
    for vid, n in LENGTHS.items():
        e = videos[vid]
        assert e["clips"].shape == (4, 3, 16, 16, 3) and e["clips"].dtype == np.float32
        frames = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(e["clips"]))
        starts = expected_starts(n)
        expected = np.minimum(starts[:, None] + 2 * np.arange(3), n - 1)  # last frame repeats
        np.testing.assert_array_equal(frames, expected, err_msg=vid)
        assert e["label_name"] == f"class{list(LENGTHS).index(vid)}".encode()
    np.testing.assert_array_equal(
        synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(videos["short"]["clips"])),
        [[0, 2, 2]] * 4,
    )


def test_rgb_centre_crop_content(pattern):
    e = by_video(eval_dataset(pattern, DATA, modality="rgb", **TINY))["long"]
    blue = synthetic.denormalize_rgb(e["clips"])[..., 2]  # [N, T, 16, 16]
    # Short side 32 -> centre 16x16 of the 40x32 frame: columns 12..27, painted 255 (c + .5) / 40.
    expected = np.rint(255 * (np.arange(12, 28) + 0.5) / 40)
    np.testing.assert_allclose(blue[0, 0, 5], expected, atol=4)
    np.testing.assert_allclose(blue[3, 2, 10], expected, atol=4)


def test_iframe_modality_nearest_to_clip_centre(pattern):
    videos = by_video(eval_dataset(pattern, DATA, modality="iframe", **TINY))
    e = videos["long"]
    assert e["clips"].shape == (4, 16, 16, 3)
    got = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(e["clips"]))
    # Clip centres (start + 2): 6, 15, 23, 32 -> I-frames (every 6) 6, 12 (tie 12/18: earlier),
    # 24, 30.
    np.testing.assert_array_equal(got, [6, 12, 24, 30])
    np.testing.assert_array_equal(
        synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(videos["short"]["clips"])),
        [0, 0, 0, 0],
    )


def test_iframe_modality_without_iframes_uses_the_clip_centre(tmp_path):
    record = synthetic.painted_record("noi", 20, iframe_indices=[])
    synthetic.write_shards([record], str(tmp_path / "test"))
    e = next(
        eval_dataset(str(tmp_path / "test-*"), DATA, modality="iframe", **TINY).as_numpy_iterator()
    )
    got = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(e["clips"]))
    np.testing.assert_array_equal(got, expected_starts(20) + 2)  # the RGB frame mid-clip


def test_motion_modality_centred_window_scaled(pattern):
    videos = by_video(eval_dataset(pattern, DATA, modality="motion", **TINY))
    for vid, n in LENGTHS.items():
        clips = videos[vid]["clips"]
        assert clips.shape == (4, 3, 16, 16, 2)
        frames = synthetic.frame_index_from_mv(clips[..., 0] * 10.0)  # [N, L]
        first = np.clip(expected_starts(n) + (5 - 3) // 2, 0, max(n - 3, 0))
        expected = np.minimum(first[:, None] + np.arange(3), n - 1)
        np.testing.assert_array_equal(frames, expected, err_msg=vid)
        # x = index / 4 px -> clamped to 10 px, / 10.
        np.testing.assert_allclose(
            clips[..., 0],
            np.broadcast_to((expected / 40.0)[..., None, None], clips.shape[:-1]),
            atol=1e-6,
        )


@pytest.mark.parametrize("positions", ["vcop", "sliding"])
def test_retrieval_positions(pattern, positions):
    videos = by_video(eval_dataset(pattern, DATA, modality="rgb", positions=positions, **TINY))
    for vid, n in LENGTHS.items():
        frames = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(videos[vid]["clips"]))
        if positions == "vcop":
            starts = vcop_starts(n)
            expected = np.minimum(starts[:, None] + 2 * np.arange(3), n - 1)
        else:  # the number of windows depends on the length: 18, 9, 1
            expected = coclr_frames(n)
        np.testing.assert_array_equal(frames, expected, err_msg=vid)
    if positions == "vcop":
        np.testing.assert_array_equal(vcop_starts(40), [0, 11, 23, 35])
    else:  # windows 0, 2, ..., 34: hop 3 * 2 // 2 - 1 = 2 up to 40 - 3 * 2
        assert len(videos["long"]["clips"]) == 18
        np.testing.assert_array_equal(coclr_frames(3), [[0, 0, 2]])  # padded with frame 0


def test_batched_and_deterministic(pattern):
    a = list(eval_dataset(pattern, DATA, modality="rgb", batch_size=2, **TINY).as_numpy_iterator())
    b = list(eval_dataset(pattern, DATA, modality="rgb", batch_size=2, **TINY).as_numpy_iterator())
    assert [x["clips"].shape for x in a] == [(2, 4, 3, 16, 16, 3), (1, 4, 3, 16, 16, 3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["clips"], y["clips"])
        np.testing.assert_array_equal(x["video_id"], y["video_id"])


def test_default_geometry_shapes(pattern):
    # Defaults: 10 clips of 16 frames, crop 112 from short side 128 (the 40x32 frames upsample).
    e = next(eval_dataset(pattern, modality="motion").as_numpy_iterator())
    assert e["clips"].shape == (10, 8, 112, 112, 2)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"modality": "flow"}, "modality"),
        ({"num_clips": 0}, "num_clips"),
        ({"positions": "centred"}, "positions"),
        ({"positions": "sliding", "batch_size": 2}, "batch_size=None"),
    ],
)
def test_bad_arguments(pattern, kwargs, word):
    with pytest.raises(ValueError, match=word):
        eval_dataset(pattern, **kwargs)
