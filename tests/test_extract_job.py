"""End to end: beam_jobs.extract on tiny generated videos, read back with tf.data."""

import gzip
import json
import os
import shutil
import tempfile

import numpy as np
import pytest

from beam_jobs import extract, extract_options
from tfcmvp import manifest as manifest_lib
from tfcmvp import schema
from tfcmvp.codec import read_video, reencode, write_video

from extract_support import extract_command, output_files

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
NUM_FRAMES = 80
GOP = 12
IFRAMES = list(range(0, NUM_FRAMES, GOP))  # [0, 12, ..., 72]


def moving_frames(num_frames, height, width, dx, dy, seed):
    """uint8 [T, H, W, 3]: a blocky random texture whose content moves (dx, dy) px per frame."""
    rng = np.random.default_rng(seed)
    pad = (abs(dx) + abs(dy)) * num_frames + 8
    coarse = rng.integers(
        0, 256, ((height + 2 * pad) // 4 + 1, (width + 2 * pad) // 4 + 1, 3), dtype=np.uint8
    )
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)
    return np.stack(
        [
            texture[pad - dy * t : pad - dy * t + height, pad - dx * t : pad - dx * t + width]
            for t in range(num_frames)
        ]
    )


# (relative path, codec, dx, dy): 64x48, 80 frames, GOP 12, no B-frames.
VIDEOS = {
    "jump_a": ("Jump/v_Jump_g01_c01.avi", "mpeg4", 1, 0),
    "jump_b": ("Jump/v_Jump_g02_c01.avi", "h264", 0, 1),
    "run_a": ("Run/v_Run_g01_c01.avi", "mpeg4", -2, 0),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The encoded test videos, once per module: key -> path."""
    root = tmp_path_factory.mktemp("sources")
    paths = {}
    for seed, (key, (_, codec, dx, dy)) in enumerate(sorted(VIDEOS.items())):
        paths[key] = root / f"{key}.{'mp4' if codec == 'h264' else 'avi'}"
        write_video(
            paths[key],
            moving_frames(NUM_FRAMES, 48, 64, dx, dy, seed),
            fps=25,
            codec=codec,
            gop=GOP,
        )
    return paths


@pytest.fixture(scope="module")
def ucf(tmp_path_factory, sources):
    """A UCF101-style dataset extracted once: (videos_dir, splits_dir, output_dir, manifest)."""
    root = tmp_path_factory.mktemp("ucf")
    videos, split_dir, out = root / "videos", root / "splits", root / "out"
    for key, (rel, _, _, _) in VIDEOS.items():
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sources[key], videos / rel)
    split_dir.mkdir()
    (split_dir / "classInd.txt").write_text("1 Jump\n2 Run\n")
    (split_dir / "trainlist01.txt").write_text(
        "Jump/v_Jump_g01_c01.avi 1\nRun/v_Run_g01_c01.avi 2\n"
    )
    (split_dir / "testlist01.txt").write_text("Jump/v_Jump_g02_c01.avi\n")
    manifest = extract.run(
        [f"--videos_dir={videos}", f"--splits_dir={split_dir}", f"--output_dir={out}", *IN_PROCESS]
    )
    return videos, split_dir, out, manifest


def read_records(out):
    """Every record of an output folder, through tf.data: (parsed tensors, VideoRecord)."""
    import tensorflow as tf

    files = sorted(str(p) for p in out.glob("*.tfrecord.gz"))
    raw = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    parsed = list(
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .map(schema.parse_example)
        .as_numpy_iterator()
    )
    return parsed, [schema.decode_example(r) for r in raw]


def test_output_files_are_gzip_shards(ucf):
    _, _, out, _ = ucf
    assert sorted(os.listdir(out)) == output_files(1)
    for shard in out.glob("*.tfrecord.gz"):
        assert shard.read_bytes()[:2] == b"\x1f\x8b"
        assert len(gzip.decompress(shard.read_bytes())) > 0


def test_records_read_back_with_tf_data(ucf):
    videos, _, out, _ = ucf
    parsed, recs = read_records(out)
    assert len(parsed) == 3
    by_id = {r.video_id: r for r in recs}
    assert {k: (v.label, v.label_name, v.split) for k, v in by_id.items()} == {
        "Jump/v_Jump_g01_c01.avi": (0, "Jump", "train"),
        "Run/v_Run_g01_c01.avi": (1, "Run", "train"),
        "Jump/v_Jump_g02_c01.avi": (0, "Jump", "test"),
    }
    for item in parsed:
        assert item[schema.NUM_FRAMES] == NUM_FRAMES
        assert list(item[schema.IFRAME_INDICES]) == IFRAMES
        # 64x48 -> short side 128 keeping aspect ratio: 128 x round(64 * 128 / 48) = 171.
        assert (item[schema.RGB_HEIGHT], item[schema.RGB_WIDTH]) == (128, 171)
        assert len(item[schema.RGB_ENCODED]) == NUM_FRAMES
        assert len(item[schema.IFRAME_ENCODED]) == len(IFRAMES)
        assert item[schema.MV_ENCODED].shape == (NUM_FRAMES, 6, 8, 2)  # ceil(48/8), ceil(64/8)
    for rec in recs:
        assert rec.one_past_reference  # GOP of I + P frames
        assert rec.frame_types == ("I" + "P" * (GOP - 1)) * 6 + "I" + "P" * 7


def test_vectors_equal_read_video_on_the_same_file(ucf):
    videos, _, out, _ = ucf
    _, recs = read_records(out)
    for rec in recs:
        direct = read_video(videos / rec.video_id, mv_cell=8)
        # Stored in quarter-pel integers: at most 1/8 px from the decoder's value.
        np.testing.assert_allclose(rec.motion_vectors, direct.motion_vectors, atol=1 / 8 + 1e-6)
        assert rec.frame_types == direct.frame_types
    # The content of Run/... moves 2 px left per frame: P-frame vectors say so.
    run = next(r for r in recs if r.video_id.startswith("Run/"))
    p_frames = [t for t, kind in enumerate(run.frame_types) if kind == "P"]
    np.testing.assert_allclose(np.median(run.motion_vectors[p_frames], axis=(0, 1, 2)), [-2, 0])


def test_rgb_frames_and_iframes_come_from_the_decode(ucf):
    import tensorflow as tf

    videos, _, out, _ = ucf
    _, recs = read_records(out)
    rec = next(r for r in recs if r.video_id == "Jump/v_Jump_g02_c01.avi")
    frames = read_video(videos / rec.video_id, rgb=True, rgb_short_side=128).frames
    for position, index in enumerate(rec.iframe_indices):
        image = tf.io.decode_jpeg(rec.iframe_jpegs[position]).numpy()
        assert image.shape == (128, 171, 3)
        assert np.abs(image.astype(int) - frames[index]).mean() < 6.0
        assert rec.iframe_jpegs[position] == rec.rgb_jpegs[index]
    last = tf.io.decode_jpeg(rec.rgb_jpegs[-1]).numpy()
    assert np.abs(last.astype(int) - frames[-1]).mean() < 6.0


def test_manifest_labels_and_failures(ucf):
    _, split_dir, out, manifest = ucf
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    train, test = manifest["splits"]["train"], manifest["splits"]["test"]
    assert (train["listed"], train["written"], train["failed"]) == (2, 2, 0)
    assert (test["listed"], test["written"], test["failed"]) == (1, 1, 0)
    assert (train["frames"], test["frames"]) == (2 * NUM_FRAMES, NUM_FRAMES)
    assert (train["iframes"], test["iframes"]) == (2 * len(IFRAMES), len(IFRAMES))
    assert train["short"] == test["short"] == train["all_intra"] == 0
    assert train["shards"] == ["train-00000-of-00001.tfrecord.gz"]
    # "bytes" is what the records take in the shards: the shard files' sizes.
    for split in manifest["splits"].values():
        assert split["bytes"] == sum((out / s).stat().st_size for s in split["shards"]) > 0
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["layout"] == "ucf101" and manifest["num_classes"] == 2
    assert set(manifest["versions"]) == {"tfcmvp", "tensorflow", "apache-beam", "av", "numpy"}
    assert manifest["versions"]["apache-beam"] == "2.77.0"
    assert manifest["options"]["rgb_short_side"] == 128
    assert manifest["options"]["min_frames"] == 71
    assert manifest["options"]["split_files"][0] == str(split_dir / "classInd.txt")
    assert manifest["created"].endswith("+00:00")
    assert (out / "labels.txt").read_text() == "Jump\nRun\n"
    assert (out / "failed.jsonl").read_text() == ""


def test_rerun_refuses_a_non_empty_output(ucf):
    videos, split_dir, out, _ = ucf
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(extract.OutputExistsError, match=r"is not empty .*--overwrite"):
        extract.run(
            [
                f"--videos_dir={videos}",
                f"--splits_dir={split_dir}",
                f"--output_dir={out}",
                *IN_PROCESS,
            ]
        )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_overwrite_with_reencode_replaces_the_previous_run(ucf, tmp_path):
    videos, split_dir, out, _ = ucf
    target = tmp_path / "out"
    shutil.copytree(out, target)
    manifest = extract.run(
        [
            f"--videos_dir={videos}",
            f"--splits_dir={split_dir}",
            f"--output_dir={target}",
            "--overwrite",
            "--num_shards=2",
            "--reencode=mpeg4",
            *IN_PROCESS,
        ]
    )
    # Shards of the two runs never mix: the 1-shard set is gone, the 2-shard set is complete.
    assert sorted(p.name for p in target.glob("*.tfrecord.gz")) == [
        "test-00000-of-00002.tfrecord.gz",
        "test-00001-of-00002.tfrecord.gz",
        "train-00000-of-00002.tfrecord.gz",
        "train-00001-of-00002.tfrecord.gz",
    ]
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".tfrecord.gz")) == [
        "failed.jsonl",
        "labels.txt",
        "manifest.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder beside
    assert manifest["options"]["reencode"] == "mpeg4"
    assert manifest["splits"]["train"]["written"] == 2
    _, recs = read_records(target)
    assert len(recs) == 3
    rec = next(r for r in recs if r.video_id == "Jump/v_Jump_g02_c01.avi")  # H.264 source
    assert rec.codec == "mpeg4" and rec.one_past_reference
    assert rec.iframe_indices == IFRAMES
    # Everything comes from the re-encoded stream: re-encoding here gives the same vectors.
    again = reencode(videos / rec.video_id, tmp_path / "again.mp4", codec="mpeg4", gop=GOP)
    np.testing.assert_allclose(
        rec.motion_vectors, read_video(again).motion_vectors, atol=1 / 8 + 1e-6
    )


def test_failed_pipeline_keeps_the_previous_output(ucf, tmp_path, monkeypatch):
    """A run that dies leaves the previous complete set untouched and no staging folder."""
    videos, split_dir, out, _ = ucf
    target = tmp_path / "out"
    shutil.copytree(out, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken(tallies):
        raise RuntimeError("summary step crashed")

    monkeypatch.setattr(manifest_lib, "merge_tallies", broken)
    with pytest.raises(Exception, match="summary step crashed"):
        extract.run(
            [
                f"--videos_dir={videos}",
                f"--splits_dir={split_dir}",
                f"--output_dir={target}",
                "--overwrite",
                *IN_PROCESS,
            ]
        )
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_stage_dofns_outputs_and_counters(sources, tmp_path):
    """The per-video DoFns in a TestPipeline: main, failed and tally outputs, and counters."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from tfcmvp.splits import VideoEntry

    videos_dir = str(sources["jump_a"].parent)
    options = extract_options.make_pipeline_options(
        [
            f"--videos_dir={videos_dir}",
            "--output_dir=unused",
            "--splits_dir=unused",
            "--min_frames=100",
            *IN_PROCESS,
        ]
    )
    config = extract_options.ExtractConfig.from_options(options)
    tasks = [
        extract.Task(VideoEntry(sources["jump_a"].name, 0, "Jump", "train"), 4, 1, 3),
        extract.Task(VideoEntry("absent.avi", 1, "Run", "test"), 0, 0, 1),
    ]
    staging = str(tmp_path / "staging")
    pipeline = TestPipeline(options=options)
    videos = pipeline | "ListVideos" >> beam.Create(tasks)
    extracted = videos | "ExtractVideo" >> beam.ParDo(extract.ExtractVideoFn(config)).with_outputs(
        extract.FAILED, main="videos"
    )
    built = extracted.videos | "BuildRecord" >> beam.ParDo(
        extract.BuildRecordFn(config)
    ).with_outputs(extract.FAILED, main="records")
    encoded = built.records | "EncodeExample" >> beam.ParDo(
        extract.EncodeExampleFn(config)
    ).with_outputs(extract.FAILED, main="examples")
    staged = encoded.examples | "StageRecord" >> beam.ParDo(
        extract.StageRecordFn(config, staging)
    ).with_outputs(extract.TALLY, main="parts")
    part = f"{staging}/parts/train-00001/0000004.part"
    assert_that(staged.parts, equal_to([(("train", 1), (4, part))]), label="CheckParts")
    assert_that(
        extracted[extract.FAILED]
        | beam.Map(lambda rec: (rec["video_id"], rec["split"], rec["stage"], rec["error"])),
        equal_to([("absent.avi", "test", "open", "FileNotFoundError")]),
        label="CheckFailed",
    )
    assert_that(built[extract.FAILED], equal_to([]), label="CheckBuildFailed")
    assert_that(
        staged[extract.TALLY]
        | beam.MapTuple(
            lambda split, t: (split, t["written"], t["frames"], t["iframes"], t["short"])
        ),
        equal_to([("train", 1, NUM_FRAMES, len(IFRAMES), 1)]),
        label="CheckTally",
    )
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace(extract.METRICS_NAMESPACE))[
            "counters"
        ]
    }
    assert counters["videos_ok"] == 1 and counters["videos_failed"] == 1
    assert counters["videos_short"] == 1  # 80 frames < --min_frames=100
    assert (counters["frames"], counters["iframes"]) == (NUM_FRAMES, len(IFRAMES))
    # The staged file is one gzip-compressed TFRecord-framed record, readable by TensorFlow.
    import tensorflow as tf

    assert counters["bytes_written"] == os.path.getsize(part)
    (raw,) = list(tf.data.TFRecordDataset([part], compression_type="GZIP").as_numpy_iterator())
    assert schema.decode_example(raw).video_id == "jump_a.avi"


