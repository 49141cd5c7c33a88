"""tfcmvp embed: known answer against extraction + retrieval, bad files, inputs, layouts, CLI.

Known answer: for each network, the clips ``embed`` feeds the export equal
(exactly) the clips the extraction job's functions (read_video ->
build_record -> encode_example -> shard) and retrieval's
``eval_dataset(positions="vcop")`` make of the same videos, with every
clip parameter written out from the export's JSON; and the rows of
``embeddings.npy`` equal the export applied to those reference clips
(exactly: same inputs, same batches). Videos: a synthetic MPEG-4 AVI, a
synthetic H.264 MP4 with B-frames, and the real carphone clip (H.264,
B-frames).
"""

import json
import pathlib

import numpy as np
import pytest

from tfcmvp.cli import embed_cmd
from tfcmvp.cli.main import main as cli_main
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture, write_tone
from tfcmvp.config import DataConfig
from tfcmvp.embedding import inputs as inputs_lib
from tfcmvp.embedding import writer as writer_lib

from export_support import NETWORKS

MODALITY = {"video": "rgb", "iframe": "iframe", "motion": "motion"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory, carphone_path):
    """Three good videos of different codecs, GOPs and sizes."""
    root = tmp_path_factory.mktemp("videos")
    frames = moving_texture(40, 48, 64, velocity=(1.5, -0.5), seed=3)  # [T, H, W, 3]
    avi = write_video(root / "texture.avi", frames, codec="mpeg4", gop=12)
    mp4 = write_video(root / "texture_b.mp4", frames[:30], codec="h264", gop=10, b_frames=2)
    return [avi, mp4, str(carphone_path)]


def _reference_clips(info, paths, tmp_path):
    """Clips of `paths` by the extraction job's steps and retrieval's dataset, per video."""
    from tfcmvp import records
    from tfcmvp.codec import read_video
    from tfcmvp.data import evaluation, synthetic

    built = [
        records.build_record(
            read_video(p, rgb=True, mv_cell=8, rgb_short_side=128),
            video_id=str(p),
            label=-1,
            label_name="",
            split="test",
            jpeg_quality=90,
        )
        for p in paths
    ]  # the job's defaults
    shards = synthetic.write_shards(built, str(tmp_path / "test"), num_shards=1)
    contract = info["input"]
    network = info["network"]
    frames = contract["frames"] or 1
    data = dict(crop_size=contract["size"][0])
    if network == "video":
        data.update(clip_len=frames, clip_stride=contract["stride"])
    elif network == "motion":
        data.update(
            clip_len=frames,
            clip_stride=1,
            motion_len=frames,
            mv_clip=contract["mv_clip"],
            mv_div=contract["mv_div"],
            mv_resize_method=contract["mv_resize_method"],
        )
    else:
        data.update(clip_len=1, clip_stride=1)
    dataset = evaluation.eval_dataset(
        shards,
        DataConfig(**data),
        modality=MODALITY[network],
        positions="vcop",
        num_clips=10,
        resize_short=contract["resize_short"],
    )
    return [element["clips"].numpy() for element in dataset]


@pytest.mark.parametrize("network", NETWORKS)
def test_known_answer_against_extraction_and_retrieval(network, exports, videos, tmp_path):
    from tfcmvp.embedding import embed_videos
    from tfcmvp.retrieval.features import load_embedding_fn

    model = exports[network]
    info = json.loads((model / "assets" / "tfcmvp_export.json").read_text())
    export_embed = load_embedding_fn(model)
    seen = []

    def recording_embed(clips):
        seen.append(np.asarray(clips))
        return export_embed(clips)

    result = embed_videos(videos, model, tmp_path / "out", embed_fn=recording_embed, progress=False)
    assert result.summary["counts"] == {
        "listed": 3,
        "embedded": 3,
        "failed": 0,
        "clips": 30,
        "frames": 40 + 30 + 120,
    }
    reference = _reference_clips(info, videos, tmp_path)
    shape = tuple(info["input"]["shape"])
    assert len(seen) == 3  # one call per video: 10 clips < batch 20
    for got, want in zip(seen, reference):
        assert got.shape == want.shape == (10, *shape)
        np.testing.assert_array_equal(got, want)  # exact: the same decode, JPEG, crop, scale
    matrix = np.load(tmp_path / "out" / "embeddings.npy")
    assert matrix.dtype == np.float32 and matrix.shape == (30, info["embedding_dim"])
    expected = np.concatenate([np.asarray(export_embed(clips)) for clips in reference])
    np.testing.assert_array_equal(matrix, expected)
    assert np.abs(matrix).max() > 0  # randomised BatchNorm: a real signal, not zeros


