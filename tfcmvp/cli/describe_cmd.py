"""``tfcmvp describe``: what an export folder eats and returns (see :mod:`tfcmvp.export`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import common
from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "describe",
        help="print the input contract, signatures and provenance of an export folder",
        description=(
            "Read MODEL_DIR/assets/tfcmvp_export.json and load the SavedModel: prints the "
            "input contract (frames, stride, size, value range, normalisation or vector "
            "scaling), every signature with its TensorSpecs as saved_model.pb declares them, "
            "where the weights came from, the versions that wrote it and the key values of "
            "assets/config.yaml."
        ),
    )
    parser.add_argument(
        "model_dir", metavar="MODEL_DIR", help="export folder written by `tfcmvp export`"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    # Imported here: TensorFlow takes seconds to load; --help should not wait for it.
    from tfcmvp.export import describe_export

    try:
        text = describe_export(args.model_dir)
    except TfcmvpError as error:  # NotAnExportError
        return common.report_error(logger, error)
    print(text)
    return 0
