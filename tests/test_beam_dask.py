"""The extraction job on Beam's Dask runner (``--runner DaskRunner``), on 2-worker local clusters.

Known answer: the default runner's output folder, byte for byte (file list,
shards, labels.txt, failed.jsonl with a bad video in it, manifest.json but
for its creation time and output folder). Also: the two limits of Beam
2.77's Dask runner that shape the pipeline (tagged outputs reach every
consumer; only the last step runs), Ctrl-C of a Dask run, and the flags.
Skipped when dask/distributed (the optional ``dask`` extra) are not installed.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytest.importorskip("dask", reason="the optional dask extra: pip install -e '.[dask]'")
pytest.importorskip("distributed", reason="the optional dask extra: pip install -e '.[dask]'")

from beam_jobs import dask_cluster, extract, output_folder, worker_process  # noqa: E402
from tfcmvp.codec import write_video  # noqa: E402
from tfcmvp.codec.synthetic import moving_texture  # noqa: E402

from extract_support import (  # noqa: E402
    extract_command,
    output_files,
    staging,
    start_busy,
    workers_of,
    write_listing,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
# 5 good videos in two classes, 2 shards of train, and one file that is no video.
LISTING = [
    ("Walk/w0.avi", "train"),
    ("Run/r0.avi", "train"),
    ("Walk/w1.avi", "train"),
    ("Run/bad.avi", "train"),
    ("Run/r1.avi", "train"),
    ("Walk/w2.avi", "test"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(job flags without --output_dir, the default runner's output folder)."""
    root = tmp_path_factory.mktemp("dask")
    videos = root / "videos"
    for seed, (path, _) in enumerate(LISTING):
        (videos / path).parent.mkdir(parents=True, exist_ok=True)
        if "bad" in path:
            (videos / path).write_bytes(b"not a video")
        else:
            write_video(
                videos / path, moving_texture(20, 32, 48, (1, seed % 3 - 1), seed=seed), gop=8
            )
    (root / "list.csv").write_text(
        "path,label,split\n"
        + "".join(f"{path},{path.split('/')[0]},{split}\n" for path, split in LISTING)
    )
    flags = [
        f"--videos_dir={videos}",
        f"--manifest={root / 'list.csv'}",
        "--num_shards=2",
        "--max_failed_fraction=0.5",
    ]
    reference = root / "default"
    extract.run([*flags, f"--output_dir={reference}", *IN_PROCESS])
    return flags, reference


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker local Dask cluster of this process: its scheduler address."""
    with dask_cluster.local_cluster(2) as address:
        yield address


def folder_bytes(folder):
    """name -> bytes; manifest.json parsed, without its creation time and output folder."""
    files = {}
    for name in sorted(os.listdir(folder)):
        data = (folder / name).read_bytes()
        if name == "manifest.json":
            data = json.loads(data)
            del data["created"]
            del data["options"]["output_dir"]
        files[name] = data
    return files


def check_same_output(out, reference):
    got, want = folder_bytes(out), folder_bytes(reference)
    assert list(got) == list(want) == output_files(2)
    for name in want:
        assert got[name] == want[name], name
    manifest = got["manifest.json"]
    assert {s: (v["listed"], v["written"], v["failed"]) for s, v in manifest["splits"].items()} == {
        "train": (5, 4, 1),
        "test": (1, 1, 0),
    }
    (failure,) = [json.loads(line) for line in got["failed.jsonl"].splitlines()]
    assert (failure["video_id"], failure["stage"]) == ("Run/bad.avi", "open")
    assert os.path.getsize(out / "train-00000-of-00002.tfrecord.gz") > 0


@pytest.mark.slow
def test_given_cluster_writes_what_the_default_runner_writes(dataset, cluster, tmp_path):
    """``--dask_address``: the job on a running cluster (started here), in this process."""
    flags, reference = dataset
    out = tmp_path / "out"
    manifest = extract.run(
        [*flags, f"--output_dir={out}", "--runner=DaskRunner", f"--dask_address={cluster}"]
    )
    assert manifest["status"] == "ok"
    check_same_output(out, reference)
    assert staging(out) == []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_command_line_local_cluster_of_two_workers(dataset, tmp_path):
    """``python -m beam_jobs.extract --runner DaskRunner --dask_workers 2``: the same output,
    one line for the bad video, and neither worker process nor staging folder left."""
    flags, reference = dataset
    out = tmp_path / "out"
    process = subprocess.Popen(
        extract_command(
            *flags, f"--output_dir={out}", "--runner", "DaskRunner", "--dask_workers", "2"
        ),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = set()
    while process.poll() is None:  # the workers, while they run
        seen.update(workers_of(process.pid))
        time.sleep(0.2)
    err = process.stderr.read()
    assert process.returncode == 0, err[-3000:]
    assert len(seen) == 2, err[-3000:]
    assert "local Dask cluster: scheduler tcp://127.0.0.1:" in err
    assert "Run/bad.avi failed at open" in err
    assert "Traceback" not in err
    assert workers_of(process.pid) == []
    check_same_output(out, reference)
    assert staging(out) == []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_the_local_cluster_and_cleans_up(dataset, tmp_path):
    flags, _ = dataset
    videos = flags[0].split("=", 1)[1]
    listing = tmp_path / "many.csv"  # links to one clip: far more work than the test waits for
    for i in range(200):
        os.symlink(os.path.join(videos, "Walk", "w0.avi"), tmp_path / f"v{i:03d}.avi")
    write_listing(listing, [f"v{i:03d}.avi" for i in range(200)])
    out = tmp_path / "out"
    command = extract_command(
        f"--videos_dir={tmp_path}",
        f"--manifest={listing}",
        f"--output_dir={out}",
        "--reencode=mpeg4",
        "--runner=DaskRunner",
        "--dask_workers=2",
    )
    process = start_busy(
        command, tmp_path / "stderr.txt", 2, lambda: list(tmp_path.glob("out._incomplete-*/parts"))
    )
    workers = workers_of(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    assert process.wait(timeout=60) == 130
    assert workers_of(process.pid) == []  # stopped before the launcher exited
    err = (tmp_path / "stderr.txt").read_text()
    lines = [line for line in err.splitlines() if " INFO " not in line]
    assert len(lines) == 1 and lines[0].startswith(
        "beam_jobs.extract: interrupted by SIGINT: stopped 2 worker processes; removed the "
        f"unfinished output {out}.{output_folder.STAGING_PREFIX}"
    ), err[-3000:]
    assert "Traceback" not in err
    assert staging(out) == [] and not out.exists()
    # The workers' scratch folders went with them.
    assert not [
        name
        for name in os.listdir(tempfile.gettempdir())
        if any(name.startswith(f"{worker_process.SCRATCH_PREFIX}{p}@") for p in workers)
    ]


def run_on_dask(cluster, build):
    """Runs the pipeline that ``build(pipeline)`` applies on the cluster."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions([f"--dask_client_address={cluster}"])
    pipeline = beam.Pipeline(runner=dask_cluster.make_runner(), options=options)
    build(pipeline)
    pipeline.run().wait_until_finish()


