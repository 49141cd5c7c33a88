"""Shared test fixtures: the test data kept in the repository, a fake pretraining run
with its exports (tests/export_support.py builds them), and the export that gives the
known data of tests/retrieval_support.py its exact features."""

import pathlib

import pytest

from export_support import NETWORKS, fake_workdir
from retrieval_support import save_known_export

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"  # vendored, with its licence note (README.md there)


@pytest.fixture(scope="session")
def carphone_path() -> pathlib.Path:
    """Real H.264 (with B-frames) camera sequence, 176x144, 120 frames."""
    path = TEST_DATA / "carphone_pristine.mp4"
    if not path.is_file():
        pytest.fail(f"test video missing: {path} (it is part of the repository)")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """(workdir, config, {network: keras model}) of a finished fake pretraining run
    (``export_support.fake_workdir``); one per test module."""
    path = tmp_path_factory.mktemp("run")
    config, models = fake_workdir(path)
    return path, config, models


@pytest.fixture(scope="module")
def exports(workdir, tmp_path_factory):
    """{network: export folder} of the three networks of the module's fake run."""
    from tfcmvp.export import export_pretrained

    root = tmp_path_factory.mktemp("exports")
    return {network: export_pretrained(workdir[0], root / network, network) for network in NETWORKS}


@pytest.fixture(scope="module")
def known_export(tmp_path_factory):
    """Folder ``v_net`` of the quantised tiny video export that gives the known data
    (``retrieval_support.write_known_data``) its exact features."""
    return save_known_export(tmp_path_factory.mktemp("exports") / "v_net")
