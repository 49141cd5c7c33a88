"""``tfcmvp kinetics``: Kinetics-400 annotation CSVs + downloaded videos -> the CSV
manifest of ``beam_jobs.extract --manifest`` (see :mod:`tfcmvp.kinetics`)."""

from __future__ import annotations

import logging

from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "kinetics",
        help="write the extraction manifest of a Kinetics-400 download, with a ledger of "
        "missing videos",
        description=(
            "Match the official Kinetics-400 annotation CSVs (label, youtube_id, time_start, "
            "time_end, split) with the downloaded videos: trimmed clips "
            "<youtube_id>_<start:06d>_<end:06d>.mp4 in class folders or flat, or untrimmed "
            "<youtube_id>.mp4 downloads (.webm, .mkv, .avi, .mov too), whose annotated "
            "window the manifest carries so that the extraction decodes only that range. "
            "Writes LIST.csv (path,label,split,start,end; paths relative to --videos: pass "
            "the same folder as --videos_dir), LIST.missing.csv (listed videos with no file) "
            "and LIST.ledger.json (counts per split and class, duplicate and out-of-range "
            "annotations). Kinetics 'val' becomes the manifest's 'test' split."
        ),
    )
    parser.add_argument(
        "--annotations", required=True, help="folder of the annotation CSVs (train.csv, ...)"
    )
    parser.add_argument("--videos", required=True, help="folder of the downloaded videos")
    parser.add_argument("--output", required=True, metavar="LIST.csv", help="manifest to write")
    parser.add_argument(
        "--include",
        default="train,val",
        help="Kinetics splits to list, comma-separated (default train,val; 'test' also "
        "goes to the manifest's test split)",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from tfcmvp import kinetics

    include = tuple(name.strip() for name in args.include.split(",") if name.strip())
    try:
        texts = kinetics.read_annotation_folder(args.annotations)
        index = kinetics.VideoIndex.from_folder(args.videos)
        result = kinetics.import_kinetics(texts, index, include)
    except TfcmvpError as error:
        logger.error("%s", error)
        return 2
    written = kinetics.write_outputs(result, args.output)
    ledger = result.ledger()
    for name in result.include:
        print(
            f"{name} -> {kinetics.SPLIT_MAP[name]}: {ledger['listed'][name]} listed, "
            f"{ledger['found'][name]} found, {ledger['missing'][name]} missing"
        )
    print(
        f"layouts: {', '.join(f'{k} {v}' for k, v in ledger['layouts'].items())}; "
        f"rejected: {ledger['duplicates']} duplicate, {ledger['out_of_range']} out-of-range"
    )
    print("wrote " + ", ".join(written))
    if not result.rows:
        logger.error("no listed video was found under %s", args.videos)
        return 1
    return 0
