"""Steps of tfcmvp's optimizer on 2 replicas (2 logical CPUs), 2 examples per replica.

Reads DATA (``.npz``: initial weights ``w`` [3, 2] and ``b`` [2], and per step
the global batch ``xs`` [S, 4, 3], ``ys`` [S, 4, 2]), builds the optimizer of
the config given by the overrides, and minimises half the squared error,
summed per replica and divided by the global batch of 4. Prints one JSON line:
``replicas`` and ``history`` (the weights after each step).
tests/test_training_optimizer_parity.py compares it with PyTorch's SGD.

By hand, from the repository root::

    PYTHONPATH=. python tests/scripts/sgd_on_two_replicas.py DATA.npz \\
        optimizer.weight_decay=0.01 train.epochs=4
"""

import argparse
import json

import numpy as np
import tensorflow as tf

from tfcmvp import config as cfg
from tfcmvp.config import RuntimeConfig
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.strategy import configure_devices, make_strategy

TWO_CPUS = RuntimeConfig(virtual_cpus=2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help=".npz with w, b, xs, ys")
    parser.add_argument("overrides", nargs="*", help="section.field=value config overrides")
    args = parser.parse_args(argv)

    configure_devices(TWO_CPUS)  # before anything initialises TF devices
    data = np.load(args.data)
    strategy = make_strategy(TWO_CPUS)
    config = cfg.load_config(None, args.overrides)
    with strategy.scope():
        variables = [tf.Variable(data["w"]), tf.Variable(data["b"])]
        optimizer = build_optimizer(config, steps_per_epoch=5)
        optimizer.build(variables)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            # This replica's 2 examples summed, divided by the global batch of 4.
            loss = tf.reduce_sum(0.5 * tf.square(x @ variables[0] + variables[1] - y)) / 4.0
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))

    step = tf.function(lambda batch: strategy.run(replica_step, args=batch))
    history = []
    for x, y in zip(data["xs"], data["ys"]):
        dataset = tf.data.Dataset.from_tensors((x, y))
        step(next(iter(strategy.experimental_distribute_dataset(dataset))))  # 2 per replica
        history.append([v.numpy().tolist() for v in variables])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "history": history}))


if __name__ == "__main__":
    main()
