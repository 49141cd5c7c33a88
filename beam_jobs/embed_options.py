"""Flags of ``python -m beam_jobs.embed``: the job's own parser, then Beam's options.

The job's flags are ``tfcmvp embed``'s flags of the same names (defined once,
in :mod:`tfcmvp.cli.embed_cmd`), plus ``--output_dir`` and
``--num_shards``. They are parsed by an argparse parser
of their own, not by a ``PipelineOptions`` subclass: Beam parses every
``PipelineOptions`` subclass of the process with one parser, and the
extraction job's ``ExtractOptions`` (imported with its runner set-up)
already defines ``--output_dir``, ``--num_shards``, ``--min_frames``,
``--max_failed_fraction`` and the storage flags, with other defaults; two
classes defining one flag break every Beam parse. The workers do not need
the flags: :class:`EmbedConfig` travels inside the DoFns.

Everything else on the command line must be an Apache Beam pipeline option
(:func:`beam_jobs.job_flags.check_flags`: a typo is an error naming the
closest flag), and goes to the extraction job's runner set-up
(:func:`beam_jobs.extract_options.make_pipeline_options`): without
``--runner``, Beam's FnApiRunner with one worker process per core, workers
that exit with the launcher.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_jobs import extract_options, job_flags
from tfcmvp.cli import embed_cmd  # the defaults of `tfcmvp embed` (no TensorFlow import)
from tfcmvp.errors import ConfigError

PROG = "python -m beam_jobs.embed"
# --num_shards 0: about this many videos per shard (10 clips x 512 floats: ~20 MB of
# embeddings per shard).
VIDEOS_PER_SHARD = 1000
# Runners this job cannot use, and why (checked before anything starts).
UNSUPPORTED_RUNNERS = {
    "DaskRunner": "its Dask runner has no side inputs, which the shard writer reads (each "
    "shard's first row number); run it on the local runner (no --runner) or on "
    "Dataflow",
}


class _Parser(argparse.ArgumentParser):
    """Raises ValueError instead of printing usage and exiting (the launcher reports it)."""

    def error(self, message):
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The job's own flags (:mod:`beam_jobs.embed` for what they do)."""
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="`tfcmvp embed` as an Apache Beam job: clip embeddings of video files with "
        "an exported network, written in shards with a manifest.",
        epilog="Any Apache Beam pipeline option is accepted as well (--runner, --project, "
        "--region, --temp_location, --setup_file, --direct_num_workers, ...); any other "
        "flag is an error.\n\nexit status: 0 done; 1 the output was written but no "
        "video was embedded, or more than --max_failed_fraction failed (manifest.json "
        'status "failed"); 2 bad flags, inputs, export or --output_dir (nothing '
        "written); 130 / 143 interrupted by Ctrl-C / SIGTERM.",
    )
    _add_io_arguments(parser)
    # The flags `tfcmvp embed` shares, defined there once.
    embed_cmd.add_layout_arguments(parser)
    embed_cmd.add_run_arguments(parser)
    embed_cmd.add_storage_arguments(parser)
    return parser


