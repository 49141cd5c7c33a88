"""Per-video features of an exported network over the test and train shards, cached.

The exported SavedModel (``tfcmvp.export``; contract in its
``assets/tfcmvp_export.json``) decides what a clip is:

=============  ==========  ==================================================
network        modality    clips fed to the ``embed`` signature
=============  ==========  ==================================================
``video``      ``rgb``     ``[N, T, S, S, 3]`` ImageNet-normalised RGB, T
                           frames at the exported ``stride``
``iframe``     ``iframe``  ``[N, S, S, 3]`` the I-frame nearest each clip centre
``motion``     ``motion``  ``[N, T, S, S, 2]`` T consecutive vector frames,
                           clamped to +-``mv_clip`` px and divided by ``mv_div``
``classifier`` from its input shape (a finetuned video network: ``rgb``)
=============  ==========  ==================================================

Clip positions, crops and scaling are those of
:func:`tfcmvp.data.evaluation.make_eval_sample` (the sample of
``eval_dataset``). The positions follow the rule ``positions`` (the
protocol's, ``tfcmvp.retrieval.protocols.CLIP_POSITIONS``): ``"vcop"``, N
clips with evenly spaced centres, or ``"sliding"``, CoCLR's half-overlapping
windows over the whole video (a number N_v that depends on the video; the
model then sees one video's windows per call). Frames: short side resized to
``resize_short`` then the centre S x S. Motion windows are T consecutive
frames (the clip span of a motion export is T frames at stride 1); I-frames
are the ones nearest to the clip centres. ``resize_short`` is the export's
``input.resize_short`` when it has one, else ``round(S * 128 / 112)`` (the
paper's test geometry: 128 then the centre 112).

A video's feature is the mean of its ``embedding`` rows. The two protocols
place their clips differently, so each has its own cache entry (the position
rule is one of the options in the key).

Cache and thumbnails
--------------------
Features are cached per model, data and clip options
(:mod:`tfcmvp.retrieval.feature_cache` says what the key holds and where the
cache lives); middle-frame thumbnails for figures are cached per data
(:mod:`tfcmvp.retrieval.thumbnails`) and made in the same read of the shards
as the features when missing. The clip options come from the export
(:mod:`tfcmvp.retrieval.clip_options`). The names of those modules that
callers use are importable from here too.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Callable, Optional

import numpy as np

from tfcmvp.errors import ConfigError, ExportError, InvalidDataError
from tfcmvp.export import contract as export_contract
from tfcmvp.export import load_export
from tfcmvp.manifest import find_shards, read_manifest
from tfcmvp.retrieval import feature_cache, feature_pass
from tfcmvp.retrieval.clip_options import NETWORK_MODALITY, EvalOptions, eval_options, read_export
from tfcmvp.retrieval.feature_cache import (
    CACHE_DIR_NAME,
    CACHE_VERSION,
    SplitFeatures,
    data_fingerprint,
    model_fingerprint,
    resolve_cache_dir,
)
from tfcmvp.retrieval.thumbnails import (
    THUMB_SHAPE,
    Thumbnails,
    cached_thumbnails,
    store_thumbnails,
    thumbnail,
    thumbs_path,
)

# Names of the split-off modules stay importable from here, where callers found them.
__all__ = [
    "CACHE_DIR_NAME",
    "CACHE_VERSION",
    "DEFAULT_BATCH_SIZE",
    "NETWORK_MODALITY",
    "SPLITS",
    "THUMB_SHAPE",
    "EvalOptions",
    "ExtractedFeatures",
    "SplitFeatures",
    "Thumbnails",
    "data_fingerprint",
    "eval_options",
    "extract_features",
    "find_shards",
    "load_embedding_fn",
    "model_fingerprint",
    "read_export",
    "read_manifest",
    "resolve_cache_dir",
    "thumbnail",
]

logger = logging.getLogger(__name__)

SPLITS = ("test", "train")  # queries, gallery
DEFAULT_BATCH_SIZE = 20  # clips per call of the model: two videos of 10 clips


@dataclasses.dataclass
class ExtractedFeatures:
    """Output of :func:`extract_features`."""

    splits: dict  # {"test": SplitFeatures, "train": SplitFeatures}
    info: dict  # the export JSON
    options: EvalOptions
    key: str  # the cache key (see tfcmvp.retrieval.feature_cache)
    data_key: str  # the data part of it (names the thumbnail cache)
    cache_path: Optional[pathlib.Path]  # None when uncached
    from_cache: bool
    thumbnails: Optional[dict] = None  # {"test": Thumbnails, "train": Thumbnails} when asked for


# --------------------------------------------------------------------------- the model


def load_embedding_fn(model_dir) -> Callable:
    """Loads the export's ``embed`` signature: a function clips -> ``[n, D]`` tensor.

    Module level so tests can count the model calls by replacing it.
    """
    loaded, _ = load_export(model_dir)  # checks the signatures the description lists
    name, output = export_contract.EMBED, export_contract.EMBED_OUTPUT
    if name not in loaded.signatures:
        raise ExportError(
            f"{model_dir}: the SavedModel has no {name!r} signature "
            f"(it has {sorted(loaded.signatures)})"
        )
    signature = loaded.signatures[name]

    def embed(clips):
        outputs = signature(**{export_contract.INPUT_NAME: clips})
        if output not in outputs:
            raise ExportError(
                f"{model_dir}: signature {name!r} returns {sorted(outputs)}, expected {output!r}"
            )
        return outputs[output]

    embed.loaded = loaded  # keeps the variables alive as long as the function
    return embed


# --------------------------------------------------------------------------- the pass


# --------------------------------------------------------------------------- extraction


@dataclasses.dataclass
class _Job:
    """What one :func:`extract_features` call works on (resolved arguments)."""

    model_dir: pathlib.Path
    data_dir: pathlib.Path
    info: dict
    options: EvalOptions
    shards: dict  # {split: [shard paths]}
    manifest: Optional[dict]
    data_key: str
    key: str
    cache: Optional[pathlib.Path]  # the cache folder, None when uncached
    cache_path: Optional[pathlib.Path]  # the features file in it

    def split_size(self, split: str) -> Optional[int]:
        return feature_pass.split_size(self.manifest, split)


def _thumbnails_for_cached(job: _Job, splits: dict, progress) -> dict:
    """Thumbnails of features read from the cache: cached ones, else one thumbnail-only pass."""
    ids = {split: splits[split].video_ids for split in SPLITS}
    cached = cached_thumbnails(job.cache, job.data_key, ids)
    if cached is not None:
        return cached
    made = {
        split: feature_pass.thumbnail_pass(
            job.shards[split],
            job.options,
            split=split,
            total=job.split_size(split),
            progress=progress,
        )
        for split in SPLITS
    }
    for split in SPLITS:
        if not np.array_equal(made[split][1], splits[split].video_ids):
            raise InvalidDataError(
                f"{job.data_dir}: the {split} shards changed while "
                f"reading them (video ids differ from the cache)"
            )
    thumbs = {split: made[split][0] for split in SPLITS}
    store_thumbnails(job.cache, job.data_key, thumbs, {split: made[split][1] for split in SPLITS})
    return thumbs


def _compute(job: _Job, *, batch_size: int, thumbnails: bool, progress) -> ExtractedFeatures:
    """Runs the model over both splits and fills the cache (when there is one)."""
    embed = load_embedding_fn(job.model_dir)
    splits, thumbs = {}, {}
    # Thumbnails ride along with the features when they are wanted or not yet cached.
    make_thumbs = thumbnails or (
        job.cache is not None and not thumbs_path(job.cache, job.data_key).is_file()
    )
    for split in SPLITS:
        splits[split], thumbs[split] = feature_pass.run_split(
            embed,
            job.shards[split],
            job.options,
            split=split,
            batch_size=batch_size,
            with_thumbs=make_thumbs,
            total=job.split_size(split),
            progress=progress,
        )
    if job.cache_path is not None:
        about = dict(
            model_dir=str(job.model_dir),
            data_dir=str(job.data_dir),
            options=job.options.sample_kwargs(),
            network=job.info.get("network"),
            backbone=job.info.get("backbone"),
        )
        feature_cache.store_features(job.cache_path, job.key, splits, about)
        logger.info("cached features in %s", job.cache_path)
        if make_thumbs:
            ids = {split: splits[split].video_ids for split in SPLITS}
            store_thumbnails(job.cache, job.data_key, thumbs, ids)
    result = ExtractedFeatures(
        splits, job.info, job.options, job.key, job.data_key, job.cache_path, False
    )
    if thumbnails:
        result.thumbnails = thumbs
    return result


def _resolve(model_dir, data_dir, clips, positions, use_cache, cache_dir, fallback_cache_dir):
    model_dir, data_dir = pathlib.Path(model_dir), pathlib.Path(data_dir)
    info = read_export(model_dir)
    options = eval_options(info, clips, positions)
    shards = {split: find_shards(data_dir, split) for split in SPLITS}
    manifest = read_manifest(data_dir)
    data_key = data_fingerprint(data_dir, shards)
    key = feature_cache.features_key(model_dir, data_key, options.sample_kwargs())
    cache = resolve_cache_dir(cache_dir, data_dir, fallback_cache_dir) if use_cache else None
    cache_path = feature_cache.features_path(cache, model_dir, key) if cache is not None else None
    return _Job(
        model_dir, data_dir, info, options, shards, manifest, data_key, key, cache, cache_path
    )


def extract_features(
    model_dir,
    data_dir,
    *,
    clips: int = 10,
    positions: str = "vcop",
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir=None,
    fallback_cache_dir=None,
    use_cache: bool = True,
    thumbnails: bool = False,
    progress: Optional[bool] = None,
) -> ExtractedFeatures:
    """Per-video features of the test and train split, from the cache when it has them.

    Args:
      model_dir: a ``tfcmvp export`` folder (SavedModel with an ``embed``
        signature and ``assets/tfcmvp_export.json``).
      data_dir: an extraction output folder with ``test-*.tfrecord.gz`` and
        ``train-*.tfrecord.gz`` shards (and usually ``manifest.json``).
      clips: clips per video N; a video's feature is the mean of its N
        clip embeddings.
      positions: where the clips lie: "vcop" (N evenly spaced clips, the
        default) or "sliding" (CoCLR's windows over the whole video, N
        unused); "authors" (the finetuning test's) also works. See
        :mod:`tfcmvp.data.sampling`.
      batch_size: at most this many clips per call of the model (memory).
      cache_dir, fallback_cache_dir: see :func:`resolve_cache_dir`.
      use_cache: False neither reads nor writes the cache.
      thumbnails: also return the middle-frame thumbnails of every video
        (``ExtractedFeatures.thumbnails``); they are cached whenever features
        are computed, so asking for them later costs no extra pass.
      progress: a tqdm bar over the videos; None = only on a terminal.

    Raises:
      FileNotFoundError: no export, no test or no train shards (naming the path).
      ValueError: the export's input contract does not fit the evaluation
        pipeline, or the model's output is malformed.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    job = _resolve(model_dir, data_dir, clips, positions, use_cache, cache_dir, fallback_cache_dir)
    arrays = feature_cache.load_npz(job.cache_path, job.key) if job.cache_path else None
    if arrays is None:
        return _compute(job, batch_size=batch_size, thumbnails=thumbnails, progress=progress)
    logger.info(
        "features of %s on %s from the cache %s", job.model_dir, job.data_dir, job.cache_path
    )
    splits = {split: feature_cache.split_from_arrays(split, arrays) for split in SPLITS}
    result = ExtractedFeatures(
        splits, job.info, job.options, job.key, job.data_key, job.cache_path, True
    )
    if thumbnails:
        result.thumbnails = _thumbnails_for_cached(job, splits, progress)
    return result