def hmdb_layout(root, sources):
    videos, split_dir = root / "videos", root / "splits"
    for cls in ("brush_hair", "cartwheel"):
        (videos / cls).mkdir(parents=True)
    shutil.copy(sources["jump_a"], videos / "brush_hair" / "a_brush_hair_0.avi")
    shutil.copy(sources["jump_b"], videos / "brush_hair" / "b_brush_hair_1.avi")
    shutil.copy(sources["run_a"], videos / "cartwheel" / "c_cartwheel_0.avi")
    split_dir.mkdir()
    # "0" (unused in this split) is not listed: it needs no file on disk.
    (split_dir / "brush_hair_test_split1.txt").write_text(
        "a_brush_hair_0.avi 1 \nb_brush_hair_1.avi 2 \nunused_brush_hair_2.avi 0 \n"
    )
    (split_dir / "cartwheel_test_split1.txt").write_text("c_cartwheel_0.avi 1 \n")
    return videos, split_dir


def test_hmdb51_layout(tmp_path, sources):
    videos, split_dir = hmdb_layout(tmp_path, sources)
    out = tmp_path / "out"
    manifest = extract.run(
        [
            f"--videos_dir={videos}",
            f"--splits_dir={split_dir}",
            f"--output_dir={out}",
            "--min_frames=100",
            *IN_PROCESS,
        ]
    )
    assert manifest["layout"] == "hmdb51"
    assert {
        name: (s["listed"], s["written"], s["failed"], s["short"])
        for name, s in manifest["splits"].items()
    } == {"train": (2, 2, 0, 2), "test": (1, 1, 0, 1)}
    assert manifest["splits"]["train"]["short_ids"] == [
        "brush_hair/a_brush_hair_0.avi",
        "cartwheel/c_cartwheel_0.avi",
    ]
    assert (out / "labels.txt").read_text() == "brush_hair\ncartwheel\n"
    _, recs = read_records(out)
    assert sorted((r.video_id, r.label, r.split) for r in recs) == [
        ("brush_hair/a_brush_hair_0.avi", 0, "train"),
        ("brush_hair/b_brush_hair_1.avi", 0, "test"),
        ("cartwheel/c_cartwheel_0.avi", 1, "train"),
    ]


