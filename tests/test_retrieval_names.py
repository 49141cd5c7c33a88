"""Retrieval names a model by what the user called it: ``saved_models/<name>/<version>``
shows as ``<name>`` in the table, the JSON and the figure's title."""

import json

from tfcmvp.retrieval import evaluate
from tfcmvp.retrieval.report import model_name

from retrieval_support import (
    CROP,
    FRAMES,
    run_retrieval,
    save_tiny_export,
    solid_record,
    write_data,
)


def test_model_name_of_the_layouts(tmp_path, monkeypatch):
    assert model_name("saved_models/c3d_ucf101/1") == "c3d_ucf101"
    assert model_name("saved_models/c3d_ucf101/12/") == "c3d_ucf101"
    assert model_name("exports/v_net") == "v_net"
    assert model_name("runs/ft/saved_model") == "saved_model"
    assert model_name("models/v2") == "v2"  # not a number: the folder's own name
    version = tmp_path / "scratch" / "3"
    version.mkdir(parents=True)
    monkeypatch.chdir(version)
    assert model_name(".") == "scratch"
    assert model_name("../3") == "scratch"


def test_table_json_and_figure_use_the_name(tmp_path, capsys, monkeypatch):
    data = write_data(
        tmp_path / "data",
        [solid_record(f"q{i}", i % 2, "test", rgb=(60 * i, 90, 200)) for i in range(2)],
        [solid_record(f"g{i}", i % 2, "train", rgb=(50 * i, 60, 120)) for i in range(4)],
        num_shards=1,
    )
    model = save_tiny_export(
        tmp_path / "saved_models" / "tiny_cmd" / "1", "video", [FRAMES, CROP, CROP, 3]
    )
    titles = []
    monkeypatch.setattr(
        evaluate, "plot_retrieval", lambda *args, title=None, **kwargs: titles.append(title)
    )
    output = tmp_path / "r.json"
    png = tmp_path / "r.png"
    assert run_retrieval(model, data, output, "--png", png, "--clips", 2, "--no_cache") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].split()[0] == "tiny_cmd"  # the row, not "1"
    record = json.loads(output.read_text())
    assert record["name"] == "tiny_cmd" and record["model"] == str(model)
    assert titles and titles[0].startswith("tiny_cmd on data: vcop")
