"""Shared test fixtures: paths to the read-only test data beside the checkout."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# CI and developers have ../shared beside the clone; TFCMVP_SHARED overrides.
SHARED_DIR = pathlib.Path(os.environ.get("TFCMVP_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def carphone_path() -> pathlib.Path:
    """Real H.264 (with B-frames) camera sequence, 176x144, 120 frames."""
    path = SHARED_DIR / "data" / "videos" / "carphone_pristine.mp4"
    if not path.is_file():
        pytest.fail(f"test video missing: {path} (set TFCMVP_SHARED to the shared/ folder)")
    return path
