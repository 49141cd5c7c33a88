"""Flags and error handling shared by the subcommands that load a config and train.

No TensorFlow import here: ``--help``, ``--list_keys`` and config errors
should not wait for it.
"""

from __future__ import annotations

import logging
import pathlib
import sys
from typing import Optional

from tfcmvp.errors import TfcmvpError

VERBOSE_CHOICES = (0, 1, 2)  # Keras progress levels


def add_config_argument(parser, help: str) -> None:  # noqa: A002 (argparse's own name)
    """``--config FILE`` (default None: the paper's settings)."""
    parser.add_argument("--config", default=None, help=help)


def add_set_argument(parser, help: str) -> None:  # noqa: A002
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_verbose_argument(parser) -> None:
    """``--verbose {0,1,2}``; read it back with :func:`keras_verbose`."""
    parser.add_argument(
        "--verbose",
        type=int,
        choices=VERBOSE_CHOICES,
        default=None,
        help="Keras progress: 0 silent, 1 progress bar, 2 a line per epoch "
        "(default: 1 on a terminal, else 2)",
    )


def add_list_keys_argument(parser) -> None:
    """``--list_keys``: print every config key, its value and its documentation, then exit.

    Commands that offer it declare their other required flags with
    :func:`add_required_argument`, so that ``--list_keys`` alone is enough.
    """
    parser.add_argument(
        "--list_keys",
        action="store_true",
        help="print every config key with its value (the defaults, or those of "
        "--config and --set) and its documentation, then exit",
    )
    parser.set_defaults(_parser=parser, _required=[])


def add_required_argument(parser, *flags: str, **kwargs) -> None:
    """An argument that is required unless ``--list_keys`` is given."""
    action = parser.add_argument(*flags, required=False, **kwargs)
    parser.get_default("_required").append(action)


def add_data_and_workdir_arguments(parser, data_help: str) -> None:
    """``--data DIR`` and ``--workdir DIR``, required unless ``--list_keys``."""
    add_required_argument(parser, "--data", help=data_help)
    add_required_argument(
        parser, "--workdir", help="run folder (created; resumed if it holds a checkpoint)"
    )


def add_allow_data_change_argument(parser) -> None:
    """``--allow_data_change``: resume a WORKDIR on data other than it was trained on."""
    parser.add_argument(
        "--allow_data_change",
        action="store_true",
        help="resume WORKDIR on data whose manifest.json differs from the one it was "
        "trained on (e.g. a re-extraction); without it such a resume is refused",
    )


def check_required(args) -> None:
    """Exits with argparse's usage error when a flag of :func:`add_required_argument` is
    missing (and ``--list_keys`` was not given)."""
    missing = [
        action.option_strings[0]
        for action in args._required
        if getattr(args, action.dest) in (None, False)
    ]
    if missing:
        args._parser.error(f"the following arguments are required: {', '.join(missing)}")


def print_config_keys(config, docs: dict) -> None:
    """One line per leaf key of ``config``: ``key = value  # documentation``.

    Values are JSON (null, true, "text", [a, b]); the keys of a section that
    is switched off (null) show null.
    """
    import json

    width = max(len(key) for key in docs)
    for key, doc in docs.items():
        value = config
        for part in key.split("."):
            value = getattr(value, part) if value is not None else None  # a null section
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        print(f"{key:<{width}} = {shown}  # {doc}")


def keras_verbose(args) -> int:
    """The ``verbose`` argument of ``model.fit`` for ``--verbose``.

    Not given: 1 (progress bar) when standard output is a terminal, else 2 (a
    line per epoch). Keras' own "auto" always means 1, whose carriage-return
    redraws fill a redirected log with one long line per epoch.
    """
    if args.verbose is not None:
        return args.verbose
    isatty = getattr(sys.stdout, "isatty", None)  # Keras writes its progress to stdout
    return 1 if isatty is not None and isatty() else 2


def folder_problem(flag: str, path) -> Optional[str]:
    """Why ``path`` cannot be (or become) a folder, as one line naming ``flag`` and
    the path; None when it can. Checked before any work so that a mistake costs
    no time and leaves nothing behind."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        return f"{flag} {path}: is a file, not a folder"
    return _file_ancestor(flag, path)


def _file_ancestor(flag: str, path: pathlib.Path) -> Optional[str]:
    """The problem when the nearest existing ancestor of ``path`` is not a folder."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{flag} {path}: {parent} is a file, not a folder"
            break
    return None


def output_file_problem(flag: str, path, creates_parents: bool = False) -> Optional[str]:
    """Why the file ``path`` cannot be written, as one line naming ``flag`` and the
    path (an existing folder, a parent that is a file, or, unless the writer
    ``creates_parents``, a missing parent folder); None when it can."""
    path = pathlib.Path(path)
    if path.is_dir():
        return f"{flag} {path}: is a folder; give a file name"
    if not creates_parents and not path.parent.exists():
        return f"{flag} {path}: folder {path.parent} does not exist"
    return _file_ancestor(flag, path)


def run_training(logger: logging.Logger, train, *args, **kwargs):
    """``(train(*args, **kwargs), 0)``, or ``(None, exit status)`` after logging the error.

    Status 1: the loss became NaN/Inf (NonFiniteLossError); status 2: a problem
    with the user's input, settings or environment (:class:`TfcmvpError`), with
    the traceback at debug level. Any other exception is a bug and propagates
    with its traceback.
    """
    from tfcmvp.training.callbacks import NonFiniteLossError

    try:
        return train(*args, **kwargs), 0
    except NonFiniteLossError as error:
        logger.error("%s", error)
        return None, 1
    except TfcmvpError as error:
        return None, report_error(logger, error)


def report_error(logger: logging.Logger, error: BaseException, status: int = 2) -> int:
    """Logs ``error`` as one line (its traceback at debug level) and returns ``status``
    (2: a problem with the user's input, settings or environment), the command's exit
    status."""
    logger.error("%s", error)
    logger.debug("traceback of the error above", exc_info=error)
    return status
