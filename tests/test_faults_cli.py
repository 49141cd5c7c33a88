"""A quiet, honest CLI (issue #9, item 8): log levels, epoch numbers, --verbose,
and one-line errors for path mistakes.

Commands run in-process through ``tfcmvp.cli.main.main``; each test checks the
exit code, the message (naming the path and the problem) and what is on disk.
"""

import io
import logging
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.cli.main import main
from tfcmvp.errors import RunError
from tfcmvp.training import callbacks as cb


def dense_model():
    """A one-layer model, compiled and built: all a checkpoint needs."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def fit_with_checkpoints(folder, *callbacks):
    """Fits a fresh :func:`dense_model` for 2 epochs of 3 steps (Keras' progress lines on
    stdout), checkpointing into ``folder`` every 2 steps."""
    model = dense_model()
    checkpoint = cb.TrainingCheckpoint(folder, model, model.optimizer)
    x = np.zeros((6, 2), "float32")
    data = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(2).repeat()
    every_2 = cb.CheckpointCallback(checkpoint, every_steps=2)
    model.fit(data, epochs=2, steps_per_epoch=3, verbose=2, callbacks=[every_2, *callbacks])


def test_checkpoint_lines_are_debug_and_use_keras_epoch_numbers(tmp_path, caplog, capsys):
    history = cb.HistoryCSV(tmp_path / "history.csv", columns=("epoch", "step", "loss"))
    with caplog.at_level(logging.INFO, logger=cb.logger.name):
        fit_with_checkpoints(tmp_path, history)
    assert not [r for r in caplog.records if "saved" in r.getMessage()]  # not at INFO
    caplog.clear()

    with caplog.at_level(logging.DEBUG, logger=cb.logger.name):
        fit_with_checkpoints(tmp_path / "again")
    saves = [r.getMessage() for r in caplog.records if r.getMessage().startswith("saved")]
    assert all(
        r.levelno == logging.DEBUG for r in caplog.records if r.getMessage().startswith("saved")
    )
    # Steps 2 and 4 fall inside Keras' epochs 1 and 2; steps 3 and 6 end them.
    assert [s.split("(")[-1] for s in saves] == [
        "epoch 1, step 2)",
        "end of epoch 1)",
        "epoch 2, step 1)",
        "end of epoch 2)",
    ]
    keras_epochs = re.findall(r"Epoch (\d+)/2", capsys.readouterr().out)
    assert keras_epochs == ["1", "2", "1", "2"]
    assert [row["epoch"] for row in cb.read_history(tmp_path / "history.csv")] == [1, 2]

    fresh = dense_model()
    restored = cb.TrainingCheckpoint(tmp_path / "again", fresh, fresh.optimizer)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=cb.logger.name):
        assert restored.restore()
    assert "(end of epoch 2, optimizer step 6)" in caplog.records[-1].getMessage()


class Terminal(io.StringIO):
    """Standard output that says it is a terminal."""

    def isatty(self):
        return True


@pytest.mark.parametrize(
    "flag, terminal, expected",
    [([], True, 1), ([], False, 2), (["--verbose", "0"], True, 0), (["--verbose", "1"], False, 1)],
)
def test_verbose_default_is_a_bar_on_a_terminal_and_lines_otherwise(
    tmp_path, monkeypatch, flag, terminal, expected
):
    import tfcmvp.training.pretrain  # noqa: F401 (the package re-exports a function of that name)

    module = sys.modules["tfcmvp.training.pretrain"]
    seen = {}

    def fake_pretrain(config, data, workdir, *, verbose, **options):
        seen["verbose"] = verbose
        raise RunError("stopped by the test")  # a user error: exit status 2

    monkeypatch.setattr(module, "pretrain", fake_pretrain)
    monkeypatch.setattr(sys, "stdout", Terminal() if terminal else io.StringIO())
    status = main(["pretrain", "--data", str(tmp_path), "--workdir", str(tmp_path / "w"), *flag])
    assert (status, seen) == (2, {"verbose": expected})


def test_unknown_log_level_is_a_usage_error_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--log_level", "LOUD", "verify", "nowhere"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --log_level: unknown level 'LOUD'" in err and "Traceback" not in err


def run_in(tmp_path, monkeypatch, argv):
    """Runs the CLI in `tmp_path`; returns the exit status."""
    monkeypatch.chdir(tmp_path)
    return main(argv)


@pytest.mark.parametrize(
    "command, workdir, problem",
    [
        (["pretrain"], "afile", "--workdir afile: is a file, not a folder"),
        (
            ["finetune", "--random_init"],
            "afile/run",
            "--workdir afile/run: afile is a file, not a folder",
        ),
    ],
)
def test_workdir_that_is_a_file_is_one_line(
    tmp_path, monkeypatch, caplog, command, workdir, problem
):
    (tmp_path / "afile").write_text("mine")
    status = run_in(tmp_path, monkeypatch, [*command, "--data", "data", "--workdir", workdir])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert (status, errors) == (2, [problem])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert (tmp_path / "afile").read_text() == "mine"


def test_inspect_png_in_a_missing_folder_blames_the_folder_not_the_video(
    tmp_path, monkeypatch, capsys
):
    status = run_in(tmp_path, monkeypatch, ["inspect", "clip.mp4", "--png", "missing_dir/x.png"])
    err = capsys.readouterr().err
    assert (status, err) == (
        2,
        "tfcmvp inspect: error: --png missing_dir/x.png: folder missing_dir does not exist\n",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags, problem",
    [
        (["--output", "results"], "--output results: is a folder; give a file name"),
        (
            ["--output", "results/afile/r.json"],
            "--output results/afile/r.json: results/afile is a file, not a folder",
        ),
    ],
)
def test_retrieval_output_paths_are_checked_before_any_work(
    tmp_path, monkeypatch, caplog, flags, problem
):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "afile").write_text("mine")
    status = run_in(
        tmp_path, monkeypatch, ["retrieval", "--model", "model", "--data", "data", *flags]
    )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert (status, errors) == (2, [problem])
    # Nothing written: no results.tmp beside the folder, nothing new inside it.
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["afile"]
    assert (tmp_path / "results" / "afile").read_text() == "mine"
