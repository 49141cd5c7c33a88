"""Shared pieces of tests/test_faults_data_*.py: extraction-like folders and damage.

``write_folder`` writes shards the way ``beam_jobs.extract`` does (every
record framed and gzip-compressed as its own member, members concatenated;
or plain framed records with ``compression="none"``) plus the manifest that
lists them, and returns where each record starts in its shard, so that a test
knows the offset ``tfcmvp verify`` must name.

``refused_run`` runs a command that must stop with one error line and
change no file of a workdir (checked with ``files_on_disk``: names, sizes,
mtimes and SHA-256).
"""

import hashlib
import logging
import pathlib

from beam_jobs.tfrecord_files import frame_record, gzip_member
from tfcmvp import manifest as manifest_lib
from tfcmvp import schema, verify
from tfcmvp.cli.main import main


def write_shard(path, records, compression: str = "gzip") -> list:
    """Writes `records` (schema.VideoRecord) to one shard; returns each record's file offset."""
    pieces = [frame_record(schema.encode_example(record)) for record in records]
    if compression == "gzip":
        pieces = [gzip_member(piece) for piece in pieces]
    offsets, position = [], 0
    for piece in pieces:
        offsets.append(position)
        position += len(piece)
    pathlib.Path(path).write_bytes(b"".join(pieces))
    return offsets


def write_folder(
    folder,
    splits: dict,
    num_shards: int = 2,
    compression: str = "gzip",
    labels=("left", "right", "still"),
) -> dict:
    """``folder/{split}-0000i-of-0000n.tfrecord[.gz]`` of ``splits[split]`` (records dealt
    round-robin, as the job does), labels.txt and manifest.json.

    Returns ``{shard name: [file offset of each of its records]}``.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = manifest_lib.SHARD_SUFFIXES[compression]
    offsets = {}
    for split, records in splits.items():
        for shard in range(num_shards):
            name = f"{split}-{shard:05d}-of-{num_shards:05d}{suffix}"
            offsets[name] = write_shard(folder / name, records[shard::num_shards], compression)
    (folder / manifest_lib.LABELS_NAME).write_text("".join(f"{name}\n" for name in labels))
    verify.write_manifest(folder)
    return offsets


def flip_bytes(path, offset: int, count: int = 64) -> None:
    """Inverts `count` bytes of `path` from `offset` on (same size, other content)."""
    data = bytearray(pathlib.Path(path).read_bytes())
    data[offset : offset + count] = bytes(b ^ 0xFF for b in data[offset : offset + count])
    pathlib.Path(path).write_bytes(bytes(data))


def snapshot(folder) -> dict:
    """{relative path: sha256} of every file under `folder` (to show nothing changed)."""
    folder = pathlib.Path(folder)
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def files_on_disk(folder) -> dict:
    """{relative path: (size, mtime_ns, sha256)} of every file under `folder`."""
    folder = pathlib.Path(folder)
    return {
        p.relative_to(folder).as_posix(): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refusal_line(caplog) -> str:
    """The one error line logged (the test fails if there are none or several)."""
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    return errors[0]


def refused_run(argv, workdir, caplog) -> str:
    """``tfcmvp argv`` (run in this process) exits 2 with one error line and leaves every
    file under `workdir` as it was. Returns that line."""
    before = files_on_disk(workdir)
    with caplog.at_level(logging.INFO):
        assert main([str(a) for a in argv]) == 2
    line = refusal_line(caplog)
    assert files_on_disk(workdir) == before
    return line
