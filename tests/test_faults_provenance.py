"""Stages know what made them (issue #9, item 1): a resumed pretraining or
finetuning WORKDIR names the data, the start and the config keys that differ
from what made it; an export names the weights it was made from, and a
printed retrieval or evaluation result names the export's run and epoch.

Known answers: the exit code, the one error line naming the difference, and
the files of the WORKDIR before and after a refusal (names, sizes, mtimes and
SHA-256).
"""

import json
import logging
import shutil

import pytest
import tensorflow as tf

from tfcmvp import config as cfg
from tfcmvp.cli.main import main
from tfcmvp.export import read_export_info
from tfcmvp.training import provenance
from tfcmvp.training.pretrain import CHECKPOINT_DIR, CONFIG_NAME
from tfcmvp.training.provenance import PROVENANCE_NAME

from faults_support import refused_run
from finetune_support import FINETUNE_TINY, tiny_finetune_config, write_labelled_shards
from harness import set_flags
from training_support import TINY_OVERRIDES, tiny_config, without_grappler, write_painted_shards

RUN = ("train.epochs=1", "train.steps_per_epoch=1", "optimizer.warmup_epochs=0")


def cli_sets(*overrides) -> list:
    """``--set`` flags of the tiny config with `overrides` (later ones win)."""
    return set_flags((*TINY_OVERRIDES, *RUN, *overrides))


