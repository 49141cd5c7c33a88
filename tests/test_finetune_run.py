"""End-to-end finetuning from random init on painted records: history, results, the
exported classifier, resume, and the errors of the library entry.

One tiny 2-epoch run (module fixture) is inspected, then continued to 3 epochs.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.finetuning.classifier import VideoClassifier
from tfcmvp.finetuning.evaluate import evaluate_classifier, softmax
from tfcmvp.finetuning.finetune import (
    _check_source,
    find_shards,
    finetune,
    read_class_names,
    resolve_steps_per_epoch,
)
from tfcmvp.training import callbacks as cb

from finetune_support import CLASSES, NUM_TEST, tiny_finetune_config, write_labelled_shards
from training_support import without_grappler

RUN = ("train.epochs=2", "train.steps_per_epoch=2", "test.eval_epochs=[1]")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_labelled_shards(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def first_run(data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("first") / "run"
    config = tiny_finetune_config(*RUN)
    with without_grappler():
        result = finetune(config, data_dir, workdir, random_init=True, verbose=0)
    return config, result


def rebuilt(config, workdir):
    """The classifier of a run, rebuilt from its config and weights file."""
    model = VideoClassifier.from_finetune_config(config, len(CLASSES))
    model.build()
    model.load_weights(str(workdir / "weights" / "classifier.weights.h5"))
    return model


@pytest.mark.slow
def test_history_has_train_and_test_columns(first_run):
    config, result = first_run
    rows = cb.read_history(result.workdir / "history.csv")
    assert rows == result.history
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [2, 4]
    for row in rows:
        for key in ("loss", "ce_loss", "acc", "lr"):
            assert np.isfinite(row[key]), key
        assert row["loss"] == pytest.approx(row["ce_loss"])  # no regulariser
        # Epoch 1 is in test.eval_epochs, epoch 2 is the last: both tested.
        assert 0.0 <= row["val_top1"] <= row["val_top5"] <= 1.0
    # The last epoch's test is the final result (fractions in history, % in results).
    assert rows[-1]["val_top1"] * 100 == pytest.approx(result.results["top1"])
    assert rows[-1]["val_top5"] * 100 == pytest.approx(result.results["top5"])
    # Warm-up (1 epoch = 2 steps): peak x (1, 2) / 2, then the cosine: peak x (1, 0.5).
    peak = 1e-4 * 4
    assert rows[0]["lr"] == pytest.approx(peak * 0.75, rel=1e-5)
    assert rows[1]["lr"] == pytest.approx(peak * 0.75, rel=1e-5)
    assert (result.workdir / "history.png").stat().st_size > 0


@pytest.mark.slow
def test_results_json_and_predictions(first_run, data_dir):
    config, result = first_run
    results = json.loads((result.workdir / "results.json").read_text())
    assert results == result.results
    assert results["epochs"] == 2 and results["random_init"] is True and results["model"] is None
    assert results["data"] == str(data_dir.resolve())
    assert results["num_test_videos"] == NUM_TEST and results["num_classes"] == len(CLASSES)
    # Every test video counts 1/6: accuracies are multiples of 100/6.
    for key in ("top1", "top5"):
        assert results[key] * NUM_TEST / 100 == pytest.approx(round(results[key] * NUM_TEST / 100))
    # The same protocol on the rebuilt classifier gives the same numbers.
    again = evaluate_classifier(
        rebuilt(config, result.workdir), config, find_shards(data_dir, "test")
    )
    assert (again.top1, again.top5) == (results["top1"], results["top5"])
    np.testing.assert_allclose(again.probabilities, result.test.probabilities, rtol=1e-5)
    lines = (result.workdir / "test_predictions.csv").read_text().splitlines()
    assert len(lines) == 1 + NUM_TEST and lines[1].startswith("test00,0,left,")


@pytest.mark.slow
def test_saved_model_classify_returns_probabilities(first_run):
    config, result = first_run
    info = json.loads((result.saved_model / "assets" / "tfcmvp_export.json").read_text())
    assert info["network"] == "classifier" and info["class_names"] == list(CLASSES)
    assert info["num_classes"] == 3 and info["source"]["kind"] == "finetuned"
    assert info["source"]["random_init"] is True and info["source"]["epoch"] == 2
    assert info["signatures"] == ["embed", "features", "classify"]
    loaded = tf.saved_model.load(str(result.saved_model))
    clips = np.random.default_rng(1).normal(size=(3, 8, 32, 32, 3)).astype(np.float32)
    out = loaded.signatures["classify"](clips=tf.constant(clips))
    probabilities, logits = out["probabilities"].numpy(), out["logits"].numpy()
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probabilities, softmax(logits), rtol=1e-5)
    # The exported logits are the trained classifier's.
    np.testing.assert_allclose(
        logits, rebuilt(config, result.workdir)(clips, training=False), rtol=1e-4, atol=1e-5
    )
    embedding = loaded.signatures["embed"](clips=tf.constant(clips))["embedding"]
    assert tuple(embedding.shape) == (3, 32)


@pytest.mark.slow
def test_resume_continues_the_run(first_run, tmp_path):
    config, result = first_run
    workdir = tmp_path / "run"
    shutil.copytree(result.workdir, workdir)
    longer = tiny_finetune_config(*RUN, "train.epochs=3")
    with without_grappler():
        resumed = finetune(longer, result.results["data"], workdir, random_init=True, verbose=0)
    assert (resumed.initial_epoch, resumed.initial_step) == (2, 4)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == result.history
    assert "val_top1" in resumed.history[2] and resumed.results["epochs"] == 3
    # Restarting it from a pretrained model instead would mix two initialisations.
    with pytest.raises(ValueError, match="started from"):
        _check_source(workdir / "source.json", {"model": "/elsewhere", "random_init": False})


def test_needs_exactly_one_of_model_and_random_init(data_dir, tmp_path):
    config = tiny_finetune_config(*RUN)
    with pytest.raises(ValueError, match="exactly one of model_dir"):
        finetune(config, data_dir, tmp_path / "a")
    with pytest.raises(ValueError, match="exactly one of model_dir"):
        finetune(config, data_dir, tmp_path / "b", model_dir=tmp_path, random_init=True)


def test_missing_test_shards_and_labels_are_named(tmp_path):
    data = tmp_path / "data"
    write_labelled_shards(data)
    for path in data.glob("test-*"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"no test shards test-\*\.tfrecord\.gz in"):
        finetune(tiny_finetune_config(*RUN), data, tmp_path / "run", random_init=True)
    (data / "labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="labels.txt is missing"):
        read_class_names(data)


def test_steps_per_epoch_default_to_videos_over_batch(data_dir):
    files = find_shards(data_dir, "train")
    assert (
        resolve_steps_per_epoch(tiny_finetune_config("train.steps_per_epoch=null"), files) == 2
    )  # 8 videos // batch 4
    assert (
        resolve_steps_per_epoch(
            tiny_finetune_config("train.steps_per_epoch=null", "train.global_batch_size=3"), files
        )
        == 2
    )
    with pytest.raises(
        ValueError,
        match=r"only 8 training videos for "
        r"train.global_batch_size=16",
    ):
        resolve_steps_per_epoch(
            tiny_finetune_config("train.steps_per_epoch=null", "train.global_batch_size=16"), files
        )
