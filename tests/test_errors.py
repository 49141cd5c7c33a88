"""The error hierarchy (tfcmvp/errors.py): a user's mistake of each layer is a one-line
exit status 2 naming the file or key; any other exception keeps its traceback.

Commands run in-process through ``tfcmvp.cli.main.main`` (and the Beam launcher's
``main``); the last test walks the source for exception classes outside the hierarchy.
"""

import ast
import builtins
import importlib
import logging
import pathlib

import pytest

import beam_jobs.extract
from tfcmvp import errors
from tfcmvp.cli import common, verify_cmd
from tfcmvp.cli.main import main

REPO = pathlib.Path(__file__).resolve().parents[1]

# Exception classes deliberately outside TfcmvpError, with the reason.
INTERNAL = {
    # A diverged run, not bad input: the training commands exit with status 1.
    "tfcmvp.training.callbacks.NonFiniteLossError",
    # Raised and caught inside shard_check; never leaves the module.
    "tfcmvp.shard_check._Damage",
}


def errors_logged(caplog):
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def one_line_exit_2(caplog, argv):
    """Runs ``tfcmvp argv``; checks status 2 and one logged error line without traceback.
    Returns that line."""
    with caplog.at_level(logging.INFO):
        status = main(argv)
    logged = errors_logged(caplog)
    assert status == 2
    assert len(logged) == 1 and logged[0].exc_info is None
    message = logged[0].getMessage()
    assert "\n" not in message and "Traceback" not in message
    return message


def test_config_error_names_the_key(tmp_path, caplog):
    message = one_line_exit_2(
        caplog,
        ["pretrain", "--data", str(tmp_path), "--workdir", str(tmp_path / "w")]
        + ["--set", "train.no_such_key=1"],
    )
    assert "train.no_such_key" in message


def test_data_error_names_the_folder(tmp_path, caplog):
    missing = tmp_path / "no_data"
    message = one_line_exit_2(caplog, ["verify", str(missing)])
    assert str(missing) in message and "does not exist" in message


def test_export_error_names_the_folder(tmp_path, caplog):
    message = one_line_exit_2(caplog, ["describe", str(tmp_path)])
    assert str(tmp_path) in message


def test_run_error_names_the_workdir(tmp_path, caplog):
    missing = tmp_path / "no_run"
    message = one_line_exit_2(
        caplog,
        ["export", "--workdir", str(missing), "--network", "video"]
        + ["--output", str(tmp_path / "out")],
    )
    assert str(missing) in message and "does not exist" in message


def test_video_error_names_the_file(tmp_path, capsys):
    video = tmp_path / "not_a_video.mp4"
    video.write_text("plain text, no video stream")
    assert main(["inspect", str(video)]) == 2
    err = capsys.readouterr().err
    assert str(video) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_job_error_names_the_flag(capsys):
    assert beam_jobs.extract.main(["--no_such_flag", "1"]) == 2
    err = capsys.readouterr().err
    assert "--no_such_flag" in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """A builtin ValueError inside a command is a bug: it propagates (Python prints its
    traceback and exits with status 1) instead of becoming a one-line exit 2."""

    def broken(args):
        raise ValueError("bug")

    monkeypatch.setattr(verify_cmd, "run", broken)
    with pytest.raises(ValueError, match="^bug$"):
        main(["verify", str(tmp_path)])


def test_an_os_refusal_of_a_named_file_is_one_line(monkeypatch, tmp_path, caplog):
    """The operating system refusing a file the user named (here: no permission) says
    which file and why: one line, exit 2, the file named."""
    target = tmp_path / "locked.yaml"

    def refused(args):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(verify_cmd, "run", refused)
    message = one_line_exit_2(caplog, ["verify", str(tmp_path)])
    assert str(target) in message and "Permission denied" in message


def test_an_os_error_without_a_file_keeps_its_traceback(monkeypatch, tmp_path):
    def broken(args):
        raise OSError("no file involved")

    monkeypatch.setattr(verify_cmd, "run", broken)
    with pytest.raises(OSError, match="no file involved"):
        main(["verify", str(tmp_path)])


def test_run_training_separates_user_errors_from_bugs(caplog):
    logger = logging.getLogger("tfcmvp.test")

    def refused():
        raise errors.RunRefusedError("workdir W: refused")

    def bug():
        raise ValueError("bug")

    assert common.run_training(logger, refused) == (None, 2)
    assert "workdir W: refused" in caplog.text
    with pytest.raises(ValueError, match="^bug$"):
        common.run_training(logger, bug)


def test_debug_level_shows_the_traceback(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        assert main(["--log_level", "DEBUG", "describe", str(tmp_path)]) == 2
    assert any(record.exc_info for record in caplog.records if record.levelno == logging.DEBUG)


def test_subclasses_keep_their_builtin():
    """Callers that catch the builtin still catch the hierarchy's classes."""
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.ExportError, ValueError)
    assert issubclass(errors.InvalidDataError, ValueError)
    assert issubclass(errors.RunRefusedError, ValueError)
    assert issubclass(errors.DataNotFoundError, FileNotFoundError)
    assert issubclass(errors.RunNotFoundError, FileNotFoundError)
    assert str(errors.DataNotFoundError("data folder D does not exist")) == (
        "data folder D does not exist"
    )


def _exception_classes():
    """(module, class name) of every class in tfcmvp/ and beam_jobs/ whose base is named
    like an exception (...Error, ...Exception, ...Refused) or is a builtin exception."""
    builtin = {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    found = []
    for root in ("tfcmvp", "beam_jobs"):
        for path in sorted((REPO / root).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef):
                    continue
                names = [ast.unparse(base).split(".")[-1] for base in node.bases]
                if any(
                    name in builtin or name.endswith(("Error", "Exception", "Refused"))
                    for name in names
                ):
                    found.append((module, node.name))
    return found


def test_every_exception_class_is_in_the_hierarchy():
    classes = _exception_classes()
    assert len(classes) > 20  # the walk finds them (about 30 today)
    outside = []
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, errors.TfcmvpError) and f"{module}.{name}" not in INTERNAL:
            outside.append(f"{module}.{name}")
    assert outside == [], "derive these from a tfcmvp.errors base, or list them in INTERNAL"