def test_dask_runner_keeps_tagged_outputs_apart_only_with_pardo_with_outputs(cluster, tmp_path):
    """Beam's ``with_outputs`` on the Dask runner hands both outputs to each consumer (if this
    starts failing, Beam fixed it); :class:`ParDoWithOutputs` keeps them apart."""
    import apache_beam as beam

    from beam_jobs.tagged_outputs import ParDoWithOutputs

    class EvenOrOdd(beam.DoFn):  # defined here: workers cannot import this test module
        def process(self, x):
            yield x if x % 2 == 0 else beam.pvalue.TaggedOutput("odd", x)

    def mark(folder):
        def write(element):
            (folder / f"{element[0]}-{element[1]}").touch()

        return write

    def build(split):
        def apply(pipeline):
            outputs = pipeline | beam.Create(range(6)) | split
            (
                (
                    outputs.even | "Even" >> beam.Map(lambda x: ("even", x)),
                    outputs.odd | "Odd" >> beam.Map(lambda x: ("odd", x)),
                )
                | beam.Flatten()
                | beam.Map(mark(tmp_path / label))
            )

        return apply

    for label, split in (
        ("beam", beam.ParDo(EvenOrOdd()).with_outputs("odd", main="even")),
        ("ours", ParDoWithOutputs(EvenOrOdd(), "odd", main="even")),
    ):
        (tmp_path / label).mkdir()
        run_on_dask(cluster, build(split))
    every = {f"{tag}-{x}" for tag in ("even", "odd") for x in range(6)}
    assert set(os.listdir(tmp_path / "beam")) == every
    assert sorted(os.listdir(tmp_path / "ours")) == [
        "even-0",
        "even-2",
        "even-4",
        "odd-1",
        "odd-3",
        "odd-5",
    ]


def test_chained_dofns_run_as_one_step_with_every_stage_tagged_output(cluster, tmp_path):
    """ParDoWithOutputs([first, second]): first's main outputs feed second; tagged outputs of
    both reach their tag; an undeclared tag is an error naming the DoFn."""
    import apache_beam as beam

    from beam_jobs.tagged_outputs import ParDoWithOutputs, _ChainAsElements

    class Decode(beam.DoFn):
        def process(self, x):
            yield beam.pvalue.TaggedOutput("failed", x) if x % 3 == 0 else x * 10

    class Stage(beam.DoFn):
        def process(self, y):
            yield beam.pvalue.TaggedOutput("tally", y // 10)
            yield y + 1

    def build(pipeline):
        out = (
            pipeline
            | beam.Create(range(1, 7))
            | ParDoWithOutputs([Decode(), Stage()], "failed", "tally", main="parts")
        )
        (
            (
                out.parts | "P" >> beam.Map(lambda v: ("parts", v)),
                out.failed | "F" >> beam.Map(lambda v: ("failed", v)),
                out.tally | "T" >> beam.Map(lambda v: ("tally", v)),
            )
            | beam.Flatten()
            | beam.Map(lambda kv: (tmp_path / f"{kv[0]}-{kv[1]}").touch())
        )

    run_on_dask(cluster, build)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"parts-{x * 10 + 1}" for x in (1, 2, 4, 5)]
        + ["failed-3", "failed-6"]
        + [f"tally-{x}" for x in (1, 2, 4, 5)]
    )
    with pytest.raises(ValueError, match="Decode emitted the undeclared tag 'failed'"):
        list(_ChainAsElements([Decode(), Stage()], ("tally",)).process(3))