@pytest.mark.slow
def test_command_line_with_two_worker_processes(tmp_path, sources):
    """``python -m beam_jobs.extract`` in worker processes (the default local mode), 2 workers."""
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    videos, split_dir = hmdb_layout(tmp_path, sources)
    (videos / "cartwheel" / "d_cartwheel_1.avi").write_bytes(b"")  # fails in a worker
    with open(split_dir / "cartwheel_test_split1.txt", "a") as listing:
        listing.write("d_cartwheel_1.avi 1 \n")
    out = tmp_path / "out"
    command = extract_command(
        f"--videos_dir={videos}",
        f"--splits_dir={split_dir}",
        f"--output_dir={out}",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        "--max_failed_fraction=0.5",
    )
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [manifest["splits"][s]["written"] for s in ("train", "test")] == [2, 1]
    assert manifest["splits"]["train"]["failed"] == 1
    # The log: the worker's warning, readable, and none of Beam's harness chatter.
    assert "beam_jobs.worker: cartwheel/d_cartwheel_1.avi failed at open" in done.stderr
    assert "Worker: severity" not in done.stderr and "sdk harness" not in done.stderr
    _, recs = read_records(out)
    assert sorted(r.video_id for r in recs) == [
        "brush_hair/a_brush_hair_0.avi",
        "brush_hair/b_brush_hair_1.avi",
        "cartwheel/c_cartwheel_0.avi",
    ]
    again = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert f"error: {out} is not empty" in again.stderr


