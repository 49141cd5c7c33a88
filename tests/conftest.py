"""Shared test fixtures: paths to the test data kept in the repository."""

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"  # vendored, with its licence note (README.md there)


@pytest.fixture(scope="session")
def carphone_path() -> pathlib.Path:
    """Real H.264 (with B-frames) camera sequence, 176x144, 120 frames."""
    path = TEST_DATA / "carphone_pristine.mp4"
    if not path.is_file():
        pytest.fail(f"test video missing: {path} (it is part of the repository)")
    return path
