"""The decoupled-search benchmark's per-network source options (no TensorFlow needed)."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_decoupled_search.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_decoupled_search", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workdir_alone_exports_all_three_from_it(bench):
    args = bench.parse_args(["--workdir", "J", "--data", "D"])
    assert args.sources == {n: ("workdir", "J") for n in ("video", "iframe", "motion")}


def test_override_replaces_one_network_only(bench):
    args = bench.parse_args(["--workdir", "J", "--iframe_workdir", "C", "--data", "D"])
    assert args.sources == {
        "video": ("workdir", "J"),
        "iframe": ("workdir", "C"),
        "motion": ("workdir", "J"),
    }
    assert bench.describe_sources(args.sources, 0) == "video=J; iframe=C; motion=J"


def test_random_init_fills_networks_without_a_workdir(bench):
    argv = ["--random_init", "cfg.yaml", "--motion_workdir", "M", "--seed", "3", "--data", "D"]
    args = bench.parse_args(argv)
    assert args.sources["motion"] == ("workdir", "M")
    assert args.sources["video"] == args.sources["iframe"] == ("random_init", "cfg.yaml")
    assert "video=random init of cfg.yaml (seed 3)" in bench.describe_sources(args.sources, 3)


def test_three_overrides_need_no_workdir(bench):
    argv = ["--video_workdir", "V", "--iframe_workdir", "I", "--motion_workdir", "M"]
    args = bench.parse_args([*argv, "--data", "D"])
    assert [where for _, where in args.sources.values()] == ["V", "I", "M"]


def test_a_network_without_source_is_a_usage_error_naming_it(bench, capsys):
    with pytest.raises(SystemExit) as raised:
        bench.parse_args(["--video_workdir", "V", "--motion_workdir", "M", "--data", "D"])
    assert raised.value.code == 2
    assert "no source for the iframe network" in capsys.readouterr().err


def test_workdir_and_random_init_stay_exclusive(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--workdir", "J", "--random_init", "cfg.yaml", "--data", "D"])
