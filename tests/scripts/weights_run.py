"""One tiny pretraining or finetuning run through the library entry, recording weights.

The determinism and multi-replica tests start this in fresh processes (logical
CPUs and TF_CONFIG must be set before TensorFlow initialises its devices, and
two `tfcmvp` commands are two processes). It writes ``OUT.npz`` (every recorded
weight before and after `fit`: ``before_0..``, ``after_0..``) and ``OUT.json``:
``replicas``, ``history`` (``row``: its first row), ``results`` (finetuning),
``names`` and ``trainable`` of the recorded weights, and whether op determinism
was on during the run (``op_determinism_in_run``) and after it
(``op_determinism_after``).

By hand, from the repository root (the tiny test config, painted shards in DATA)::

    PYTHONPATH=.:tests python tests/scripts/weights_run.py pretrain \\
        --data DATA --workdir /tmp/run --out /tmp/run-weights \\
        --override train.epochs=1 --no-grappler
"""

import argparse
import contextlib
import json

import keras
import numpy as np
from tensorflow.python.framework import config as tf_config

from tfcmvp.finetuning.finetune import finetune
from tfcmvp.training.pretrain import pretrain
from tfcmvp.training.strategy import configure_devices

from finetune_support import tiny_finetune_config
from training_support import tiny_config, without_grappler


class RecordWeights(keras.callbacks.Callback):
    """Keeps the recorded weights (the whole model's, or its video network's) before and
    after `fit`, their paths, which are trainable, and whether op determinism was on."""

    def __init__(self, video_network_only: bool):
        super().__init__()
        self.video_network_only = video_network_only

    def recorded(self) -> list:
        return (self.model.video_network if self.video_network_only else self.model).weights

    def on_train_begin(self, logs=None):
        weights = self.recorded()
        network = self.model.video_network if self.video_network_only else self.model
        trainable = {id(v) for v in network.trainable_weights}
        self.names = [v.path for v in weights]
        self.trainable = [id(v) in trainable for v in weights]
        self.before = [v.numpy() for v in weights]
        self.op_determinism = tf_config.is_op_determinism_enabled()

    def on_train_end(self, logs=None):
        self.after = [v.numpy() for v in self.recorded()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=("pretrain", "finetune"))
    parser.add_argument("--data", required=True, help="folder of the training shards")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True, help="path prefix of OUT.json and OUT.npz")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="section.field=value over the tiny test config (repeatable)",
    )
    parser.add_argument(
        "--video-network-only",
        action="store_true",
        help="record the video network's weights (pretraining) instead of the whole model's",
    )
    parser.add_argument(
        "--no-grappler",
        action="store_true",
        help="TensorFlow's graph optimiser off (its first-call cost exceeds these tiny runs)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.task == "pretrain":
        config = tiny_config(*args.override)
    else:
        config = tiny_finetune_config(*args.override)
    configure_devices(config.runtime)  # before anything initialises TF devices
    weights = RecordWeights(args.video_network_only)
    with without_grappler() if args.no_grappler else contextlib.nullcontext():
        if args.task == "pretrain":
            result = pretrain(config, args.data, args.workdir, verbose=0, callbacks=[weights])
        else:
            result = finetune(
                config, args.data, args.workdir, random_init=True, verbose=0, callbacks=[weights]
            )
    np.savez(
        args.out + ".npz",
        **{f"before_{i}": w for i, w in enumerate(weights.before)},
        **{f"after_{i}": w for i, w in enumerate(weights.after)},
    )
    info = {
        "replicas": result.num_replicas,
        "history": result.history,
        "row": result.history[0],
        "results": getattr(result, "results", None),
        "names": weights.names,
        "trainable": weights.trainable,
        "op_determinism_in_run": weights.op_determinism,
        "op_determinism_after": tf_config.is_op_determinism_enabled(),
    }
    with open(args.out + ".json", "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main()
