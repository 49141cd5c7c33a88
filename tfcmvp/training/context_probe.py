"""What does the context task use? Pretext accuracy of a trained model under cue removals.

Context matching (paper Eq. 1) asks which I-frame of the batch belongs to a
clip. A model can solve it with what the paper wants (the scene: layout and
texture) or with shortcuts that do not transfer: colour statistics shared by
the clip and its I-frame, or an I-frame that is the very moment of one of the
clip's frames (object positions and all). This probe restores a pretraining
checkpoint and measures context top-1 accuracy on the same batches with one
cue removed at a time:

``as trained``        the batches as the training pipeline makes them
``hue rotated``       the I-frame's hue turned by half the colour wheel: its
                      colours no longer match the clip's, its structure does
``grayscale``         clip and I-frame both grey: no colour at all
``I-frame shuffled``  each clip gets the I-frame of another clip of the batch:
                      the chance level of this batch size (a control)

A large drop under ``hue rotated`` / ``grayscale`` means the task is solved by
colour. The identical-frame cue is measured by training with and without
``data.iframe_excludes_clip_frames`` (it cannot be removed after sampling).
Motion top-1 is reported alongside for reference.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Callable, Dict

import numpy as np
import tensorflow as tf

from tfcmvp import losses
from tfcmvp.config import load_saved_config
from tfcmvp.data import keys, pretrain_dataset
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from tfcmvp.errors import RunNotFoundError
from tfcmvp.manifest import find_shards
from tfcmvp.training.pretrain_model import PretrainModel

logger = logging.getLogger(__name__)

_MEAN = tf.constant(IMAGENET_MEAN, tf.float32)
_STD = tf.constant(IMAGENET_STD, tf.float32)


def _pixels(x):
    return x * _STD + _MEAN  # ImageNet-normalised -> [0, 1]


def _normalised(x):
    return (x - _MEAN) / _STD


def _hue_rotated(batch: dict) -> dict:
    iframe = tf.image.adjust_hue(tf.clip_by_value(_pixels(batch[keys.IFRAME]), 0, 1), 0.5)
    return {**batch, keys.IFRAME: _normalised(iframe)}


def _grayscale(batch: dict) -> dict:
    def grey(x):
        rgb = tf.clip_by_value(_pixels(x), 0, 1)
        return _normalised(tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(rgb)))

    return {
        **batch,
        keys.CLIP: grey(batch[keys.CLIP]),
        keys.IFRAME: grey(batch[keys.IFRAME]),
    }


def _shuffled(batch: dict) -> dict:
    return {**batch, keys.IFRAME: tf.roll(batch[keys.IFRAME], shift=1, axis=0)}


PROBES: Dict[str, Callable[[dict], dict]] = {
    "as trained": lambda batch: batch,
    "hue rotated": _hue_rotated,
    "grayscale": _grayscale,
    "I-frame shuffled": _shuffled,
}


def load_pretrained(workdir) -> tuple:
    """(config, PretrainModel with the newest checkpoint of `workdir` restored)."""
    workdir = pathlib.Path(workdir)
    config = load_saved_config(workdir / "config.yaml")
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    if latest is None:
        raise RunNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}")
    model = PretrainModel.from_pretrain_config(config)
    model.build(None)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return config, model


def context_probe(
    workdir,
    data_dir,
    *,
    split: str = "train",
    batches: int = 20,
    batch_size: int = 16,
    seed: int = 0,
) -> Dict[str, Dict[str, float]]:
    """Pretext top-1 of the model in `workdir` on `batches` batches of `split`,
    under every cue removal of :data:`PROBES`.

    Returns ``{probe: {"context_acc": ..., "motion_acc": ...}}`` (fractions),
    each the mean over the same ``batches x batch_size`` samples.
    """
    config, model = load_pretrained(workdir)
    files = find_shards(data_dir, split)
    dataset = pretrain_dataset(
        files,
        batch_size,
        config.data,
        seed=seed,
        deterministic=True,
        repeat=True,
        drop_remainder=True,
        count_skipped=False,
    )
    hits = {name: {"context_acc": [], "motion_acc": []} for name in PROBES}
    for batch in dataset.take(batches):
        for name, probe in PROBES.items():
            outputs = model(probe(batch), training=False)
            _, context_hit = losses.context_infonce(
                outputs["context_query"], outputs["context_key"], config.loss.temperature
            )
            hits[name]["context_acc"].append(float(tf.reduce_mean(context_hit)))
            if "motion_query" in outputs:
                _, motion_hit = losses.motion_infonce(
                    outputs["motion_query"], outputs["motion_keys"], config.loss.temperature
                )
                hits[name]["motion_acc"].append(float(tf.reduce_mean(motion_hit)))
    return {
        name: {
            key: float(np.mean(values)) if values else float("nan")
            for key, values in probe_hits.items()
        }
        for name, probe_hits in hits.items()
    }


def format_probe(results: Dict[str, Dict[str, float]], batch_size: int) -> str:
    """The probe as a table, with the chance level of the batch size."""
    lines = [
        f"{'probe':<18}{'context acc':>12}{'motion acc':>12}   (chance: context "
        f"{1 / batch_size:.3f})"
    ]
    for name, values in results.items():
        lines.append(f"{name:<18}{values['context_acc']:>12.3f}{values['motion_acc']:>12.3f}")
    return "\n".join(lines)
