"""``tfcmvp inspect``: report on one video and optionally draw it (see :mod:`tfcmvp.inspection`)."""

from __future__ import annotations

import sys

from tfcmvp import inspection
from tfcmvp.cli import common
from tfcmvp.codec import DEFAULT_MV_CELL, VideoError
from tfcmvp.errors import TfcmvpError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="print codec, GOP pattern and motion-vector statistics of a video; --png draws it",
        description=(
            "Report codec, size, frame rate, frame count, the GOP pattern checked against the "
            "CoViAR layout (I every --gop frames, no B) and motion-vector statistics. With --png, "
            "also draw decoded frames, stored I-frames and colour-coded motion vectors."
        ),
    )
    parser.add_argument("video", help="video file")
    parser.add_argument("--png", help="also write a figure to this PNG file")
    parser.add_argument(
        "--mv_cell",
        type=int,
        default=DEFAULT_MV_CELL,
        help=f"motion-vector raster cell in pixels (default {DEFAULT_MV_CELL})",
    )
    parser.add_argument(
        "--gop",
        type=int,
        default=12,
        help="I-frame spacing to check the stream against (default 12)",
    )
    parser.add_argument(
        "--columns", type=int, default=8, help="frames shown in the figure (default 8)"
    )
    parser.add_argument(
        "--start", type=int, help="first frame shown (default: chosen from the GOP)"
    )
    parser.add_argument(
        "--stride", type=int, help="frames between columns (default: a quarter GOP)"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    # The figure's path is checked first: the statistics take a while, and a
    # failure to write it afterwards would read as a problem with the video.
    problem = args.png and common.output_file_problem("--png", args.png)
    if problem:
        print(f"tfcmvp inspect: error: {problem}", file=sys.stderr)
        return 2
    try:
        print(inspection.describe_video(args.video, mv_cell=args.mv_cell, gop=args.gop))
        if args.png:
            # matplotlib only when a figure is drawn: the CLI's start-up stays light.
            from tfcmvp import inspection_figure

            width, height = inspection_figure.plot_video(
                args.video,
                args.png,
                columns=args.columns,
                start=args.start,
                stride=args.stride,
                mv_cell=args.mv_cell,
            )
            print(f"figure:      {args.png} ({width}x{height} px)")
    except TfcmvpError as error:
        # VideoError messages start with the file name; name it for the others.
        message = str(error) if isinstance(error, VideoError) else f"{args.video}: {error}"
        print(f"tfcmvp inspect: error: {message}", file=sys.stderr)
        return 2
    return 0
