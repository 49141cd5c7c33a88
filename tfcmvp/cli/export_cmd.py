"""``tfcmvp export``: write a network as a SavedModel (see :mod:`tfcmvp.export`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import common
from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)

NETWORK_CHOICES = ("video", "iframe", "motion")  # tfcmvp.export.PRETRAIN_NETWORKS (no TF import)
FORMAT_CHOICES = ("savedmodel", "litert", "onnx")  # savedmodel + tfcmvp.export.portable.FORMATS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a pretrained (or untrained) network as a TensorFlow SavedModel",
        description=(
            "Rebuild a network from WORKDIR/config.yaml, load WORKDIR/weights/"
            "<v|i|m>_network.weights.h5 and write a SavedModel with the signatures `embed` "
            "(= serving_default; clips -> {embedding: [N, D]}) and `features` (clips -> "
            "{features: [N, T', H', W', C]}), plus assets/tfcmvp_export.json (input contract "
            "and provenance), assets/config.yaml and assets/network.weights.h5. With "
            "--random_init the network of --config is exported untrained (the scratch "
            "baseline). The folder loads with tf.saved_model.load, TensorFlow only."
        ),
    )
    parser.add_argument("--workdir", help="pretraining run folder (written by tfcmvp pretrain)")
    parser.add_argument(
        "--random_init",
        action="store_true",
        help="export the untrained network of --config instead of a workdir's",
    )
    common.add_config_argument(
        parser, "with --random_init: YAML config (default: the paper's UCF101 C3D settings)"
    )
    common.add_set_argument(parser, "with --random_init: override a config field (repeatable)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="with --random_init: initialisation seed (default train.seed)",
    )
    parser.add_argument(
        "--network",
        choices=NETWORK_CHOICES,
        default="video",
        help="which network: video (default), iframe or motion",
    )
    parser.add_argument(
        "--output", required=True, help="export folder (for TF Serving: MODEL_BASE/1)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous export in --output (a folder holding "
        "saved_model.pb and assets/tfcmvp_export.json, nothing else); any "
        "other folder, the --workdir or a parent of it is refused. The old "
        "export stays whole until the new one is swapped in. With --format "
        "litert|onnx, also replace OUTPUT.tflite|.onnx and its .json",
    )
    parser.add_argument(
        "--format",
        choices=FORMAT_CHOICES,
        default="savedmodel",
        help="savedmodel (default): the SavedModel folder only. litert / onnx: also "
        "convert its `embed` signature (clips -> embedding) to OUTPUT.tflite / "
        "OUTPUT.onnx beside the folder, with OUTPUT.<ext>.json (the input contract "
        "and the parity with the SavedModel measured at conversion). Needs the "
        "export extra: pip install -e '.[export]'",
    )
    parser.set_defaults(run=run)


def _usage_error(args) -> str | None:
    if args.random_init:
        if args.workdir:
            return "--workdir and --random_init exclude each other"
        return None
    if not args.workdir:
        return "pass --workdir (a pretraining run) or --random_init [--config FILE]"
    given = [
        flag
        for flag, value in (
            ("--config", args.config),
            ("--set", args.overrides),
            ("--seed", args.seed is not None),
        )
        if value
    ]
    if given:
        return (
            f"{', '.join(given)} only go with --random_init; a workdir export uses the "
            f"workdir's own config.yaml"
        )
    return None


def _portable_ready(args) -> bool:
    """False, after logging why, when ``--format litert|onnx`` cannot be written.

    Checked before the SavedModel is written: a missing converter or a file in
    the way should not be found out after minutes of export.
    """
    from tfcmvp.export import portable

    missing = portable.missing_dependencies(args.format)
    if missing:
        logger.error(
            "tfcmvp export --format %s needs %s, which is not installed: %s",
            args.format,
            ", ".join(missing),
            portable.INSTALL_HINT,
        )
        return False
    try:
        portable.check_output(
            portable.default_path(args.output, args.format),
            args.format,
            overwrite=args.overwrite,
        )
    except TfcmvpError as error:  # OverwriteRefused
        logger.error("%s", error)
        return False
    return True


def _write_portable(path, args) -> int:
    """Converts the written export to ``--format``; the exit status."""
    from tfcmvp.export import portable

    try:
        converted = portable.convert_export(path, args.format, overwrite=args.overwrite)
    except TfcmvpError as error:  # PortableExportError is an ExportError
        logger.error("tfcmvp export --format %s: %s", args.format, error)
        logger.debug("traceback of the error above", exc_info=True)
        return 2
    print(portable.portable_summary(converted))
    return 0


def run(args) -> int:
    problem = _usage_error(args)
    if problem:
        logger.error("tfcmvp export: %s", problem)
        return 2
    from tfcmvp.config import ConfigError, load_config

    config = None
    if args.random_init:
        try:
            config = load_config(args.config, args.overrides)
        except ConfigError as error:
            logger.error("%s", error)
            return 2
    if args.format != "savedmodel" and not _portable_ready(args):
        return 2
    # Imported here: TensorFlow takes seconds to load; --help should not wait for it.
    from tfcmvp.export import (
        export_pretrained,
        export_random_init,
        export_summary,
        read_export_info,
    )

    try:
        if args.random_init:
            path = export_random_init(
                config,
                args.output,
                args.network,
                seed=args.seed,
                overwrite=args.overwrite,
                config_path=args.config,
            )
        else:
            path = export_pretrained(
                args.workdir, args.output, args.network, overwrite=args.overwrite
            )
    except TfcmvpError as error:  # RunNotFoundError, OverwriteRefused, ExportError
        return common.report_error(logger, error)
    print(export_summary(path, read_export_info(path)))
    if args.format != "savedmodel":
        return _write_portable(path, args)
    return 0