@pytest.fixture(scope="module")
def fake_remote():
    """A Beam file system for ``fakeremote://`` paths, stored on local disk.

    It stands in for gs:// (which needs credentials and network): a path that
    is not local makes the job copy each video to the worker before PyAV
    reads it, and do every listing, write and move through Beam's
    FileSystems. ``fakeremote:///tmp/x`` is the local file /tmp/x.
    """
    from apache_beam.io.filesystem import FileMetadata, MatchResult
    from apache_beam.io.localfilesystem import LocalFileSystem

    prefix = "fakeremote://"

    def local(path):
        return path[len(prefix) :] if path.startswith(prefix) else path

    def like(original, path):  # Beam's own match() calls join/split with local paths
        return prefix + path if original.startswith(prefix) else path

    class _FakeRemote(LocalFileSystem):
        @classmethod
        def scheme(cls):
            return "fakeremote"

        def join(self, base, *parts):
            return like(base, super().join(local(base), *parts))

        def split(self, path):
            head, tail = super().split(local(path))
            return like(path, head), tail

        def mkdirs(self, path):
            return super().mkdirs(local(path))

        def match(self, patterns, limits=None):
            results = super().match([local(p) for p in patterns], limits)
            return [
                MatchResult(
                    like(p, r.pattern),
                    [
                        FileMetadata(like(p, m.path), m.size_in_bytes, m.last_updated_in_seconds)
                        for m in r.metadata_list
                    ],
                )
                for p, r in zip(patterns, results)
            ]

        def create(self, path, *args, **kwargs):
            return super().create(local(path), *args, **kwargs)

        def open(self, path, *args, **kwargs):
            return super().open(local(path), *args, **kwargs)

        def copy(self, sources, destinations):
            return super().copy([local(p) for p in sources], [local(p) for p in destinations])

        def rename(self, sources, destinations):
            return super().rename([local(p) for p in sources], [local(p) for p in destinations])

        def exists(self, path):
            return super().exists(local(path))

        def size(self, path):
            return super().size(local(path))

        def last_updated(self, path):
            return super().last_updated(local(path))

        def checksum(self, path):
            return super().checksum(local(path))

        def metadata(self, path):
            meta = super().metadata(local(path))
            return FileMetadata(
                like(path, meta.path), meta.size_in_bytes, meta.last_updated_in_seconds
            )

        def delete(self, paths):
            return super().delete([local(p) for p in paths])

    # Beam finds file systems through weak subclass references: keep the class alive.
    yield prefix
    del _FakeRemote


