"""``tfcmvp retrieval``: retrieval recall of an export (see :mod:`tfcmvp.retrieval.evaluate`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import arguments, common
from tfcmvp.cli.arguments import DEFAULT_BATCH_SIZE  # noqa: F401 (a test reads it here)
from tfcmvp.errors import TfcmvpError
from tfcmvp.retrieval.protocols import PROTOCOLS, VCOP  # NumPy only

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "retrieval",
        help="nearest-neighbour retrieval recall (R@1..50) of an exported network",
        description=(
            "Test videos (DATA/test-*.tfrecord.gz) query the train videos (DATA/train-*). A "
            "video's feature is the mean of the `embed` signature over its clips (vcop: --clips "
            "clips with evenly spaced centres; coclr: CoCLR's sliding windows); the clip "
            "modality (RGB clips, I-frames, motion vectors) and geometry follow the export's "
            "assets/tfcmvp_export.json, so video, I-frame and motion network exports all work. "
            "Prints a table of R@1, 5, 10, 20, 50 (percent) and writes them to --output. "
            "Features are cached per model, data and options (default folder "
            "DATA/.tfcmvp_cache, or .tfcmvp_cache beside --output when DATA is read-only), "
            "so a second run with the same clips (e.g. with another --labels) does not run the "
            "model."
        ),
    )
    arguments.add_model_argument(parser)
    arguments.add_data_argument(parser)
    parser.add_argument("--output", required=True, help="JSON file for the results")
    parser.add_argument(
        "--clips",
        type=int,
        default=10,
        help="clips per video under --protocol vcop, averaged (default 10); "
        "coclr slides windows over the whole video instead",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=VCOP,
        help="vcop: mean of clip features, cosine similarity (default); coclr: "
        "each set mean-centred and L2-normalised before the dot product",
    )
    parser.add_argument("--png", help="also draw some queries and their top-5 results here")
    arguments.add_label_arguments(parser, verb="score")
    arguments.add_cache_arguments(parser)
    arguments.add_batch_size_argument(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    # Imported here: TensorFlow takes seconds to load; --help should not wait for it.
    from tfcmvp.retrieval.evaluate import evaluate_retrieval
    from tfcmvp.retrieval.labels import read_label_table
    from tfcmvp.retrieval.report import format_table, model_source_line

    # Output paths first: a bad one found after the features are computed would
    # waste the run and leave a temporary file beside it.
    if arguments.output_files_problem(logger, ("--output", args.output), ("--png", args.png)):
        return 2
    if arguments.label_flags_problem(args, logger):
        return 2
    try:
        labels = (
            read_label_table(args.labels, args.label_column) if args.labels is not None else None
        )
        record = evaluate_retrieval(
            args.model,
            args.data,
            clips=args.clips,
            protocol=args.protocol,
            cache_dir=args.cache_dir,
            png=args.png,
            output=args.output,
            batch_size=args.batch_size,
            use_cache=not args.no_cache,
            labels=labels,
        )
    except TfcmvpError as error:
        return common.report_error(logger, error)
    print(format_table({record["name"]: record}))  # saved_models/<name>/<version>: <name>
    print(
        f"{record['num_queries']} queries (test), {record['num_gallery']} gallery videos "
        f"(train), {record['data']['clips_per_video']} {record['data']['modality']} clips "
        f"per video"
    )
    print(model_source_line(args.model))  # the run and epoch whose weights gave these numbers
    print(f"results: {args.output}" + (f"\nfigure:  {args.png}" if args.png else ""))
    return 0
