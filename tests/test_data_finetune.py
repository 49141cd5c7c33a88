"""The finetuning dataset on painted records: every video, labels, optional motion target."""

import numpy as np
import pytest

from tfcmvp.data import finetune_dataset, synthetic

TINY = dict(clip_len=4, clip_stride=2, crop_size=16)
PLAIN = dict(TINY, color_jitter=None, blur=None, rotate_degrees=0.0)
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
    ds = finetune_dataset(pattern, 2, seed=0, repeat=False, drop_remainder=False, **PLAIN)
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
        synthetic.frame_index_from_rgb(synthetic.denormalize_rgb(c["clip"])), [0, 2, 4, 4])


def test_motion_target_for_the_auxiliary_loss(pattern):
    ds = finetune_dataset(pattern, 3, seed=1, with_motion=True, motion_len=3, motion_gap=2,
                          num_negatives=1, **PLAIN)
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
        ds = finetune_dataset(pattern, 2, seed=seed, deterministic=True, with_motion=True,
                              **TINY)  # jitter, blur, rotation +-10 degrees
        return next(ds.as_numpy_iterator())

    a, b, c = first(3), first(3), first(4)
    np.testing.assert_array_equal(a["clip"], b["clip"])
    np.testing.assert_array_equal(a["motion"], b["motion"])
    assert not np.array_equal(a["clip"], c["clip"])
    assert a["motion"].shape == (2, 1, 8, 16, 16, 2)  # default: target only
    assert np.isfinite(a["clip"]).all() and np.abs(a["motion"]).max() <= 1.0
