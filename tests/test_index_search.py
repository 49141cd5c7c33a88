"""tfcmvp index / tfcmvp search: incremental updates, a known nearest neighbour, bad inputs.

Tiny random-init exports (conftest's ``exports``) and short synthetic videos.
Model calls are counted by replacing ``features.load_embedding_fn`` (the
function ``tfcmvp embed`` loads the export with): one call per video and
network (10 clips < the batch of 20).
"""

import json
import shutil

import numpy as np
import pytest

from tfcmvp.cli import search_cmd
from tfcmvp.cli.main import main as cli_main
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture
from tfcmvp.search import query as query_lib
from tfcmvp.search import table as table_lib

from export_support import NETWORKS


def _write(path, seed, velocity=(1.5, -0.5)):
    frames = moving_texture(24, 48, 64, velocity=velocity, seed=seed)  # [T, H, W, 3]
    return write_video(path, frames, codec="mpeg4", gop=12)


@pytest.fixture()
def collection(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i, velocity in enumerate([(1.5, -0.5), (-1.0, 1.0), (0.0, 2.0), (2.0, 0.0)]):
        _write(folder / f"v{i}.avi", seed=i, velocity=velocity)
    return folder


@pytest.fixture()
def calls(monkeypatch):
    """{network: videos embedded}, counted at the model."""
    from tfcmvp.retrieval import features

    counts = {n: 0 for n in NETWORKS}
    load = features.load_embedding_fn

    def counting_load(model_dir):
        embed = load(model_dir)
        network = features.read_export(model_dir)["network"]

        def counted(clips):
            counts[network] += 1
            return embed(clips)

        return counted

    monkeypatch.setattr(features, "load_embedding_fn", counting_load)
    return counts


def _models(exports):
    return {n: str(exports[n]) for n in NETWORKS}


def test_update_adds_changes_removes_and_skips_unchanged(exports, collection, tmp_path, calls):
    from tfcmvp.search import build_index, load_index

    out = tmp_path / "index"
    result = build_index([collection], out, models=_models(exports), progress=False)
    assert result.counts == {
        "listed": 4,
        "indexed": 4,
        "added": 4,
        "changed": 0,
        "unchanged": 0,
        "removed": 0,
        "failed": 0,
    }
    assert calls == {n: 4 for n in NETWORKS}
    first = load_index(out)
    before = {n: np.array(first.embeddings(n)) for n in NETWORKS}
    assert before["motion"].shape == (4, 32) and first.entries[0].num_frames == 24
    # Each row is the mean of the video's 10 clip embeddings, as `tfcmvp embed` writes them.
    from tfcmvp.embedding import embed_videos

    embed_videos([collection / "v2.avi"], exports["iframe"], tmp_path / "e", progress=False)
    clips = np.load(tmp_path / "e" / "embeddings.npy")  # [10, D]
    np.testing.assert_allclose(before["iframe"][2], clips.mean(axis=0), rtol=1e-6, atol=1e-7)
    assert all(first.thumbnail(r, "motion") and first.thumbnail(r) for r in range(4))
    calls["iframe"] -= 1  # the reference above

    # Nothing changed: no model call, the same rows (an mtime-only touch is not a change).
    (collection / "v0.avi").touch()
    result = build_index([collection], out, progress=False)  # --models from the index
    assert result.counts["unchanged"] == 4 and result.summary["embedded"] == {
        n: 0 for n in NETWORKS
    }
    assert calls == {n: 4 for n in NETWORKS}

    # v1 changed, v3 removed, v4 added: two videos embedded per network.
    _write(collection / "v1.avi", seed=11, velocity=(0.5, 0.5))
    (collection / "v3.avi").unlink()
    _write(collection / "v4.avi", seed=4)
    result = build_index([collection], out, progress=False)
    assert result.counts == {
        "listed": 4,
        "indexed": 4,
        "added": 1,
        "changed": 1,
        "unchanged": 2,
        "removed": 1,
        "failed": 0,
    }
    assert calls == {n: 6 for n in NETWORKS}
    index = load_index(out)
    names = [e.path.rsplit("/", 1)[-1] for e in index.entries]
    assert names == ["v0.avi", "v1.avi", "v2.avi", "v4.avi"]
    for n in NETWORKS:
        after = np.asarray(index.embeddings(n))
        np.testing.assert_array_equal(after[[0, 2]], before[n][[0, 2]])  # copied, not redone
        assert not np.allclose(after[1], before[n][1])  # v1 re-embedded
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.json", "videos.csv", "failed.jsonl", "thumbs", *(f"{n}.npy" for n in NETWORKS)]
    )
    assert len(list((out / "thumbs").iterdir())) == 8  # v3's pictures went with it
    assert not list(tmp_path.glob(".index.index-*"))  # no staging folder left