def test_remote_paths_go_through_beam_filesystems(ucf, fake_remote, tmp_path):
    """Videos, split files and output on a non-local file system (a gs:// stand-in)."""
    videos, split_dir, first_out, _ = ucf
    out = tmp_path / "out"
    remote = f"{fake_remote}{out}"
    listing = tmp_path / "splits"
    shutil.copytree(split_dir, listing)
    with open(listing / "testlist01.txt", "a") as f:
        f.write("Run/v_Run_not_there_c01.avi\n")
    manifest = extract.run(
        [
            f"--videos_dir={fake_remote}{videos}",
            f"--splits_dir={fake_remote}{listing}",
            f"--output_dir={remote}",
            "--max_failed_fraction=0.5",
            *IN_PROCESS,
        ]
    )
    assert manifest["options"]["output_dir"] == remote
    assert sorted(os.listdir(out)) == output_files(1)
    assert manifest["splits"]["test"]["failed"] == 1
    (failure,) = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert failure["path"] == f"{fake_remote}{videos}/Run/v_Run_not_there_c01.avi"
    assert failure["message"].startswith(failure["path"]) and failure["stage"] == "open"
    _, recs = read_records(out)
    assert sorted(r.video_id for r in recs) == [
        "Jump/v_Jump_g01_c01.avi",
        "Jump/v_Jump_g02_c01.avi",
        "Run/v_Run_g01_c01.avi",
    ]
    # Same videos, same options: byte-identical shards (the extra video failed).
    for shard in ("train-00000-of-00001.tfrecord.gz", "test-00000-of-00001.tfrecord.gz"):
        assert (out / shard).read_bytes() == (first_out / shard).read_bytes()
    # The remote copy decodes exactly like the original.
    rec = next(r for r in recs if r.video_id == "Run/v_Run_g01_c01.avi")
    np.testing.assert_allclose(
        rec.motion_vectors, read_video(videos / rec.video_id).motion_vectors, atol=1 / 8 + 1e-6
    )
    with pytest.raises(extract.OutputExistsError, match=f"{remote} is not empty"):
        extract.run(
            [
                f"--videos_dir={fake_remote}{videos}",
                f"--splits_dir={fake_remote}{listing}",
                f"--output_dir={remote}",
                *IN_PROCESS,
            ]
        )


