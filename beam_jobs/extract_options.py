"""Flags of ``python -m beam_jobs.extract`` and the default runner set-up.

The job's own flags live in :class:`ExtractOptions` (a ``PipelineOptions``
view, snake_case like Beam's own); every other flag goes to Beam (runner,
project, region, temp_location, setup_file, ...).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import List, Optional, Sequence

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from beam_jobs import (
    dask_cluster,  # its DaskClusterOptions: --dask_address, --dask_workers
    job_flags,
)
from beam_jobs.job_flags import UnknownFlagError  # noqa: F401 (raised by check_flags; callers catch it here)
from beam_jobs.local_runner import LOCAL_RUNNER, make_runner  # noqa: F401 (launchers call it here)
from tfcmvp.errors import ConfigError
from tfcmvp.schema import IFRAME_SOURCE_DECODED, IFRAME_SOURCE_REENCODE, IFRAME_SOURCES

REENCODE_CHOICES = ("none", "mpeg4", "h264")
# The authors' I-frame encode: FFmpeg's mpeg4 encoder at its default bit rate
# (tfcmvp.codec.reencode.DEFAULT_IFRAME_BITRATE; not imported: the launcher stays light).
DEFAULT_IFRAME_BITRATE = "200k"
_BITRATE_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}  # ffmpeg's -b:v suffixes
# One training sample: 16 RGB frames at stride 4 span 61 frames, then a gap
# of 2 and 8 motion frames: 61 + 2 + 8 = 71 (see docs of tfcmvp.data).
DEFAULT_MIN_FRAMES = 71
# --num_shards 0: about this many videos per shard (~100 MB at 128 px).
VIDEOS_PER_SHARD = 100
COMPRESSION_CHOICES = ("gzip", "none")
LOCAL_RUNNERS = ("DirectRunner", "SwitchingDirectRunner", "FnApiRunner")  # -> LOCAL_RUNNER
# Above this fraction of a split's listed videos failing, the job exits with an error.
DEFAULT_MAX_FAILED_FRACTION = 0.1


class ExtractOptions(PipelineOptions):
    """Options of the extraction job (``--videos_dir`` ... ``--overwrite``)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        # No required=True: Beam re-parses every options class on workers.
        _add_input_arguments(parser)
        _add_encoding_arguments(parser)
        _add_output_arguments(parser)


def _add_input_arguments(parser) -> None:
    """Which videos: the folder, the split files or a manifest CSV, and the output folder."""
    parser.add_argument(
        "--videos_dir",
        default=None,
        help="Folder of the videos (local or gs://...); split files name videos relative to it.",
    )
    parser.add_argument(
        "--splits_dir",
        default=None,
        help="Folder of UCF101 or HMDB51 split files (layout detected).",
    )
    parser.add_argument("--split", type=int, default=1, help="Split number (default 1).")
    parser.add_argument(
        "--manifest",
        default=None,
        help="CSV with columns path,label,split instead of --splits_dir.",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="Where the TFRecords, labels.txt, manifest.json and "
        "failed.jsonl go (local or gs://...).",
    )


def _add_encoding_arguments(parser) -> None:
    """How each video is re-encoded, decoded and stored."""
    parser.add_argument(
        "--reencode",
        default="none",
        choices=REENCODE_CHOICES,
        help="Re-encode every video before extraction (CoViAR style, "
        "GOP --reencode_gop, no B-frames); default none.",
    )
    parser.add_argument(
        "--reencode_gop", type=int, default=12, help="GOP of --reencode (default 12)."
    )
    parser.add_argument(
        "--reencode_bitrate",
        default=None,
        help="Bit rate of --reencode, e.g. 200k (the authors' setting, "
        "FFmpeg's mpeg4 default); default: a fixed quantiser "
        "instead (MPEG-4 q 2, near-lossless; CoViAR used -q:v 1), "
        "H.264 CRF 18.",
    )
    parser.add_argument(
        "--iframe_source",
        default=IFRAME_SOURCE_DECODED,
        choices=IFRAME_SOURCES,
        help="Where the stored I-frame images come from: decoded (default; "
        "the decoded frame at the I-frame index, the same image as "
        "that RGB frame) or reencode (the I-frame of a separate "
        "MPEG-4 encode at --iframe_bitrate with I-frames at the same "
        "indices, as the authors' code: never pixel-identical to an "
        "RGB frame). RGB frames and vectors are the same either way.",
    )
    parser.add_argument(
        "--iframe_bitrate",
        default=None,
        help="Bit rate of --iframe_source reencode (default "
        f"{DEFAULT_IFRAME_BITRATE}, the authors').",
    )
    parser.add_argument(
        "--rgb_short_side",
        type=int,
        default=128,
        help="Short side of the stored RGB frames and I-frames (default 128).",
    )
    parser.add_argument(
        "--mv_cell", type=int, default=8, help="Motion-vector grid cell in pixels (default 8)."
    )
    parser.add_argument(
        "--min_frames",
        type=int,
        default=DEFAULT_MIN_FRAMES,
        help="Videos with fewer frames are written but counted as short "
        f"(default {DEFAULT_MIN_FRAMES}).",
    )
    parser.add_argument(
        "--jpeg_quality",
        type=int,
        default=90,
        help="JPEG quality of the stored frames (default 90).",
    )


