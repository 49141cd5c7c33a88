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
``classifier`` from its input shape (a finetuned V-Network: ``rgb``)
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

Cache
-----
``CACHE_DIR/features-<model>-<key>.npz`` holds, per split ("test", "train"),
``<split>/features`` float32 ``[V, D]``, ``<split>/labels`` int64 ``[V]``,
``<split>/video_ids`` and ``<split>/label_names`` (unicode ``[V]``),
``<split>/clip_counts`` int64 ``[V]`` (clips averaged per video), plus
``meta`` (JSON: the key and what went into it). The key is a SHA-256 of

* the model: the bytes of ``saved_model.pb``, ``variables/variables.index``
  (it holds a checksum of every variable, so new weights change it) and
  ``assets/tfcmvp_export.json``;
* the data: the bytes of ``manifest.json`` (it carries the extraction time)
  and the name and size of every test and train shard;
* the options: the position rule, clips per video (none under
  ``"sliding"``) and every clip / crop / scaling option above;
* ``CACHE_VERSION``.

Thumbnails for figures (the middle RGB frame of every video, fitted into
``THUMB_SHAPE`` and stored as JPEG: about 2 kB a video) depend on the data
only: ``CACHE_DIR/thumbs-<data key>.npz``, shared by every model evaluated on
that data. They are made in the same read of the shards as the features when
missing.

The default ``CACHE_DIR`` is ``DATA/.tfcmvp_cache``; when DATA is not writable
the caller's ``fallback_cache_dir`` (the retrieval command passes
``.tfcmvp_cache`` beside its output file); when neither is writable the run
goes on uncached with a warning.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import logging
import os
import pathlib
import re
from typing import Callable, Optional

import numpy as np

from tfcmvp import manifest as manifest_lib
from tfcmvp import schema
from tfcmvp.export import contract as export_contract
from tfcmvp.manifest import find_shards, read_manifest

logger = logging.getLogger(__name__)

SPLITS = ("test", "train")  # queries, gallery
CACHE_DIR_NAME = ".tfcmvp_cache"
CACHE_VERSION = 2  # bump when the cached arrays or their meaning change (2: new positions)
THUMB_SHAPE = (48, 64)  # (height, width) of the cached thumbnails, aspect kept by padding
THUMB_QUALITY = 90  # JPEG quality of the cached thumbnails
EXPORT_INFO_PATH = pathlib.Path(export_contract.ASSETS_DIR) / export_contract.INFO_NAME
DEFAULT_BATCH_SIZE = 20  # clips per call of the model: two videos of 10 clips

NETWORK_MODALITY = {"video": "rgb", "iframe": "iframe", "motion": "motion"}
_HASH_BLOCK = 1 << 20


# --------------------------------------------------------------------------- export info


