"""Fault injection: data folders that disagree with their manifest.json.

Known answers: a missing shard, an extra shard of another run, a folder
without a manifest (an unfinished run), a truncated shard, a record count
that differs and a manifest naming a path outside the folder each stop the
readers (pretraining, retrieval) with exit status 2 and a message naming the
folder and the shard(s); nothing is read that the manifest does not list and
nothing in the folder is changed or deleted.
"""

import json
import logging
import shutil

import pytest

from tfcmvp import manifest, verify
from tfcmvp.data import synthetic

from faults_support import snapshot, write_folder
from retrieval_support import CROP, FRAMES, run_retrieval, save_tiny_export, solid_record
from training_support import NUM_FRAMES, run_pretrain


def _painted(split, count, prefix=""):
    return [
        synthetic.painted_record(f"{prefix}{split}{i:02d}", NUM_FRAMES, split=split)
        for i in range(count)
    ]


def _solid(split, count, prefix=""):
    return [
        solid_record(f"{prefix}{split}{i}", i % 2, split, rgb=(20 * i, 90, 180))
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_export(
        tmp_path_factory.mktemp("exports") / "tiny", "video", [FRAMES, CROP, CROP, 3]
    )


def test_a_missing_shard_stops_pretraining(tmp_path, caplog):
    data = tmp_path / "data"
    write_folder(data, {"train": _painted("train", 10)}, num_shards=3)
    (data / "train-00001-of-00003.tfrecord.gz").unlink()  # 3 of the 10 videos
    before = snapshot(data)
    caplog.set_level(logging.ERROR)
    assert run_pretrain(data, tmp_path / "run") == 2
    assert (
        f"{data}: 1 of the 3 train shards that manifest.json lists are missing: "
        f"train-00001-of-00003.tfrecord.gz"
    ) in caplog.text
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert snapshot(data) == before


def test_shards_of_another_run_stop_retrieval(tmp_path, model, caplog):
    """Two runs in one folder used to give a gallery with every video twice."""
    data, other = tmp_path / "data", tmp_path / "other"
    write_folder(data, {"test": _solid("test", 4), "train": _solid("train", 6)})
    write_folder(
        other, {"test": _solid("test", 4, "x"), "train": _solid("train", 6, "x")}, num_shards=3
    )
    stray = "train-00000-of-00003.tfrecord.gz"
    shutil.copy(other / stray, data / stray)
    before = snapshot(data)
    caplog.set_level(logging.ERROR)
    assert run_retrieval(model, data, tmp_path / "r.json", "--clips", 2) == 2
    assert (
        f"{data}: 1 train shard(s) that its manifest.json does not list: {stray} (shards "
        f"of another run?)"
    ) in caplog.text
    assert not (tmp_path / "r.json").exists()
    assert snapshot(data) == before  # the stray shard is still there: not ours to delete
    assert not (data / ".tfcmvp_cache").exists()  # nothing was read


def test_a_folder_without_manifest_is_an_unfinished_run(tmp_path, model, caplog):
    data = tmp_path / "data"
    write_folder(data, {"test": _solid("test", 4), "train": _solid("train", 6)})
    (data / "manifest.json").unlink()
    caplog.set_level(logging.ERROR)
    assert run_retrieval(model, data, tmp_path / "r.json", "--clips", 2) == 2
    assert (
        f"{data} has 2 test shard(s) but no manifest.json: the extraction job writes it "
        f"last, so this is an unfinished or interrupted run"
    ) in caplog.text
    assert run_pretrain(data, tmp_path / "run") == 2
    assert f"{data} has 2 train shard(s) but no manifest.json" in caplog.text
    assert not (tmp_path / "r.json").exists()


def test_a_truncated_shard_differs_from_the_manifest_bytes(tmp_path):
    data = tmp_path / "data"
    write_folder(data, {"train": _painted("train", 4)})
    shard = data / "train-00000-of-00002.tfrecord.gz"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:-100])
    expected = json.loads((data / "manifest.json").read_text())["splits"]["train"]["bytes"]
    with pytest.raises(
        manifest.DataFolderError,
        match=f"its 2 train shard\\(s\\) hold {expected - 100} bytes, "
        f"manifest.json says {expected}",
    ):
        manifest.find_shards(data, "train")
    assert shard.stat().st_size == size - 100


def test_a_record_count_that_differs_is_an_error(tmp_path):
    from tfcmvp.data import reader

    data = tmp_path / "data"
    write_folder(data, {"train": _painted("train", 4)})
    path = data / "manifest.json"
    values = json.loads(path.read_text())
    values["splits"]["train"].update(written=5, listed=5)
    del values["splits"]["train"]["bytes"]  # only the count disagrees
    path.write_text(json.dumps(values))
    files = manifest.find_shards(data, "train")
    assert files.expected_records == 5
    with pytest.raises(
        manifest.DataFolderError,
        match=f"{data}: 4 train records read from 2 shard\\(s\\), its "
        f"manifest.json says 5 were written",
    ):
        reader.scan_records(files)
    report = verify.verify_data(data, workers=1)
    assert not report.ok
    assert report.splits[0].count_problem == (
        "4 records in the shards, manifest.json says 5 were written"
    )


def test_a_manifest_cannot_point_outside_its_folder(tmp_path):
    data = tmp_path / "data"
    write_folder(data, {"train": _painted("train", 2)}, num_shards=1)
    path = data / "manifest.json"
    values = json.loads(path.read_text())
    values["splits"]["train"]["shards"] = ["../elsewhere/train-00000-of-00001.tfrecord.gz"]
    path.write_text(json.dumps(values))
    with pytest.raises(manifest.DataFolderError, match="which is not a shard name of that split"):
        manifest.find_shards(data, "train")
