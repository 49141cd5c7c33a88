"""``tfcmvp retrieval`` end to end on a tiny export: R@k against a brute-force reference."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from tfcmvp.cli import retrieval_cmd
from tfcmvp.retrieval import PROTOCOLS, features

from retrieval_support import (
    KNOWN_TEST,
    KNOWN_TEST_LABELS,
    KNOWN_TRAIN,
    KNOWN_TRAIN_LABELS,
    ModelCalls,
    reference_recall,
    run_retrieval,
    solid_record,
    write_data,
    write_known_data,
    write_labels_csv,
)

KS = (1, 5, 10, 20, 50)
# The known data: queries are its test videos, the gallery its train videos.
QUERY, QUERY_LABELS = KNOWN_TEST, KNOWN_TEST_LABELS
GALLERY, GALLERY_LABELS = KNOWN_TRAIN, KNOWN_TRAIN_LABELS
RECORD_KEYS = {
    "R@1",
    "R@5",
    "R@10",
    "R@20",
    "R@50",
    "protocol",
    "model",
    "name",
    "data",
    "num_queries",
    "num_gallery",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_known_data(tmp_path_factory.mktemp("data"), num_shards=3)


def reference(protocol):
    recalls, similarity = reference_recall(
        QUERY, QUERY_LABELS, GALLERY, GALLERY_LABELS, KS, protocol
    )
    # The design leaves no near-ties, so float32 and float64 rank alike.
    assert np.diff(np.sort(similarity, axis=1), axis=1).min() > 1e-3
    return recalls


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recall_matches_the_brute_force_reference(
    tmp_path, capsys, data_dir, known_export, protocol
):
    expected = reference(protocol)
    assert 0 < expected["R@1"] < 100 and expected["R@5"] < 100  # the test can tell errors apart
    output = tmp_path / "out" / "retrieval.json"
    cache = ("--cache_dir", tmp_path / "cache")
    assert (
        run_retrieval(known_export, data_dir, output, "--clips", 2, "--protocol", protocol, *cache)
        == 0
    )
    record = json.loads(output.read_text())
    assert set(record) == RECORD_KEYS
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, abs=1e-9), key
    assert record["protocol"] == protocol and record["model"] == str(known_export)
    assert record["num_queries"] == 9 and record["num_gallery"] == 12
    data = record["data"]
    assert data["dir"] == str(data_dir) and data["layout"] == "csv"
    # VCOP: the 2 clips asked for; CoCLR: its sliding windows, 2-frame windows at every start
    # 0 .. 4 of the 6-frame videos (hop max(2 // 2 - 1, 1) = 1): 5 per video.
    clips = {"vcop": 2, "coclr": 5.0}[protocol]
    assert data["modality"] == "rgb" and data["clips_per_video"] == clips
    assert data["clip_positions"] == {"vcop": "vcop", "coclr": "sliding"}[protocol]
    assert data["network"] == "video"

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "protocol", "R@1", "R@5", "R@10", "R@20", "R@50"]
    assert lines[2].split() == ["v_net", protocol] + [f"{expected[f'R@{k}']:.1f}" for k in KS]
    assert f"9 queries (test), 12 gallery videos (train), {clips} rgb clips per video" in lines[3]


def test_second_run_with_a_figure_does_not_run_the_model(
    monkeypatch, tmp_path, data_dir, known_export
):
    calls = ModelCalls(monkeypatch)
    cache = tmp_path / "cache"
    assert (
        run_retrieval(
            known_export, data_dir, tmp_path / "first.json", "--clips", 2, "--cache_dir", cache
        )
        == 0
    )
    assert calls.loads == 1 and sum(calls.clips_per_call) == 2 * 21
    assert len(list(cache.glob("features-v_net-*.npz"))) == 1
    assert len(list(cache.glob("thumbs-*.npz"))) == 1

    calls.reset()
    png = tmp_path / "figs" / "retrieval.png"
    second = tmp_path / "second.json"
    assert (
        run_retrieval(
            known_export, data_dir, second, "--clips", 2, "--cache_dir", cache, "--png", png
        )
        == 0
    )
    assert calls.loads == 0 and calls.clips_per_call == []
    record = json.loads(second.read_text())
    assert record["R@1"] == pytest.approx(reference("vcop")["R@1"])
    # 8 query rows of 1 + 5 panels, 1.5 in at 100 dpi each, plus the title strip.
    with Image.open(png) as image:
        assert image.size == (6 * 150, 8 * 150 + 40)

    # CoCLR's sliding windows are other clips: their own cache entry, then reused.
    for loads in (1, 1):
        third = tmp_path / "third.json"
        assert (
            run_retrieval(
                known_export, data_dir, third, "--protocol", "coclr", "--cache_dir", cache
            )
            == 0
        )
        assert calls.loads == loads
    assert len(list(cache.glob("features-v_net-*.npz"))) == 2
    record = json.loads(third.read_text())
    assert record["R@1"] == pytest.approx(reference("coclr")["R@1"])


def test_no_cache_writes_nothing_and_default_cache_is_under_data(tmp_path, data_dir, known_export):
    data = write_data(
        tmp_path / "data",
        [solid_record("q", 0, "test", rgb=(200, 10, 10))],
        [
            solid_record("g0", 0, "train", rgb=(190, 20, 10)),
            solid_record("g1", 1, "train", rgb=(10, 10, 200)),
        ],
        num_shards=1,
    )
    output = tmp_path / "r.json"
    assert run_retrieval(known_export, data, output, "--no_cache") == 0
    assert not (data / features.CACHE_DIR_NAME).exists()
    assert not (tmp_path / features.CACHE_DIR_NAME).exists()
    # One query, two gallery videos: the red query finds the red video first.
    record = json.loads(output.read_text())
    assert record["R@1"] == 100.0 and record["num_gallery"] == 2
    assert run_retrieval(known_export, data, output) == 0
    assert list((data / features.CACHE_DIR_NAME).glob("features-v_net-*.npz"))


def test_unwritable_data_folder_caches_beside_the_output(tmp_path, known_export):
    data = write_data(
        tmp_path / "data",
        [solid_record("q", 0, "test", rgb=(200, 10, 10))],
        [solid_record("g", 0, "train", rgb=(190, 20, 10))],
        num_shards=1,
    )
    (data / features.CACHE_DIR_NAME).write_text("a file in the way")
    output = tmp_path / "results" / "r.json"
    assert run_retrieval(known_export, data, output) == 0
    assert list((output.parent / features.CACHE_DIR_NAME).glob("features-*.npz"))


def test_errors_name_the_path(tmp_path, caplog, data_dir, known_export):
    caplog.set_level(logging.ERROR)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_retrieval(known_export, empty, tmp_path / "r.json") == 2
    assert f"no test shards test-*.tfrecord.gz in {empty}" in caplog.text
    assert "no manifest.json either" in caplog.text

    caplog.clear()
    assert run_retrieval(data_dir, data_dir, tmp_path / "r.json") == 2
    assert f"{data_dir} is not a tfcmvp export: it has no saved_model.pb" in caplog.text
    assert not (tmp_path / "r.json").exists()

    caplog.clear()
    unlabelled = write_data(
        tmp_path / "unlabelled",
        [solid_record("q", -1, "test", rgb=(1, 2, 3), label_name="none")],
        [solid_record("g", 0, "train", rgb=(1, 2, 3))],
        num_shards=1,
    )
    assert run_retrieval(known_export, unlabelled, tmp_path / "r.json", "--no_cache") == 2
    assert "1 test video(s) have no class label (-1), e.g. 'q'" in caplog.text


def test_flag_defaults_match_the_library():
    assert retrieval_cmd.DEFAULT_BATCH_SIZE == features.DEFAULT_BATCH_SIZE


def test_labels_csv_scores_by_another_label_kind(tmp_path, capsys, data_dir, known_export):
    # A second label kind of the same videos: two "scenes" that cut across the classes.
    query_scene = [i % 2 for i in range(len(QUERY))]
    gallery_scene = [(i // 2) % 2 for i in range(len(GALLERY))]
    csv = write_labels_csv(
        tmp_path / "labels.csv", QUERY_LABELS, query_scene, GALLERY_LABELS, gallery_scene
    )
    expected, _ = reference_recall(QUERY, query_scene, GALLERY, gallery_scene, KS, "vcop")
    assert expected != reference("vcop")  # the label kind changes the answer
    output = tmp_path / "scene.json"
    flags = ("--clips", 2, "--cache_dir", tmp_path / "cache")
    assert (
        run_retrieval(
            known_export, data_dir, output, *flags, "--labels", csv, "--label_column", "scene"
        )
        == 0
    )
    record = json.loads(output.read_text())
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, abs=1e-9), key
    assert record["data"]["labels"] == {"file": str(csv), "column": "scene"}


def test_labels_csv_errors_name_the_file_and_column(tmp_path, caplog, data_dir, known_export):
    csv = tmp_path / "labels.csv"
    csv.write_text("video,scene\nq0,a\n")
    common = (
        known_export,
        data_dir,
        tmp_path / "x.json",
        "--clips",
        2,
        "--cache_dir",
        tmp_path / "cache",
    )
    common += ("--labels", csv)
    with caplog.at_level(logging.ERROR):
        assert run_retrieval(*common, "--label_column", "motion") == 2
        assert f"{csv}: no label column 'motion'; columns: scene" in caplog.text
        caplog.clear()
        assert run_retrieval(*common, "--label_column", "scene") == 2  # q1... are not listed
        assert "have no 'scene' label, e.g. " in caplog.text
        caplog.clear()
        assert run_retrieval(*common) == 2
        assert "--labels and --label_column go together" in caplog.text
    assert not (tmp_path / "x.json").exists()