@pytest.fixture
def no_network(monkeypatch):
    """Fails any name lookup beyond this machine (e.g. Google Cloud credential probes)."""
    import socket

    real = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            raise AssertionError(f"test tried to reach {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


def test_dataflow_graph_is_built_without_submitting(tmp_path, no_network, monkeypatch):
    """DataflowRunner options build the full graph (and pickle every DoFn); nothing runs.

    ``--dry_run=True`` (Beam's TestOptions) skips the option validation that
    would otherwise ask Google Cloud Storage about the temp bucket.
    """
    from apache_beam import Pipeline
    from apache_beam.options.pipeline_options import (
        DirectOptions,
        GoogleCloudOptions,
        SetupOptions,
        StandardOptions,
    )

    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "classInd.txt").write_text("1 Jump\n2 Run\n")
    (split_dir / "trainlist01.txt").write_text("Jump/v_Jump_g01_c01.avi 1\n")
    (split_dir / "testlist01.txt").write_text("Run/v_Run_g01_c01.avi\n")
    options = extract_options.make_pipeline_options(
        [
            "--runner=DataflowRunner",
            "--project=my-project",
            "--region=europe-west1",
            "--temp_location=gs://my-bucket/tmp",
            "--setup_file=./setup.py",
            "--videos_dir=gs://my-bucket/UCF-101",
            f"--splits_dir={split_dir}",
            "--output_dir=gs://my-bucket/ucf101_s1",
            "--reencode=mpeg4",
            "--dry_run=True",
        ]
    )
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert options.view_as(DirectOptions).direct_running_mode != "multi_processing"
    cloud = options.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region, cloud.temp_location) == (
        "my-project",
        "europe-west1",
        "gs://my-bucket/tmp",
    )
    assert options.view_as(SetupOptions).setup_file == "./setup.py"
    assert extract_options.make_runner(options) is None

    config = extract_options.ExtractConfig.from_options(options)
    split_set = extract.load_split_set(config)
    # Beam deletes a pipeline's local temp folder in run() only, and this one never runs:
    # let it make that folder under tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pipeline = Pipeline(options=options)
    assert pipeline.local_tempdir.startswith(str(tmp_path))
    assert type(pipeline.runner).__name__ == "DataflowRunner"
    extract.build_pipeline(pipeline, config, split_set, "gs://my-bucket/ucf101_s1/_incomplete-x")
    proto = pipeline.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    for label in (
        "ListVideos",
        "ExtractRecords",
        "ListShards",
        "GroupByShard",
        "WriteShard",
        "CollectTallies",
        "SummarizeSplits",
        "GroupByFile",
        "WriteFiles",
    ):
        assert label in names, label
    # The launcher-side plan: one train and one test shard, with every video placed.
    tasks = extract.plan_tasks(split_set, config)
    assert [(t.entry.split, t.index, t.shard, t.num_shards) for t in tasks] == [
        ("train", 0, 0, 1),
        ("test", 0, 0, 1),
    ]


def test_default_local_runner_uses_every_core():
    options = extract_options.make_pipeline_options(["--videos_dir=v"])
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    direct = options.view_as(DirectOptions)
    assert direct.direct_num_workers == os.cpu_count()
    assert direct.direct_running_mode == "multi_processing"
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    assert isinstance(extract_options.make_runner(options), fn_runner.FnApiRunner)
    explicit = extract_options.make_pipeline_options(["--runner=DirectRunner"])
    assert explicit.view_as(StandardOptions).runner == "FnApiRunner"  # no Prism download
    # A user's own runner flags are kept.
    mine = extract_options.make_pipeline_options(["--direct_num_workers=1"])
    assert mine.view_as(DirectOptions).direct_num_workers == 1
    assert mine.view_as(DirectOptions).direct_running_mode == "in_memory"


