"""The test protocol of action recognition: 10 clips per video, softmax averaged.

Every test video gives ``num_clips`` centre-cropped clips at the authors'
test positions, the midpoints of ``num_clips`` equal segments of the valid
start range (``TEST_POSITIONS``; :func:`tfcmvp.data.eval_dataset`); the
classifier's softmax probabilities are averaged over the clips, and the video
counts as a top-k hit when its label is among the k most probable classes.
Ties count in the label's favour (as ``tf.math.in_top_k``): a hit when fewer
than k classes are strictly more probable.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
from typing import Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfcmvp.data import eval_dataset, keys
from tfcmvp.errors import InvalidDataError
from tfcmvp.finetuning.config import FinetuneConfig

TOP_K = (1, 5)
# Clip positions of the test: the authors' (``VideoDataset`` of their code),
# which repeats no clip on videos of at least span + num_clips frames.
TEST_POSITIONS = "authors"


@dataclasses.dataclass
class EvalResult:
    """Accuracy of a classifier on a test set.

    Attributes:
      top1, top5: accuracy in percent.
      num_videos: test videos V.
      probabilities: float64 [V, K], the clip-averaged softmax of each video.
      labels: int64 [V].
      video_ids: V ids, in the order of the test set.
    """

    top1: float
    top5: float
    num_videos: int
    probabilities: np.ndarray
    labels: np.ndarray
    video_ids: list

    def metrics(self) -> dict:
        """{"top1": %, "top5": %, "num_videos": V}."""
        return {"top1": self.top1, "top5": self.top5, "num_videos": self.num_videos}

    def write_predictions(self, path, class_names: Sequence[str] = ()) -> pathlib.Path:
        """One CSV row per video: id, label, top-1 prediction and its probability."""
        path = pathlib.Path(path)
        tmp = path.with_name(path.name + ".tmp")
        predicted = np.argmax(self.probabilities, axis=-1) if self.num_videos else []
        name = lambda k: class_names[k] if 0 <= k < len(class_names) else ""  # noqa: E731
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                [
                    "video_id",
                    "label",
                    "label_name",
                    "predicted",
                    "predicted_name",
                    "probability",
                    "label_probability",
                ]
            )
            for i, video in enumerate(self.video_ids):
                label, guess = int(self.labels[i]), int(predicted[i])
                writer.writerow(
                    [
                        video,
                        label,
                        name(label),
                        guess,
                        name(guess),
                        f"{self.probabilities[i, guess]:.6f}",
                        f"{self.probabilities[i, label]:.6f}",
                    ]
                )
        os.replace(tmp, path)
        return path


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def top_k_hits(probabilities: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """bool [V]: the label is among the k most probable classes (ties count as hits)."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels, np.int64)
    label_p = probabilities[np.arange(len(labels)), labels]  # [V]
    higher = np.sum(probabilities > label_p[:, None], axis=-1)  # [V]
    return higher < k


def evaluate_clips(predict_logits: Callable, batches: Iterable[dict]) -> EvalResult:
    """Runs the test protocol over batches of videos.

    Args:
      predict_logits: clips [M, *clip_shape] -> logits [M, K] (a Keras model,
        a tf.function, any callable returning something np.asarray accepts).
      batches: dicts with "clips" [V, N, *clip_shape] (N clips per video),
        "label" [V] and optionally "video_id" [V] (bytes or str), as
        ``tfcmvp.data.eval_dataset(..., batch_size=...)`` yields them.

    Returns:
      :class:`EvalResult`; accuracies of an empty test set are NaN.
    """
    probabilities, labels, ids = [], [], []
    for batch in batches:
        clips = np.asarray(batch[keys.CLIPS])
        videos, num_clips = clips.shape[:2]
        flat = clips.reshape((videos * num_clips, *clips.shape[2:]))  # [V * N, ...]
        logits = np.asarray(predict_logits(flat))  # [V * N, K]
        per_clip = softmax(logits).reshape(videos, num_clips, -1)  # [V, N, K]
        probabilities.append(per_clip.mean(axis=1))  # [V, K]
        labels.append(np.asarray(batch[keys.LABEL], np.int64).reshape(videos))
        raw = batch.get(keys.VIDEO_ID)
        raw = [None] * videos if raw is None else np.asarray(raw).reshape(videos)
        ids.extend(_text(v) if v is not None else str(len(ids) + j) for j, v in enumerate(raw))
    if not probabilities:
        return EvalResult(
            float("nan"), float("nan"), 0, np.zeros([0, 0]), np.zeros([0], np.int64), []
        )
    probabilities = np.concatenate(probabilities)
    labels = np.concatenate(labels)
    num_classes = probabilities.shape[-1]
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise InvalidDataError(
            f"test labels {sorted(set(bad.tolist()))[:5]} lie outside the "
            f"classifier's {num_classes} classes"
        )
    top1, top5 = (100.0 * float(np.mean(top_k_hits(probabilities, labels, k))) for k in TOP_K)
    return EvalResult(top1, top5, len(labels), probabilities, labels, ids)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def make_test_dataset(config: FinetuneConfig, files) -> tf.data.Dataset:
    """The test split as batches of ``test.batch_size`` videos x ``test.num_clips`` clips."""
    return eval_dataset(
        files,
        config.data,
        modality="rgb",
        positions=TEST_POSITIONS,
        num_clips=config.test.num_clips,
        resize_short=config.test.resize_short,
        batch_size=config.test.batch_size,
    )


def make_predict_fn(model) -> Callable:
    """A compiled clips -> logits function of `model` in inference mode."""

    @tf.function(reduce_retracing=True)
    def predict(clips):
        return model(clips, training=False)

    return predict


def evaluate_classifier(model, config: FinetuneConfig, files) -> EvalResult:
    """The 10-clip test of `model` on the shards `files` (see the module docstring)."""
    dataset = make_test_dataset(config, files).map(
        lambda batch: {key: batch[key] for key in (keys.CLIPS, keys.LABEL, keys.VIDEO_ID)}
    )
    return evaluate_clips(make_predict_fn(model), dataset.as_numpy_iterator())
