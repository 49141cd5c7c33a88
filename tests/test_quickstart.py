"""The quickstart chain end to end at smoke size: every stage runs and reports."""

import json

import pytest

from tfcmvp import quickstart

ROWS = ("scratch", "context", "motion", "joint")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("qs") / "run"
    lines = []
    runner = quickstart.Quickstart(
        workdir, quickstart.QuickstartSettings.smoke(), progress=lines.append
    )
    return runner, runner.run()


@pytest.mark.slow
def test_smoke_chain_writes_every_artifact_and_a_complete_table(smoke_run):
    runner, results = smoke_run
    # Every input accounted for: 5 classes x 4 videos, half train, half test.
    assert results["records"]["train"] == {"listed": 10, "written": 10, "failed": 0, "short": 0}
    assert results["records"]["test"] == {"listed": 10, "written": 10, "failed": 0, "short": 0}
    assert list(results["ablation"]) == list(ROWS) and results["seeds"] == [0]
    for row, entry in results["ablation"].items():
        for kind in ("motion", "scene"):
            r1, r5 = entry[f"{kind}_R@1"], entry[f"{kind}_R@5"]
            assert len(r1) == 1 and 0.0 <= r1[0] <= r5[0] <= 100.0
        assert (runner.model_dir(row, 0) / "saved_model.pb").is_file()
        if row != "scratch":
            assert len(entry["context_acc"]) == len(entry["motion_acc"]) == 1
    for row in ("joint", "scratch"):
        assert (runner.finetune_dir(row) / "saved_model" / "saved_model.pb").is_file()
        assert 0.0 <= results["finetune"][row]["top1"] <= 100.0
    assert (
        json.loads((runner.workdir / "results.json").read_text())["ablation"] == results["ablation"]
    )
    table = quickstart.format_results(results)
    for title in ("random init", "context only", "motion only", "joint (paper)", "by scene"):
        assert title in table


@pytest.mark.slow
def test_second_run_skips_every_stage(smoke_run):
    runner, results = smoke_run
    lines = []
    again = quickstart.Quickstart(
        runner.workdir, quickstart.QuickstartSettings.smoke(), progress=lines.append
    ).run()
    assert again["ablation"] == results["ablation"]
    assert lines and all("skipped" in line for line in lines)


@pytest.mark.slow
def test_other_settings_on_the_same_workdir_are_refused(smoke_run):
    runner, _ = smoke_run
    before = sorted(p for p in runner.workdir.rglob("*"))
    other = quickstart.QuickstartSettings.smoke()
    other.seed = 1
    with pytest.raises(quickstart.QuickstartError, match=r"other settings \(seed: 0 -> 1\)"):
        quickstart.Quickstart(runner.workdir, other, progress=lambda line: None).run()
    full = quickstart.QuickstartSettings()
    with pytest.raises(quickstart.QuickstartError, match="videos_per_class: 4 -> 24"):
        quickstart.Quickstart(runner.workdir, full, progress=lambda line: None).run()
    assert sorted(p for p in runner.workdir.rglob("*")) == before  # nothing touched


def test_a_folder_not_made_by_the_quickstart_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(quickstart.QuickstartError, match="was not made by the quickstart"):
        quickstart.Quickstart(tmp_path, quickstart.QuickstartSettings.smoke()).check_settings()
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_table_shows_mean_and_spread_over_seeds(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "video,split,motion,scene\na,train,M1,S1\nb,train,M2,S1\nc,test,M1,S1\nd,test,M2,S2\n"
    )
    results = {
        "seeds": [0, 1, 2],
        "ablation": {
            "scratch": {"motion_R@1": [10.0, 20.0, 30.0], "scene_R@1": [50.0] * 3},
            "joint": {
                "motion_R@1": [40.0, 50.0, 60.0],
                "scene_R@1": [55.0, 60.0, 65.0],
                "context_acc": [0.5, 0.6, 0.7],
                "motion_acc": [0.1, 0.2, 0.3],
            },
        },
        "finetune": {"joint": {"top1": 90.0}, "scratch": {"top1": 40.0}},
        "artifacts": {"labels": str(labels)},
    }
    table = quickstart.format_results(results)
    assert "chance: motion 50.0, scene 50.0" in table  # one of two gallery videos each
    assert "20.0 (10.0-30.0)" in table and "50.0 (40.0-60.0)" in table
    assert "60.0 (50.0-70.0)" in table  # context acc in percent
    assert "joint - random init: R@1 by motion +30.0, by scene +10.0" in table
    assert "finetune top-1 by motion (seed 0): joint (paper) 90.0, random init 40.0" in table


def test_long_settings_differ_from_the_default_in_config_and_data_size_only():
    default, long = quickstart.QuickstartSettings(), quickstart.QuickstartSettings.long()
    assert long.pretrain_config.name == "pretrain_tiny_cpu_long.yaml"
    assert long.videos_per_class == 48
    changed = {k for k, v in long.as_record().items() if default.as_record()[k] != v}
    assert changed == {"pretrain_config", "videos_per_class"}


def test_long_config_is_the_grey_84_epoch_recipe():
    from tfcmvp.config import load_config

    config = load_config(quickstart.QuickstartSettings.long().pretrain_config)
    assert config.train.epochs == 84
    assert config.data.color_jitter.grayscale_prob == 1.0


def test_smoke_and_long_together_are_refused(capsys):
    from tfcmvp.cli.main import build_parser

    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["quickstart", "--workdir", "w", "--smoke", "--long"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
