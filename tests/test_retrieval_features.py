"""Per-video retrieval features of tiny exports: modality from the export, clip means, cache."""

import json

import numpy as np
import pytest

from tfcmvp.data import synthetic
from tfcmvp.retrieval import features

from retrieval_support import (
    CROP,
    FRAMES,
    MEAN,
    STD,
    ModelCalls,
    colour_of_feature,
    export_info,
    save_tiny_export,
    solid_record,
    write_data,
)

# Per video: (label, RGB feature, I-frame feature, motion vector in px). Features
# (and motion vectors after scaling) on the 0.25 grid of the quantised tiny model,
# so the expected values are exact.
VIDEOS = {
    "test": {
        "q0": (0, (1.0, -0.5, 0.25), (-1.0, 0.5, 1.5), (3.0, -8.0)),
        "q1": (1, (-1.25, 1.5, 0.0), (0.75, 0.75, -0.5), (-2.5, 1.0)),
    },
    "train": {
        "g0": (0, (1.5, -0.25, 0.5), (0.0, -1.5, 1.0), (12.0, 0.5)),
        "g1": (1, (-0.5, 2.0, -0.75), (1.25, 0.0, 0.25), (-0.5, -4.5)),
        "g2": (1, (0.25, 0.25, 1.75), (-1.75, 1.0, 0.0), (0.0, 6.0)),
    },
}
MV_CLIP, MV_DIV = 5.0, 2.0  # the motion export's scaling: clamp to +-5 px, then / 2


def solid_records(split):
    return [
        solid_record(
            vid, label, split, rgb=colour_of_feature(rgb), iframe=colour_of_feature(iframe), mv=mv
        )
        for vid, (label, rgb, iframe, mv) in VIDEOS[split].items()
    ]