def _read_table(path):
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_table_rows_follow_the_clip_positions(exports, videos, tmp_path):
    """Rows: per video 10 clips at VCOP's starts, spanning the export's clip; I-frames named."""
    from tfcmvp.embedding import embed_videos

    embed_videos(videos[:1], exports["iframe"], tmp_path / "i", progress=False)
    rows = _read_table(tmp_path / "i" / "clips.csv")
    assert [r["clip"] for r in rows] == [str(i) for i in range(10)]
    # T = 40, span 1: centres linspace(0.5, 39.5, 10) -> starts floor(c - 0.5).
    starts = np.floor(np.linspace(0.5, 39.5, 10) - 0.5).astype(int)
    assert [int(r["start_frame"]) for r in rows] == list(starts)
    assert [int(r["end_frame"]) for r in rows] == list(starts + 1)
    # I-frames at 0, 12, 24, 36: the nearest to each position, earlier on ties.
    iframes = np.array([0, 12, 24, 36])
    nearest = iframes[np.argmin(np.abs(starts[:, None] - iframes[None]), axis=1)]
    assert [int(r["iframe"]) for r in rows] == list(nearest)
    assert {r["codec"] for r in rows} == {"mpeg4"} and {r["fps"] for r in rows} == {"25.0"}
    assert rows[3]["start_time"] == str(round(starts[3] / 25, 6))


@pytest.mark.parametrize("network", ["iframe", "motion"])
def test_sliding_windows(network, exports, videos, tmp_path):
    from tfcmvp.embedding import ClipLayout, embed_videos

    result = embed_videos(
        videos[:1],
        exports[network],
        tmp_path / "w",
        layout=ClipLayout(window=10, stride=5),
        progress=False,
    )
    segments = list(range(0, 40 - 10 + 1, 5))  # T = 40: 0, 5, ..., 30
    rows = _read_table(tmp_path / "w" / "clips.csv")
    assert [(int(r["start_frame"]), int(r["end_frame"])) for r in rows] == [
        (s, s + 10) for s in segments
    ]
    matrix = np.load(tmp_path / "w" / "embeddings.npy")
    assert matrix.shape == (len(segments), 32) and result.summary["clips"]["window"] == 10