def _add_output_arguments(parser) -> None:
    """Shards, compression, overwriting, failure threshold, path policy."""
    parser.add_argument(
        "--num_shards",
        type=int,
        default=0,
        help=f"Shards per split; 0 = about one per {VIDEOS_PER_SHARD} listed videos.",
    )
    parser.add_argument(
        "--compression",
        default="gzip",
        choices=COMPRESSION_CHOICES,
        help="Shard compression: gzip (default, *.tfrecord.gz) or none "
        "(*.tfrecord: 1.4x the bytes, 1.2-1.8x faster to read; "
        "benchmarks/bench_shard_formats.py).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=False,
        help="Replace the output of a previous extraction in --output_dir "
        "(a folder holding its manifest.json, shards, labels.txt and "
        "failed.jsonl, and nothing else); the new output is written "
        "beside it and swapped in at the end.",
    )
    parser.add_argument(
        "--max_failed_fraction",
        type=float,
        default=DEFAULT_MAX_FAILED_FRACTION,
        help="Exit with an error (the output is still written, its "
        'manifest.json saying status "failed") when more than this '
        "fraction of a split's listed videos failed (default "
        f"{DEFAULT_MAX_FAILED_FRACTION}: UCF101 and HMDB51 extract "
        "without failures and downloaded sets such as Kinetics lose "
        "a few percent, while a wrong --videos_dir or a missing codec "
        "fails most videos). A run that writes no video at all is "
        "always an error.",
    )
    parser.add_argument(
        "--allow_absolute_paths",
        action="store_true",
        default=False,
        help="Accept absolute paths (/data/x.avi, gs://b/x.avi) in the split "
        "files or --manifest CSV. Without it such an entry, like one "
        "whose '..' leads outside --videos_dir, is not opened and is "
        'listed in failed.jsonl (stage "path").',
    )


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """What the workers need to know, checked once on the launcher."""

    videos_dir: str
    output_dir: str
    splits_dir: Optional[str]
    split: int
    manifest: Optional[str]
    reencode: str
    reencode_gop: int
    rgb_short_side: int
    mv_cell: int
    min_frames: int
    jpeg_quality: int
    num_shards: int
    overwrite: bool
    compression: str = "gzip"
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION
    allow_absolute_paths: bool = False
    reencode_bitrate: Optional[int] = None  # bits/s; None: constant quality
    iframe_source: str = IFRAME_SOURCE_DECODED
    iframe_bitrate: Optional[int] = None  # bits/s with iframe_source "reencode", else None

    @classmethod
    def from_options(cls, options: PipelineOptions) -> "ExtractConfig":
        """Validates the job's flags; ``ValueError`` names the bad flag and value."""
        opts = options.view_as(ExtractOptions)
        problems = _flag_problems(opts)
        reencode_bitrate, iframe_bitrate = _bitrates(opts, problems)
        if problems:
            raise ConfigError("invalid options: " + "; ".join(problems))
        return cls(
            videos_dir=opts.videos_dir.rstrip("/") or "/",
            output_dir=opts.output_dir.rstrip("/") or "/",
            splits_dir=opts.splits_dir,
            split=opts.split,
            manifest=opts.manifest,
            reencode=opts.reencode,
            reencode_gop=opts.reencode_gop,
            rgb_short_side=opts.rgb_short_side,
            mv_cell=opts.mv_cell,
            min_frames=opts.min_frames,
            jpeg_quality=opts.jpeg_quality,
            num_shards=opts.num_shards,
            overwrite=opts.overwrite,
            compression=opts.compression,
            max_failed_fraction=opts.max_failed_fraction,
            allow_absolute_paths=opts.allow_absolute_paths,
            reencode_bitrate=reencode_bitrate,
            iframe_source=opts.iframe_source,
            iframe_bitrate=iframe_bitrate,
        )

    def shards_for(self, listed: int) -> int:
        """Shard count of a split with ``listed`` videos."""
        if self.num_shards:
            return self.num_shards
        return max(1, math.ceil(listed / VIDEOS_PER_SHARD))