def expected_features(split, modality):
    out = {}
    for vid, (_, rgb, iframe, mv) in VIDEOS[split].items():
        if modality == "motion":
            out[vid] = np.clip(mv, -MV_CLIP, MV_CLIP) / MV_DIV
        else:
            out[vid] = np.asarray(rgb if modality == "rgb" else iframe)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_data(
        tmp_path_factory.mktemp("solid"), solid_records("test"), solid_records("train")
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    video = [FRAMES, CROP, CROP, 3]
    return {
        "video": save_tiny_export(root / "video", "video", video, quantum=0.25),
        "iframe": save_tiny_export(root / "iframe", "iframe", [CROP, CROP, 3], quantum=0.25),
        "motion": save_tiny_export(
            root / "motion",
            "motion",
            [4, CROP, CROP, 2],
            quantum=0.25,
            mv_clip=MV_CLIP,
            mv_div=MV_DIV,
        ),
        "classifier": save_tiny_export(root / "classifier", "classifier", video, quantum=0.25),
    }


# ----------------------------------------------------------------------------- eval options


@pytest.mark.parametrize(
    "network, shape, extra, expected",
    [
        (
            "video",
            [2, 8, 8, 3],
            {"stride": 3},
            dict(modality="rgb", clip_len=2, clip_stride=3, crop_size=8, resize_short=9),
        ),
        (
            "video",
            [16, 112, 112, 3],
            {"stride": 4},
            dict(modality="rgb", clip_len=16, clip_stride=4, crop_size=112, resize_short=128),
        ),
        ("iframe", [8, 8, 3], {}, dict(modality="iframe", clip_len=1, clip_stride=1, crop_size=8)),
        (
            "motion",
            [4, 16, 16, 2],
            {"mv_clip": 5.0, "mv_div": 2.0},
            dict(
                modality="motion",
                clip_len=4,
                clip_stride=1,
                motion_len=4,
                crop_size=16,
                resize_short=18,
                mv_clip=5.0,
                mv_div=2.0,
            ),
        ),
        ("classifier", [2, 8, 8, 3], {}, dict(modality="rgb", clip_len=2, clip_stride=1)),
        ("video", [2, 8, 8, 3], {"resize_short": 12}, dict(resize_short=12)),
    ],
)
def test_eval_options_follow_the_export_contract(network, shape, extra, expected):
    options = features.eval_options(export_info(network, shape, **extra), num_clips=7)
    assert options.num_clips == 7
    for key, value in expected.items():
        assert getattr(options, key) == value, key
    assert options.input_shape == tuple(shape)


def test_eval_options_of_the_export_modules_contracts():
    """The contracts tfcmvp.export writes for the paper's settings give the paper's clips."""
    from tfcmvp.export import contract

    cases = {
        "video": (
            contract.video_input_contract(16, 4, 112),
            dict(modality="rgb", clip_len=16, clip_stride=4, resize_short=128),
        ),
        "iframe": (contract.iframe_input_contract(112), dict(modality="iframe", clip_len=1)),
        "motion": (
            contract.motion_input_contract(8, 112, 10.0, 10.0, "nearest"),
            dict(
                modality="motion",
                clip_len=8,
                clip_stride=1,
                motion_len=8,
                mv_clip=10.0,
                mv_div=10.0,
                mv_resize_method="nearest",
            ),
        ),
    }
    for network, (spec, expected) in cases.items():
        options = features.eval_options({"network": network, "input": spec}, num_clips=10)
        assert options.crop_size == 112 and options.resize_short == 128, network
        assert options.input_shape == tuple(spec["shape"]), network
        for key, value in expected.items():
            assert getattr(options, key) == value, (network, key)


@pytest.mark.parametrize(
    "network, shape, extra, clips, message",
    [
        ("video", [2, 8, 6, 3], {}, 10, "square"),
        ("video", [2, 8, 8, 2], {}, 10, "modality 'rgb'"),
        ("iframe", [2, 8, 8, 3], {}, 10, "modality 'iframe'"),
        ("video", [2, 8, 8, 3], {"stride": None}, 10, "input.stride"),
        ("video", [2, 8, 8, 3], {"mean": [0.5, 0.5, 0.5]}, 10, "ImageNet"),
        ("video", [2, 8, 8, 3], {"frames": 4}, 10, "input.frames 4"),
        ("video", [2, 8, 8, 3], {}, 0, "positive int"),
        ("audio", [2, 8, 8, 3], {}, 10, "'audio'"),
    ],
)
def test_eval_options_reject_what_the_pipeline_cannot_feed(network, shape, extra, clips, message):
    with pytest.raises(ValueError, match=message):
        features.eval_options(export_info(network, shape, **extra), num_clips=clips)


def test_read_export_names_the_folder(tmp_path, exports):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'absent'} does not exist"):
        features.read_export(tmp_path / "absent")
    with pytest.raises(
        FileNotFoundError, match=f"{tmp_path} is not a tfcmvp export: it has no saved_model.pb"
    ):
        features.read_export(tmp_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "saved_model.pb").write_bytes((exports["video"] / "saved_model.pb").read_bytes())
    with pytest.raises(FileNotFoundError, match="not a tfcmvp export: .*tfcmvp_export.json"):
        features.read_export(bare)
    (bare / "assets").mkdir()
    (bare / "assets" / "tfcmvp_export.json").write_text("{not json")
    with pytest.raises(ValueError, match="tfcmvp_export.json: not valid JSON"):
        features.read_export(bare)
    (bare / "assets" / "tfcmvp_export.json").write_text(json.dumps({"network": "video"}))
    with pytest.raises(
        ValueError,
        match="tfcmvp_export.json is not a valid tfcmvp export description: format_version",
    ):
        features.read_export(bare)
    assert features.read_export(exports["motion"])["input"]["mv_clip"] == MV_CLIP


# ----------------------------------------------------------------------------- features


@pytest.mark.parametrize(
    "network, modality",
    [("video", "rgb"), ("iframe", "iframe"), ("motion", "motion"), ("classifier", "rgb")],
)
def test_features_come_from_the_exported_modality(exports, data_dir, network, modality):
    result = features.extract_features(
        exports[network], data_dir, clips=3, use_cache=False, progress=False
    )
    assert result.options.modality == modality and not result.from_cache
    assert result.cache_path is None
    for split in ("test", "train"):
        got = result.splits[split]
        expected = expected_features(split, modality)
        assert sorted(got.video_ids) == sorted(expected)
        assert got.features.dtype == np.float32
        assert got.features.shape == (len(expected), 2 if modality == "motion" else 3)
        for row, vid in enumerate(got.video_ids):
            np.testing.assert_allclose(got.features[row], expected[vid], atol=1e-6, err_msg=vid)
            assert got.labels[row] == VIDEOS[split][vid][0]
            assert got.label_names[row] == f"class{VIDEOS[split][vid][0]}"


def vcop_frames(num_frames, num_clips, clip_len, stride):
    """VCOP's retrieval clips: centres linspace(S / 2, T - S / 2, N), starts int(c - S / 2)."""
    span = (clip_len - 1) * stride + 1
    starts = np.array(
        [int(c - span / 2) for c in np.linspace(span / 2, num_frames - span / 2, num_clips)]
    )
    return starts[:, None] + stride * np.arange(clip_len)  # [N, T]


