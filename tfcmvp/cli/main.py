"""The ``tfcmvp`` console command: one subcommand per module of this package.

Each subcommand module exposes ``add_parser(subparsers)`` and
``run(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tfcmvp import __version__
from tfcmvp.cli import (
    common,
    describe_cmd,
    embed_cmd,
    evaluate_cmd,
    export_cmd,
    extract_cmd,
    finetune_cmd,
    index_cmd,
    inspect_cmd,
    kinetics_cmd,
    pretrain_cmd,
    probe_cmd,
    quickstart_cmd,
    report_cmd,
    retrieval_cmd,
    search_cmd,
    synth_cmd,
    tf_startup,
    verify_cmd,
)
from tfcmvp.errors import TfcmvpError

SUBCOMMANDS = (
    quickstart_cmd,
    synth_cmd,
    kinetics_cmd,
    extract_cmd,
    verify_cmd,
    inspect_cmd,
    pretrain_cmd,
    export_cmd,
    describe_cmd,
    retrieval_cmd,
    evaluate_cmd,
    report_cmd,
    embed_cmd,
    index_cmd,
    search_cmd,
    finetune_cmd,
    probe_cmd,
)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    """``--log_level``, upper-cased; an unknown name is a usage error naming the choices
    (logging.basicConfig would raise it as a traceback)."""
    if value.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown level {value!r} (choose from {', '.join(LOG_LEVELS)}, any case)"
        )
    return value.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfcmvp",
        description=(
            "Self-supervised video representation learning from I-frames and motion vectors."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tfcmvp {__version__}")
    parser.add_argument(
        "--log_level",
        default="INFO",
        type=_log_level,
        help="Python logging level (default INFO); DEBUG also shows "
        "TensorFlow's C++ INFO and WARNING lines",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    # Pass-through subcommands (extract: Beam's own flags) take what argparse
    # does not know; every other subcommand rejects it.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = extra
    if args.log_level.upper() != "DEBUG":
        # TensorFlow's C++ INFO and WARNING lines (oneDNN notices, cost-model warnings on
        # every traced step) would bury the command's own log; errors still show. Set
        # before any subcommand imports TensorFlow; an explicit environment value wins.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Its Abseil start-up lines ignore that variable: caught at the first import.
        tf_startup.install()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level.upper() != "DEBUG":
        # TensorFlow's checkpoint writer logs "Sharding callback duration" at INFO
        # through absl on every save.
        logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except TfcmvpError as error:  # the user's input, settings or environment: one line
        return common.report_error(logging.getLogger("tfcmvp.cli"), error)
    except OSError as error:
        # The operating system's refusal of a file the user named (missing, no permission,
        # disk full) says which file and why: one line. Without a file name it is ours: raise.
        if error.filename is None:
            raise
        return common.report_error(logging.getLogger("tfcmvp.cli"), error)
    except Exception as error:  # noqa: BLE001 (only TensorFlow's DataLossError is handled)
        return _data_loss(args, error)


def _data_loss(args, error: Exception) -> int:
    """Names the damaged shard(s) behind a DataLossError (TensorFlow names no file),
    checking the shards of the command's --data folder; re-raises anything else."""
    from tfcmvp import verify

    if not verify.is_data_loss(error):
        raise error
    log = logging.getLogger("tfcmvp.cli")
    data = getattr(args, "data", None)
    named = verify.name_corrupt_shards(data, error) if data else error
    if named is error:
        log.error(
            "a shard could not be read (%s: %s); `tfcmvp verify DATA` names the damaged one",
            type(error).__name__,
            getattr(error, "message", error),
        )
    else:
        log.error("%s", named)
    log.debug("traceback of the error above", exc_info=error)
    return 2  # bad input, as when the commands find a damaged shard themselves


if __name__ == "__main__":
    sys.exit(main())
