"""Nearest-neighbour retrieval of an exported network: test videos query the train videos.

    record = evaluate_retrieval("exports/v_net", "data/ucf101", protocol="vcop",
                                output="results/retrieval.json", png="results/retrieval.png")
    print(format_table({"v_net": record}))

Steps: per-video features of both splits (:mod:`tfcmvp.retrieval.features`,
cached), the protocol's post-processing (``protocols.prepare``), a chunked
exact top-k search with k = max(ks) (``search.topk_search``), recall at each k
(``metrics.recall_at_k``, percent), then the JSON record
(``report.write_json``) and optionally a figure of a few queries with their
top-5 results (``report.plot_retrieval``).

The protocol decides the clips as well as the post-processing
(``protocols.CLIP_POSITIONS``): ``"vcop"`` averages N (``clips``) clips with
evenly spaced centres, ``"coclr"`` CoCLR's half-overlapping sliding windows
over the whole video (``clips`` unused). The JSON says which protocol and
which clip positions were used.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Optional, Sequence

import numpy as np

from tfcmvp.errors import ConfigError, InvalidDataError
from tfcmvp.manifest import check_record_count, find_shards
from tfcmvp.retrieval import features as features_lib
from tfcmvp.retrieval.labels import LabelTable, relabel
from tfcmvp.retrieval.metrics import DEFAULT_KS, hit_matrix, recall_at_k
from tfcmvp.retrieval.protocols import check_protocol, clip_positions, prepare
from tfcmvp.retrieval.report import model_name, plot_retrieval, write_json
from tfcmvp.retrieval.search import topk_search
from tfcmvp.verify import corrupt_shards_named

logger = logging.getLogger(__name__)

PNG_QUERIES = 8  # rows of the figure
PNG_RESULTS = 5  # results per row


def _shards(data_dir) -> dict:
    """{split: verified ShardList} of the queries and the gallery."""
    return {split: find_shards(data_dir, split) for split in features_lib.SPLITS}


def _check_ks(ks: Sequence[int]) -> tuple:
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
        raise ConfigError(f"ks must be positive integers, got {ks!r}")
    return tuple(int(k) for k in ks)


def _check_labels(split: str, feats: features_lib.SplitFeatures, needs: str) -> None:
    # A video without a class (-1) can neither hit nor be hit meaningfully.
    unlabelled = np.flatnonzero(feats.labels < 0)
    if unlabelled.size:
        example = str(feats.video_ids[unlabelled[0]])
        raise InvalidDataError(
            f"{unlabelled.size} {split} video(s) have no class label (-1), e.g. "
            f"{example!r}; {needs}"
        )


def query_rows(num_queries: int, count: int = PNG_QUERIES) -> np.ndarray:
    """``count`` query indices spread evenly over ``[0, num_queries)`` (all when fewer)."""
    count = min(count, num_queries)
    return np.unique(np.round(np.linspace(0, num_queries - 1, count)).astype(np.int64))


def _clips_per_video(extracted: features_lib.ExtractedFeatures):
    """N of the fixed-count positions; under sliding windows the mean count (0.1 precision)."""
    if extracted.options.num_clips is not None:
        return extracted.options.num_clips
    counts = np.concatenate([split.clip_counts for split in extracted.splits.values()])
    return round(float(counts.mean()), 1)


def data_description(data_dir, extracted: features_lib.ExtractedFeatures) -> dict:
    """What the ``"data"`` entry of the JSON says: folder, dataset layout, clip sampling."""
    manifest = features_lib.read_manifest(data_dir) or {}
    options = extracted.options
    return {
        "dir": str(data_dir),
        "layout": manifest.get("layout"),
        "num_classes": manifest.get("num_classes"),
        "queries": "test",
        "gallery": "train",
        "modality": options.modality,
        "clip_positions": options.positions,
        "clips_per_video": _clips_per_video(extracted),
        "network": extracted.info.get("network"),
        "backbone": extracted.info.get("backbone"),
    }


def extract_named(model_dir, data_dir, output, **options) -> features_lib.ExtractedFeatures:
    """:func:`tfcmvp.retrieval.features.extract_features` with ``options``, the cache
    falling back to a folder beside ``output`` (when given) and damaged shards named."""
    fallback = (
        pathlib.Path(output).resolve().parent / features_lib.CACHE_DIR_NAME
        if output is not None
        else None
    )
    # A damaged shard fails in TensorFlow with an error naming no file: name it.
    with corrupt_shards_named(data_dir, skip_hint=False):
        return features_lib.extract_features(
            model_dir, data_dir, fallback_cache_dir=fallback, **options
        )


def labelled_splits(
    data_dir,
    extracted,
    labels: Optional[LabelTable],
    needs: str = "retrieval needs labelled videos",
) -> tuple:
    """(test, train) features, counted against the manifest, relabelled by ``labels``.

    ``ValueError`` when a video has no label; ``needs`` ends its message (what
    needs the labels, and how to give them).
    """
    for split, files in _shards(data_dir).items():  # as many videos as the manifest counted
        check_record_count(files, len(extracted.splits[split]))
    test, train = extracted.splits["test"], extracted.splits["train"]
    if labels is not None:  # the features do not depend on labels: the cache still holds
        test, train = (
            dataclasses.replace(
                split, **dict(zip(("labels", "label_names"), relabel(split.video_ids, labels)))
            )
            for split in (test, train)
        )
    _check_labels("test", test, needs)
    _check_labels("train", train, needs)
    return test, train


def _figure(png, extracted, splits: tuple, found: tuple, recalls: dict, title_of: tuple):
    """``PNG_QUERIES`` queries spread over the test set with their top results.

    ``splits``: the (test, train) features as scored (relabelled); ``found``:
    (scores, indices) of the search; ``title_of``: (name, data folder, protocol).
    """
    name, data_dir, protocol = title_of
    test, train = splits
    scores, indices = found
    rows = query_rows(len(test))
    hits = hit_matrix(test.labels[rows], train.labels, indices[rows])  # [n, K]
    test_thumbs, train_thumbs = extracted.thumbnails["test"], extracted.thumbnails["train"]
    shown = {int(i): train_thumbs[int(i)] for i in np.unique(indices[rows])}
    recall_1 = recalls.get("R@1")
    title = f"{name} on {pathlib.Path(data_dir).name}: {protocol}, {extracted.options.modality}" + (
        f", R@1 {recall_1:.1f}%" if recall_1 is not None else ""
    )
    plot_retrieval(
        png,
        [test_thumbs[int(i)] for i in rows],
        shown,
        indices[rows],
        hits,
        query_labels=test.label_names[rows],
        gallery_labels=train.label_names,
        scores=scores[rows],
        num_results=PNG_RESULTS,
        title=title,
    )


def _record(model_dir, data_dir, extracted, labels, recalls: dict, protocol: str, output):
    """The returned record, also written to ``output`` when given."""
    test, train = extracted.splits["test"], extracted.splits["train"]
    model, name = str(model_dir), model_name(model_dir)
    data = data_description(data_dir, extracted)
    if labels is not None:
        data["labels"] = {"file": labels.path, "column": labels.column}
    record = dict(
        recalls,
        protocol=protocol,
        model=model,
        name=name,
        data=data,
        num_queries=len(test),
        num_gallery=len(train),
    )
    if output is not None:
        record = write_json(
            output, recalls, protocol, model, data, len(test), len(train), name=name
        )
        logger.info("wrote %s", output)
    return record


def evaluate_retrieval(
    model_dir,
    data_dir,
    *,
    clips: int = 10,
    protocol: str = "vcop",
    ks: Sequence[int] = DEFAULT_KS,
    cache_dir=None,
    png=None,
    output=None,
    batch_size: int = features_lib.DEFAULT_BATCH_SIZE,
    use_cache: bool = True,
    progress: Optional[bool] = None,
    labels: Optional[LabelTable] = None,
) -> dict:
    """Retrieval recall of an exported network (see the module docstring).

    Args:
      model_dir: ``tfcmvp export`` folder; its ``assets/tfcmvp_export.json``
        decides the modality (video, I-frame or motion network) and the clip geometry.
      data_dir: extraction output folder with ``test-*`` (queries) and
        ``train-*`` (gallery) shards.
      clips: clips per video under ``"vcop"``; a video's feature is the mean
        of their embeddings (``"coclr"`` averages its sliding windows instead).
      protocol: ``"vcop"`` or ``"coclr"`` (``tfcmvp.retrieval.protocols``):
        the clip positions and the post-processing.
      ks: recall cut-offs.
      cache_dir: feature cache folder; None = ``DATA/.tfcmvp_cache``, or
        ``.tfcmvp_cache`` beside ``output`` when DATA is read-only.
      png: optional figure path: ``PNG_QUERIES`` queries spread over the test
        set, each with its top ``PNG_RESULTS`` results (green = same class).
      output: optional JSON path (``report.write_json``).
      batch_size: at most this many clips per call of the model.
      use_cache: False neither reads nor writes cached features.
      progress: a tqdm bar over the videos; None = only on a terminal.
      labels: score by this label kind of a labels CSV
        (:func:`tfcmvp.retrieval.labels.read_label_table`) instead of the
        records' class labels; the record then names it under "labels".

    Returns:
      The record written to ``output`` (also when ``output`` is None):
      ``{"R@1": ..., "R@50": ..., "protocol", "model", "data", "num_queries",
      "num_gallery"}``, recalls in percent.

    Raises:
      FileNotFoundError: missing export or shards (naming the path).
      ValueError: bad options, unlabelled videos, or an export the evaluation
        pipeline cannot feed; :class:`tfcmvp.manifest.DataFolderError` when the
        data folder disagrees with its manifest (extra shards, another count)
        and :class:`tfcmvp.verify.CorruptShardError` naming a damaged shard.
    """
    check_protocol(protocol)
    ks = _check_ks(ks)
    extracted = extract_named(
        model_dir,
        data_dir,
        output,
        clips=clips,
        positions=clip_positions(protocol),
        batch_size=batch_size,
        cache_dir=cache_dir,
        use_cache=use_cache,
        thumbnails=png is not None,
        progress=progress,
    )
    test, train = labelled_splits(data_dir, extracted, labels)

    query, gallery = prepare(test.features, train.features, protocol)  # [Q, D], [G, D]
    scores, indices = topk_search(query, gallery, k=max(ks))  # [Q, min(k, G)] each
    recalls = recall_at_k(test.labels, train.labels, indices, ks)

    record = _record(model_dir, data_dir, extracted, labels, recalls, protocol, output)
    if png is not None:
        found = (scores, indices)
        title_of = (record["name"], data_dir, protocol)
        _figure(png, extracted, (test, train), found, recalls, title_of)
        logger.info("wrote %s", png)
    return record