def coclr_frames(num_frames, clip_len, stride):
    """CoCLR's test windows (videos longer than clip_len * stride): hop clip_len * stride // 2 - 1,
    at least 1 frame."""
    hop = max(clip_len * stride // 2 - 1, 1)
    starts = np.arange(0, num_frames - clip_len * stride + 1, hop)
    return starts[:, None] + stride * np.arange(clip_len)  # [N_v, T]


@pytest.mark.parametrize("positions", ["vcop", "sliding"])
def test_video_feature_is_the_mean_of_the_protocols_clips(tmp_path, positions):
    """Painted frames (red codes the frame index) show which frames the clips averaged."""
    lengths = {"a": 20, "b": 9}
    records = [
        synthetic.painted_record(v, n, label=i, rgb_width=16, rgb_height=12)
        for i, (v, n) in enumerate(lengths.items())
    ]
    data = write_data(tmp_path / "data", records, records, num_shards=1)
    model = save_tiny_export(tmp_path / "model", "video", [FRAMES, CROP, CROP, 3], stride=2)
    result = features.extract_features(
        model, data, clips=3, positions=positions, use_cache=False, progress=False
    )
    assert result.options.positions == positions
    for row, vid in enumerate(result.splits["test"].video_ids):
        n = lengths[vid]
        frames = (
            vcop_frames(n, 3, FRAMES, 2) if positions == "vcop" else coclr_frames(n, FRAMES, 2)
        )  # [N, T]
        # 2 x 2 counts as 4 frames under CoCLR: windows 0 .. 16 (a) and 0 .. 5 (b), hop 1.
        assert result.splits["test"].clip_counts[row] == len(frames)
        frames = frames.ravel()  # [N * T]
        red = ((8 * (frames % 32) + 4) / 255 - MEAN[0]) / STD[0]
        # JPEG moves a painted level by at most ~3 of 255: 0.05 after normalisation.
        np.testing.assert_allclose(result.splits["test"].features[row, 0], red.mean(), atol=0.05)
    # Sanity of the reference: averaging other frames would give a visibly different value.
    assert abs(result.splits["test"].features[0, 0] - result.splits["test"].features[1, 0]) > 0.3


def test_clips_per_model_call_stay_within_batch_size(monkeypatch, exports, data_dir):
    calls = ModelCalls(monkeypatch)
    features.extract_features(
        exports["video"], data_dir, clips=3, batch_size=2, use_cache=False, progress=False
    )
    # 5 videos of 3 clips, one video per batch (2 // 3 -> 1), split into calls of <= 2 clips.
    assert calls.clips_per_call == [2, 1] * 5
    calls.reset()
    features.extract_features(
        exports["video"], data_dir, clips=3, batch_size=7, use_cache=False, progress=False
    )
    # Two videos (6 clips) per call; test has 2 videos, train 3 -> 6 + 6 + 3.
    assert calls.clips_per_call == [6, 6, 3]


# ----------------------------------------------------------------------------- cache


def test_second_run_reads_the_cache_without_calling_the_model(
    monkeypatch, tmp_path, exports, data_dir
):
    calls = ModelCalls(monkeypatch)
    cache = tmp_path / "cache"
    first = features.extract_features(
        exports["video"], data_dir, clips=3, cache_dir=cache, progress=False
    )
    assert calls.loads == 1 and sum(calls.clips_per_call) == 3 * 5
    assert not first.from_cache and first.cache_path.parent == cache
    assert first.cache_path.is_file() and first.cache_path.name.startswith("features-video-")

    calls.reset()
    second = features.extract_features(
        exports["video"], data_dir, clips=3, cache_dir=cache, progress=False
    )
    assert second.from_cache and calls.loads == 0 and calls.clips_per_call == []
    assert second.key == first.key
    for split in ("test", "train"):
        a, b = first.splits[split], second.splits[split]
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.video_ids, b.video_ids)
        np.testing.assert_array_equal(a.label_names, b.label_names)
    with np.load(second.cache_path) as stored:
        meta = json.loads(str(stored["meta"]))
        assert meta["key"] == first.key and meta["options"]["num_clips"] == 3
        assert stored["train/features"].shape == (3, 3)

    # Other options: another entry.
    other = features.extract_features(
        exports["video"], data_dir, clips=2, cache_dir=cache, progress=False
    )
    assert not other.from_cache and calls.loads == 1 and other.key != first.key


