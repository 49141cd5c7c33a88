"""Fault injection, extraction: misspelt flags and a missing --videos_dir.

Known answers: exit 2 before the pipeline starts, one message naming the flag
(with the closest real one) or the path, and nothing written: no output
folder, no staging folder.
"""

import os

import pytest

from beam_jobs import extract, extract_options
from tfcmvp.cli import main as cli


@pytest.fixture
def inputs(tmp_path):
    """An (empty) videos folder and a one-line listing; the job stops before reading either."""
    (tmp_path / "videos").mkdir()
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,split\na.avi,walk,train\n")
    return [
        f"--videos_dir={tmp_path / 'videos'}",
        f"--manifest={csv}",
        f"--output_dir={tmp_path / 'out'}",
        "--direct_num_workers=1",
        "--direct_running_mode=in_memory",
    ]


def test_misspelt_flag_is_an_error_naming_the_right_one(tmp_path, inputs, capsys):
    code = extract.main([*inputs, "--rencode", "mpeg4"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: unknown flag --rencode (did you mean --reencode?)" in err
    assert sorted(os.listdir(tmp_path)) == ["list.csv", "videos"]


def test_misspelt_flag_through_the_tfcmvp_command(tmp_path, inputs, capsys):
    code = cli.main(["extract", *inputs, "--num_shard=2", "--overwrite"])
    assert code == 2
    assert "unknown flag --num_shard (did you mean --num_shards?)" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["list.csv", "videos"]


def test_every_unknown_word_is_reported():
    with pytest.raises(extract_options.UnknownFlagError) as error:
        extract_options.check_flags(
            ["--videos_dir", "v", "--frobnicate", "3", "stray", "--output-dir", "o"]
        )
    message = str(error.value)
    assert "unknown flag --frobnicate;" in message  # nothing close: no suggestion
    assert "unexpected argument 'stray'" in message
    assert "unknown flag --output-dir (did you mean --output_dir?)" in message


def test_real_beam_options_pass_through():
    argv = [
        "--videos_dir",
        "v",
        "--runner",
        "DataflowRunner",
        "--project",
        "p",
        "--region",
        "r",
        "--temp_location",
        "gs://b/t",
        "--setup_file",
        "./setup.py",
        "--experiments",
        "a",
        "--experiments=b",
        "--num_workers",
        "3",
        "--dry_run=True",
        "--overwrite",
        "--direct_num_workers=2",
        "--save_main_session",
    ]
    extract_options.check_flags(argv)  # no error
    options = extract_options.make_pipeline_options(argv)
    from apache_beam.options.pipeline_options import DebugOptions, WorkerOptions

    assert options.view_as(DebugOptions).experiments == ["a", "b"]
    assert options.view_as(WorkerOptions).num_workers == 3


def test_missing_videos_dir_is_an_error_naming_it(tmp_path, inputs, capsys):
    missing = tmp_path / "does_not_exist"
    argv = [a for a in inputs if not a.startswith("--videos_dir")]
    code = extract.main([f"--videos_dir={missing}", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: --videos_dir {missing}: no such folder" in err
    assert sorted(os.listdir(tmp_path)) == ["list.csv", "videos"]


def test_videos_dir_that_is_a_file(tmp_path, inputs, capsys):
    argv = [a for a in inputs if not a.startswith("--videos_dir")]
    code = extract.main([f"--videos_dir={tmp_path / 'list.csv'}", *argv])
    assert code == 2
    assert f"--videos_dir {tmp_path / 'list.csv'}: not a folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["list.csv", "videos"]