def sha(path) -> str:
    return provenance.manifest_sha256(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two data folders: "a" (8 videos) and "b" (6 videos, another manifest)."""
    root = tmp_path_factory.mktemp("data")
    write_painted_shards(root / "a")
    write_painted_shards(root / "b", num_videos=6)
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A finished 1-epoch, 1-step pretraining WORKDIR on data "a"."""
    from tfcmvp.training.pretrain import pretrain

    workdir = tmp_path_factory.mktemp("trained") / "run"
    with without_grappler():
        pretrain(tiny_config(*RUN), data / "a", workdir, verbose=0)
    return workdir


@pytest.fixture
def run_copy(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)  # copy2: contents and mtimes kept
    return workdir


# --------------------------------------------------------------------------- pretraining


def test_the_first_run_records_its_data(trained, data):
    assert json.loads((trained / PROVENANCE_NAME).read_text()) == {
        "data": {"path": str((data / "a").resolve()), "manifest_sha256": sha(data / "a")}
    }


def test_resuming_on_other_data_is_refused_naming_both(run_copy, data, caplog):
    argv = ["pretrain", "--data", data / "b", "--workdir", run_copy, *cli_sets("train.epochs=2")]
    assert refused_run(argv, run_copy, caplog) == (
        f"{run_copy} was trained on {(data / 'a').resolve()} (manifest.json sha256 "
        f"{sha(data / 'a')[:12]}), not {(data / 'b').resolve()} (sha256 {sha(data / 'b')[:12]}): "
        f"resuming would continue the run on other data; use a new --workdir, or "
        f"--allow_data_change to continue it on this data on purpose"
    )


def test_a_data_folder_changed_in_place_is_refused(run_copy, data, tmp_path, caplog):
    moved = tmp_path / "a"
    shutil.copytree(data / "b", moved)  # the same path as recorded, other contents
    record = json.loads((run_copy / PROVENANCE_NAME).read_text())
    record["data"]["path"] = str(moved.resolve())
    (run_copy / PROVENANCE_NAME).write_text(json.dumps(record))
    argv = ["pretrain", "--data", moved, "--workdir", run_copy, *cli_sets("train.epochs=2")]
    assert refused_run(argv, run_copy, caplog).startswith(
        f"{run_copy} was trained on {moved.resolve()}, which changed since (its manifest.json "
        f"sha256 {sha(data / 'a')[:12]} -> {sha(data / 'b')[:12]}: re-extracted?)"
    )


def test_a_moved_data_folder_resumes_and_the_new_path_is_recorded(run_copy, data, tmp_path):
    from tfcmvp.training.pretrain import pretrain

    moved = tmp_path / "moved"
    shutil.copytree(data / "a", moved)  # same manifest.json, other folder
    with without_grappler():
        result = pretrain(tiny_config(*RUN, "train.epochs=2"), moved, run_copy, verbose=0)
    assert (result.initial_epoch, len(result.history)) == (1, 2)
    assert json.loads((run_copy / PROVENANCE_NAME).read_text()) == {
        "data": {"path": str(moved.resolve()), "manifest_sha256": sha(data / "a")}
    }


def test_allow_data_change_continues_and_keeps_the_earlier_data(run_copy, data, caplog):
    argv = ["pretrain", "--data", str(data / "b"), "--workdir", str(run_copy)]
    with without_grappler(), caplog.at_level(logging.INFO):
        assert (
            main(argv + cli_sets("train.epochs=2") + ["--allow_data_change", "--verbose", "0"]) == 0
        )
    assert json.loads((run_copy / PROVENANCE_NAME).read_text()) == {
        "data": {"path": str((data / "b").resolve()), "manifest_sha256": sha(data / "b")},
        "earlier_data": [{"path": str((data / "a").resolve()), "manifest_sha256": sha(data / "a")}],
    }
    assert any("as --allow_data_change asks" in r.getMessage() for r in caplog.records)


def test_a_changed_config_key_is_refused_naming_each(run_copy, data, caplog):
    argv = ["pretrain", "--data", data / "a", "--workdir", run_copy]
    changes = cli_sets("train.epochs=2", "loss.alpha=0.7", "data.flip_prob=0.0", "train.seed=3")
    assert refused_run(argv + changes, run_copy, caplog) == (
        f"{run_copy / CONFIG_NAME} differs in 3 key(s) that a resumed run may not change: "
        f"data.flip_prob: 0.5 -> 0.0; loss.alpha: 0.5 -> 0.7; train.seed: 0 -> 3; resume with "
        f"the old values, or use a new --workdir (only train.epochs, checkpointing, runtime.* "
        f"and input-pipeline keys may change, see tfcmvp.training.provenance)"
    )


def test_keys_that_may_change_on_resume_pass(run_copy, data):
    allowed = tiny_config(
        *RUN,
        "train.epochs=5",
        "train.keep_checkpoints=1",
        "train.checkpoint_every_steps=1",
        "train.deterministic=false",
        "runtime.virtual_cpus=2",
        "data.cycle_length=1",
        "data.shuffle_buffer=1",
        "data.on_corrupt=skip",
        "model.init=keras",
    )
    record = provenance.check_resume(run_copy, allowed, data / "a")
    assert record == json.loads((run_copy / PROVENANCE_NAME).read_text())
    for key in ("train.global_batch_size=8", "train.steps_per_epoch=2", "model.dropout=0.5"):
        with pytest.raises(ValueError, match=key.split("=")[0] + ": "):
            provenance.check_resume(run_copy, tiny_config(*RUN, key), data / "a")


def test_the_rule_and_the_differ():
    assert provenance.may_change_on_resume("train.epochs")
    assert provenance.may_change_on_resume("runtime.strategy")
    assert not provenance.may_change_on_resume("train.epochs_x")
    assert not provenance.may_change_on_resume("optimizer.momentum")
    old = {"data": {"blur": None, "crop": 32}, "loss": {"alpha": 0.5}}
    new = {"data": {"blur": {"prob": 0.5}, "crop": 32}, "loss": {"alpha": 0.7}}
    assert cfg.config_changes(old, new) == [
        ("data.blur", None, {"prob": 0.5}),  # a section switched on: one key
        ("loss.alpha", 0.5, 0.7),
    ]


def test_an_older_workdir_without_a_record_resumes_and_gets_one(run_copy, data, caplog):
    (run_copy / PROVENANCE_NAME).unlink()
    with caplog.at_level(logging.INFO):
        record = provenance.check_resume(run_copy, tiny_config(*RUN), data / "b")
    assert record == {
        "data": {"path": str((data / "b").resolve()), "manifest_sha256": sha(data / "b")}
    }
    assert f"{run_copy} has no provenance.json (an older tfcmvp's run): recording it" in [
        r.getMessage() for r in caplog.records
    ]


def test_a_damaged_record_is_refused_naming_it(run_copy, data):
    (run_copy / PROVENANCE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=f"{run_copy / PROVENANCE_NAME}: not valid JSON"):
        provenance.check_resume(run_copy, tiny_config(*RUN), data / "a")


# --------------------------------------------------------------------------- finetuning


FT_RUN = ("train.epochs=1", "train.steps_per_epoch=1", "optimizer.warmup_epochs=0")


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """(data "a", data "b", a finished random-init finetuning WORKDIR on "a")."""
    from tfcmvp.finetuning.finetune import finetune

    root = tmp_path_factory.mktemp("ft")
    a = write_labelled_shards(root / "a")
    b = write_labelled_shards(root / "b", num_train=6)
    with without_grappler():
        finetune(tiny_finetune_config(*FT_RUN), a, root / "run", random_init=True, verbose=0)
    return a, b, root / "run"


def test_finetuning_resume_on_other_data_is_refused(finetuned, tmp_path, caplog):
    a, b, trained_run = finetuned
    workdir = tmp_path / "run"
    shutil.copytree(trained_run, workdir)
    assert json.loads((workdir / PROVENANCE_NAME).read_text()) == {
        "data": {"path": str(a.resolve()), "manifest_sha256": sha(a)},
        "start": {"random_init": True, "model": None},
    }
    sets = set_flags((*FINETUNE_TINY, *FT_RUN, "train.epochs=2"))
    argv = ["finetune", "--random_init", "--data", b, "--workdir", workdir, *sets]
    assert refused_run(argv, workdir, caplog).startswith(
        f"{workdir} was trained on {a.resolve()} (manifest.json sha256 {sha(a)[:12]}), "
        f"not {b.resolve()} (sha256 {sha(b)[:12]}): resuming would continue the run on other data"
    )


def fake_export(folder, graph: bytes):
    """A folder with what model_fingerprint hashes (its graph bytes decide the fingerprint)."""
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(graph)
    return folder


def test_finetuning_start_other_export_refused_moved_export_resumes(tmp_path, data):
    workdir = tmp_path / "run"
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(workdir / CHECKPOINT_DIR / "ckpt"))
    first = fake_export(tmp_path / "first", b"graph one")
    other = fake_export(tmp_path / "other", b"graph two")
    config = tiny_finetune_config()
    provenance.write_provenance(
        workdir,
        provenance.check_resume(
            workdir, config, data / "a", start=provenance.start_record(first, False)
        ),
    )
    start = provenance.start_record(other, False)
    with pytest.raises(ValueError) as error:
        provenance.check_resume(workdir, config, data / "a", start=start)
    old_fp = provenance.start_record(first, False)["model"]["fingerprint"][:12]
    assert str(error.value) == (
        f"{workdir} holds a run started from the export {first.resolve()} (fingerprint "
        f"{old_fp}), not the export {other.resolve()} (fingerprint "
        f"{start['model']['fingerprint'][:12]}): resuming would mix two initialisations; "
        f"use a new --workdir"
    )
    with pytest.raises(ValueError, match="started from the export .*, not random init"):
        provenance.check_resume(
            workdir, config, data / "a", start=provenance.start_record(None, True)
        )
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    record = provenance.check_resume(
        workdir, config, data / "a", start=provenance.start_record(moved, False)
    )
    assert record["start"]["model"]["path"] == str(moved.resolve())


# --------------------------------------------------------------------------- exports


def test_an_export_names_its_weights_and_retrieval_prints_the_epoch(
    workdir, exports, tmp_path, capsys
):
    import hashlib

    from tfcmvp.export import networks

    from export_support import EPOCHS

    run = workdir[0]
    source = read_export_info(exports["video"])["source"]
    weights = networks.workdir_paths(run, "video")[1]
    assert source["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (source["workdir"], source["epoch"]) == (str(run.resolve()), EPOCHS)
    data = write_labelled_shards(tmp_path / "data")
    argv = ["--model", str(exports["video"]), "--data", str(data), "--clips", "1"]
    argv += ["--cache_dir", str(tmp_path / "cache"), "--output", str(tmp_path / "r.json")]
    assert main(["retrieval", *argv]) == 0
    assert f"model video: pretrained in {run.resolve()} (epoch {EPOCHS})\n" in (
        capsys.readouterr().out
    )
