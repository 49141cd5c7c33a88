"""``tfcmvp report``: the card's numbers are those of the separate evaluations.

Data and export are the known data of tests/retrieval_support.py (every video
feature exact, as in tests/test_evaluate_cli.py), so retrieval and kNN are checked
against brute-force NumPy references and the linear probe against the library run on
the known features;
a real random-init tiny video network checks that each number equals what
``evaluate_retrieval`` and ``evaluate_export`` give on their own.
"""

import contextlib
import io
import json
import logging
import shutil

import numpy as np
import pytest
from test_evaluation_knn import reference_accuracy

from tfcmvp import paper_numbers
from tfcmvp.cli import main, report_cmd
from tfcmvp.evaluation import report_card as rc
from tfcmvp.evaluation.run import ProbeSettings, evaluate_export, evaluate_features

from harness import run_command
from retrieval_support import (
    CROP,
    KNOWN_TEST,
    KNOWN_TEST_LABELS,
    KNOWN_TRAIN,
    KNOWN_TRAIN_LABELS,
    reference_recall,
    save_tiny_export,
    write_known_data,
)

SEEDS = (0, 1, 2)
TEST, TEST_LABELS = KNOWN_TEST, KNOWN_TEST_LABELS
TRAIN, TRAIN_LABELS = KNOWN_TRAIN, KNOWN_TRAIN_LABELS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_known_data(tmp_path_factory.mktemp("data"), num_shards=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory, known_export):
    """{"known": the quantised channel-mean export, "scratch": a random-init tiny video network}."""
    from tfcmvp.export import export_random_init

    from training_support import tiny_config

    root = tmp_path_factory.mktemp("exports")
    scratch = export_random_init(tiny_config(), root / "scratch", "video", seed=0)
    return {"known": known_export, "scratch": scratch}


@pytest.fixture(scope="module")
def card_run(tmp_path_factory, data_dir, models):
    """The CLI run on both models over three seeds: (card JSON, stdout, folder)."""
    folder = tmp_path_factory.mktemp("report")
    argv = [
        "report",
        "--models",
        *(f"{name}={path}" for name, path in models.items()),
        "--data",
        data_dir,
        "--seeds",
        len(SEEDS),
        "--clips",
        2,
        "--cache_dir",
        folder / "cache",
        "--output",
        folder / "report.json",
        "--png",
        folder / "report.png",
    ]
    stdout = run_cli(argv)
    assert stdout is not None
    return json.loads((folder / "report.json").read_text()), stdout, folder


def run_cli(argv, capsys=None):
    """Runs the subcommand in-process; returns its stdout (None when it failed)."""
    command, *args = argv
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_command(report_cmd, command, *args)
    return out.getvalue() if code == 0 else None


def test_known_features_give_the_reference_numbers(card_run):
    card, _, _ = card_run
    known = card["models"]["known"]["metrics"]
    ks = (1,)
    for protocol in rc.PROTOCOLS:
        expected, _ = reference_recall(
            TEST, TEST_LABELS, TRAIN, TRAIN_LABELS, ks, protocol=protocol
        )
        assert known[f"retrieval_{protocol}_R@1"]["values"] == pytest.approx([expected["R@1"]])
    knn = reference_accuracy(
        np.array(TEST), np.array(TEST_LABELS), np.array(TRAIN), np.array(TRAIN_LABELS), 12, 0.07, 3
    )  # k=20 capped at the 12 train videos
    assert known["knn_top1"]["values"] == pytest.approx([knn["top1"]])
    assert card["models"]["known"]["details"]["knn_k_used"] == 12
    linear = [
        evaluate_features(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, ProbeSettings(knn=False, seed=s))[
            "linear"
        ]
        for s in SEEDS
    ]
    assert known["linear_top1"]["values"] == pytest.approx([e["top1"] for e in linear])
    assert known["linear_top1"]["seeds"] == list(SEEDS)
    assert known["retrieval_vcop_R@1"]["seeds"] is None  # deterministic: one value


