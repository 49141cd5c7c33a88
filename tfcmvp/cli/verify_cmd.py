"""``tfcmvp verify DATA``: check a data folder against its manifest, byte by byte
(see :mod:`tfcmvp.verify`)."""

from __future__ import annotations

import logging

from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check every shard of a data folder (framing, CRCs, gzip) and its manifest",
        description=(
            "Check an extraction output folder: manifest.json is there and lists every "
            "{split}-* shard in the folder and no other; each shard reads to its end (gzip "
            "members inflate and pass their CRC, every record's length and data CRC match); "
            "each split holds as many records as the manifest says were written. Prints a "
            "line per shard (a damaged one with the byte offset where the damaged record or "
            "gzip member starts) and exits 0 when everything is intact, 1 otherwise. Shards "
            "are checked in parallel, one process per shard up to --workers."
        ),
    )
    parser.add_argument(
        "data", metavar="DATA", help="the data folder (tfcmvp extract --output_dir)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes checking shards at once (default: the CPU count)",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from tfcmvp.verify import verify_data

    if args.workers is not None and args.workers < 1:
        logger.error("--workers must be >= 1, got %d", args.workers)
        return 2
    try:
        report = verify_data(args.data, workers=args.workers)
    except TfcmvpError as error:  # the folder is missing
        logger.error("%s", error)
        return 2
    print(report.format())
    return 0 if report.ok else 1