def test_dask_runner_runs_only_the_last_step_and_what_it_needs(cluster, tmp_path):
    """Why the job ends in one sink (if this starts failing, Beam fixed it)."""
    import apache_beam as beam

    def touch(name):
        return lambda _: (tmp_path / name).touch()

    def build(pipeline):
        pipeline | "First" >> beam.Create([1]) | "WriteFirst" >> beam.Map(touch("first"))
        pipeline | "Last" >> beam.Create([2]) | "WriteLast" >> beam.Map(touch("last"))

    run_on_dask(cluster, build)
    assert os.listdir(tmp_path) == ["last"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dask_workers=2"], "--dask_workers needs --runner DaskRunner"),
        (["--dask_address=tcp://h:8786"], "--dask_address needs --runner DaskRunner"),
        (["--runner=DaskRunner", "--dask_workers=0"], "--dask_workers must be >= 1, got 0"),
        (
            ["--runner=DaskRunner", "--dask_workers=2", "--dask_address=tcp://h:8786"],
            "--dask_workers sizes the local cluster, which is not started",
        ),
        (
            ["--runner=DaskRunner", "--dask_address=tcp://a:1", "--dask_client_address=tcp://b:1"],
            "--dask_address tcp://a:1 and --dask_client_address tcp://b:1 disagree",
        ),
        (
            ["--runner=DaskRunner", "--dask_npartition=4"],
            "unknown flag --dask_npartition (did you mean --dask_npartitions?)",
        ),
    ],
)
def test_bad_dask_flags_exit_2_before_any_work(dataset, tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    assert extract.main([*dataset[0], f"--output_dir={out}", *flags]) == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_runner_names_and_partitions():
    from apache_beam.options.pipeline_options import StandardOptions

    from beam_jobs import extract_options

    for name in ("DaskRunner", dask_cluster.DASK_RUNNER):
        options = extract_options.make_pipeline_options(["--runner", name, "--videos_dir=v"])
        assert options.view_as(StandardOptions).runner == dask_cluster.DASK_RUNNER
        assert type(extract_options.make_runner(options)).__name__ == "ClosingDaskRunner"
    # 2 per worker thread, at most one per video.
    assert [dask_cluster.default_partitions(n, 2) for n in (1, 3, 4, 13320)] == [1, 3, 4, 4]
    assert dask_cluster.default_partitions(13320, 0) == 2  # no worker yet: as for one


def test_every_step_leads_to_the_last_one(dataset, tmp_path):
    """The graph the Dask runner can run whole: WriteFiles is the last step applied, every
    other step feeds it, no step reads a side input, and no ParDo has a second output."""
    import apache_beam as beam
    from apache_beam.pipeline import PipelineVisitor

    from beam_jobs import extract_options

    options = extract_options.make_pipeline_options(
        [*dataset[0], f"--output_dir={tmp_path / 'out'}", "--runner=DaskRunner"]
    )
    config = extract_options.ExtractConfig.from_options(options)
    pipeline = beam.Pipeline(runner=extract_options.make_runner(options), options=options)
    extract.build_pipeline(pipeline, config, extract.load_split_set(config), str(tmp_path))

    class Leaves(PipelineVisitor):
        def __init__(self):
            self.leaves = []

        def visit_transform(self, node):
            self.leaves.append(node)

    visitor = Leaves()
    pipeline.visit(visitor)
    last = visitor.leaves[-1]
    assert last.full_label == "WriteFiles"
    needed, todo = set(), [last]
    while todo:
        node = todo.pop()
        if node not in needed:
            needed.add(node)
            todo.extend(
                value.producer
                for value in node.inputs
                if getattr(value, "producer", None) is not None
            )
    assert [n.full_label for n in visitor.leaves if n not in needed] == []
    assert [n.full_label for n in visitor.leaves if n.side_inputs] == []
    assert [n.full_label for n in visitor.leaves if len(n.outputs) > 1] == []


def test_runner_without_dask_installed_says_how_to_install(dataset, tmp_path, capsys, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_dask(name, *args):
        if name.startswith("apache_beam.runners.dask"):
            raise ImportError("No module named 'dask'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_dask)
    assert (
        extract.main([*dataset[0], f"--output_dir={tmp_path / 'out'}", "--runner", "DaskRunner"])
        == 2
    )
    assert (
        "--runner DaskRunner needs dask and distributed (No module named 'dask'); install "
        "them with pip install -e '.[dask]'"
    ) in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
