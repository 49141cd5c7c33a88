"""Fault injection: ``tfcmvp synth --overwrite`` replaces only what synth wrote.

Known answers: a foreign file in OUT/videos or OUT/splits, or a labels.csv
that is not synth's, is refused with exit status 2 and the file named, and
nothing in OUT changes; a previous synth set is replaced (videos of the old,
larger set included) while other files in OUT stay; a run that fails
part-way leaves the old set whole, and its staging folder is removed by the
next run.
"""

import logging

import pytest

from tfcmvp import outputs, synth
from tfcmvp.cli import synth_cmd

from faults_support import snapshot
from harness import run_command

# Tiny sets: 32x32, 2 frames, one class.
KWARGS = dict(clips_per_group=1, num_frames=2, width=32, height=32, classes=("MoveUp",))
CLI_ARGS = ["--clips_per_group", "1", "--frames", "2", "--size", "32x32"]


def _cli(argv):
    """``tfcmvp synth argv`` in this process: the exit status."""
    return run_command(synth_cmd, "synth", *argv)


@pytest.fixture
def previous(tmp_path):
    """OUT holding a synth set of 3 videos, and a file of the user's beside it."""
    out = tmp_path / "out"
    synth.make_dataset(out, videos_per_class=3, **KWARGS)
    (out / "notes.txt").write_text("mine")
    return out


@pytest.mark.parametrize(
    "foreign", ["videos/MoveUp/my_clip.avi", "videos/README.txt", "splits/trainlist02.txt"]
)
def test_a_foreign_file_is_refused_and_kept(previous, foreign, capsys):
    (previous / foreign).write_text("not synth's")
    before = snapshot(previous)
    assert _cli(["--out", previous, "--videos_per_class", "2", *CLI_ARGS, "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert f"refusing to overwrite the data set in {previous}:" in error
    assert foreign.split("/", 1)[1] in error
    assert snapshot(previous) == before
    assert not [p for p in previous.iterdir() if p.name.startswith(".")]


def test_a_labels_file_that_is_not_synths_is_refused(previous):
    (previous / "labels.csv").write_text("id,my_label\n")
    with pytest.raises(ValueError, match="labels.csv is not synth's"):
        synth.make_dataset(previous, videos_per_class=2, overwrite=True, **KWARGS)
    assert (previous / "labels.csv").read_text() == "id,my_label\n"


def test_without_overwrite_an_existing_set_is_kept(previous, capsys):
    before = snapshot(previous)
    assert _cli(["--out", previous, "--videos_per_class", "2", *CLI_ARGS]) == 2
    assert f"{previous / 'videos'} is not empty" in capsys.readouterr().err
    assert snapshot(previous) == before


def test_a_previous_set_is_replaced_and_other_files_stay(previous):
    synth.make_dataset(previous, videos_per_class=2, overwrite=True, **KWARGS)
    videos = sorted(
        p.relative_to(previous / "videos").as_posix() for p in (previous / "videos").rglob("*.avi")
    )
    assert videos == ["MoveUp/v_MoveUp_g01_c01.avi", "MoveUp/v_MoveUp_g02_c01.avi"]
    assert (previous / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in previous.iterdir()) == [
        "labels.csv",
        "notes.txt",
        "splits",
        "videos",
    ]
    assert outputs.synth_problem(previous) is None


def test_a_failed_run_leaves_the_old_set_whole(previous, monkeypatch, caplog):
    from tfcmvp import codec

    before = snapshot(previous)
    written = []
    original = codec.write_video

    def fail_on_second(path, *args, **kwargs):
        if written:
            raise OSError("disk full")
        written.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(codec, "write_video", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        synth.make_dataset(previous, videos_per_class=2, overwrite=True, **KWARGS)
    assert written and str(previous / "videos") not in str(written[0])  # written beside
    staging = [p for p in previous.iterdir() if p.name.startswith(outputs.SYNTH_STAGING_PREFIX)]
    assert len(staging) == 1  # removed when the process ends, or by the next run:
    assert {
        k: v
        for k, v in snapshot(previous).items()
        if not k.startswith(outputs.SYNTH_STAGING_PREFIX)
    } == before
    monkeypatch.undo()

    caplog.set_level(logging.WARNING)
    synth.make_dataset(previous, videos_per_class=2, overwrite=True, **KWARGS)
    assert f"removing {staging[0]}, left by an interrupted run" in caplog.text
    assert sorted(p.name for p in previous.iterdir()) == [
        "labels.csv",
        "notes.txt",
        "splits",
        "videos",
    ]
