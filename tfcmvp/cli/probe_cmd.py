"""``tfcmvp probe``: what the context task of a pretraining run uses
(see :mod:`tfcmvp.training.context_probe`)."""

from __future__ import annotations

import json
import logging
import pathlib

from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="pretext accuracy of a pretraining run with one cue removed at a time "
        "(colour, I-frame pairing): what the context task really uses",
        description=(
            "Restores the newest checkpoint of a pretraining WORKDIR and measures context and "
            "motion top-1 accuracy on the same batches as trained, with the I-frame's hue "
            "rotated, with clip and I-frame in grayscale, and with the I-frames shuffled "
            "(chance control). A context accuracy that collapses without colour means the "
            "context task is solved by colour statistics, which do not transfer."
        ),
    )
    parser.add_argument(
        "--workdir",
        required=True,
        type=pathlib.Path,
        help="pretraining WORKDIR (config.yaml and checkpoints/)",
    )
    parser.add_argument("--data", required=True, type=pathlib.Path, help="extraction output folder")
    parser.add_argument(
        "--split",
        default="train",
        choices=("train", "test"),
        help="which shards to sample (default train)",
    )
    parser.add_argument("--batches", type=int, default=20, help="batches to average (default 20)")
    parser.add_argument(
        "--batch_size",
        type=int,
        default=16,
        help="videos per batch: chance is 1 / batch size (default 16)",
    )
    parser.add_argument("--output", type=pathlib.Path, help="also write the numbers as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    from tfcmvp.training.context_probe import context_probe, format_probe

    if args.batches < 1 or args.batch_size < 2:
        logger.error(
            "--batches must be >= 1 and --batch_size >= 2 (got %d, %d)",
            args.batches,
            args.batch_size,
        )
        return 2
    try:
        results = context_probe(
            args.workdir,
            args.data,
            split=args.split,
            batches=args.batches,
            batch_size=args.batch_size,
        )
    except TfcmvpError as error:
        logger.error("%s", error)
        return 2
    print(format_probe(results, args.batch_size))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results: {args.output}")
    return 0
