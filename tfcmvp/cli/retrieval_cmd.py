"""``tfcmvp retrieval``: retrieval recall of an export (see :mod:`tfcmvp.retrieval.evaluate`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import common
from tfcmvp.errors import TfcmvpError
from tfcmvp.retrieval.protocols import PROTOCOLS, VCOP  # NumPy only

logger = logging.getLogger(__name__)

# tfcmvp.retrieval.features.DEFAULT_BATCH_SIZE, spelled out so that building the
# parser imports no TensorFlow; a test keeps the two equal.
DEFAULT_BATCH_SIZE = 20


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
    parser.add_argument("--model", required=True, help="export folder written by `tfcmvp export`")
    parser.add_argument(
        "--data",
        required=True,
        help="output folder of the extraction job (test-* and train-* shards)",
    )
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
    parser.add_argument(
        "--labels",
        metavar="CSV",
        help="score by the labels of this CSV (columns: video, then one per "
        "label kind; `tfcmvp synth` writes DIR/labels.csv) instead of the "
        "records' class labels; needs --label_column",
    )
    parser.add_argument(
        "--label_column",
        metavar="KIND",
        help="the label kind (CSV column) to score by, e.g. scene or motion",
    )
    parser.add_argument("--cache_dir", help="feature cache folder (default DATA/.tfcmvp_cache)")
    parser.add_argument(
        "--no_cache", action="store_true", help="neither read nor write cached features"
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"at most this many clips per call of the model (default "
        f"{DEFAULT_BATCH_SIZE}); lower it if memory runs out",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    # Imported here: TensorFlow takes seconds to load; --help should not wait for it.
    from tfcmvp.retrieval.evaluate import evaluate_retrieval
    from tfcmvp.retrieval.labels import read_label_table
    from tfcmvp.retrieval.report import format_table, model_source_line

    # Output paths first: a bad one found after the features are computed would
    # waste the run and leave a temporary file beside it. Missing parent folders
    # are fine: the report writers create them.
    for flag, path in (("--output", args.output), ("--png", args.png)):
        problem = path is not None and common.output_file_problem(flag, path, creates_parents=True)
        if problem:
            logger.error("%s", problem)
            return 2
    if (args.labels is None) != (args.label_column is None):
        logger.error(
            "--labels and --label_column go together (got only %s)",
            "--labels" if args.label_column is None else "--label_column",
        )
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
        logger.error("%s", error)
        logger.debug("traceback of the error above", exc_info=True)
        return 2
    print(format_table({record["name"]: record}))  # saved_models/<name>/<version>: <name>
    print(
        f"{record['num_queries']} queries (test), {record['num_gallery']} gallery videos "
        f"(train), {record['data']['clips_per_video']} {record['data']['modality']} clips "
        f"per video"
    )
    print(model_source_line(args.model))  # the run and epoch whose weights gave these numbers
    print(f"results: {args.output}" + (f"\nfigure:  {args.png}" if args.png else ""))
    return 0