def test_bad_file_is_counted_and_retried(exports, collection, tmp_path, calls):
    from tfcmvp.search import build_index

    (collection / "broken.mp4").write_bytes(b"not a video" * 20)
    out = tmp_path / "index"
    result = build_index([collection], out, models={"motion": exports["motion"]}, progress=False)
    assert result.counts["indexed"] == 4 and result.counts["failed"] == 1
    failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
    assert [(f["stage"], f["network"]) for f in failed] == [("open", "motion")]
    result = build_index([collection], out, progress=False)  # not indexed: tried again
    assert result.counts["failed"] == 1 and result.summary["embedded"] == {"motion": 1}


@pytest.mark.parametrize("by", ["motion", "iframe", "video"])
def test_search_finds_a_copy_first(by, exports, collection, tmp_path, capsys):
    from tfcmvp.search import build_index

    out = tmp_path / "index"
    build_index([collection], out, models=_models(exports), progress=False)
    query = tmp_path / "query_copy.avi"
    shutil.copyfile(collection / "v2.avi", query)  # not indexed, same content as v2
    png = tmp_path / "grid.png"
    args = ["search", str(query), "--index", str(out), "--by", by, "--top", "3"]
    assert cli_main(args + ["--png", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rank, score, path = lines[2].split()
    assert (rank, path) == ("1", str(collection / "v2.avi")) and float(score) > 0.9999
    assert len(lines) == 2 + 3 + 1 and png.stat().st_size > 1000
    # The indexed video itself: left out of its own results, and said so.
    assert cli_main(args[:1] + [str(collection / "v2.avi")] + args[2:]) == 0
    text = capsys.readouterr().out
    assert "excluded from its own results" in text and "v2.avi" not in text.split("path\n")[1]


def test_by_context_is_by_iframe(exports, collection, tmp_path, capsys):
    from tfcmvp.search import build_index

    out = tmp_path / "index"
    build_index([collection], out, models=_models(exports), progress=False)
    printed = {}
    for by in ("context", "iframe"):
        assert (
            cli_main(["search", str(collection / "v1.avi"), "--index", str(out), "--by", by]) == 0
        )
        printed[by] = capsys.readouterr().out.splitlines()
    assert printed["context"][0].endswith("by context (iframe network), 4 indexed videos")
    assert printed["iframe"][0].endswith("by iframe (iframe network), 4 indexed videos")
    assert printed["context"][1:] == printed["iframe"][1:]  # the same ranks, scores, paths


def test_by_choices_name_each_network_and_context():
    assert search_cmd.BY_CHOICES == query_lib.BY_CHOICES
    assert query_lib.BY_CHOICES == ("video", "iframe", "motion", "context")
    networks = [query_lib.check_by(by) for by in query_lib.BY_CHOICES]
    assert networks == ["video", "iframe", "motion", "iframe"]


def test_bad_inputs_give_one_line_errors(exports, collection, tmp_path, caplog):
    out = tmp_path / "index"
    assert (
        cli_main(
            ["index", str(collection), "--models", f"motion={exports['motion']}"]
            + ["--output", str(out), "--no_progress"]
        )
        == 0
    )
    video = str(collection / "v0.avi")
    cases = [
        (["--index", str(tmp_path / "nope"), "--by", "motion"], "is not a tfcmvp index"),
        (["--index", str(out), "--by", "scene"], "expected one of video, iframe, motion, context"),
        (["--index", str(out), "--by", "context"], "needs the iframe network"),
        (["--index", str(out), "--by", "iframe"], "needs the iframe network"),
    ]
    for extra, message in cases:
        caplog.clear()
        assert cli_main(["search", video, *extra]) == 2
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    # An OUTPUT that is not an index is refused and left alone.
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    caplog.clear()
    args = ["index", str(collection), "--models", f"motion={exports['motion']}"]
    assert cli_main(args + ["--output", str(other)]) == 2
    assert "not a tfcmvp index" in caplog.text and (other / "mine.txt").read_text() == "keep"
    assert cli_main(["index", str(collection), "--output", str(tmp_path / "new")]) == 2
    assert "--models is required" in caplog.text
    wrong = ["index", str(collection), "--models", f"iframe={exports['motion']}"]
    assert cli_main(wrong + ["--output", str(tmp_path / "w")]) == 2
    assert "is a motion network, not a iframe network" in caplog.text
    assert table_lib.index_problem(out) is None
