"""``tfcmvp index``: build or update a search index of video files (see :mod:`tfcmvp.search`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import arguments, common
from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)

NETWORKS = ("video", "iframe", "motion")  # spelled out: the parser imports no TensorFlow

EPILOG = """\
index (INDEX is a folder):
  INDEX/index.json       the exports per network (folder, fingerprint), last run's counts
  INDEX/videos.csv       one row per video: row, id, path, size, mtime, fingerprint,
                         num_frames, fps, <network>_export
  INDEX/<network>.npy    float32 [V, D]: mean of each video's 10 clip embeddings
  INDEX/thumbs/          first frame (and motion-vector map) JPEG per video
  INDEX/failed.jsonl     videos that could not be indexed in the last run

A re-run updates INDEX: new files are embedded, changed ones (content
fingerprint) embedded again, unlisted ones dropped, unchanged ones copied;
a network whose export changed embeds every video.

exit status: 0 done; 2 bad arguments, exports or INDEX (nothing written).
"""


def _model(text: str) -> tuple:
    import argparse

    network, sep, folder = text.partition("=")
    if not sep or not folder or network not in NETWORKS:
        raise argparse.ArgumentTypeError(
            f"expected NETWORK=EXPORT_DIR with NETWORK one of {', '.join(NETWORKS)}, got {text!r}"
        )
    return network, folder


def add_parser(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "index",
        help="build or update a search index of video files (for tfcmvp search)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description=(
            "Embeds video files with up to three exports (video, I-frame and motion network) as "
            "`tfcmvp "
            "embed` does (10 clips, mean per video) and keeps the result in an index folder "
            "that `tfcmvp search` ranks by motion, context or the video network. Incremental: "
            "only new and changed files are embedded."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (searched recursively) or list files (.txt / .csv)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        type=_model,
        default=[],
        metavar="NETWORK=DIR",
        help="exports per network, e.g. video=DIR iframe=DIR motion=DIR; required for a "
        "new index, on an update the index's recorded exports are used unless given",
    )
    parser.add_argument("--output", required=True, metavar="INDEX", help="the index folder")
    arguments.add_batch_size_argument(parser)
    arguments.add_progress_arguments(parser, bar="progress bars")
    parser.set_defaults(run=run)


def run(args) -> int:
    models = dict(args.models)
    if len(models) != len(args.models):
        logger.error("--models names a network twice: %s", " ".join(map("=".join, args.models)))
        return 2
    # Imported here: TensorFlow takes seconds to load; --help should not wait for it.
    from tfcmvp.search.index import build_index, summary_line

    try:
        result = build_index(
            args.inputs,
            args.output,
            models=models,
            batch_size=args.batch_size,
            progress=args.progress,
        )
    except TfcmvpError as error:  # OverwriteRefused, InputError, NotAnExportError
        return common.report_error(logger, error)
    print(summary_line(args.output, result.summary))
    if result.counts["failed"]:
        print(f"failed: {args.output}/failed.jsonl")
    return 0
