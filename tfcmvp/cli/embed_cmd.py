"""``tfcmvp embed``: clip embeddings of video files (see :mod:`tfcmvp.embedding`)."""

from __future__ import annotations

import argparse
import logging

from tfcmvp.cli import arguments, common
from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)

# Spelled out so that building the parser imports no TensorFlow; a test keeps
# them equal to tfcmvp.embedding's.
DEFAULT_CLIPS = 10
DEFAULT_BATCH_SIZE = arguments.DEFAULT_BATCH_SIZE  # --batch_size is the shared flag
DEFAULT_RGB_SHORT_SIDE = 128
DEFAULT_JPEG_QUALITY = 90
DEFAULT_MV_CELL = 8
DEFAULT_MAX_FAILED_FRACTION = 1.0

EPILOG = """\
output (OUT is a folder):
  OUT/embeddings.npy  float32 [N, D]: numpy.load, tf.constant(numpy.load(...))
  OUT/clips.csv       one row per embedding row (pandas.read_csv): row, path,
                      clip, start_frame, end_frame (end exclusive), start_time,
                      end_time (s), fps, num_frames, codec, network, iframe
  OUT/failed.jsonl    one line per video that could not be embedded (path,
                      stage, error, message)
  OUT/embed.json      status, counts (listed = embedded + failed), export,
                      clip layout, versions
  A video's retrieval feature is the mean of its rows (10 clips by default).

exit status: 0 done; 1 written, but no video was embedded (or more than
--max_failed_fraction failed); 2 bad arguments, export or --output (nothing
written).
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embeddings of your own video files with an exported network",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description=(
            "Embeds video files with the `embed` signature of an export (video, I-frame or motion "
            "network, "
            "or a finetuned classifier). Each video is decoded and cut into clips exactly as "
            "the extraction job and `tfcmvp retrieval` would (the export's "
            "assets/tfcmvp_export.json says frames, stride, crop, normalisation, vector "
            "scaling): the I-frame network path decodes only key frames to pixels, the motion "
            "network "
            "path only motion vectors. By default --clips clips per video at retrieval's "
            "(VCOP) positions; --window / --stride give per-segment features instead. Files "
            "that cannot be embedded are reported, listed in OUT/failed.jsonl and counted; "
            "the run goes on."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (searched recursively for .mp4, .avi, .mkv, "
        ".mov, .webm, .mpg, ... files) or list files (.txt / .csv, one "
        "path per line, relative to the list file)",
    )
    arguments.add_model_argument(parser)
    parser.add_argument(
        "--output",
        required=True,
        metavar="OUT",
        help="output folder (see below); must not exist or be empty unless --overwrite",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous `tfcmvp embed` output in OUT (written beside "
        "it and swapped in at the end)",
    )
    add_layout_arguments(parser)
    add_run_arguments(parser)
    add_storage_arguments(parser)
    arguments.add_progress_arguments(parser)
    parser.set_defaults(run=run)


def add_layout_arguments(parser) -> None:
    """Where the clips lie: ``--clips`` at retrieval's positions, or ``--window`` segments.

    Also the flags of ``python -m beam_jobs.embed`` (:mod:`beam_jobs.embed_options`).
    """
    parser.add_argument(
        "--clips",
        type=int,
        default=None,
        help=f"clips per video at retrieval's positions (default "
        f"{DEFAULT_CLIPS}); not with --window / --stride",
    )
    parser.add_argument(
        "--window",
        type=int,
        metavar="W",
        help="per-segment features: segments of W frames (default: the "
        "export's clip span), one clip centred in each",
    )
    parser.add_argument(
        "--stride",
        type=int,
        metavar="S",
        help="frames between segment starts (default: W, no overlap)",
    )
    parser.add_argument(
        "--min_frames",
        type=int,
        default=1,
        help="videos with fewer frames fail (stage short); default 1: a video "
        "shorter than a clip repeats its last frame, as in retrieval",
    )


def add_run_arguments(parser) -> None:
    """``--max_failed_fraction`` and ``--batch_size`` (also the Beam job's)."""
    parser.add_argument(
        "--max_failed_fraction",
        type=float,
        default=DEFAULT_MAX_FAILED_FRACTION,
        help="exit 1 when more than this fraction of the videos failed "
        "(default 1.0: only when none was embedded)",
    )
    arguments.add_batch_size_argument(parser)


def add_storage_arguments(parser) -> None:
    """How the extraction job stored the training frames, to decode alike (also the
    Beam job's flags)."""
    storage = parser.add_argument_group(
        "storage",
        "how the extraction job stored the training frames (its defaults); set them "
        "only to match data extracted with other values",
    )
    storage.add_argument(
        "--rgb_short_side",
        type=int,
        default=DEFAULT_RGB_SHORT_SIDE,
        help=f"short side of the stored frames (default {DEFAULT_RGB_SHORT_SIDE})",
    )
    storage.add_argument(
        "--jpeg_quality",
        type=int,
        default=DEFAULT_JPEG_QUALITY,
        help=f"JPEG quality of the stored frames (default {DEFAULT_JPEG_QUALITY})",
    )
    storage.add_argument(
        "--mv_cell",
        type=int,
        default=DEFAULT_MV_CELL,
        help=f"motion-vector grid cell in pixels (default {DEFAULT_MV_CELL})",
    )


def run(args) -> int:
    # Imported here: TensorFlow takes seconds to load; --help should not wait for it.
    from tfcmvp.embedding.writer import check_output  # NumPy only

    try:
        # Before TensorFlow loads: a refused --output costs no wait.
        check_output(args.output, overwrite=args.overwrite)
    except TfcmvpError as error:  # OverwriteRefused
        logger.error("%s", error)
        return 2
    from tfcmvp.embedding import ClipLayout, EmbeddingFailedError, StorageSettings, embed_videos

    if (args.window is not None or args.stride is not None) and args.clips is not None:
        logger.error(
            "--clips places clips at retrieval's positions; --window / --stride place "
            "one per segment: give one or the other"
        )
        return 2
    try:
        layout = ClipLayout(
            num_clips=args.clips or DEFAULT_CLIPS, window=args.window, stride=args.stride
        )
        storage = StorageSettings(
            rgb_short_side=args.rgb_short_side, jpeg_quality=args.jpeg_quality, mv_cell=args.mv_cell
        )
        result = embed_videos(
            args.inputs,
            args.model,
            args.output,
            layout=layout,
            storage=storage,
            batch_size=args.batch_size,
            min_frames=args.min_frames,
            max_failed_fraction=args.max_failed_fraction,
            overwrite=args.overwrite,
            progress=args.progress,
        )
    except EmbeddingFailedError as error:
        logger.error("%s", error)
        return 1
    except TfcmvpError as error:  # OverwriteRefused, InputError, NotAnExportError
        return common.report_error(logger, error)
    summary = result.summary
    counts = summary["counts"]
    clips = summary["clips"]
    print(
        f"embedded {counts['embedded']} of {counts['listed']} videos: {counts['clips']} "
        f"clips x {summary['export']['embedding_dim']} ({summary['export']['network']} "
        f"network, {clips['modality']} clips {clips['input_shape']}) in "
        f"{summary['seconds']:.1f} s"
    )
    if counts["failed"]:
        print(f"{counts['failed']} failed: {args.output}/failed.jsonl")
    print(f"embeddings: {args.output}/embeddings.npy\ntable:      {args.output}/clips.csv")
    return 0