def test_clip_positions_are_part_of_the_cache_key(monkeypatch, tmp_path, exports, data_dir):
    calls = ModelCalls(monkeypatch)
    cache = tmp_path / "cache"
    vcop = features.extract_features(
        exports["video"], data_dir, clips=3, cache_dir=cache, progress=False
    )
    sliding = features.extract_features(
        exports["video"], data_dir, clips=3, cache_dir=cache, positions="sliding", progress=False
    )
    assert not sliding.from_cache and calls.loads == 2 and sliding.key != vcop.key
    with np.load(sliding.cache_path) as stored:
        meta = json.loads(str(stored["meta"]))
        assert meta["options"]["positions"] == "sliding" and meta["options"]["num_clips"] is None
    # Sliding windows do not depend on the clip count: any --clips reads the same entry.
    again = features.extract_features(
        exports["video"], data_dir, clips=7, cache_dir=cache, positions="sliding", progress=False
    )
    assert again.from_cache and again.key == sliding.key and calls.loads == 2
    with pytest.raises(ValueError, match="'centred'"):
        features.extract_features(exports["video"], data_dir, positions="centred", progress=False)


def test_new_weights_or_new_data_invalidate_the_cache(monkeypatch, tmp_path, data_dir):
    calls = ModelCalls(monkeypatch)
    cache = tmp_path / "cache"
    model = save_tiny_export(tmp_path / "model", "video", [FRAMES, CROP, CROP, 3], quantum=0.25)
    first = features.extract_features(model, data_dir, clips=2, cache_dir=cache, progress=False)
    # Same folder, same graph, other weights: variables.index changes.
    save_tiny_export(tmp_path / "model", "video", [FRAMES, CROP, CROP, 3], quantum=0.25, scale=2.0)
    calls.reset()
    second = features.extract_features(model, data_dir, clips=2, cache_dir=cache, progress=False)
    assert not second.from_cache and calls.loads == 1
    np.testing.assert_allclose(
        second.splits["test"].features, 2 * first.splits["test"].features, atol=1e-6
    )
    # One more train video: the shard sizes change.
    more = write_data(
        tmp_path / "more",
        solid_records("test"),
        solid_records("train") + [solid_record("g3", 0, "train", rgb=(9, 9, 9))],
    )
    calls.reset()
    third = features.extract_features(model, more, clips=2, cache_dir=cache, progress=False)
    assert not third.from_cache and calls.loads == 1 and len(third.splits["train"]) == 4


def test_default_cache_folder_and_its_fallback(tmp_path, exports):
    data = write_data(tmp_path / "data", solid_records("test"), solid_records("train"))
    result = features.extract_features(exports["iframe"], data, clips=1, progress=False)
    assert result.cache_path.parent == data / features.CACHE_DIR_NAME
    # DATA/.tfcmvp_cache cannot be a folder (a file is in the way): the fallback is used.
    blocked = write_data(tmp_path / "blocked", solid_records("test"), solid_records("train"))
    (blocked / features.CACHE_DIR_NAME).write_text("not a folder")
    result = features.extract_features(
        exports["iframe"],
        blocked,
        clips=1,
        progress=False,
        fallback_cache_dir=tmp_path / "beside_output",
    )
    assert result.cache_path.parent == tmp_path / "beside_output"
    # Neither writable: no cache, and the run still works.
    result = features.extract_features(exports["iframe"], blocked, clips=1, progress=False)
    assert result.cache_path is None and len(result.splits["test"]) == 2


def test_thumbnails_show_the_middle_frame_and_are_cached(monkeypatch, tmp_path):
    lengths = {"a": 20, "b": 9, "c": 14}
    records = [
        synthetic.painted_record(v, n, label=i % 2, rgb_width=16, rgb_height=12)
        for i, (v, n) in enumerate(lengths.items())
    ]
    data = write_data(tmp_path / "data", records[:1], records[1:])
    model = save_tiny_export(tmp_path / "model", "video", [FRAMES, CROP, CROP, 3])
    calls = ModelCalls(monkeypatch)
    first = features.extract_features(model, data, clips=2, thumbnails=True, progress=False)
    for split in ("test", "train"):
        thumbs = first.thumbnails[split]
        assert len(thumbs) == len(first.splits[split])
        for row, vid in enumerate(first.splits[split].video_ids):
            image = thumbs[row]
            assert image.shape == (*features.THUMB_SHAPE, 3) and image.dtype == np.uint8
            # 16x12 frames fill 64x48 exactly; red codes the frame index.
            assert synthetic.frame_index_from_rgb(image.astype(float)) == lengths[vid] // 2

    calls.reset()
    again = features.extract_features(model, data, clips=2, thumbnails=True, progress=False)
    assert again.from_cache and calls.loads == 0
    np.testing.assert_array_equal(again.thumbnails["train"][1], first.thumbnails["train"][1])
    # Thumbnails lost, features cached: one thumbnail-only pass, still no model call.
    for path in (data / features.CACHE_DIR_NAME).glob("thumbs-*.npz"):
        path.unlink()
    rebuilt = features.extract_features(model, data, clips=2, thumbnails=True, progress=False)
    assert rebuilt.from_cache and calls.loads == 0
    np.testing.assert_array_equal(rebuilt.thumbnails["test"][0], first.thumbnails["test"][0])
    assert list((data / features.CACHE_DIR_NAME).glob("thumbs-*.npz"))


