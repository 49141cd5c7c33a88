"""The finetuned classifier as a tfcmvp export (network "classifier")."""

from __future__ import annotations

import pathlib
from typing import Sequence

import tensorflow as tf

from tfcmvp.config import dump_config
from tfcmvp.export import CLASSIFY, export_network
from tfcmvp.export.contract import make_export_info, video_input_contract
from tfcmvp.finetuning.classifier import VideoClassifier
from tfcmvp.finetuning.config import FinetuneConfig


def export_classifier(
    model: VideoClassifier,
    config: FinetuneConfig,
    output_dir,
    class_names: Sequence[str],
    source: dict,
) -> pathlib.Path:
    """Writes the finetuned classifier as a tfcmvp export (network "classifier").

    Signatures: ``classify`` (clips -> {"logits", "probabilities"}, the
    softmax of the logits) plus the ``embed`` / ``features`` of its video network.
    """

    def classify(clips):  # [N, T, S, S, 3]
        logits = tf.cast(model(clips, training=False), tf.float32)  # [N, K]
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    data = config.data
    input_spec = video_input_contract(data.clip_len, data.clip_stride, data.crop_size)
    input_spec["resize_short"] = config.test.resize_short  # the geometry it was tested with
    info = make_export_info(
        network="classifier",
        backbone=config.model.video_network,
        input_spec=input_spec,
        source=source,
        num_classes=len(class_names),
        class_names=list(class_names),
    )
    # embed / features come from the video network; assets/network.weights.h5 holds
    # its weights (the classifier's are in the SavedModel's variables and in
    # WORKDIR/weights/classifier.weights.h5).
    return export_network(
        model.video_network,
        output_dir,
        info,
        dump_config(config),
        extra_signatures={CLASSIFY: classify},
        overwrite=True,
    )