def test_numbers_equal_the_separate_evaluations(card_run, data_dir, models):
    from tfcmvp.retrieval.evaluate import evaluate_retrieval

    card, _, folder = card_run
    entry = card["models"]["scratch"]
    cache = folder / "cache"
    for protocol in rc.PROTOCOLS:
        alone = evaluate_retrieval(
            models["scratch"], data_dir, protocol=protocol, clips=2, cache_dir=cache
        )
        assert entry["metrics"][f"retrieval_{protocol}_R@1"]["values"] == [alone["R@1"]]
        assert entry["details"]["retrieval"][protocol]["R@5"] == alone["R@5"]
    for i, seed in enumerate(SEEDS):
        alone = evaluate_export(
            models["scratch"], data_dir, ProbeSettings(seed=seed), clips=2, cache_dir=cache
        )
        assert entry["details"]["linear"][i]["top1"] == alone["linear"]["top1"]
        assert entry["details"]["linear"][i]["chosen_C"] == alone["linear"]["chosen_C"]
        if i == 0:
            assert entry["details"]["knn"] == alone["knn"]
            (k20,) = [r for r in alone["knn"]["results"] if r["k"] == 20]
            assert entry["metrics"]["knn_top1"]["values"] == [k20["top1"]]
    assert entry["fingerprint"] != card["models"]["known"]["fingerprint"]
    assert entry["backbone"] == "c3d" and entry["source"]["kind"] == "random_init"
    assert card["seeds"] == list(SEEDS) and card["data"]["layout"] == "csv"
    assert card["data"]["paper_dataset"] is None and entry["paper"] == {}


def test_spread_is_mean_min_max_over_seeds(card_run):
    card, stdout, folder = card_run
    for name, entry in card["models"].items():
        summary = entry["metrics"]["linear_top1"]
        values = summary["values"]
        assert len(values) == len(SEEDS)
        assert summary["mean"] == pytest.approx(sum(values) / 3)
        assert (summary["min"], summary["max"]) == (min(values), max(values))
        cell = f"{summary['mean']:.1f} ({min(values):.1f}-{max(values):.1f})"
        (row,) = [line for line in stdout.splitlines() if line.startswith(name + " ")]
        assert cell in row
        assert f"{entry['metrics']['retrieval_vcop_R@1']['values'][0]:.1f}" in row
        assert "finetune_top1" not in entry["metrics"] and row.rstrip().endswith("-")
    assert rc.summarise([10.0, 30.0, 20.0], SEEDS) == {
        "values": [10.0, 30.0, 20.0],
        "mean": 20.0,
        "min": 10.0,
        "max": 30.0,
        "seeds": [0, 1, 2],
    }
    assert "paper" not in stdout
    assert (folder / "report.png").stat().st_size > 0


def _fake_manifest(data_dir, tmp_path, **changes):
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(".tfcmvp_cache"))
    manifest = json.loads((copy / "manifest.json").read_text())
    options = dict(manifest["options"], split=changes.pop("split", 1))
    manifest.update(changes, options=options)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_paper_column_only_for_a_matching_manifest(tmp_path, data_dir, models):
    ucf = _fake_manifest(data_dir, tmp_path, layout="ucf101", num_classes=101)
    card = rc.report_card(
        {"scratch": models["scratch"], "known": models["known"]},
        ucf,
        rc.ReportSettings(clips=2, cache_dir=tmp_path / "cache"),
    )
    assert card["data"]["paper_dataset"] == "ucf101" and card["data"]["split"] == 1
    paper = card["models"]["scratch"]["paper"]
    assert set(paper) == {"finetune_top1"}  # random init: the paper's scratch column
    assert paper["finetune_top1"]["value"] == 60.5
    assert "Table 2, row C3D, column UCF101 Scratch" in paper["finetune_top1"]["source"]
    assert card["models"]["known"]["paper"] == {}  # backbone "tiny_mean": not the paper's
    table = rc.format_report(card)
    (paper_row,) = [line for line in table.splitlines() if "paper (C3D, scratch)" in line]
    assert paper_row.rstrip().endswith("60.5")

    pretrained = {"network": "video", "backbone": "r3d_26", "source": {"kind": "pretrained"}}
    ucf_manifest = {"layout": "ucf101", "num_classes": 101, "options": {"split": 1}}
    entries = rc.paper_entries(pretrained, ucf_manifest)
    assert {k: v["value"] for k, v in entries.items()} == {
        "retrieval_vcop_R@1": 38.9,  # Table 9, Ours (R3D-26), UCF101 R@1
        "finetune_top1": 76.6,  # Table 2, R3D-26, UCF101 UCF
    }
    hmdb = {"layout": "hmdb51", "num_classes": 51, "options": {"split": 1}}
    assert rc.paper_entries(pretrained, hmdb)["finetune_top1"]["value"] == 47.2
    for manifest in (
        dict(ucf_manifest, options={"split": 2}),  # another split
        dict(ucf_manifest, num_classes=5),  # the quickstart's synthetic ucf101-layout folder
        dict(ucf_manifest, layout="csv"),
        None,
    ):
        assert rc.paper_entries(pretrained, manifest) == {}, manifest
    assert rc.paper_entries(dict(pretrained, network="motion"), ucf_manifest) == {}
    assert rc.paper_entries(dict(pretrained, source={"kind": "finetuned"}), ucf_manifest) == {}


