"""``tfcmvp evaluate`` end to end: tiny exports on tiny shards, results against references.

The known-feature export of tests/retrieval_support (a quantised channel mean) makes every
video feature exact, so the kNN numbers are checked against the NumPy reference of
tests/test_evaluation_knn and the linear probe against the library run on those features;
one run with a real random-init tiny video network checks the chain on a network's features.
"""

import json
import logging
import re
import sys

import numpy as np
import pytest
from test_evaluation_knn import reference_accuracy

from tfcmvp.cli import evaluate_cmd, main
from tfcmvp.evaluation import linear_probe as lp
from tfcmvp.evaluation.run import ProbeSettings, evaluate_features
from tfcmvp.retrieval import features

from harness import run_command
from retrieval_support import (
    KNOWN_TEST,
    KNOWN_TEST_LABELS,
    KNOWN_TRAIN,
    KNOWN_TRAIN_LABELS,
    ModelCalls,
    run_retrieval,
    write_known_data,
    write_labels_csv,
)

# The known data: its test videos are classified by kNN over its train videos, and by
# the linear probe trained on them.
TEST, TEST_LABELS = KNOWN_TEST, KNOWN_TEST_LABELS
TRAIN, TRAIN_LABELS = KNOWN_TRAIN, KNOWN_TRAIN_LABELS
# A second label kind of the same videos (the labels CSV's "scene"), cutting across classes.
TEST_SCENES = [(i // 3) % 2 for i in range(len(TEST))]
TRAIN_SCENES = [(i // 3) % 2 for i in range(len(TRAIN))]
SETTINGS = ("--clips", 2, "--k", 1, 5, 200, "--c_grid", 0.1, 1, 10, "--folds", 3, "--seed", 3)
RECORD_KEYS = {
    "model",
    "name",
    "data",
    "label_kind",
    "features",
    "num_train",
    "num_test",
    "num_classes",
    "seed",
    "knn",
    "linear",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_known_data(tmp_path_factory.mktemp("data"), num_shards=2)


@pytest.fixture
def labels_csv(tmp_path):
    return write_labels_csv(
        tmp_path / "labels.csv", TEST_LABELS, TEST_SCENES, TRAIN_LABELS, TRAIN_SCENES
    )


def run_evaluate(model, data, *flags):
    """``tfcmvp evaluate --model model --data data flags`` in this process: the exit status."""
    return run_command(evaluate_cmd, "evaluate", "--model", model, "--data", data, *flags)


def knn_reference(test_labels, train_labels, k, num_classes):
    """kNN top-1/top-5 of the known features with these labels (temperature 0.07)."""
    return reference_accuracy(
        np.array(TEST),
        np.array(test_labels),
        np.array(TRAIN),
        np.array(train_labels),
        k,
        0.07,
        num_classes,
    )


def table_rows(stdout):
    """{(method, setting): (top-1, top-5)} of the printed table."""
    rows = {}
    for line in stdout.splitlines():
        match = re.fullmatch(
            r"(kNN|linear)\s+(\S+(?: \(capped: \d+\))?)\s+([\d.]+)\s+([\d.]+)", line
        )
        if match:
            rows[match[1], match[2]] = (float(match[3]), float(match[4]))
    return rows


def test_knn_and_linear_against_references(tmp_path, capsys, data_dir, known_export):
    output = tmp_path / "out" / "evaluate.json"
    cache = ("--cache_dir", tmp_path / "cache")
    assert (
        run_evaluate(
            known_export, data_dir, "--knn", "--linear", *SETTINGS, "--output", output, *cache
        )
        == 0
    )
    record = json.loads(output.read_text())
    assert set(record) == RECORD_KEYS
    assert (record["num_train"], record["num_test"], record["num_classes"]) == (12, 9, 3)
    assert record["label_kind"] == "class" and record["seed"] == 3
    assert record["model"] == str(known_export) and record["name"] == "v_net"
    assert record["data"]["dir"] == str(data_dir) and record["data"]["modality"] == "rgb"
    assert record["features"]["clips"] == 2 and record["features"]["positions"] == "vcop"

    knn = record["knn"]
    assert knn["temperature"] == 0.07
    assert [(r["k"], r["k_used"]) for r in knn["results"]] == [(1, 1), (5, 5), (200, 12)]
    for result in knn["results"]:
        expected = knn_reference(TEST_LABELS, TRAIN_LABELS, result["k_used"], 3)
        assert result["top1"] == pytest.approx(expected["top1"]), result
        assert result["top5"] == pytest.approx(expected["top5"]), result
    assert 0 < knn["results"][0]["top1"] < 100  # the data can tell a wrong answer apart

    linear = record["linear"]
    expected = lp.linear_probe(
        TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, c_grid=(0.1, 1, 10), folds=3, seed=3
    )
    assert linear == expected  # the probe saw exactly the known features and labels
    assert linear["C_grid"] == [0.1, 1.0, 10.0] and linear["folds"] == 3

    out = capsys.readouterr().out
    rows = table_rows(out)
    shown = {
        ("kNN", "k=1"): knn["results"][0],
        ("kNN", "k=5"): knn["results"][1],
        ("kNN", "k=200 (capped: 12)"): knn["results"][2],
        ("linear", f"C={linear['chosen_C']:g}"): linear,
    }
    assert set(rows) == set(shown)
    for key, result in shown.items():  # every printed number is the JSON's, rounded
        assert rows[key] == (round(result["top1"], 1), round(result["top5"], 1)), key
    assert "12 train videos (kNN bank, classifier training set), 9 test videos, 3 classes" in out
    assert f"results: {output}" in out


def test_retrieval_cache_is_shared_and_labels_csv_changes_the_kind(
    monkeypatch, tmp_path, capsys, data_dir, known_export, labels_csv
):
    cache = tmp_path / "cache"
    assert (
        run_retrieval(
            known_export, data_dir, tmp_path / "r.json", "--clips", 2, "--cache_dir", cache
        )
        == 0
    )
    calls = ModelCalls(monkeypatch)
    output = tmp_path / "scene.json"
    by_scene = ("--labels", labels_csv, "--label_column", "scene")
    assert (
        run_evaluate(
            known_export,
            data_dir,
            "--knn",
            *SETTINGS,
            *by_scene,
            "--output",
            output,
            "--cache_dir",
            cache,
        )
        == 0
    )
    assert calls.loads == 0 and calls.clips_per_call == []  # retrieval's features, cached
    record = json.loads(output.read_text())
    assert record["features"]["from_cache"] is True
    assert record["label_kind"] == "scene" and record["linear"] is None
    assert record["data"]["labels"] == {"file": str(labels_csv), "column": "scene"}
    assert record["num_classes"] == 2
    by_class = knn_reference(TEST_LABELS, TRAIN_LABELS, 1, 3)
    expected = knn_reference(TEST_SCENES, TRAIN_SCENES, 1, 2)
    assert expected["top1"] != by_class["top1"]  # the label kind changes the answer
    assert record["knn"]["results"][0]["top1"] == pytest.approx(expected["top1"])
    out = capsys.readouterr().out
    assert "linear" not in table_rows(out) and "2 classes by scene" in out
    assert "top-5 of 2 classes is 100 by construction" in out


def test_a_random_init_network_runs_the_chain(tmp_path, capsys, data_dir):
    # A real tiny video network, untrained: its own features (cached) give the JSON's numbers.
    from tfcmvp.export import export_random_init

    from training_support import tiny_config

    model = export_random_init(tiny_config(), tmp_path / "scratch", "video", seed=0)
    output = tmp_path / "scratch.json"
    flags = ("--clips", 2, "--folds", 2, "--c_grid", 1, 100, "--cache_dir", tmp_path / "cache")
    assert (
        run_evaluate(model, data_dir, *flags, "--output", output) == 0
    )  # neither flag: both methods
    record = json.loads(output.read_text())
    assert record["knn"] is not None and record["linear"] is not None
    assert [r["k_used"] for r in record["knn"]["results"]] == [12, 12]  # 20 and 200, capped
    (cached,) = (tmp_path / "cache").glob("features-scratch-*.npz")
    with np.load(cached) as arrays:
        train, test = arrays["train/features"], arrays["test/features"]
        train_y, test_y = arrays["train/labels"], arrays["test/labels"]
    assert train.shape == (12, 32) and np.all(np.isfinite(train))
    probe = ProbeSettings(c_grid=(1, 100), folds=2, seed=0)
    expected = evaluate_features(train, train_y, test, test_y, probe)
    for key in ("knn", "linear", "num_train", "num_test", "num_classes"):
        assert record[key] == expected[key], key
    assert "kNN" in capsys.readouterr().out


def test_missing_scikit_learn_fails_before_any_work(
    monkeypatch, tmp_path, caplog, data_dir, known_export
):
    for name in ("sklearn", "sklearn.linear_model", "sklearn.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)
    calls = ModelCalls(monkeypatch)
    output = tmp_path / "x.json"
    with caplog.at_level(logging.ERROR):
        cache = ("--cache_dir", tmp_path / "cache")
        assert run_evaluate(known_export, data_dir, "--linear", "--output", output, *cache) == 2
    assert "pip install 'tfcmvp[eval]'" in caplog.text
    assert calls.loads == 0 and not output.exists()


def test_usage_errors_name_the_flag(tmp_path, caplog, data_dir, known_export, labels_csv):
    common = (known_export, data_dir, "--cache_dir", tmp_path / "cache")
    with caplog.at_level(logging.ERROR):
        assert run_evaluate(*common, "--labels", labels_csv) == 2
        assert "--labels and --label_column go together" in caplog.text
        caplog.clear()
        assert run_evaluate(*common, "--output", tmp_path) == 2
        assert f"--output {tmp_path}: is a folder" in caplog.text
        caplog.clear()
        assert run_evaluate(*common, "--knn", "--k", 0) == 2
        assert "k must be a positive integer, got 0" in caplog.text
        caplog.clear()
        assert run_evaluate(tmp_path / "nope", data_dir, "--knn") == 2
        assert str(tmp_path / "nope") in caplog.text


def test_registered_and_defaults_match_the_library():
    assert evaluate_cmd.DEFAULT_BATCH_SIZE == features.DEFAULT_BATCH_SIZE
    args = main.build_parser().parse_args(["evaluate", "--model", "m", "--data", "d"])
    assert args.run is evaluate_cmd.run
    assert args.k == [20, 200] and args.temperature == 0.07 and args.folds == 3
    assert args.c_grid == list(lp.DEFAULT_C_GRID) and len(args.c_grid) == 13