def _add_io_arguments(parser) -> None:
    """What is embedded, with which export, and where the output goes."""
    parser.add_argument(
        "--inputs",
        nargs="+",
        action="extend",
        metavar="INPUT",
        help="video files, folders (searched recursively for .mp4, .avi, .mkv, "
        ".mov, .webm, .mpg, ... files) or list files (.txt / .csv, one "
        "path per line, relative to the list file); local or gs://...",
    )
    parser.add_argument(
        "--model", help="export folder written by `tfcmvp export` (local or gs://...)"
    )
    parser.add_argument(
        "--output_dir",
        help="where the shards, manifest.json and failed.jsonl go (local or "
        "gs://...); must be missing or empty unless --overwrite",
    )
    parser.add_argument(
        "--num_shards",
        type=int,
        default=0,
        help=f"shards of the output; 0 (default) = about one per {VIDEOS_PER_SHARD} listed videos",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous output of this job in --output_dir (written "
        "beside it and swapped in at the end)",
    )


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """What the launcher and the workers need to know, checked once on the launcher.

    The clip and storage fields are those of
    :class:`tfcmvp.embedding.ClipLayout` and
    :class:`tfcmvp.embedding.StorageSettings` (built from them where
    TensorFlow is loaded: :meth:`layout`, :meth:`storage`).
    """

    inputs: Tuple[str, ...]  # --inputs, as given
    model_dir: str  # --model
    output_dir: str  # --output_dir, without a trailing "/"
    num_shards: int = 0  # --num_shards; 0: about one per VIDEOS_PER_SHARD listed videos
    overwrite: bool = False  # --overwrite
    num_clips: int = embed_cmd.DEFAULT_CLIPS  # --clips
    window: Optional[int] = None  # --window
    stride: Optional[int] = None  # --stride
    min_frames: int = 1  # --min_frames
    max_failed_fraction: float = embed_cmd.DEFAULT_MAX_FAILED_FRACTION  # --max_failed_fraction
    batch_size: int = embed_cmd.DEFAULT_BATCH_SIZE  # --batch_size
    rgb_short_side: int = embed_cmd.DEFAULT_RGB_SHORT_SIDE  # --rgb_short_side
    jpeg_quality: int = embed_cmd.DEFAULT_JPEG_QUALITY  # --jpeg_quality
    mv_cell: int = embed_cmd.DEFAULT_MV_CELL  # --mv_cell

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EmbedConfig":
        """Validates the parsed flags; ``ValueError`` names every bad flag and its value."""
        problems: List[str] = []
        for flag, value in (
            ("--inputs", args.inputs),
            ("--model", args.model),
            ("--output_dir", args.output_dir),
        ):
            if not value:
                problems.append(f"{flag} is required")
        sliding = args.window is not None or args.stride is not None
        if sliding and args.clips is not None:
            problems.append(
                "--clips places clips at retrieval's positions; --window / --stride "
                "place one per segment: give one or the other"
            )
        for flag, value, low, high in (
            ("--num_shards", args.num_shards, 0, None),
            ("--clips", args.clips, 1, None),
            ("--window", args.window, 1, None),
            ("--stride", args.stride, 1, None),
            ("--min_frames", args.min_frames, 1, None),
            ("--batch_size", args.batch_size, 1, None),
            ("--rgb_short_side", args.rgb_short_side, 16, None),
            ("--jpeg_quality", args.jpeg_quality, 1, 95),
            ("--mv_cell", args.mv_cell, 1, 64),
        ):
            if value is not None and (value < low or (high is not None and value > high)):
                bound = f">= {low}" if high is None else f"in [{low}, {high}]"
                problems.append(f"{flag} must be {bound}, got {value}")
        if not 0.0 <= args.max_failed_fraction <= 1.0:
            problems.append(
                f"--max_failed_fraction must be in [0, 1], got {args.max_failed_fraction}"
            )
        if problems:
            raise ConfigError("invalid options: " + "; ".join(problems))
        return cls(
            inputs=tuple(args.inputs),
            model_dir=args.model.rstrip("/") or "/",
            output_dir=args.output_dir.rstrip("/") or "/",
            num_shards=args.num_shards,
            overwrite=args.overwrite,
            num_clips=args.clips or embed_cmd.DEFAULT_CLIPS,
            window=args.window,
            stride=args.stride,
            min_frames=args.min_frames,
            max_failed_fraction=args.max_failed_fraction,
            batch_size=args.batch_size,
            rgb_short_side=args.rgb_short_side,
            jpeg_quality=args.jpeg_quality,
            mv_cell=args.mv_cell,
        )

    def shards_for(self, listed: int) -> int:
        """Shard count of an output of ``listed`` videos."""
        if self.num_shards:
            return self.num_shards
        return max(1, math.ceil(listed / VIDEOS_PER_SHARD))

    def layout(self):
        """The :class:`tfcmvp.embedding.ClipLayout` of these flags (imports TensorFlow)."""
        from tfcmvp.embedding import ClipLayout

        return ClipLayout(num_clips=self.num_clips, window=self.window, stride=self.stride)

    def storage(self):
        """The :class:`tfcmvp.embedding.StorageSettings` of these flags."""
        from tfcmvp.embedding import StorageSettings

        return StorageSettings(
            rgb_short_side=self.rgb_short_side, jpeg_quality=self.jpeg_quality, mv_cell=self.mv_cell
        )


def known_flags() -> dict:
    """This job's flags and every Beam flag (not the extraction job's) -> argparse action."""
    return {
        **job_flags.beam_flags(exclude=(extract_options.ExtractOptions,)),
        **job_flags.parser_flags(build_parser()),
    }


def parse(argv: Sequence[str]) -> Tuple[EmbedConfig, PipelineOptions]:
    """``argv`` -> (the job's config, Beam's options with the local runner set-up).

    Raises :class:`beam_jobs.job_flags.UnknownFlagError` (a ValueError) for a
    flag neither this job nor Beam defines, and ValueError for bad values or
    a runner this job cannot use.
    """
    argv = list(argv)
    job_flags.check_flags(argv, known_flags(), PROG)
    args, beam_argv = build_parser().parse_known_args(argv)
    config = EmbedConfig.from_args(args)
    runner = PipelineOptions(beam_argv).view_as(StandardOptions).runner
    short = str(runner).split(".")[-1]
    if short in UNSUPPORTED_RUNNERS:
        raise ConfigError(
            f"--runner {runner}: not supported by {PROG}: {UNSUPPORTED_RUNNERS[short]}"
        )
    return config, extract_options.make_pipeline_options(beam_argv)
