"""Gradient clipping on 2 replicas vs 1: ReplicaSumSGD and stock Keras SGD, one step.

A small Dense model with large errors, so the clip (global_clipnorm 1.0) is
certainly active. Prints one JSON line: ``norm`` (the one-replica gradient
norm), ``part_norm`` (one replica's part on two), ``ours`` and ``stock`` (the
largest weight difference of ReplicaSumSGD and of keras SGD on two replicas
from ReplicaSumSGD on one). tests/test_training_distributed.py runs it.

By hand, from the repository root::

    PYTHONPATH=. python tests/scripts/clip_on_two_replicas.py
"""

import json

import keras
import numpy as np
import tensorflow as tf

from tfcmvp.config import RuntimeConfig
from tfcmvp.training.optimizer import ReplicaSumSGD
from tfcmvp.training.strategy import configure_devices, make_strategy

TWO_CPUS = RuntimeConfig(virtual_cpus=2)


def one_step(strategy, optimizer_class, x, y):
    """The model's weights after one clipped step, and the largest local gradient norm."""
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer = optimizer_class(learning_rate=0.1, momentum=0.9, global_clipnorm=1.0)
        optimizer.build(model.trainable_variables)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            # Sum over the local batch / global batch: the pretraining contract.
            loss = tf.reduce_sum(tf.square(model(x) - y)) / 4.0
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.linalg.global_norm(grads)

    dataset = tf.data.Dataset.from_tensors((x, y))
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    norms = tf.function(lambda b: strategy.run(replica_step, args=b))(batch)
    norm = max(float(n) for n in strategy.experimental_local_results(norms))
    return [w.numpy() for w in model.weights], norm


def largest_difference(a, b) -> float:
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def main() -> None:
    configure_devices(TWO_CPUS)  # before anything initialises TF devices
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)).astype("float32")
    y = (10 * rng.normal(size=(4, 2))).astype("float32")  # large errors: gradient norm >> clip
    mirrored = make_strategy(TWO_CPUS)
    reference, norm = one_step(tf.distribute.get_strategy(), ReplicaSumSGD, x, y)
    ours, part_norm = one_step(mirrored, ReplicaSumSGD, x, y)
    stock, _ = one_step(mirrored, keras.optimizers.SGD, x, y)
    print(
        json.dumps(
            {
                "norm": norm,
                "part_norm": part_norm,
                "ours": largest_difference(ours, reference),
                "stock": largest_difference(stock, reference),
            }
        )
    )


if __name__ == "__main__":
    main()
