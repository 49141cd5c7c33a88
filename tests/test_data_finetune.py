"""The finetuning dataset on painted records: every video, labels, optional motion target."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.config import FinetuneDataConfig
from tfcmvp.data import augment, finetune_dataset, keys, synthetic
from tfcmvp.data.finetune import finetune_augmentation

TINY = FinetuneDataConfig(clip_len=4, clip_stride=2, crop_size=16)
PLAIN = dataclasses.replace(TINY, color_jitter=None, blur=None, rotate_degrees=0.0)
LENGTHS = {"a": 30, "b": 16, "c": 5}  # c is shorter than the 7-frame span


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    records = [synthetic.painted_record(v, n, label=i) for i, (v, n) in enumerate(LENGTHS.items())]
    synthetic.write_shards(records, str(folder / "train"), num_shards=2)
    return str(folder / "train-*.tfrecord.gz")


def unbatch(ds, num_batches=None):
    out = []
    for batch in (ds if num_batches is None else ds.take(num_batches)).as_numpy_iterator():
        out += [{k: v[i] for k, v in batch.items()} for i in range(len(batch["label"]))]
    return out


def test_every_video_once_per_epoch_with_padding(pattern):
    ds = finetune_dataset(pattern, 2, PLAIN, seed=0, repeat=False, drop_remainder=False)
    got = unbatch(ds)
    assert sorted(s["video_id"].decode() for s in got) == ["a", "b", "c"]
    for s in got:
        vid = s["video_id"].decode()
        assert s["label"] == list(LENGTHS).index(vid)
        assert s["clip"].shape == (4, 16, 16, 3)
        frames = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["clip"]))
        n = LENGTHS[vid]
        np.testing.assert_array_equal(frames, np.minimum(frames[0] + 2 * np.arange(4), n - 1))
        assert 0 <= frames[0] <= max(n - 7, 0)
    c = next(s for s in got if s["video_id"] == b"c")
    np.testing.assert_array_equal(
        synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(c["clip"])), [0, 2, 4, 4]
    )


def test_motion_target_for_the_auxiliary_loss(pattern):
    data = dataclasses.replace(PLAIN, motion_len=3, motion_gap=2, num_negatives=1)
    ds = finetune_dataset(pattern, 3, data, seed=1, with_motion=True)
    batch = next(iter(ds))
    assert batch["motion"].shape == (3, 2, 3, 16, 16, 2)
    for s in unbatch(ds, 3):
        vid = s["video_id"].decode()
        frames = synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(s["clip"]))
        target = synthetic.frame_index_from_mv(s["motion"][0, ..., 0] * 10.0)
        n = LENGTHS[vid]
        if n >= 11:  # long enough: the target follows the clip, 2 frames after its end
            np.testing.assert_array_equal(target, frames[-1] + 2 + np.arange(3))
        assert target.max() <= n - 1
        # The target shares the clip's crop: both ramps agree.
        clip_ramp = synthetic.denormalize_rgb(s["clip"][0])[..., 2] / 255.0
        np.testing.assert_allclose(clip_ramp, s["motion"][0, 0, ..., 1], atol=0.045)


def test_default_augmentation_runs_and_is_seeded(pattern):
    def first(seed):
        ds = finetune_dataset(
            pattern, 2, TINY, seed=seed, deterministic=True, with_motion=True
        )  # jitter, blur, rotation +-10 degrees
        return next(ds.as_numpy_iterator())

    a, b, c = first(3), first(3), first(4)
    np.testing.assert_array_equal(a["clip"], b["clip"])
    np.testing.assert_array_equal(a["motion"], b["motion"])
    assert not np.array_equal(a["clip"], c["clip"])
    assert a["motion"].shape == (2, 4, 8, 16, 16, 2)  # default: the target and 3 negatives
    assert np.isfinite(a["clip"]).all() and np.abs(a["motion"]).max() <= 1.0


# --- the augmentation recipe -------------------------------------------------

MODES = ["eager", "tf.data"]
MEAN, STD = np.array(augment.IMAGENET_MEAN), np.array(augment.IMAGENET_STD)


def run(op, data, mode):
    """``op`` on ``data`` eagerly or as a tf.data map; NumPy values."""
    data = {k: tf.convert_to_tensor(v) for k, v in data.items()}
    out = (
        op(data)
        if mode == "eager"
        else (tf.data.Dataset.from_tensors(data).map(op).get_single_element())
    )
    return {k: np.asarray(v) for k, v in out.items()}


def position_frames(height, width, scale, frames=2):
    """RGB frames whose channels 0, 1 hold the (y, x) frame position of each pixel centre
    (0..1) times ``scale``; channel 2 is 0."""
    y = (np.arange(height) + 0.5) / height
    x = (np.arange(width) + 0.5) / width
    yy, xx = np.meshgrid(y, x, indexing="ij")
    frame = np.stack([yy, xx, np.zeros_like(yy)], axis=-1) * scale
    return np.repeat(frame[None], frames, axis=0).astype(np.float32)


def clip_positions(clip, scale):
    """(y, x) frame positions shown by a normalised clip made of position_frames."""
    return ((clip * STD + MEAN) * 255.0 / scale)[..., :2]


def median_steps(pos):
    """Median change of ``pos`` [S, S, 2] per output row and per output column (robust to
    the reflected corners the rotation leaves)."""
    down = np.median((pos[1:, :-1] - pos[:-1, :-1]).reshape(-1, 2), axis=0)
    right = np.median((pos[:-1, 1:] - pos[:-1, :-1]).reshape(-1, 2), axis=0)
    return down, right


ROTATING = FinetuneDataConfig(
    num_negatives=0,
    crop_size=24,
    min_crop_area=0.5,
    crop_ratio=(0.5, 0.5),
    flip_prob=0.0,
    color_jitter=None,
    blur=None,
    rotate_degrees=15.0,
)


@pytest.mark.parametrize("mode", MODES)
def test_rotation_turns_the_whole_frame_before_the_crop(mode):
    # The crop is 2x taller than wide (in frame pixels) and resized to a square. Rotating the
    # whole frame first (the authors' order), the output pixel grid maps to the frame by
    # R S, S = diag(sy, sx) with sx / sy = 1/2: the steps per output row and per output
    # column are orthogonal, their lengths 2:1. Rotating the resized crop instead (S R)
    # would shear: neither would hold.
    height, width = 48, 64
    op = finetune_augmentation(ROTATING, with_motion=False)
    angles = []
    for n in range(6):
        data = {
            keys.CLIP: position_frames(height, width, 200.0),
            keys.SEED: np.array([3, n], np.int64),
        }
        clip = run(op, data, mode)[keys.CLIP]
        assert clip.shape == (2, 24, 24, 3)
        np.testing.assert_allclose(clip[0], clip[1], atol=1e-5)  # one draw for the clip
        pos = clip_positions(clip[0], 200.0) * [height, width]  # frame pixels
        down, right = median_steps(pos)
        cosine = down @ right / (np.linalg.norm(down) * np.linalg.norm(right))
        assert abs(cosine) < 0.01, (n, down, right)
        np.testing.assert_allclose(np.linalg.norm(right) / np.linalg.norm(down), 0.5, rtol=0.01)
        angles.append(math.degrees(math.atan2(down[1], down[0])))
    assert max(abs(a) for a in angles) <= 15.0 + 0.1, angles
    assert max(abs(a) for a in angles) > 3.0, angles  # it does rotate


@pytest.mark.parametrize("mode", MODES)
def test_motion_target_turns_with_the_clip(mode):
    # Decoded frame 76x60: RGB at 38x30, vectors on 8-px cells (10x8 cells covering 80x64).
    # The target must show the same scene points as the clip (rotation about the frame
    # centre, same crop) with its vectors turned by the same angle.
    config = dataclasses.replace(ROTATING, flip_negates_mv_x=False)
    op = finetune_augmentation(config, with_motion=True)
    extent = np.array([60 / 64, 76 / 80], np.float32)
    # Vector (x, y) = 5 x the (x, y) frame position of each cell centre.
    v = (np.arange(8) + 0.5) / 8 / extent[0]
    u = (np.arange(10) + 0.5) / 10 / extent[1]
    vv, uu = np.meshgrid(v, u, indexing="ij")
    mv = np.repeat(np.stack([uu, vv], axis=-1)[None], 2, axis=0).astype(np.float32) * 5
    for n in range(4):
        data = {
            keys.CLIP: position_frames(30, 38, 200.0),
            keys.MOTION: mv,
            keys.MV_EXTENT: extent,
            keys.SEED: np.array([4, n], np.int64),
        }
        out = run(op, data, mode)
        pos = clip_positions(out[keys.CLIP][0], 200.0)  # [S, S, (y, x)]
        down, _ = median_steps(pos * [60, 76])
        angle = math.atan2(down[1], down[0])  # the content's turn, clockwise on screen
        target = out[keys.MOTION][0] * 10.0 / 5.0  # back to 1 x position, (x, y)
        cos, sin = math.cos(angle), math.sin(angle)
        px, py = pos[..., 1], pos[..., 0]
        expected = np.stack([cos * px - sin * py, sin * px + cos * py], axis=-1)
        error = np.linalg.norm(target - expected, axis=-1)
        assert np.median(error) < 1e-3, (n, math.degrees(angle), np.median(error))


def test_finetune_dataset_defaults_are_the_finetune_config(pattern):
    # No data section: FinetuneDataConfig's defaults, the authors' finetuning (rotation
    # 10, jitter p 0.5 in a random order, no grayscale), not the pretraining recipe.
    config = FinetuneDataConfig()
    assert config.rotate_degrees == 10.0
    assert config.color_jitter.prob == 0.5 and config.color_jitter.random_order
    assert config.color_jitter.grayscale_prob == 0.0

    def first(data):
        ds = finetune_dataset(pattern, 3, data, seed=2, deterministic=True)
        return next(ds.as_numpy_iterator())["clip"]

    default = first(None)
    np.testing.assert_array_equal(default, first(config))
    assert not np.array_equal(default, first(dataclasses.replace(config, rotate_degrees=0.0)))
