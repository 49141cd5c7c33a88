"""One read of a split's shards through tf.data: per-video features and / or thumbnails.

The clips of each video are those of
:func:`tfcmvp.data.evaluation.make_eval_sample` with the export's
:class:`~tfcmvp.retrieval.clip_options.EvalOptions`; ``embed`` (the export's
``embed`` signature, :func:`tfcmvp.retrieval.features.load_embedding_fn`)
maps them to clip embeddings and a video's feature is their mean. The cache
around these passes is :func:`tfcmvp.retrieval.features.extract_features`'.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tfcmvp import schema
from tfcmvp.data import evaluation, keys, reader
from tfcmvp.errors import ExportError, InvalidDataError
from tfcmvp.retrieval.clip_options import EvalOptions
from tfcmvp.retrieval.feature_cache import SplitFeatures
from tfcmvp.retrieval.protocols import VCOP, video_features
from tfcmvp.retrieval.thumbnails import Thumbnails, thumbnail


def split_size(manifest: Optional[dict], split: str) -> Optional[int]:
    """Videos written to ``split`` by the manifest (the progress bar's total), or None."""
    try:
        return int(manifest["splits"][split]["written"])
    except (TypeError, KeyError, ValueError):
        return None


def _video_dataset(
    files, options: EvalOptions, *, with_clips: bool, with_thumbs: bool, videos_per_batch: int
):
    """One read of the shards: the evaluation sample and / or the thumbnail of each video."""
    ds = reader.records_dataset(files, deterministic=True)

    def sample(serialized):
        if with_clips:
            out = evaluation.make_eval_sample(serialized, **options.sample_kwargs())
        else:
            # Thumbnails only: ids straight from the record, nothing else decoded.
            spec = schema.feature_spec()
            parsed = tf.io.parse_single_example(
                serialized, {k: spec[k] for k in (schema.VIDEO_ID, schema.LABEL)}
            )
            out = {keys.VIDEO_ID: parsed[schema.VIDEO_ID], keys.LABEL: parsed[schema.LABEL]}
        if with_thumbs:
            out[keys.THUMBNAIL] = thumbnail(serialized)
        return out

    ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(videos_per_batch).prefetch(tf.data.AUTOTUNE)


def _progress(total, desc: str, progress: Optional[bool]):
    # progress=None: a bar on a terminal only, not in logs.
    return tqdm(
        total=total,
        desc=desc,
        unit="video",
        disable=None if progress is None else not progress,
        leave=False,
    )


def _embed_clips(embed, clips, options: EvalOptions, batch_size: int) -> np.ndarray:
    """Clip embeddings ``[B, N, D]`` of a batch of videos' clips ``[B, N, *input_shape]``."""
    num_videos, num_clips = int(clips.shape[0]), int(clips.shape[1])
    if tuple(clips.shape[2:]) != options.input_shape:
        raise ExportError(
            f"clips of shape {tuple(clips.shape[2:])} do not match the "
            f"export input {options.input_shape}"
        )
    flat = tf.reshape(clips, [num_videos * num_clips, *options.input_shape])  # [B*N, ...]
    # At most batch_size clips per call, whatever N is.
    parts = [
        np.asarray(embed(flat[i : i + batch_size]))
        for i in range(0, num_videos * num_clips, batch_size)
    ]
    clip_feats = np.concatenate(parts, axis=0)  # [B*N, D]
    if clip_feats.ndim != 2 or clip_feats.shape[0] != num_videos * num_clips:
        raise ValueError(
            f"embedding of {num_videos * num_clips} clips has shape "
            f"{clip_feats.shape}, expected [{num_videos * num_clips}, D]"
        )
    return clip_feats.reshape(num_videos, num_clips, -1)  # [B, N, D]


def run_split(
    embed,
    files,
    options: EvalOptions,
    *,
    split: str,
    batch_size: int,
    with_thumbs: bool,
    total: Optional[int],
    progress,
) -> tuple:
    """Features (and thumbnails) of every video of one split."""
    # Sliding windows give every video its own clip count N_v: one video per batch.
    videos_per_batch = 1 if options.num_clips is None else max(1, batch_size // options.num_clips)
    ds = _video_dataset(
        files, options, with_clips=True, with_thumbs=with_thumbs, videos_per_batch=videos_per_batch
    )
    feats, labels, ids, names, thumbs, counts = [], [], [], [], [], []
    with _progress(total, f"{split} features", progress) as bar:
        for batch in ds:
            clip_feats = _embed_clips(embed, batch[keys.CLIPS], options, batch_size)  # [B, N, D]
            num_videos, num_clips = clip_feats.shape[:2]
            # The clip mean is the same under both protocols; VCOP only names it here.
            feats.append(video_features(clip_feats, VCOP))  # [B, D]
            counts.extend([num_clips] * num_videos)
            labels.append(batch[keys.LABEL].numpy())
            ids.extend(v.decode() for v in batch[keys.VIDEO_ID].numpy())
            names.extend(v.decode() for v in batch[keys.LABEL_NAME].numpy())
            if with_thumbs:
                thumbs.append(batch[keys.THUMBNAIL].numpy())
            bar.update(num_videos)
    if not feats:
        raise InvalidDataError(f"the {split} shards hold no videos: {files}")
    result = SplitFeatures(
        features=np.concatenate(feats).astype(np.float32),
        labels=np.concatenate(labels).astype(np.int64),
        video_ids=np.asarray(ids, dtype=str),
        label_names=np.asarray(names, dtype=str),
        clip_counts=np.asarray(counts, np.int64),
    )
    return result, (Thumbnails.from_jpegs(np.concatenate(thumbs)) if with_thumbs else None)


def thumbnail_pass(files, options: EvalOptions, *, split: str, total, progress) -> tuple:
    """(Thumbnails, video ids) of every video of one split, nothing else decoded."""
    ds = _video_dataset(files, options, with_clips=False, with_thumbs=True, videos_per_batch=64)
    thumbs, ids = [], []
    with _progress(total, f"{split} thumbnails", progress) as bar:
        for batch in ds:
            thumbs.append(batch[keys.THUMBNAIL].numpy())
            ids.extend(v.decode() for v in batch[keys.VIDEO_ID].numpy())
            bar.update(len(thumbs[-1]))
    return Thumbnails.from_jpegs(np.concatenate(thumbs)), np.asarray(ids, dtype=str)
