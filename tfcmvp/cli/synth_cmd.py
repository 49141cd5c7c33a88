"""``tfcmvp synth``: write the synthetic motion data set (see :mod:`tfcmvp.synth`)."""

from __future__ import annotations

import argparse
import sys

from tfcmvp import synth
from tfcmvp.errors import TfcmvpError
from tfcmvp.synth_scenes import VARIANTS


def _size(text: str) -> tuple:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 160x128 (WIDTHxHEIGHT), got {text!r}"
        ) from None
    return width, height


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a small data set of encoded videos with a motion and a scene label",
        description=(
            "Render and encode a small UCF101-layout data set (DIR/videos/<Class>/"
            "v_<Class>_gXX_cYY.avi, DIR/splits/classInd.txt, trainlist01.txt, testlist01.txt). "
            f"Motion classes: {', '.join(synth.CLASSES)}. Every video also has a scene label "
            "(the family of its background; DIR/labels.csv holds both labels), independent of "
            "its motion class: a data set to score a representation by motion and by scene."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (the data set root)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    parser.add_argument(
        "--videos_per_class",
        type=int,
        default=12,
        help="videos per class, a multiple of --clips_per_group (default 12)",
    )
    parser.add_argument(
        "--clips_per_group",
        type=int,
        default=2,
        help="clips per UCF-style group gXX; train/test split by group (default 2)",
    )
    _add_video_arguments(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a data set synth wrote in --out before (videos/, splits/, "
        "labels.csv); refused when they hold other files. The old set "
        "stays whole until the new one is swapped in",
    )
    parser.set_defaults(run=run)


def _add_video_arguments(parser) -> None:
    """What each video looks like: size, length, encoding, camera, generator variant."""
    parser.add_argument(
        "--size", type=_size, default=(160, 128), help="WIDTHxHEIGHT (default 160x128)"
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=96,
        help=f"frames per video (default 96; >= {synth.MIN_PRETRAIN_FRAMES} for pretraining)",
    )
    parser.add_argument("--fps", type=int, default=25, help="frame rate (default 25)")
    parser.add_argument(
        "--codec",
        default="mpeg4",
        choices=("mpeg4", "h264", "mpeg2video"),
        help="encoder (default mpeg4: MPEG-4 Part 2, the CoViAR layout)",
    )
    parser.add_argument(
        "--gop", type=int, default=12, help="I-frame interval, no B-frames (default 12)"
    )
    parser.add_argument(
        "--camera_speed",
        type=float,
        default=None,
        help="largest camera drift in px/frame, 0 for a fixed camera "
        "(default: the variant's, 0.25 standard / 0.5 heldout)",
    )
    parser.add_argument(
        "--variant",
        default="standard",
        choices=tuple(VARIANTS),
        help="generator variant (default standard); heldout has other scene "
        "families, object sizes, speeds and colours, for checking a recipe "
        "on data it was not tuned on",
    )


def run(args) -> int:
    width, height = args.size
    try:
        summary = synth.make_dataset(
            args.out,
            seed=args.seed,
            videos_per_class=args.videos_per_class,
            clips_per_group=args.clips_per_group,
            width=width,
            height=height,
            num_frames=args.frames,
            fps=args.fps,
            codec=args.codec,
            gop=args.gop,
            camera_speed=args.camera_speed,
            variant=args.variant,
            overwrite=args.overwrite,
        )
    except TfcmvpError as error:
        print(f"tfcmvp synth: error: {error}", file=sys.stderr)
        return 2
    print(summary.format())
    return 0
