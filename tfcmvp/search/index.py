"""``tfcmvp index``: build or update a search index of video files (format: :mod:`.table`).

:func:`build_index` lists the INPUT videos (:func:`tfcmvp.embedding.inputs.gather_inputs`)
and compares each with the index already in OUTPUT, by absolute path and
content fingerprint (:func:`tfcmvp.search.table.content_fingerprint`):

* **added**: a path the index does not hold: embedded by every network;
* **changed**: a held path whose fingerprint differs: embedded again;
* **unchanged**: its rows are copied, no network sees it again (its size
  and mtime are refreshed);
* **removed**: a held path the INPUTs no longer list: dropped.

A network whose export changed (another fingerprint), or that the index did
not hold, embeds every video. ``--models`` may be left out on an update: the
index's recorded exports are used (given ones replace them). Embedding is
``tfcmvp embed``'s (:func:`tfcmvp.embedding.embed_videos`, 10 clips at
retrieval's positions per video), run once per network on the videos that
need it; a video's row is the mean of its clip embeddings. A video that a
network cannot embed is left out of the index (a line per network in
``failed.jsonl``; counted once) and tried again on the next run.

The new index is assembled in a hidden folder beside OUTPUT and swapped in
with one rename; an OUTPUT that is neither missing, empty nor an index is
refused (:class:`tfcmvp.outputs.OverwriteRefused`), as is one that holds
an input.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import time
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from tfcmvp import outputs
from tfcmvp.embedding import EmbeddingFailedError, StorageSettings, embed_videos
from tfcmvp.embedding import inputs as inputs_lib
from tfcmvp.embedding import writer as embed_writer
from tfcmvp.embedding.run import failure_record
from tfcmvp.errors import ConfigError
from tfcmvp.export import contract
from tfcmvp.retrieval import features
from tfcmvp.search import table as table_lib
from tfcmvp.search import thumbnails as thumbs_lib

logger = logging.getLogger(__name__)

FINGERPRINT_COLUMN_DIGITS = 16  # export fingerprint digits kept per row of videos.csv
_WORK_DIR = "_work"  # inside the staging folder: the per-network embed outputs


@dataclasses.dataclass
class IndexResult:
    """What :func:`build_index` did (``summary`` is ``index.json``'s ``last_run``)."""

    output: pathlib.Path
    summary: dict

    @property
    def counts(self) -> dict:
        return self.summary["counts"]


def check_output(output, inputs: Sequence = ()) -> Optional[table_lib.Index]:
    """The index already in `output` (None for a missing or empty folder).

    Raises OverwriteRefused when `output` holds anything else, or holds one
    of `inputs` (the videos, the exports).
    """
    outputs.check_not_input(output, inputs)
    output = pathlib.Path(output)
    if not os.path.lexists(output):
        return None
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        return None
    problem = table_lib.index_problem(output)
    if problem:
        raise outputs.OverwriteRefused(
            f"--output {output} exists and is not a tfcmvp index ({problem}); tfcmvp index "
            f"updates only an index it wrote: choose another --output"
        )
    return table_lib.load_index(output)


def _resolve_models(models: Optional[Mapping], old: Optional[table_lib.Index]) -> Dict[str, dict]:
    """network -> {model_dir, export_fingerprint, embedding_dim, backbone} of this run."""
    chosen = {}
    if old is not None:
        chosen = {n: spec["model_dir"] for n, spec in old.info["networks"].items()}
    for network, model_dir in (models or {}).items():
        if network not in table_lib.NETWORKS:
            raise ConfigError(
                f"--models {network}={model_dir}: unknown network {network!r}; expected "
                f"{', '.join(n + '=DIR' for n in table_lib.NETWORKS)}"
            )
        chosen[network] = model_dir
    if not chosen:
        raise ConfigError(
            "--models is required for a new index: give one or more of "
            + ", ".join(n + "=EXPORT_DIR" for n in table_lib.NETWORKS)
        )
    resolved = {}
    for network in table_lib.NETWORKS:
        if network not in chosen:
            continue
        model_dir = os.path.abspath(chosen[network])
        info = features.read_export(model_dir)  # NotAnExportError / ExportError name it
        if info["network"] != network:
            raise ConfigError(
                f"--models {network}={chosen[network]}: that export is a {info['network']} "
                f"network, not a {network} network"
            )
        resolved[network] = {
            "model_dir": model_dir,
            "export_fingerprint": features.model_fingerprint(model_dir),
            "embedding_dim": int(info.get("embedding_dim") or 0),
            "backbone": info.get("backbone"),
        }
    return resolved


def _embed_network(paths, model_dir, folder, *, storage, batch_size, progress) -> tuple:
    """``({path: mean [D]}, {path: (num_frames, fps)}, [failure records])`` of one network."""
    try:
        embed_videos(
            paths, model_dir, folder, storage=storage, batch_size=batch_size, progress=progress
        )
    except EmbeddingFailedError:
        pass  # nothing embedded: the output still lists every failure, read below
    matrix = np.load(folder / embed_writer.EMBEDDINGS_NAME)  # [N clips, D]
    rows_of = collections.defaultdict(list)
    meta = {}
    with open(folder / embed_writer.TABLE_NAME, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows_of[row["path"]].append(int(row["row"]))
            meta[row["path"]] = (int(row["num_frames"]), float(row["fps"]))
    # Retrieval's video feature: the mean of its clips (tfcmvp.retrieval.protocols).
    means = {path: matrix[rows].mean(axis=0, dtype=np.float64) for path, rows in rows_of.items()}
    lines = (folder / embed_writer.FAILED_NAME).read_text(encoding="utf-8").splitlines()
    failures = [json.loads(line) for line in lines if line.strip()]
    shutil.rmtree(folder)
    return means, meta, failures


def _place_thumbnails(staging, entry, old, unchanged: bool, with_motion: bool, mv_cell: int):
    """Links an unchanged video's thumbnails from the old index, or draws them."""
    kinds = ("frame", "motion") if with_motion else ("frame",)
    vid = entry.id
    if unchanged and old is not None:
        sources = [table_lib.thumbnail_path(old.folder, vid, kind, existing=True) for kind in kinds]
        if all(sources):
            for kind, source in zip(kinds, sources):
                target = table_lib.thumbnail_path(staging, vid, kind)
                try:
                    os.link(source, target)  # the old index is deleted after the swap
                except OSError:
                    shutil.copyfile(source, target)
            return
    try:
        pictures = thumbs_lib.video_thumbnails(entry.path, with_motion, mv_cell=mv_cell)
    except Exception as error:  # noqa: BLE001 - a picture is optional; the video stays indexed
        logger.warning("no thumbnail for %s: %s", entry.path, error)
        return
    for kind, data in pictures.items():
        table_lib.thumbnail_path(staging, vid, kind).write_bytes(data)


@dataclasses.dataclass
class _Listing:
    """The listed videos against the old index: readable entries, their status, failures."""

    current: list  # VideoEntry per readable listed video
    status: dict  # path -> "added", "changed" or "unchanged"
    old_rows: dict  # path -> row in the old index
    removed: int  # videos of the old index no longer listed
    failed_lines: list  # failed.jsonl records
    failed_paths: set


def _listing(videos, old: Optional[table_lib.Index]) -> _Listing:
    old_rows = {e.path: row for row, e in enumerate(old.entries)} if old is not None else {}
    failed_lines, failed_paths = [], set()
    current, status = [], {}
    for path in videos:
        try:
            stat = os.stat(path)
            fingerprint = table_lib.content_fingerprint(path, stat.st_size)
        except OSError as error:
            failed_lines.append(failure_record(path, "open", error))
            failed_paths.add(path)
            continue
        entry = table_lib.VideoEntry(path, stat.st_size, stat.st_mtime, fingerprint)
        row = old_rows.get(path)
        if row is None:
            status[path] = "added"
        elif old.entries[row].fingerprint != fingerprint:
            status[path] = "changed"
        else:
            status[path] = "unchanged"
            entry.num_frames, entry.fps = old.entries[row].num_frames, old.entries[row].fps
        current.append(entry)
    listed = set(videos)
    removed = sum(1 for path in old_rows if path not in listed)
    return _Listing(current, status, old_rows, removed, failed_lines, failed_paths)


def _embed_all(networks, old, listing: _Listing, staging, storage, batch_size, progress):
    """``(vectors {network: {path: [D]}}, videos embedded per network, networks whose
    export changed)``: old rows reused for unchanged videos of an unchanged export."""
    recorded = old.info["networks"] if old is not None else {}
    vectors: Dict[str, dict] = {}
    embedded: Dict[str, int] = {}
    export_changed = []
    for network, spec in networks.items():
        previous = recorded.get(network)
        same_export = (
            previous is not None and previous["export_fingerprint"] == spec["export_fingerprint"]
        )
        if previous is not None and not same_export:
            export_changed.append(network)
        old_matrix = old.embeddings(network) if same_export else None
        vectors[network] = {}
        todo = []
        for entry in listing.current:
            if same_export and listing.status[entry.path] == "unchanged":
                vectors[network][entry.path] = np.asarray(
                    old_matrix[listing.old_rows[entry.path]], np.float64
                )
            else:
                todo.append(entry.path)
        embedded[network] = len(todo)
        if not todo:
            continue
        logger.info("%s network: embedding %d videos", network, len(todo))
        means, meta, failures = _embed_network(
            todo,
            spec["model_dir"],
            staging / _WORK_DIR / network,
            storage=storage,
            batch_size=batch_size,
            progress=progress,
        )
        vectors[network].update(means)
        for entry in listing.current:
            if entry.path in meta:
                entry.num_frames, entry.fps = meta[entry.path]
        for line in failures:
            listing.failed_lines.append({**line, "network": network})
            listing.failed_paths.add(line["path"])
    return vectors, embedded, export_changed


def _write_rows(staging, kept, networks: dict, vectors: dict) -> None:
    """``videos.csv`` and one embedding matrix per network, rows in the same order."""
    short = {
        n: spec["export_fingerprint"][:FINGERPRINT_COLUMN_DIGITS] for n, spec in networks.items()
    }
    for entry in kept:
        entry.exports = dict(short)
    table_lib.write_table(staging / table_lib.TABLE_NAME, kept, list(networks))
    for network, spec in networks.items():
        dim = spec["embedding_dim"] or (
            len(next(iter(vectors[network].values()))) if vectors[network] else 0
        )
        matrix = np.zeros((len(kept), dim), np.float32)  # [V, D]
        for row, entry in enumerate(kept):
            matrix[row] = vectors[network][entry.path]
        np.save(staging / table_lib.embeddings_name(network), matrix)


def _summary(listed: int, kept, listing: _Listing, failed_paths, started, storage) -> dict:
    """``index.json``'s ``last_run``: counts, time and storage (the caller adds what was
    embedded)."""
    kept_status = collections.Counter(listing.status[e.path] for e in kept)
    counts = {
        "listed": listed,
        "indexed": len(kept),
        "added": kept_status["added"],
        "changed": kept_status["changed"],
        "unchanged": kept_status["unchanged"],
        "removed": listing.removed,
        "failed": len(failed_paths),
    }
    return {
        "counts": counts,
        "embedded": None,  # videos each network embedded in this run
        "export_changed": None,
        "seconds": round(time.perf_counter() - started, 3),
        "storage": dataclasses.asdict(storage),
    }


def _info(networks: dict, old, summary: dict) -> dict:
    """``index.json``."""
    return {
        "format": table_lib.FORMAT,
        "version": table_lib.VERSION,
        "networks": networks,
        "clips": {"num_clips": 10, "positions": "vcop", "feature": "mean of clip embeddings"},
        "last_run": summary,
        **contract.versions(),
        "created": (old.info.get("created") if old is not None else None) or contract.utc_now(),
        "updated": contract.utc_now(),
    }


def build_index(
    inputs: Sequence,
    output,
    *,
    models: Optional[Mapping] = None,
    storage=None,
    batch_size: int = 20,
    progress: Optional[bool] = None,
) -> IndexResult:
    """Builds or updates the index in `output` from the videos named by `inputs`.

    Args:
      inputs: video files, folders and list files (``tfcmvp embed``'s INPUT).
      output: the index folder (module docstring); an existing index is updated.
      models: ``{network: export folder}`` for any of "video", "iframe",
        "motion"; None or missing networks: those the index recorded.
      storage: :class:`tfcmvp.embedding.StorageSettings` (the extraction's defaults).
      batch_size: at most this many clips per call of a model.
      progress: tqdm bars while embedding; None = on a terminal only.

    Returns an :class:`IndexResult`. Raises InputError / ValueError /
    FileNotFoundError for bad inputs or exports and OverwriteRefused for an
    `output` that is not an index (nothing written in either case).
    """
    storage = storage or StorageSettings()
    started = time.perf_counter()
    output = pathlib.Path(output)
    videos = [os.path.abspath(v) for v in inputs_lib.gather_inputs(inputs)]
    model_dirs = [d for d in (models or {}).values()]
    old = check_output(output, [*videos, *model_dirs])
    networks = _resolve_models(models, old)
    listing = _listing(videos, old)

    staging = outputs.make_staging_dir(output.resolve().parent, f".{output.name}.index-")
    try:
        (staging / table_lib.THUMBS_DIR).mkdir()
        vectors, embedded, export_changed = _embed_all(
            networks, old, listing, staging, storage, batch_size, progress
        )
        shutil.rmtree(staging / _WORK_DIR, ignore_errors=True)

        kept = [e for e in listing.current if all(e.path in vectors[n] for n in networks)]
        kept_paths = {e.path for e in kept}
        failed_paths = listing.failed_paths
        failed_paths |= {e.path for e in listing.current if e.path not in kept_paths}
        _write_rows(staging, kept, networks, vectors)
        with_motion = "motion" in networks
        for entry in kept:
            unchanged = listing.status[entry.path] == "unchanged"
            _place_thumbnails(staging, entry, old, unchanged, with_motion, storage.mv_cell)
        with open(staging / table_lib.FAILED_NAME, "w", encoding="utf-8") as handle:
            for line in listing.failed_lines:
                handle.write(json.dumps(line, sort_keys=True) + "\n")

        summary = _summary(len(videos), kept, listing, failed_paths, started, storage)
        summary["embedded"], summary["export_changed"] = embedded, export_changed
        (staging / table_lib.INFO_NAME).write_text(
            json.dumps(_info(networks, old, summary), indent=2) + "\n", encoding="utf-8"
        )
        check_output(output)  # it may have changed while the videos were embedded
        if output.is_dir() and not any(output.iterdir()):
            output.rmdir()
        outputs.swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after the swap
    return IndexResult(output, summary)


def summary_line(output, summary: dict) -> str:
    """The one line ``tfcmvp index`` prints."""
    c = summary["counts"]
    embedded = ", ".join(
        f"{n} {k}" + (" (new export)" if n in summary["export_changed"] else "")
        for n, k in summary["embedded"].items()
    )
    return (
        f"index {output}: {c['indexed']} videos ({c['added']} added, {c['changed']} changed, "
        f"{c['unchanged']} unchanged, {c['removed']} removed, {c['failed']} failed); "
        f"embedded: {embedded}; {summary['seconds']:.1f} s"
    )