def read_export(model_dir) -> dict:
    """The checked ``assets/tfcmvp_export.json`` of an export folder.

    ``tfcmvp.export.read_export_info``: raises ``NotAnExportError`` (a
    FileNotFoundError) naming the folder when it is missing, has no
    ``saved_model.pb`` or no description, and ``ExportError`` (a ValueError)
    naming the file when the description breaks the contract.
    """
    from tfcmvp.export import read_export_info

    return read_export_info(model_dir)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """What one video's clips are: the keyword arguments of ``make_eval_sample``."""

    modality: str
    positions: str  # "vcop" or "sliding" (or "authors"): see tfcmvp.data.sampling
    num_clips: Optional[int]  # None under "sliding", whose count depends on the video
    clip_len: int
    clip_stride: int
    motion_len: int
    crop_size: int
    resize_short: int
    mv_clip: float
    mv_div: float
    mv_resize_method: str

    def sample_kwargs(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def input_shape(self) -> tuple:
        """Shape of one clip as the exported network takes it."""
        s = self.crop_size
        if self.modality == "rgb":
            return (self.clip_len, s, s, 3)
        if self.modality == "iframe":
            return (s, s, 3)
        return (self.motion_len, s, s, 2)


def _modality(info: dict, shape: list) -> str:
    network = info["network"]
    if network in NETWORK_MODALITY:
        return NETWORK_MODALITY[network]
    if network == "classifier":
        # A finetuned network: its input shape says what it eats.
        if len(shape) == 3:
            return "iframe"
        if len(shape) == 4:
            return "motion" if shape[-1] == 2 else "rgb"
    raise ValueError(
        f"export network {network!r} with input shape {shape} is not one of "
        f"{sorted(NETWORK_MODALITY)} or a classifier"
    )


def eval_options(info: dict, num_clips: int, positions: str = "vcop") -> EvalOptions:
    """Clip options of an export (see the module docstring).

    ``num_clips`` clips per video at the positions ``positions``
    (``"sliding"`` ignores ``num_clips``: the options then hold None).

    Raises ValueError naming the offending field when the export's input
    contract cannot be produced by the evaluation pipeline (non-square crop,
    wrong channels, RGB statistics other than ImageNet's, missing stride).
    """
    from tfcmvp.config import DataConfig
    from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
    from tfcmvp.data.sampling import check_positions

    check_positions(positions)
    if not isinstance(num_clips, int) or isinstance(num_clips, bool) or num_clips < 1:
        raise ValueError(f"clips per video must be a positive int, got {num_clips!r}")
    contract = info["input"]
    shape = [int(d) for d in contract["shape"]]
    modality = _modality(info, shape)
    rank, channels = (3, 3) if modality == "iframe" else (4, 3 if modality == "rgb" else 2)
    if len(shape) != rank or shape[-1] != channels:
        raise ValueError(
            f"export input.shape {shape} does not fit a {info['network']!r} network "
            f"(modality {modality!r}: rank {rank}, {channels} channels)"
        )
    height, width = shape[-3], shape[-2]
    if height != width:
        raise ValueError(
            f"export input.shape {shape}: the evaluation crop is square, got {height}x{width}"
        )
    frames = shape[0] if rank == 4 else 1
    if contract.get("frames") not in (None, frames) and rank == 4:
        raise ValueError(
            f"export input.frames {contract['frames']} disagrees with input.shape {shape}"
        )
    defaults = DataConfig()
    if modality in ("rgb", "iframe"):
        # The pipeline normalises with ImageNet statistics only.
        for key, expected in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            if contract.get(key) is not None and not np.allclose(
                contract[key], expected, atol=1e-6
            ):
                raise ValueError(
                    f"export input.{key} {contract[key]} is not the ImageNet "
                    f"{key} {list(expected)} the evaluation pipeline uses"
                )
    if modality == "rgb":
        stride = contract.get("stride")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(
                f"export input.stride must be a positive int for a video network, got {stride!r}"
            )
        clip_len, clip_stride, motion_len = frames, stride, _default_motion_len()
    elif modality == "motion":
        # Motion windows at the clip positions: a span of T frames at stride 1.
        clip_len, clip_stride, motion_len = frames, 1, frames
    else:
        # One frame per clip: the I-frame nearest the clip position.
        clip_len, clip_stride, motion_len = 1, 1, _default_motion_len()
    # Exports carry resize_short; the paper's 128 / 112 ratio for ones that do not.
    resize_short = contract.get("resize_short") or int(
        round(height * export_contract.TEST_RESIZE_RATIO)
    )
    return EvalOptions(
        modality=modality,
        positions=positions,
        num_clips=None if positions == "sliding" else num_clips,
        clip_len=int(clip_len),
        clip_stride=int(clip_stride),
        motion_len=int(motion_len),
        crop_size=height,
        resize_short=int(resize_short),
        mv_clip=float(contract.get("mv_clip") or defaults.mv_clip),
        mv_div=float(contract.get("mv_div") or defaults.mv_div),
        mv_resize_method=str(contract.get("mv_resize_method") or defaults.mv_resize_method),
    )


def _default_motion_len() -> int:
    # Unused by rgb / iframe clips, but part of the options and so of the cache key.
    from tfcmvp.config import DataConfig

    return DataConfig.motion_len


# --------------------------------------------------------------------------- data


def _split_size(manifest: Optional[dict], split: str) -> Optional[int]:
    try:
        return int(manifest["splits"][split]["written"])
    except (TypeError, KeyError, ValueError):
        return None


# --------------------------------------------------------------------------- cache keys


def _hash_file(digest, path: pathlib.Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)


def model_fingerprint(model_dir) -> str:
    """SHA-256 of the export's graph, variable index and export JSON (hex)."""
    model_dir = pathlib.Path(model_dir)
    digest = hashlib.sha256()
    for relative in (
        "saved_model.pb",
        os.path.join("variables", "variables.index"),
        str(EXPORT_INFO_PATH),
    ):
        path = model_dir / relative
        digest.update(relative.encode() + b"\0")
        if path.is_file():  # a model without variables has no index
            _hash_file(digest, path)
        digest.update(b"\0")
    return digest.hexdigest()


def data_fingerprint(data_dir, shards: dict) -> str:
    """SHA-256 of ``manifest.json`` and the name and size of every shard (hex)."""
    data_dir = pathlib.Path(data_dir)
    digest = hashlib.sha256()
    manifest_path = data_dir / manifest_lib.MANIFEST_NAME
    if manifest_path.is_file():
        _hash_file(digest, manifest_path)
    for split in sorted(shards):
        for name in shards[split]:
            digest.update(f"\0{split}\0{os.path.basename(name)}\0{os.path.getsize(name)}".encode())
    return digest.hexdigest()


def _key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def resolve_cache_dir(cache_dir, data_dir, fallback_cache_dir=None) -> Optional[pathlib.Path]:
    """The folder the cache lives in (created), or None when caching is impossible.

    ``cache_dir`` given: that folder (an error if it cannot be created).
    Otherwise ``DATA/.tfcmvp_cache``, then ``fallback_cache_dir``, whichever
    is writable first; None (with a warning) when neither is.
    """
    if cache_dir is not None:
        path = pathlib.Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    candidates = [pathlib.Path(data_dir) / CACHE_DIR_NAME]
    if fallback_cache_dir is not None:
        candidates.append(pathlib.Path(fallback_cache_dir))
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    logger.warning(
        "no writable cache folder among %s: features are not cached",
        ", ".join(map(str, candidates)),
    )
    return None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class SplitFeatures:
    """Features of the videos of one split, in shard order."""

    features: np.ndarray  # float32 [V, D]: mean of the clip embeddings
    labels: np.ndarray  # int64 [V]
    video_ids: np.ndarray  # unicode [V]
    label_names: np.ndarray  # unicode [V]
    clip_counts: Optional[np.ndarray] = None  # int64 [V]: clips averaged per video

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclasses.dataclass
class Thumbnails:
    """JPEG thumbnails of one split's videos, decoded on access: ``thumbs[i]`` uint8 [h, w, 3]."""

    data: np.ndarray  # uint8 [total bytes]: the JPEGs back to back
    offsets: np.ndarray  # int64 [V + 1]: JPEG i is data[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_jpegs(cls, jpegs) -> "Thumbnails":
        jpegs = [bytes(j) for j in jpegs]
        offsets = np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]).astype(np.int64)
        return cls(np.frombuffer(b"".join(jpegs), np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index) -> np.ndarray:
        from PIL import Image

        if not -len(self) <= index < len(self):
            raise IndexError(f"thumbnail {index} of {len(self)}")
        index %= len(self)
        encoded = self.data[self.offsets[index] : self.offsets[index + 1]].tobytes()
        with Image.open(io.BytesIO(encoded)) as image:
            return np.asarray(image.convert("RGB"))


@dataclasses.dataclass
class ExtractedFeatures:
    """Output of :func:`extract_features`."""

    splits: dict  # {"test": SplitFeatures, "train": SplitFeatures}
    info: dict  # the export JSON
    options: EvalOptions
    key: str  # the cache key (see the module docstring)
    data_key: str  # the data part of it (names the thumbnail cache)
    cache_path: Optional[pathlib.Path]  # None when uncached
    from_cache: bool
    thumbnails: Optional[dict] = None  # {"test": Thumbnails, "train": Thumbnails} when asked for


def _save_npz(path: pathlib.Path, arrays: dict) -> None:
    # Through a file object (np.savez would append ".npz" to the temporary
    # name), then renamed, so a killed run never leaves half a cache file.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _load_npz(path: pathlib.Path, key: str) -> Optional[dict]:
    """The arrays of a cache file whose meta carries ``key``; None when absent or stale."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays["meta"]))
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable cache file %s: %s", path, error)
        return None
    if meta.get("key") != key:
        return None
    return arrays


def _split_arrays(split: str, feats: SplitFeatures) -> dict:
    return {
        f"{split}/features": feats.features,
        f"{split}/labels": feats.labels,
        f"{split}/video_ids": feats.video_ids,
        f"{split}/label_names": feats.label_names,
        f"{split}/clip_counts": feats.clip_counts,
    }


def _split_from_arrays(split: str, arrays: dict) -> SplitFeatures:
    return SplitFeatures(
        features=arrays[f"{split}/features"].astype(np.float32),
        labels=arrays[f"{split}/labels"].astype(np.int64),
        video_ids=arrays[f"{split}/video_ids"].astype(str),
        label_names=arrays[f"{split}/label_names"].astype(str),
        clip_counts=arrays[f"{split}/clip_counts"].astype(np.int64),
    )


# --------------------------------------------------------------------------- the model


def load_embedding_fn(model_dir) -> Callable:
    """Loads the export's ``embed`` signature: a function clips -> ``[n, D]`` tensor.

    Module level so tests can count the model calls by replacing it.
    """
    from tfcmvp.export import load_export

    loaded, _ = load_export(model_dir)  # checks the signatures the description lists
    name, output = export_contract.EMBED, export_contract.EMBED_OUTPUT
    if name not in loaded.signatures:
        raise ValueError(
            f"{model_dir}: the SavedModel has no {name!r} signature "
            f"(it has {sorted(loaded.signatures)})"
        )
    signature = loaded.signatures[name]

    def embed(clips):
        outputs = signature(**{export_contract.INPUT_NAME: clips})
        if output not in outputs:
            raise ValueError(
                f"{model_dir}: signature {name!r} returns {sorted(outputs)}, expected {output!r}"
            )
        return outputs[output]

    embed.loaded = loaded  # keeps the variables alive as long as the function
    return embed


# --------------------------------------------------------------------------- the pass


def thumbnail(serialized, shape=THUMB_SHAPE):
    """The middle RGB frame of one record, fitted into ``shape`` with black padding, as JPEG."""
    import tensorflow as tf

    spec = schema.feature_spec()
    parsed = tf.io.parse_single_example(serialized, {schema.RGB_ENCODED: spec[schema.RGB_ENCODED]})
    encoded = parsed[schema.RGB_ENCODED].values  # [T] JPEG strings
    count = tf.size(encoded)

    def middle():
        image = tf.io.decode_jpeg(tf.gather(encoded, count // 2), channels=3)  # [H, W, 3]
        resized = tf.image.resize_with_pad(image, shape[0], shape[1], method="area")
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)  # [h, w, 3]

    # A video without frames fails in the evaluation sample with its own message.
    image = tf.cond(count > 0, middle, lambda: tf.zeros([*shape, 3], tf.uint8))
    return tf.io.encode_jpeg(image, quality=THUMB_QUALITY)


def _video_dataset(
    files, options: EvalOptions, *, with_clips: bool, with_thumbs: bool, videos_per_batch: int
):
    """One read of the shards: the evaluation sample and / or the thumbnail of each video."""
    import tensorflow as tf

    from tfcmvp.data import evaluation, reader
    from tfcmvp.data import features as keys

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
            out["thumbnail"] = thumbnail(serialized)
        return out

    ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(videos_per_batch).prefetch(tf.data.AUTOTUNE)


def _progress(total, desc: str, progress: Optional[bool]):
    from tqdm.auto import tqdm

    # progress=None: a bar on a terminal only, not in logs.
    return tqdm(
        total=total,
        desc=desc,
        unit="video",
        disable=None if progress is None else not progress,
        leave=False,
    )


def _run_split(
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
    import tensorflow as tf

    from tfcmvp.data import features as keys
    from tfcmvp.retrieval.protocols import VCOP, video_features

    # Sliding windows give every video its own clip count N_v: one video per batch.
    videos_per_batch = 1 if options.num_clips is None else max(1, batch_size // options.num_clips)
    ds = _video_dataset(
        files, options, with_clips=True, with_thumbs=with_thumbs, videos_per_batch=videos_per_batch
    )
    feats, labels, ids, names, thumbs, counts = [], [], [], [], [], []
    with _progress(total, f"{split} features", progress) as bar:
        for batch in ds:
            clips = batch[keys.CLIPS]  # [B, N, *input_shape]
            num_videos, num_clips = int(clips.shape[0]), int(clips.shape[1])
            if tuple(clips.shape[2:]) != options.input_shape:
                raise ValueError(
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
            clip_feats = clip_feats.reshape(num_videos, num_clips, -1)  # [B, N, D]
            # The clip mean is the same under both protocols; VCOP only names it here.
            feats.append(video_features(clip_feats, VCOP))  # [B, D]
            counts.extend([num_clips] * num_videos)
            labels.append(batch[keys.LABEL].numpy())
            ids.extend(v.decode() for v in batch[keys.VIDEO_ID].numpy())
            names.extend(v.decode() for v in batch[keys.LABEL_NAME].numpy())
            if with_thumbs:
                thumbs.append(batch["thumbnail"].numpy())
            bar.update(num_videos)
    if not feats:
        raise ValueError(f"the {split} shards hold no videos: {files}")
    result = SplitFeatures(
        features=np.concatenate(feats).astype(np.float32),
        labels=np.concatenate(labels).astype(np.int64),
        video_ids=np.asarray(ids, dtype=str),
        label_names=np.asarray(names, dtype=str),
        clip_counts=np.asarray(counts, np.int64),
    )
    return result, (Thumbnails.from_jpegs(np.concatenate(thumbs)) if with_thumbs else None)


def _thumbnail_pass(files, options: EvalOptions, *, split: str, total, progress) -> tuple:
    from tfcmvp.data import features as keys

    ds = _video_dataset(files, options, with_clips=False, with_thumbs=True, videos_per_batch=64)
    thumbs, ids = [], []
    with _progress(total, f"{split} thumbnails", progress) as bar:
        for batch in ds:
            thumbs.append(batch["thumbnail"].numpy())
            ids.extend(v.decode() for v in batch[keys.VIDEO_ID].numpy())
            bar.update(len(thumbs[-1]))
    return Thumbnails.from_jpegs(np.concatenate(thumbs)), np.asarray(ids, dtype=str)


def _thumbs_path(cache_dir: pathlib.Path, data_key: str) -> pathlib.Path:
    return cache_dir / f"thumbs-{data_key[:16]}-{THUMB_SHAPE[0]}x{THUMB_SHAPE[1]}.npz"


def _thumbs_key(data_key: str) -> str:
    return _key({"version": CACHE_VERSION, "data": data_key, "thumb_shape": list(THUMB_SHAPE)})


def _cached_thumbnails(cache_dir, data_key, extracted_ids: dict) -> Optional[dict]:
    if cache_dir is None:
        return None
    arrays = _load_npz(_thumbs_path(cache_dir, data_key), _thumbs_key(data_key))
    if arrays is None:
        return None
    # Same videos in the same order, or the file belongs to other data.
    for split, ids in extracted_ids.items():
        if not np.array_equal(arrays[f"{split}/video_ids"].astype(str), ids):
            return None
    return {
        split: Thumbnails(arrays[f"{split}/thumb_data"], arrays[f"{split}/thumb_offsets"])
        for split in extracted_ids
    }


def _store_thumbnails(cache_dir, data_key, thumbs: dict, ids: dict) -> None:
    if cache_dir is None:
        return
    arrays = {"meta": np.asarray(json.dumps({"key": _thumbs_key(data_key)}))}
    for split in thumbs:
        arrays[f"{split}/thumb_data"] = thumbs[split].data
        arrays[f"{split}/thumb_offsets"] = thumbs[split].offsets
        arrays[f"{split}/video_ids"] = ids[split]
    _save_npz(_thumbs_path(cache_dir, data_key), arrays)


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
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model_dir, data_dir = pathlib.Path(model_dir), pathlib.Path(data_dir)
    info = read_export(model_dir)
    options = eval_options(info, clips, positions)
    shards = {split: find_shards(data_dir, split) for split in SPLITS}
    manifest = read_manifest(data_dir)
    data_key = data_fingerprint(data_dir, shards)
    key_payload = {
        "version": CACHE_VERSION,
        "model": model_fingerprint(model_dir),
        "data": data_key,
        "options": options.sample_kwargs(),
    }
    key = _key(key_payload)
    cache = resolve_cache_dir(cache_dir, data_dir, fallback_cache_dir) if use_cache else None
    cache_path = (
        cache / f"features-{_safe_name(model_dir.resolve().name)}-{key[:16]}.npz"
        if cache is not None
        else None
    )

    arrays = _load_npz(cache_path, key) if cache_path is not None else None
    if arrays is not None:
        logger.info("features of %s on %s from the cache %s", model_dir, data_dir, cache_path)
        splits = {split: _split_from_arrays(split, arrays) for split in SPLITS}
        result = ExtractedFeatures(splits, info, options, key, data_key, cache_path, True)
        if thumbnails:
            ids = {split: splits[split].video_ids for split in SPLITS}
            result.thumbnails = _cached_thumbnails(cache, data_key, ids)
            if result.thumbnails is None:
                made = {
                    split: _thumbnail_pass(
                        shards[split],
                        options,
                        split=split,
                        total=_split_size(manifest, split),
                        progress=progress,
                    )
                    for split in SPLITS
                }
                for split in SPLITS:
                    if not np.array_equal(made[split][1], splits[split].video_ids):
                        raise ValueError(
                            f"{data_dir}: the {split} shards changed while "
                            f"reading them (video ids differ from the cache)"
                        )
                result.thumbnails = {split: made[split][0] for split in SPLITS}
                _store_thumbnails(
                    cache, data_key, result.thumbnails, {split: made[split][1] for split in SPLITS}
                )
        return result

    embed = load_embedding_fn(model_dir)
    splits, thumbs = {}, {}
    # Thumbnails ride along with the features when they are wanted or not yet cached.
    make_thumbs = thumbnails or (cache is not None and not _thumbs_path(cache, data_key).is_file())
    for split in SPLITS:
        splits[split], thumbs[split] = _run_split(
            embed,
            shards[split],
            options,
            split=split,
            batch_size=batch_size,
            with_thumbs=make_thumbs,
            total=_split_size(manifest, split),
            progress=progress,
        )
    ids_known = {split: splits[split].video_ids for split in SPLITS}
    if cache_path is not None:
        meta = dict(
            key=key,
            model_dir=str(model_dir),
            data_dir=str(data_dir),
            options=options.sample_kwargs(),
            network=info.get("network"),
            backbone=info.get("backbone"),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        arrays = {"meta": np.asarray(json.dumps(meta))}
        for split in SPLITS:
            arrays.update(_split_arrays(split, splits[split]))
        _save_npz(cache_path, arrays)
        logger.info("cached features in %s", cache_path)
        if make_thumbs:
            _store_thumbnails(cache, data_key, thumbs, ids_known)
    result = ExtractedFeatures(splits, info, options, key, data_key, cache_path, False)
    if thumbnails:
        result.thumbnails = thumbs
    return result
