"""beam_jobs.embed: the same rows as `tfcmvp embed`, in shards, with a manifest and a dead letter.

Known answer: on a few tiny synthetic videos (MPEG-4, H.264 with B-frames)
and one broken file, the job's shards read in shard order and concatenated
(the README's recipe: sorted glob, ``np.load``, the CSV files joined) are
byte for byte ``tfcmvp embed``'s ``embeddings.npy`` and ``clips.csv`` of the
same inputs, for each network (one with sliding windows); its
``failed.jsonl`` is ``tfcmvp embed``'s; the manifest's counts add up.
Then the exit codes, the flag checks, and one run of the real command with
two worker processes.
"""

import csv
import glob
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from beam_jobs import embed, embed_options, embed_output
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder of three good videos and a broken one; the INPUT list that names them.

    The sub-folder's video is also named first, on its own, so the listing
    order (tfcmvp embed's: argument order, then sorted folder contents) is
    not the sorted order.
    """
    root = tmp_path_factory.mktemp("videos")
    (root / "sub").mkdir()
    frames = moving_texture(40, 48, 64, velocity=(1.5, -0.5), seed=3)  # [T, H, W, 3]
    write_video(root / "a_texture.avi", frames, codec="mpeg4", gop=12)
    write_video(root / "b_texture.mp4", frames[:30], codec="h264", gop=10, b_frames=2)
    write_video(
        root / "sub" / "c_short.avi", moving_texture(20, 48, 64, seed=5), codec="mpeg4", gop=6
    )
    (root / "broken.mp4").write_bytes(b"not a video at all" * 10)
    return root, [str(root / "sub" / "c_short.avi"), str(root)]


def _job(inputs, model, out, *flags):
    return [
        "--inputs",
        *inputs,
        "--model",
        str(model),
        "--output_dir",
        str(out),
        *flags,
        *IN_PROCESS,
    ]


def _joined_shards(out):
    """The README's way to read every shard at once: (matrix, CSV text with one header)."""
    matrix = np.concatenate([np.load(p) for p in sorted(glob.glob(f"{out}/embeddings-*.npy"))])
    tables = [
        pathlib.Path(p).read_bytes().decode() for p in sorted(glob.glob(f"{out}/clips-*.csv"))
    ]
    header = tables[0].splitlines(keepends=True)[0]
    assert all(t.startswith(header) for t in tables)
    return matrix, header + "".join(t[len(header) :] for t in tables)


@pytest.mark.parametrize(
    "network, layout",
    [("video", []), ("iframe", []), ("motion", ["--window", "8", "--stride", "4"])],
)
def test_shards_equal_tfcmvp_embed(network, layout, exports, videos, tmp_path):
    from tfcmvp.cli.main import main as cli_main

    root, inputs = videos
    model = exports[network]
    assert (
        cli_main(
            [
                "embed",
                *inputs,
                "--model",
                str(model),
                "--output",
                str(tmp_path / "cli"),
                "--no_progress",
                *layout,
            ]
        )
        == 0
    )
    manifest = embed.run(_job(inputs, model, tmp_path / "beam", "--num_shards", "3", *layout))
    cli, beam = tmp_path / "cli", tmp_path / "beam"

    matrix, table = _joined_shards(beam)
    expected = np.load(cli / "embeddings.npy")
    assert matrix.dtype == np.float32 and matrix.shape == expected.shape
    np.testing.assert_array_equal(matrix, expected)  # exact: the same decode, clips, batches
    assert table == (cli / "clips.csv").read_bytes().decode()  # the table, row numbers too
    rows = list(csv.DictReader(io.StringIO(table, newline="")))
    assert [r["path"] for r in rows if r["clip"] == "0"] == [
        inputs[0],
        str(root / "a_texture.avi"),
        str(root / "b_texture.mp4"),
    ]  # listing order
    loaded, loaded_rows = embed_output.read_shards(str(beam))
    np.testing.assert_array_equal(loaded, expected)
    assert loaded_rows == rows

    # The dead letter: the broken file, exactly as tfcmvp embed reports it.
    assert (beam / "failed.jsonl").read_text() == (cli / "failed.jsonl").read_text()
    failed = [json.loads(line) for line in (beam / "failed.jsonl").read_text().splitlines()]
    assert [(f["path"], f["stage"]) for f in failed] == [(str(root / "broken.mp4"), "open")]

    summary = json.loads((cli / "embed.json").read_text())
    assert manifest == json.loads((beam / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["job"] == "beam_jobs.embed"
    assert manifest["counts"] == summary["counts"]
    counts = manifest["counts"]
    assert counts["listed"] == 4 == counts["embedded"] + counts["failed"]
    for key in ("export", "clips", "storage", "min_frames", "max_failed_fraction"):
        assert manifest[key] == summary[key], key
    shards = manifest["shards"]
    # Listing c_short, a, b, broken in 3 shards, consecutive: c_short + a | b | broken, whose
    # shard is written empty.
    assert [(s["videos"], s["first_row"]) for s in shards] == [
        (2, 0),
        (1, shards[0]["rows"]),
        (0, shards[0]["rows"] + shards[1]["rows"]),
    ]
    assert np.load(beam / shards[2]["embeddings"]).shape == (0, 32)
    assert sum(s["rows"] for s in shards) == counts["clips"] == len(rows)
    assert sorted(p.name for p in beam.iterdir()) == sorted(
        ["manifest.json", "failed.jsonl"] + [s[k] for s in shards for k in ("embeddings", "table")]
    )
    assert not list(tmp_path.glob("*._incomplete-*"))  # staging folder removed


def test_exit_codes_and_output_rules(exports, videos, tmp_path, capsys):
    root, inputs = videos
    model = exports["iframe"]
    out = tmp_path / "out"

    # All listed videos failed: written (empty shards, the dead letter), exit 1.
    assert embed.main(_job([str(root / "broken.mp4")], model, out)) == 1
    assert "no video was embedded" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["counts"]["failed"] == 1
    assert np.load(out / manifest["shards"][0]["embeddings"]).shape == (0, 32)
    assert (out / manifest["shards"][0]["table"]).read_text().count("\n") == 1  # header only
    assert json.loads((out / "failed.jsonl").read_text())["stage"] == "open"

    # An existing output: refused without --overwrite (untouched), replaced with it.
    before = (out / "manifest.json").read_text()
    assert embed.main(_job(inputs, model, out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == before
    # 1 of 4 failed: above --max_failed_fraction 0.2, so written but exit 1.
    assert embed.main(_job(inputs, model, out, "--overwrite", "--max_failed_fraction", "0.2")) == 1
    assert "1 of 4 listed videos failed" in capsys.readouterr().err
    assert embed.main(_job(inputs, model, out, "--overwrite", "--num_shards", "2")) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and len(manifest["shards"]) == 2
    assert len(list(out.iterdir())) == 2 + 2 * 2  # the old shard set is gone

    # A folder that is not this job's output is never replaced.
    (out / "notes.txt").write_text("mine")
    assert embed.main(_job(inputs, model, out, "--overwrite")) == 2
    assert "not the output of a previous beam_jobs.embed run" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    # The output may not hold an input.
    assert embed.main(_job(inputs, model, root, "--overwrite")) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert not list(tmp_path.glob("*._incomplete-*")) and not list(
        root.parent.glob(f"{root.name}._incomplete-*")
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num_shard", "3"], "unknown flag --num_shard (did you mean --num_shards?)"),
        (["--reencode", "mpeg4"], "unknown flag --reencode"),  # the extraction job's, not ours
        (["--clips", "4", "--window", "8"], "give one or the other"),
        (["--jpeg_quality", "0"], "--jpeg_quality must be in [1, 95], got 0"),
        (["--runner", "DaskRunner"], "not supported by python -m beam_jobs.embed"),
    ],
)
def test_bad_flags_exit_2_before_anything(flags, message, videos, tmp_path, capsys):
    _, inputs = videos
    out = tmp_path / "out"
    assert embed.main(_job(inputs, tmp_path / "model", out, *flags)) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(out)


def test_missing_inputs_and_export_exit_2(exports, videos, tmp_path, capsys):
    _, inputs = videos
    assert (
        embed.main(_job([str(tmp_path / "nothing.mp4")], exports["video"], tmp_path / "out")) == 2
    )
    err = capsys.readouterr().err
    assert "INPUT" in err and "no such file" in err
    assert embed.main(_job(inputs, tmp_path / "no_export", tmp_path / "out")) == 2
    assert "no_export" in capsys.readouterr().err
    assert embed.main(["--model", str(exports["video"]), *IN_PROCESS]) == 2
    err = capsys.readouterr().err
    assert "--inputs is required" in err and "--output_dir is required" in err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_job_flags(capsys):
    assert embed.main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in (
        "--inputs",
        "--model",
        "--output_dir",
        "--num_shards",
        "--window",
        "--max_failed_fraction",
        "Apache Beam pipeline option",
    ):
        assert flag in text
    # The job's flags are not Beam options (they would clash with the extraction job's).
    assert not set(embed_options.known_flags()) & {"--videos_dir", "--reencode"}


def test_remote_inputs_and_export(exports, tmp_path, monkeypatch):
    """gs:// INPUTs (a folder, a .csv list) and a gs:// export, on a fake bucket in tmp_path."""
    bucket = tmp_path / "bucket"
    for name in (
        "videos/b.mp4",
        "videos/a/x.avi",
        "videos/.hidden/y.avi",
        "videos/notes.txt",
        "lists/clips.csv",
    ):
        (bucket / name).parent.mkdir(parents=True, exist_ok=True)
        (bucket / name).write_bytes(b"")
    (bucket / "lists/clips.csv").write_text(
        "path,label\n../videos/b.mp4,1\n# skip\ngs://other/z.mkv,2\n"
    )
    shutil.copytree(exports["iframe"], bucket / "model")

    def local(path):
        return str(bucket / path[len("gs://b/") :])

    monkeypatch.setattr(embed.fileio, "exists", lambda path: os.path.isfile(local(path)))
    monkeypatch.setattr(embed.fileio, "read_text", lambda path: open(local(path)).read())
    monkeypatch.setattr(
        embed.fileio, "read_bytes", lambda path: pathlib.Path(local(path)).read_bytes()
    )
    monkeypatch.setattr(
        embed.fileio,
        "list_files",
        lambda pattern: sorted(  # "FOLDER/**"
            "gs://b/" + p.relative_to(bucket).as_posix()
            for p in pathlib.Path(local(pattern[:-3])).rglob("*")
            if p.is_file()
        ),
    )
    assert embed.list_videos(["gs://b/videos/", "gs://b/lists/clips.csv"]) == [
        "gs://b/videos/a/x.avi",
        "gs://b/videos/b.mp4",
        "gs://other/z.mkv",
    ]  # b.mp4 once
    with pytest.raises(ValueError, match="INPUT gs://b/lists/: no such file, or a folder"):
        embed.list_videos(["gs://b/lists/"])
    copy = embed.localize_folder("gs://b/model", str(tmp_path))
    assert sorted(
        p.relative_to(copy).as_posix() for p in pathlib.Path(copy).rglob("*") if p.is_file()
    ) == sorted(
        p.relative_to(exports["iframe"]).as_posix()
        for p in exports["iframe"].rglob("*")
        if p.is_file()
    )
    config = embed_options.EmbedConfig(
        inputs=("gs://b/videos",), model_dir="gs://b/model", output_dir=str(tmp_path / "out")
    )
    assert embed.read_export_clips(config, str(tmp_path)).network == "iframe"


@pytest.mark.slow
def test_command_with_two_worker_processes(exports, videos, tmp_path):
    """`python -m beam_jobs.embed` on the local runner's default set-up (worker processes)."""
    from tfcmvp.embedding import embed_videos

    root, inputs = videos
    model = exports["motion"]
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "beam_jobs.embed",
        "--inputs",
        *inputs,
        "--model",
        str(model),
        "--output_dir",
        str(out),
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "embedded 3 of 4 videos: 30 clips in 1 shard(s)" in done.stdout
    assert "failed at open" in done.stderr  # the worker's line reached the launcher's log
    embed_videos(inputs, model, tmp_path / "cli", progress=False)
    matrix, table = _joined_shards(out)
    np.testing.assert_array_equal(matrix, np.load(tmp_path / "cli" / "embeddings.npy"))
    assert table == (tmp_path / "cli" / "clips.csv").read_bytes().decode()