def _flag_problems(opts: ExtractOptions) -> List[str]:
    """The required flags, their combinations and ranges: one line per problem."""
    problems = []
    if not opts.videos_dir:
        problems.append("--videos_dir is required")
    if not opts.output_dir:
        problems.append("--output_dir is required")
    if bool(opts.splits_dir) == bool(opts.manifest):
        problems.append("pass exactly one of --splits_dir and --manifest")
    for flag, value, low, high in (
        ("--split", opts.split, 1, None),
        ("--reencode_gop", opts.reencode_gop, 1, None),
        ("--rgb_short_side", opts.rgb_short_side, 16, None),
        ("--mv_cell", opts.mv_cell, 1, 64),
        ("--min_frames", opts.min_frames, 0, None),
        ("--jpeg_quality", opts.jpeg_quality, 1, 95),
        ("--num_shards", opts.num_shards, 0, None),
    ):
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            problems.append(f"{flag} must be {bound}, got {value}")
    if not 0.0 <= opts.max_failed_fraction <= 1.0:
        problems.append(f"--max_failed_fraction must be in [0, 1], got {opts.max_failed_fraction}")
    return problems


def _bitrates(opts: ExtractOptions, problems: List[str]) -> tuple:
    """(--reencode_bitrate, --iframe_bitrate) in bits/s or None; their problems go to
    ``problems``."""
    reencode_bitrate = iframe_bitrate = None
    if opts.reencode_bitrate is not None:
        try:
            reencode_bitrate = parse_bitrate(opts.reencode_bitrate)
        except ValueError as error:
            problems.append(f"--reencode_bitrate: {error}")
        if opts.reencode == "none":
            problems.append("--reencode_bitrate needs --reencode mpeg4 or h264")
    if opts.iframe_source == IFRAME_SOURCE_REENCODE:
        try:
            iframe_bitrate = parse_bitrate(opts.iframe_bitrate or DEFAULT_IFRAME_BITRATE)
        except ValueError as error:
            problems.append(f"--iframe_bitrate: {error}")
    elif opts.iframe_bitrate is not None:
        problems.append("--iframe_bitrate needs --iframe_source reencode")
    return reencode_bitrate, iframe_bitrate


def parse_bitrate(text: str) -> int:
    """A bit rate as ffmpeg's ``-b:v`` writes it, in bits/s: "200k" -> 200000, "1.5M",
    "64000". ``ValueError`` quotes the text; at least 1000 bits/s."""
    value = str(text).strip()
    unit = value[-1:].lower() if value[-1:].isalpha() else ""
    try:
        number = float(value[:-1] if unit else value)
        bits = int(round(number * _BITRATE_UNITS[unit]))
    except (KeyError, ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a bit rate (e.g. 200k, 1.5M, 64000)") from None
    if bits < 1000:
        raise ValueError(f"{text!r} is below 1000 bits/s")
    return bits


def _mentions(argv: Sequence[str], *flags: str) -> bool:
    return any(arg == f"--{flag}" or arg.startswith(f"--{flag}=") for arg in argv for flag in flags)


def check_flags(argv: Sequence[str]) -> None:
    """Raises :class:`UnknownFlagError` naming every flag no options class defines.

    Beam itself drops such flags with a warning ("Discarding unparseable
    args"), so a typo such as ``--rencode mpeg4`` would run the job without
    re-encoding. Each unknown flag comes with the closest known one; a stray
    word that is no flag's value is reported too (:mod:`beam_jobs.job_flags`;
    this job's own flags are a registered ``PipelineOptions`` class).
    """
    job_flags.check_flags(argv, job_flags.beam_flags(), "python -m beam_jobs.extract")


def make_pipeline_options(argv: Optional[Sequence[str]] = None) -> PipelineOptions:
    """Parses ``argv`` (job and Beam flags) into ``PipelineOptions``.

    Flags that neither this job nor Beam defines are an error
    (:func:`check_flags`). Without ``--runner`` (or with
    ``--runner=DirectRunner``) the job runs locally on ``FnApiRunner``, the
    engine the DirectRunner uses for batch pipelines, named directly because
    Beam 2.77's DirectRunner first tries to download the Prism runner from the
    internet, and Prism runs every worker inside the launching process. Local
    runs without any ``--direct_*`` flag get one worker process per core:
    decoding is single-threaded per video, so the job scales by processes.
    ``--runner DaskRunner`` is Beam's Dask runner (:mod:`beam_jobs.dask_cluster`;
    ``ValueError`` when dask is not installed or its flags disagree). Other
    runners (Dataflow, Flink, Spark, Prism) are left as given.
    """
    argv: List[str] = list(sys.argv[1:] if argv is None else argv)
    if dask_cluster.named_in(argv):
        dask_cluster.import_runner()  # defines Beam's --dask_* flags before they are checked
    check_flags(argv)
    options = PipelineOptions(argv)
    dask_cluster.configure(options)
    standard = options.view_as(StandardOptions)
    if standard.runner is None or str(standard.runner).split(".")[-1] in LOCAL_RUNNERS:
        standard.runner = LOCAL_RUNNER
    user_set = _mentions(argv, "direct_num_workers", "direct_running_mode")
    if standard.runner == LOCAL_RUNNER and not user_set:
        direct = options.view_as(DirectOptions)
        direct.direct_num_workers = os.cpu_count() or 1
        direct.direct_running_mode = "multi_processing"
    return options