def test_option_errors_name_the_flag():
    options = extract_options.make_pipeline_options(
        [
            "--videos_dir=v",
            "--output_dir=o",
            "--splits_dir=s",
            "--manifest=m.csv",
            "--jpeg_quality=0",
        ]
    )
    with pytest.raises(
        ValueError,
        match=r"exactly one of --splits_dir and --manifest; "
        r"--jpeg_quality must be in \[1, 95\], got 0",
    ):
        extract_options.ExtractConfig.from_options(options)
    assert (
        extract_options.ExtractConfig.from_options(
            extract_options.make_pipeline_options(
                ["--videos_dir=v", "--output_dir=o", "--splits_dir=s"]
            )
        ).shards_for(250)
        == 3
    )


def test_plan_tasks_spreads_each_split_round_robin():
    from tfcmvp.splits import SplitSet, VideoEntry

    entries = [VideoEntry(f"c{i % 2}/t{i}.avi", i % 2, f"c{i % 2}", "train") for i in range(7)] + [
        VideoEntry(f"c0/s{i}.avi", 0, "c0", "test") for i in range(2)
    ]
    split_set = SplitSet("csv", ["c0", "c1"], entries, ["m.csv"])
    config = extract_options.ExtractConfig.from_options(
        extract_options.make_pipeline_options(
            ["--videos_dir=v", "--output_dir=o", "--manifest=m.csv", "--num_shards=3"]
        )
    )
    plan = [
        (t.entry.path, t.index, t.shard, t.num_shards)
        for t in extract.plan_tasks(split_set, config)
    ]
    assert plan == [(f"c{i % 2}/t{i}.avi", i, i % 3, 3) for i in range(7)] + [
        ("c0/s0.avi", 0, 0, 3),
        ("c0/s1.avi", 1, 1, 3),
    ]
    assert extract.shard_name("train", 2, 3) == "train-00002-of-00003.tfrecord.gz"


def test_gzip_members_joined_into_a_shard_read_by_tensorflow(tmp_path):
    import gzip

    import tensorflow as tf

    from beam_jobs import tfrecord_files

    payloads = [b"first", b"", bytes(range(256)) * 40]
    framed = [tfrecord_files.frame_record(p) for p in payloads]
    assert [len(f) for f in framed] == [len(p) + 16 for p in payloads]  # 8 + 4 + data + 4
    paths = []
    for attempt in range(2):
        paths.append(tmp_path / f"shard{attempt}.tfrecord.gz")
        members = [tfrecord_files.gzip_member(f) for f in framed]
        with open(paths[-1], "wb") as handle:
            size = tfrecord_files.write_shard(handle, members)
        assert size == sum(len(m) for m in members) == paths[-1].stat().st_size
    # Several gzip members in one file: both readers see the concatenation, in order.
    assert gzip.decompress(paths[0].read_bytes()) == b"".join(framed)
    read = list(
        tf.data.TFRecordDataset([str(paths[0])], compression_type="GZIP").as_numpy_iterator()
    )
    assert read == payloads
    assert paths[0].read_bytes() == paths[1].read_bytes()  # no timestamp or name inside
    # crc32c("") is 0, so its masked value is the mask constant itself.
    assert tfrecord_files.masked_crc32c(b"") == 0xA282EAD8


def test_manifest_refuses_counts_that_do_not_add_up():
    tally = manifest_lib.merge_tallies(
        [manifest_lib.written_tally("a", "IPPP", 10, 71), manifest_lib.failed_tally()]
    )
    assert (tally["written"], tally["failed"], tally["short"], tally["frames"]) == (1, 1, 1, 4)
    kwargs = dict(options={}, layout="csv", num_classes=1, shards={}, schema_version=1)
    assert (
        manifest_lib.build_manifest({"train": 2}, {"train": tally}, **kwargs)["splits"]["train"][
            "listed"
        ]
        == 2
    )
    with pytest.raises(
        manifest_lib.ManifestError,
        match=r"'train': 3 videos listed but 1 "
        r"written \+ 1 failed",
    ):
        manifest_lib.build_manifest({"train": 3}, {"train": tally}, **kwargs)
    with pytest.raises(manifest_lib.ManifestError, match=r"\['test'\]"):
        manifest_lib.build_manifest({"train": 2}, {"train": tally, "test": tally}, **kwargs)