def test_bad_files_are_reported_and_counted(exports, videos, tmp_path, caplog):
    """Unreadable bytes, audio only, a truncated file, all I-frames: listed, counted, skipped."""
    from tfcmvp.embedding import embed_videos

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "garbage.mp4").write_bytes(b"not a video at all" * 10)
    write_tone(folder / "tone.mp4")
    data = pathlib.Path(videos[0]).read_bytes()
    (folder / "truncated.avi").write_bytes(data[: len(data) // 3])
    write_video(folder / "intra.avi", moving_texture(12, 48, 64, seed=1), codec="mpeg4", gop=1)
    inputs = [*videos[:2], str(folder)]
    with caplog.at_level("WARNING", logger="tfcmvp.embedding.run"):
        result = embed_videos(inputs, exports["motion"], tmp_path / "out", progress=False)
    counts = result.summary["counts"]
    assert counts == {"listed": 6, "embedded": 2, "failed": 4, "clips": 20, "frames": 70}
    assert result.summary["status"] == "ok"
    failed = [
        json.loads(line) for line in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()
    ]
    stages = {pathlib.Path(f["path"]).name: f["stage"] for f in failed}
    assert stages == {
        "garbage.mp4": "open",
        "tone.mp4": "open",
        "truncated.avi": "decode",
        "intra.avi": "vectors",
    }
    assert all(f["path"] in f["message"] for f in failed)
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 4  # one line each
    rows = _read_table(tmp_path / "out" / "clips.csv")
    assert {r["path"] for r in rows} == set(videos[:2])
    # The I-frame network embeds the all-intra video the motion network cannot.
    result = embed_videos(
        [str(folder / "intra.avi")], exports["iframe"], tmp_path / "i", progress=False
    )
    assert result.embedded == 1


def test_nothing_embedded_writes_the_failures_and_exits_1(exports, tmp_path, capsys):
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"\x1a\x45\xdf\xa3 broken")
    out = tmp_path / "out"
    status = cli_main(
        [
            "embed",
            str(bad),
            "--model",
            str(exports["motion"]),
            "--output",
            str(out),
            "--no_progress",
        ]
    )
    assert status == 1
    summary = json.loads((out / "embed.json").read_text())
    assert summary["status"] == "failed" and summary["counts"]["failed"] == 1
    assert np.load(out / "embeddings.npy").shape == (0, 32)


def test_folders_and_list_files(tmp_path):
    root = tmp_path / "set"
    for name in (
        "b/clip2.MP4",
        "a/clip1.avi",
        "a/deep/clip3.mkv",
        "a/notes.txt",
        ".hidden/x.mp4",
        "a/.y.webm",
        "c.mov",
    ):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert inputs_lib.gather_inputs([root]) == [
        str(root / n) for n in ("a/clip1.avi", "a/deep/clip3.mkv", "b/clip2.MP4", "c.mov")
    ]
    listing = tmp_path / "list.txt"
    listing.write_text("# my videos\nset/c.mov\n\n/abs/elsewhere.avi\nset/c.mov\n")
    table = tmp_path / "list.csv"
    table.write_text('path,label\nset/b/clip2.MP4,3\n"set/a/clip1.avi",1\n')
    got = inputs_lib.gather_inputs([listing, table, root / "c.mov"])
    assert got == [
        str(tmp_path / "set/c.mov"),
        "/abs/elsewhere.avi",
        str(tmp_path / "set/b/clip2.MP4"),
        str(tmp_path / "set/a/clip1.avi"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, message in (
        (tmp_path / "missing.mp4", "no such file"),
        (empty, "without video files"),
    ):
        with pytest.raises(inputs_lib.InputError, match=message):
            inputs_lib.gather_inputs([bad])


def test_cli_list_file_overwrite_and_refusals(exports, videos, tmp_path, capsys):
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(videos[:2]) + "\n")
    out = tmp_path / "out"
    args = [
        "embed",
        str(listing),
        "--model",
        str(exports["iframe"]),
        "--output",
        str(out),
        "--no_progress",
    ]
    assert cli_main(args) == 0
    assert "embedded 2 of 2 videos: 20 clips x 32 (iframe network" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(writer_lib.OUTPUT_ENTRIES)
    before = (out / "embed.json").read_text()
    assert cli_main(args) == 2  # exists: refused without --overwrite, untouched
    assert (out / "embed.json").read_text() == before
    assert cli_main(args + ["--overwrite", "--window", "8"]) == 0
    assert json.loads((out / "embed.json").read_text())["clips"]["window"] == 8
    (out / "mine.txt").write_text("keep")
    assert cli_main(args + ["--overwrite"]) == 2  # not only an embed output: refused
    assert (out / "mine.txt").read_text() == "keep"
    assert cli_main(args[:-2] + [str(tmp_path / "o2"), "--clips", "4", "--window", "8"]) == 2
    assert not list(tmp_path.glob(".*embed-*"))  # no staging folder left behind


def test_defaults_match_the_library_and_the_extraction_job():
    import argparse

    from beam_jobs.extract_options import ExtractOptions
    from tfcmvp.embedding import ClipLayout, StorageSettings, run

    parser = argparse.ArgumentParser()
    ExtractOptions._add_argparse_args(parser)
    job = parser.parse_args(["--videos_dir", "x"])
    storage = StorageSettings()
    assert (storage.rgb_short_side, storage.jpeg_quality, storage.mv_cell) == (
        job.rgb_short_side,
        job.jpeg_quality,
        job.mv_cell,
    )
    assert (
        embed_cmd.DEFAULT_RGB_SHORT_SIDE,
        embed_cmd.DEFAULT_JPEG_QUALITY,
        embed_cmd.DEFAULT_MV_CELL,
    ) == (storage.rgb_short_side, storage.jpeg_quality, storage.mv_cell)
    assert embed_cmd.DEFAULT_CLIPS == ClipLayout().num_clips
    assert embed_cmd.DEFAULT_BATCH_SIZE == run.DEFAULT_BATCH_SIZE
    assert embed_cmd.DEFAULT_MAX_FAILED_FRACTION == run.DEFAULT_MAX_FAILED_FRACTION


def test_keyframe_decode_matches_the_full_decode(videos):
    """Key frames alone: the same images, indices and frame count as the full decode."""
    from tfcmvp.codec import read_video
    from tfcmvp.embedding.decode import read_keyframes

    for path in videos:
        full = read_video(path, rgb=True, rgb_short_side=128)
        keys = read_keyframes(path, rgb_short_side=128)
        assert keys.num_frames == full.num_frames
        np.testing.assert_array_equal(keys.iframe_indices, full.iframe_indices)
        np.testing.assert_array_equal(keys.images, full.frames[full.iframe_indices])
