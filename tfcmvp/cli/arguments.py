"""Flags shared by the subcommands that read an export's frozen features.

``tfcmvp evaluate``, ``retrieval``, ``report``, ``embed`` and ``index`` take
the same export, data, labels, cache, batch and progress flags; each is
defined here once, with its help text and default, and the checks of their
values before any work (:func:`label_flags_problem`, :func:`output_files_problem`).

No TensorFlow import here: building the parser must not wait for it.
"""

from __future__ import annotations

import logging
from typing import Optional

from tfcmvp.cli import common

# tfcmvp.retrieval.features.DEFAULT_BATCH_SIZE, spelled out so that building the
# parser imports no TensorFlow; a test keeps the two equal.
DEFAULT_BATCH_SIZE = 20


def add_model_argument(parser) -> None:
    """``--model DIR`` (required): an export folder."""
    parser.add_argument("--model", required=True, help="export folder written by `tfcmvp export`")


def add_data_argument(parser) -> None:
    """``--data DIR`` (required): an extraction output with test and train shards."""
    parser.add_argument(
        "--data",
        required=True,
        help="output folder of the extraction job (test-* and train-* shards)",
    )


def add_label_arguments(
    parser,
    verb: str = "score",
    labels_help: Optional[str] = None,
    column_help: Optional[str] = None,
) -> None:
    """``--labels CSV`` and ``--label_column KIND``: score by a label table's column.

    ``verb`` ("score", "classify") fills the standard help texts; ``labels_help`` /
    ``column_help`` replace them.
    """
    parser.add_argument(
        "--labels",
        metavar="CSV",
        help=labels_help
        or f"{verb} by the labels of this CSV (columns: video, then one per "
        "label kind; `tfcmvp synth` writes DIR/labels.csv) instead of the "
        "records' class labels; needs --label_column",
    )
    parser.add_argument(
        "--label_column",
        metavar="KIND",
        help=column_help or f"the label kind (CSV column) to {verb} by, e.g. scene or motion",
    )


def add_cache_arguments(parser) -> None:
    """``--cache_dir DIR`` and ``--no_cache``: where frozen features are cached."""
    parser.add_argument("--cache_dir", help="feature cache folder (default DATA/.tfcmvp_cache)")
    parser.add_argument(
        "--no_cache", action="store_true", help="neither read nor write cached features"
    )


def add_batch_size_argument(parser) -> None:
    """``--batch_size N``: clips per call of the model."""
    parser.add_argument(
        "--batch_size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"at most this many clips per call of the model (default "
        f"{DEFAULT_BATCH_SIZE}); lower it if memory runs out",
    )


def add_progress_arguments(parser, bar: str = "the progress bar") -> None:
    """``--progress`` / ``--no_progress`` into ``args.progress`` (default None: ``bar``
    drawn on a terminal only)."""
    parser.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help=f"always draw {bar} (default: on a terminal only)",
    )
    parser.add_argument(
        "--no_progress", dest="progress", action="store_false", help=f"never draw {bar}"
    )


def label_flags_problem(args, logger: logging.Logger) -> bool:
    """Logs and returns True when only one of ``--labels`` / ``--label_column`` is given."""
    if (args.labels is None) != (args.label_column is None):
        logger.error(
            "--labels and --label_column go together (got only %s)",
            "--labels" if args.label_column is None else "--label_column",
        )
        return True
    return False


def output_files_problem(logger: logging.Logger, *flags_and_paths) -> bool:
    """Logs the first problem of the output files ``(flag, path)`` (None: not asked for)
    and returns True; False when each can be written (missing parent folders are fine:
    the report writers create them). Checked before any work: a bad path found after
    the features are computed would waste the run."""
    for flag, path in flags_and_paths:
        problem = path is not None and common.output_file_problem(flag, path, creates_parents=True)
        if problem:
            logger.error("%s", problem)
            return True
    return False
