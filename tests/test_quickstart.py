"""The quickstart chain end to end at smoke size: every stage runs and reports."""

import json

import pytest

from tfcmvp import quickstart


@pytest.mark.slow
def test_smoke_chain_writes_every_artifact_and_a_complete_table(tmp_path):
    lines = []
    runner = quickstart.Quickstart(tmp_path / "qs", quickstart.QuickstartSettings.smoke(),
                                   progress=lines.append)
    results = runner.run()

    # Every input accounted for: 5 classes x 4 videos, half train, half test.
    assert results["records"]["train"] == {"listed": 10, "written": 10, "failed": 0, "short": 0}
    assert results["records"]["test"] == {"listed": 10, "written": 10, "failed": 0, "short": 0}
    for name in quickstart.MODELS:
        row = results["models"][name]
        assert set(row) == {"R@1", "R@5", "R@10", "R@20", "top1", "top5"}
        assert all(0.0 <= value <= 100.0 for value in row.values())
        # R@k never falls as k grows; with 10 gallery videos of 5 classes R@10 is 100.
        assert row["R@1"] <= row["R@5"] <= row["R@10"] == 100.0
        assert row["top1"] <= row["top5"] == 100.0  # 5 classes: top-5 is everything
        assert (runner.model_dir(name) / "saved_model.pb").is_file()
        assert (runner.finetune_dir(name) / "saved_model" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "qs" / "results.json").read_text())["models"] == \
        results["models"]
    table = quickstart.format_results(results)
    assert "pretrained" in table and "scratch" in table and "R@1" in table

    # A second run finds every stage done and skips it.
    lines.clear()
    again = quickstart.Quickstart(tmp_path / "qs", quickstart.QuickstartSettings.smoke(),
                                  progress=lines.append).run()
    assert again["models"] == results["models"]
    assert all("skipped" in line for line in lines)