def test_missing_shards_are_named(tmp_path, exports):
    from tfcmvp import verify

    only_train = tmp_path / "only_train"
    synthetic.write_shards(solid_records("train"), str(only_train / "train"))
    with pytest.raises(
        FileNotFoundError, match=f"no test shards test-\\*.tfrecord.gz in {only_train}"
    ):
        features.extract_features(exports["video"], only_train, progress=False)
    only_test = tmp_path / "only_test"
    synthetic.write_shards(solid_records("test"), str(only_test / "test"))
    verify.write_manifest(only_test)  # lists the test split only
    with pytest.raises(FileNotFoundError, match=f"no train shards .* in {only_test}"):
        features.extract_features(exports["video"], only_test, progress=False)
    with pytest.raises(FileNotFoundError, match=f"data folder {tmp_path / 'nowhere'}"):
        features.extract_features(exports["video"], tmp_path / "nowhere", progress=False)


# ----------------------------------------------------------------------------- real exports


@pytest.mark.slow  # three real exports: about 25 s
def test_real_exports_of_the_three_networks(tmp_path):
    """Random-init video, I-frame and motion network exports (tfcmvp.export) of the
    tiny training config:
    each video's feature is the export's embedding of its eval_dataset clips, averaged."""
    import tensorflow as tf

    from tfcmvp.config import DataConfig
    from tfcmvp.data import eval_dataset
    from tfcmvp.export import export_random_init

    from training_support import tiny_config

    config = tiny_config()  # clip_len 8, stride 2, crop 32, motion_len 8, mv_clip = mv_div = 10
    lengths = {"v0": 30, "v1": 45, "v2": 20}
    records = [
        synthetic.painted_record(v, n, label=i % 2, gop=6)
        for i, (v, n) in enumerate(lengths.items())
    ]
    data = write_data(tmp_path / "data", records[:1], records[1:])
    # The clip each network eats, spelled as eval_dataset options (32 -> short side 37);
    # I-frames and motion windows at VCOP's clip positions (span 1 and 8).
    geometry = dict(positions="vcop", num_clips=2, resize_short=37)
    per_network = {
        "video": ("rgb", DataConfig(clip_len=8, clip_stride=2, crop_size=32)),
        "iframe": ("iframe", DataConfig(clip_len=1, clip_stride=1, crop_size=32)),
        "motion": ("motion", DataConfig(clip_len=8, clip_stride=1, motion_len=8, crop_size=32)),
    }
    for network, (modality, clip_data) in per_network.items():
        path = export_random_init(config, tmp_path / network, network, seed=1)
        result = features.extract_features(
            path, data, clips=2, positions="vcop", use_cache=False, progress=False
        )
        assert result.options.modality == modality
        embed = tf.saved_model.load(str(path)).signatures["embed"]
        for split in ("test", "train"):
            pattern = str(data / f"{split}-*.tfrecord.gz")
            expected = {
                e["video_id"].decode(): embed(clips=tf.constant(e["clips"]))["embedding"]
                .numpy()
                .mean(axis=0)
                for e in eval_dataset(
                    pattern, clip_data, modality=modality, **geometry
                ).as_numpy_iterator()
            }
            got = result.splits[split]
            assert sorted(got.video_ids) == sorted(expected)
            assert got.features.shape == (len(expected), 32)
            for row, vid in enumerate(got.video_ids):
                np.testing.assert_allclose(
                    got.features[row],
                    expected[vid],
                    rtol=1e-5,
                    atol=1e-5,
                    err_msg=f"{network} {vid}",
                )
            assert np.abs(got.features).max() > 0  # a real signal, not zeros