def test_every_paper_number_names_its_table():
    assert len(paper_numbers.NUMBERS) == 3 * 2 * 3 + 3 * 2  # Table 2 + Table 9
    for number in paper_numbers.NUMBERS:
        assert number.source.startswith("Huang et al., CVPR 2021, Table ")
        assert number.backbone in paper_numbers.BACKBONES and 0 < number.value < 100


@pytest.mark.parametrize(
    "spec, message",
    [
        ("joint", "is not NAME=DIR"),
        ("=some/dir", "is not NAME=DIR"),
        ("joint=", "is not NAME=DIR"),
        ("joint={missing}", "no such folder"),
        ("joint={empty}", "not an export folder"),
    ],
)
def test_bad_model_entries_are_one_line_errors(tmp_path, caplog, data_dir, spec, message):
    (tmp_path / "empty").mkdir()
    spec = spec.format(missing=tmp_path / "missing", empty=tmp_path / "empty")
    with caplog.at_level(logging.ERROR):
        argv = ["report", "--models", spec, "--data", data_dir, "--output", tmp_path / "r.json"]
        assert run_cli(argv) is None
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message in error and "\n" not in error
    assert not (tmp_path / "r.json").exists()


def test_a_name_given_twice_is_refused(models):
    with pytest.raises(ValueError, match="'a' is given twice"):
        rc.parse_models([f"a={models['known']}", f"a={models['scratch']}"])


def test_finetune_skips_a_network_that_is_not_a_video_network(tmp_path, data_dir):
    # An I-frame network export cannot initialise the classifier: recorded, nothing trained.
    iframe = save_tiny_export(tmp_path / "iframe", "iframe", [CROP, CROP, 3])
    entry = rc.evaluate_model(
        "i",
        iframe,
        data_dir,
        rc.ReportSettings(
            seeds=[0],
            clips=2,
            finetune_config="unused.yaml",
            finetune_dir=tmp_path / "ft",
            cache_dir=tmp_path / "cache",
        ),
    )
    assert "not a video network" in entry["details"]["finetune"]["skipped"]
    assert "finetune_top1" not in entry["metrics"] and not (tmp_path / "ft").exists()


def test_registered():
    parser = main.build_parser()
    args = parser.parse_args(["report", "--models", "a=b", "--data", "d", "--output", "o.json"])
    assert args.run is report_cmd.run and args.seeds == 1 and args.finetune_config is None


def test_quickstart_adds_the_card_after_its_unchanged_table(tmp_path, card_run):
    # The quickstart's own table stays as it was; the card follows it, at full size only.
    from tfcmvp import quickstart

    card, _, _ = card_run
    labels = tmp_path / "labels.csv"
    labels.write_text("video,split,motion,scene\na,train,M1,S1\nc,test,M1,S2\n")
    results = {
        "seeds": [0],
        "ablation": {"joint": {"motion_R@1": [40.0], "scene_R@1": [30.0]}},
        "finetune": {"joint": {"top1": 90.0}},
        "artifacts": {"labels": str(labels)},
    }
    before = quickstart.format_results(results)
    after = quickstart.format_results(dict(results, report_card=card))
    head, _, tail = before.partition("\nartifacts:")
    assert after.startswith(head + "\nreport card of the seed-0 exports, known vs scratch")
    assert after.endswith("\nartifacts:" + tail)
    assert rc.format_report(card) in after
    assert quickstart.format_results(dict(results, report_card=None)) == before
    assert quickstart.QuickstartSettings().report_card  # full size: 24 videos a class
    assert not quickstart.QuickstartSettings.smoke().report_card  # 2 train videos a class