def test_worker_log_filter_keeps_our_lines_and_drops_beam_chatter():
    import logging

    from beam_jobs import worker_logs

    def forwarded(level, message, location):
        text = (
            f"Worker: severity: {logging.getLevelName(level)} timestamp {{   seconds: 1 }} "
            f'message: "{message}" log_location: "{location}" thread: "MainThread"'
        )
        return logging.LogRecord(
            worker_logs.FORWARDING_LOGGER, level, __file__, 1, text, None, None
        )

    keep = worker_logs.WorkerLogFilter()
    ours = forwarded(
        logging.WARNING, r"a.avi failed at open: \"no\" such file", "/site/beam_jobs/extract.py:160"
    )
    assert keep.filter(ours)
    assert ours.getMessage() == 'a.avi failed at open: "no" such file (extract.py:160)'
    assert ours.name == "beam_jobs.worker"
    assert not keep.filter(
        forwarded(
            logging.INFO,
            "Python sdk harness starting.",
            "/site/apache_beam/runners/worker/sdk_worker_main.py:1",
        )
    )
    assert not keep.filter(
        forwarded(
            logging.WARNING,
            "Discarding unparseable args",
            "/site/apache_beam/options/pipeline_options.py:570",
        )
    )
    crash = forwarded(
        logging.ERROR,
        "Error processing instruction",
        "/site/apache_beam/runners/worker/sdk_worker.py:300",
    )
    assert keep.filter(crash) and crash.getMessage().startswith("Error processing instruction")
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "not forwarded", None, None)
    assert keep.filter(plain) and plain.getMessage() == "not forwarded"


def test_mpeg4_b_frames_are_flagged_unless_reencoded(tmp_path, caplog):
    """FFmpeg exports MPEG-4 Part 2 B-frame vectors as zero: the job names such a video in a
    warning; with --reencode mpeg4 the record has no B-frame and no warning is given."""
    import logging

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(
        videos / "b.avi",
        moving_frames(NUM_FRAMES, 48, 64, 2, -1, 0),
        codec="mpeg4",
        gop=GOP,
        b_frames=2,
    )
    listing = tmp_path / "list.csv"
    listing.write_text("path,label,split\nb.avi,walk,train\n")
    common = [f"--videos_dir={videos}", f"--manifest={listing}", *IN_PROCESS]
    with caplog.at_level(logging.WARNING, logger="beam_jobs.extract"):
        extract.run([*common, f"--output_dir={tmp_path / 'plain'}"])
    assert "b.avi: MPEG-4 Part 2 with B-frames" in caplog.text and "--reencode mpeg4" in caplog.text
    _, (plain,) = read_records(tmp_path / "plain")
    assert "B" in plain.frame_types
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="beam_jobs.extract"):
        extract.run([*common, f"--output_dir={tmp_path / 'reencoded'}", "--reencode=mpeg4"])
    assert "B-frames" not in caplog.text
    _, (reencoded,) = read_records(tmp_path / "reencoded")
    assert "B" not in reencoded.frame_types and reencoded.one_past_reference
    assert reencoded.num_frames == plain.num_frames


def test_uncompressed_shards_are_read_like_gzip_ones(ucf, tmp_path):
    """--compression none: plain *.tfrecord shards with the same records, found and read by
    the training readers (which pick the compression per file)."""
    from tfcmvp.config import DataConfig
    from tfcmvp.data import pretrain_dataset, reader

    videos, split_dir, gzip_out, _ = ucf
    out = tmp_path / "plain"
    manifest = extract.run(
        [
            f"--videos_dir={videos}",
            f"--splits_dir={split_dir}",
            f"--output_dir={out}",
            "--compression=none",
            *IN_PROCESS,
        ]
    )
    assert sorted(p.name for p in out.glob("*.tfrecord*")) == [
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00001.tfrecord",
    ]
    assert manifest["options"]["compression"] == "none"
    for split in ("train", "test"):
        (shard,) = manifest_lib.find_shards(out, split)
        assert manifest["splits"][split]["bytes"] == os.path.getsize(shard)
        assert open(shard, "rb").read(2) != b"\x1f\x8b"  # not gzip
    mixed = sorted(str(p) for p in out.glob("*.tfrecord")) + sorted(
        str(p) for p in gzip_out.glob("*.tfrecord.gz")
    )
    ids = [
        schema.decode_example(r).video_id for r in reader.records_dataset(mixed).as_numpy_iterator()
    ]
    assert sorted(ids) == sorted(
        2 * ["Jump/v_Jump_g01_c01.avi", "Run/v_Run_g01_c01.avi", "Jump/v_Jump_g02_c01.avi"]
    )
    batch = next(
        iter(
            pretrain_dataset(
                str(out / "train-*"),
                2,
                DataConfig(
                    clip_len=4,
                    clip_stride=2,
                    motion_len=3,
                    motion_gap=2,
                    num_negatives=0,
                    iframe_window=12,
                    crop_size=16,
                ),
                seed=0,
            )
        )
    )
    assert batch["clip"].shape == (2, 4, 16, 16, 3)
