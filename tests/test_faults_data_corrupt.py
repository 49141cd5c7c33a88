"""Fault injection: a shard with 64 bytes flipped.

Known answers: ``tfcmvp verify`` exits 1 and names the shard with the byte
offset where the damaged record's gzip member (or plain record) starts;
pretraining, finetuning and retrieval stop with exit status 2 and an error
naming the shard instead of TensorFlow's ``DataLossError`` (which names no
file); ``data.on_corrupt=skip`` reads the shard up to the damage and reports
what it skipped. No command changes a byte of the data folder.
"""

import dataclasses
import logging

import pytest

from tfcmvp import manifest, verify
from tfcmvp.cli import main as cli_main
from tfcmvp.data import synthetic

from faults_support import flip_bytes, snapshot, write_folder
from finetune_support import FINETUNE_TINY
from harness import set_flags
from retrieval_support import CROP, FRAMES, run_retrieval, save_tiny_export, solid_record
from training_support import NUM_FRAMES, TINY_OVERRIDES, run_pretrain

BAD = "train-00001-of-00002.tfrecord.gz"  # holds videos 1, 3, 5, 7 (dealt round-robin)
DAMAGED_RECORD = 2  # its third record, video 5: records 0 and 1 are read before it


def _painted(split, count):
    return [
        synthetic.painted_record(
            f"{split}{i:02d}",
            NUM_FRAMES + i,
            label=i % 3,
            label_name=("left", "right", "still")[i % 3],
            split=split,
        )
        for i in range(count)
    ]


@pytest.fixture
def damaged(tmp_path):
    """A data folder whose train shard BAD has 64 bytes flipped inside its third record."""
    data = tmp_path / "data"
    offsets = write_folder(data, {"train": _painted("train", 8), "test": _painted("test", 6)})
    start = offsets[BAD][DAMAGED_RECORD]
    flip_bytes(data / BAD, start + 100)
    return data, start


