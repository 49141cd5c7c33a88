"""tfcmvp probe: the cue removals are what they say, and the probe runs on a trained workdir."""

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.cli import main as cli
from tfcmvp.data import keys
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from tfcmvp.training import context_probe as probe
from tfcmvp.training.pretrain import pretrain

from training_support import tiny_config, write_painted_shards

MEAN, STD = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)


def _normalised(rgb):
    return (np.asarray(rgb, np.float32) - MEAN) / STD


def _batch(iframe_rgb, clip_rgb=(0.5, 0.5, 0.5)):
    iframe = np.broadcast_to(_normalised(iframe_rgb), (2, 4, 4, 3))
    clip = np.broadcast_to(_normalised(clip_rgb), (2, 3, 4, 4, 3))
    return {
        keys.IFRAME: tf.constant(iframe, tf.float32),
        keys.CLIP: tf.constant(clip, tf.float32),
    }


def test_hue_rotation_turns_red_into_cyan_and_keeps_the_clip():
    batch = _batch((1.0, 0.0, 0.0))
    out = probe.PROBES["hue rotated"](batch)
    pixels = out[keys.IFRAME].numpy() * STD + MEAN
    np.testing.assert_allclose(pixels[0, 0, 0], [0.0, 1.0, 1.0], atol=1e-5)
    np.testing.assert_array_equal(out[keys.CLIP].numpy(), batch[keys.CLIP].numpy())


def test_grayscale_makes_every_channel_equal_in_clip_and_iframe():
    out = probe.PROBES["grayscale"](_batch((0.9, 0.2, 0.1), clip_rgb=(0.1, 0.8, 0.3)))
    for key, rgb in ((keys.IFRAME, (0.9, 0.2, 0.1)), (keys.CLIP, (0.1, 0.8, 0.3))):
        pixels = out[key].numpy() * STD + MEAN
        grey = 0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]  # ITU-R 601, as TensorFlow
        np.testing.assert_allclose(pixels.reshape(-1, 3), grey, atol=1e-3)


def test_shuffle_pairs_each_clip_with_another_clips_iframe():
    iframe = tf.reshape(tf.range(2 * 4 * 4 * 3, dtype=tf.float32), (2, 4, 4, 3))
    out = probe.PROBES["I-frame shuffled"]({keys.IFRAME: iframe})
    np.testing.assert_array_equal(out[keys.IFRAME].numpy()[1], iframe.numpy()[0])


@pytest.mark.slow
def test_probe_runs_on_a_trained_workdir(tmp_path, capsys):
    write_painted_shards(tmp_path / "data")
    workdir = tmp_path / "run"
    pretrain(
        tiny_config("train.epochs=1", "optimizer.warmup_epochs=0"),
        tmp_path / "data",
        workdir,
        verbose=0,
    )
    results = probe.context_probe(workdir, tmp_path / "data", batches=2, batch_size=4)
    assert list(results) == list(probe.PROBES)
    for values in results.values():
        assert 0.0 <= values["context_acc"] <= 1.0 and 0.0 <= values["motion_acc"] <= 1.0
    # Motion inputs are untouched by the colour probes: the same motion accuracy.
    assert results["hue rotated"]["motion_acc"] == results["as trained"]["motion_acc"]
    assert (
        cli.main(
            [
                "probe",
                "--workdir",
                str(workdir),
                "--data",
                str(tmp_path / "data"),
                "--batches",
                "1",
                "--batch_size",
                "4",
                "--output",
                str(tmp_path / "probe.json"),
            ]
        )
        == 0
    )
    assert "hue rotated" in capsys.readouterr().out and (tmp_path / "probe.json").is_file()


def test_probe_without_a_checkpoint_names_the_folder(tmp_path, caplog):
    (tmp_path / "run").mkdir()
    tiny = tiny_config()
    from tfcmvp.config import save_config

    save_config(tiny, tmp_path / "run" / "config.yaml")
    assert cli.main(["probe", "--workdir", str(tmp_path / "run"), "--data", str(tmp_path)]) == 2
    assert f"no checkpoint in {tmp_path / 'run' / 'checkpoints'}" in caplog.text