def test_verify_names_the_damaged_shard_with_its_offset(tmp_path, damaged, capsys, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # main() sets it when unset
    data, start = damaged
    before = snapshot(data)
    assert cli_main.main(["verify", str(data), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert (
        f"BAD  {BAD}: record {DAMAGED_RECORD}: the gzip member starting here does not inflate"
    ) in out
    assert f"at byte {start} ({DAMAGED_RECORD} intact record(s) before it)" in out
    assert "ok   train-00000-of-00002.tfrecord.gz: 4 records" in out
    assert "ok   test-00001-of-00002.tfrecord.gz: 3 records" in out
    assert "NOT OK: 1 of 4 shard(s) damaged" in out
    assert snapshot(data) == before

    # The same folder intact: exit 0, every count as the manifest says.
    clean = tmp_path / "clean"
    write_folder(clean, {"train": _painted("train", 8), "test": _painted("test", 6)})
    assert cli_main.main(["verify", str(clean)]) == 0
    out = capsys.readouterr().out
    assert "train: 8 records of 8 written in 2 shard(s)" in out
    assert "verified: 4 shard(s) intact, every count as in manifest.json" in out


def test_verify_names_plain_records_and_truncation(tmp_path):
    data = tmp_path / "plain"
    offsets = write_folder(data, {"train": _painted("train", 4)}, compression="none")
    name = "train-00000-of-00002.tfrecord"  # videos 0 and 2
    flip_bytes(data / name, offsets[name][1] + 200)  # inside record 1's data
    check = verify.check_shard(data / name)
    assert (check.records, check.offset, check.error) == (
        1,
        offsets[name][1],
        "record 1: data CRC mismatch",
    )
    truncated = data / "train-00001-of-00002.tfrecord"
    truncated.write_bytes(truncated.read_bytes()[:-10])
    check = verify.check_shard(truncated)
    assert (check.records, check.offset) == (1, offsets[truncated.name][1])
    assert "the stream ends inside it" in check.error and "truncated" in check.error
    report = verify.verify_data(data, workers=1)
    assert [c.path.rsplit("/", 1)[-1] for c in report.bad_shards] == [name, truncated.name]
    # The truncation also shows in the bytes the manifest counted.
    assert "hold" in report.splits[0].problem and "bytes" in report.splits[0].problem


def test_pretraining_stops_with_an_error_naming_the_shard(damaged, tmp_path, caplog):
    data, start = damaged
    before = snapshot(data)
    caplog.set_level(logging.ERROR)
    assert run_pretrain(data, tmp_path / "run") == 2
    assert f"{data / BAD}: record {DAMAGED_RECORD}:" in caplog.text
    assert f"at byte {start}" in caplog.text
    assert "data.on_corrupt=skip" in caplog.text and "DataLossError" not in caplog.text
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert snapshot(data) == before


def test_on_corrupt_skip_reads_up_to_the_damage_and_counts_what_it_skipped(damaged, caplog):
    from tfcmvp.config import DataConfig
    from tfcmvp.data import pretrain_dataset, reader

    data, start = damaged
    files = manifest.find_shards(data, "train")
    with pytest.raises(verify.CorruptShardError, match=f"{BAD}: record {DAMAGED_RECORD}"):
        reader.scan_records(files)
    caplog.set_level(logging.WARNING)
    scan = reader.scan_records(files, on_corrupt="skip")
    # BAD holds train01, 03, 05, 07: 01 and 03 come before the damage.
    assert sorted(scan.video_ids) == [
        "train00",
        "train01",
        "train02",
        "train03",
        "train04",
        "train06",
    ]
    assert scan.skipped_records == 2 and [c.offset for c in scan.damaged] == [start]
    assert f"{data / BAD} is damaged" in caplog.text
    assert "on_corrupt=skip: 2 records skipped in 1 damaged shard(s); 6 read" in caplog.text

    # The training pipeline reads the same six videos, and does not stop.
    small = DataConfig(clip_len=8, clip_stride=2, num_negatives=1, crop_size=32)
    skipping = dataclasses.replace(small, blur=None, shuffle_buffer=1, on_corrupt="skip")
    dataset = pretrain_dataset(files, 1, skipping, repeat=False, seed=0, deterministic=True)
    seen = sorted(v.decode() for batch in dataset.as_numpy_iterator() for v in batch["video_id"])
    assert seen == sorted(scan.video_ids)
    with pytest.raises(verify.CorruptShardError, match=BAD):
        pretrain_dataset(files, 1, small)


@pytest.mark.slow  # one tiny training step: about 20 s
def test_pretraining_with_on_corrupt_skip_trains_and_reports(damaged, tmp_path, caplog):
    data, start = damaged
    caplog.set_level(logging.WARNING)
    overrides = [
        *TINY_OVERRIDES,
        "train.epochs=1",
        "train.steps_per_epoch=1",
        "optimizer.warmup_epochs=0",
        "data.on_corrupt=skip",
    ]
    assert run_pretrain(data, tmp_path / "run", "--verbose", 0, overrides=overrides) == 0
    assert f"{data / BAD} is damaged (record {DAMAGED_RECORD}:" in caplog.text
    assert f"at byte {start})" in caplog.text
    assert "2 records skipped in 1 damaged shard(s); 6 read" in caplog.text
    assert (tmp_path / "run" / "checkpoints").is_dir()


def test_retrieval_stops_with_an_error_naming_the_shard(tmp_path, caplog):
    data = tmp_path / "data"
    test = [solid_record(f"q{i}", i % 2, "test", rgb=(40 * i, 90, 200)) for i in range(4)]
    train = [solid_record(f"g{i}", i % 2, "train", rgb=(30 * i, 60, 120)) for i in range(6)]
    offsets = write_folder(data, {"test": test, "train": train})
    bad = "test-00000-of-00002.tfrecord.gz"
    flip_bytes(data / bad, offsets[bad][1] + 100)
    before = snapshot(data)
    model = save_tiny_export(
        tmp_path / "saved_models" / "tiny" / "1", "video", [FRAMES, CROP, CROP, 3]
    )
    caplog.set_level(logging.ERROR)
    assert run_retrieval(model, data, tmp_path / "r.json", "--no_cache", "--clips", 2) == 2
    assert f"{data / bad}: record 1:" in caplog.text and f"at byte {offsets[bad][1]}" in caplog.text
    assert "on_corrupt" not in caplog.text  # evaluation never skips
    assert not (tmp_path / "r.json").exists()
    assert snapshot(data) == before


@pytest.mark.slow  # builds the tiny classifier and runs into the damage in fit: about 20 s
def test_a_data_loss_inside_training_is_named_by_the_cli(damaged, tmp_path, caplog, monkeypatch):
    """Finetuning with train.steps_per_epoch set never scans its shards: the damage
    surfaces inside Keras' fit as a DataLossError, which the CLI turns into the shard."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    data, start = damaged
    caplog.set_level(logging.ERROR)
    status = cli_main.main(
        [
            "finetune",
            "--random_init",
            "--data",
            str(data),
            "--workdir",
            str(tmp_path / "ft"),
            "--verbose",
            "0",
            *set_flags(
                [
                    *FINETUNE_TINY,
                    "train.epochs=1",
                    "train.steps_per_epoch=2",
                    "optimizer.warmup_epochs=0",
                    "data.shuffle_buffer=1",
                    "data.cycle_length=1",
                ]
            ),
        ]
    )
    assert status == 2
    assert f"{data / BAD}: record {DAMAGED_RECORD}:" in caplog.text
    assert f"at byte {start}" in caplog.text
