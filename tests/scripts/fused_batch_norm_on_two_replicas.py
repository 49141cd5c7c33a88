"""Whether FusedBatchNormalization(synchronized=True) fuses, on 2 replicas and on 1.

Prints one JSON line: ``two`` (the answer inside each of the 2 replicas of a
MirroredStrategy over 2 logical CPUs) and ``one`` (outside any strategy).
tests/test_models_heads.py runs it.

By hand, from the repository root::

    PYTHONPATH=. python tests/scripts/fused_batch_norm_on_two_replicas.py
"""

import json

import numpy as np
import tensorflow as tf

from tfcmvp.config import RuntimeConfig
from tfcmvp.models.fused_batch_norm import FusedBatchNormalization
from tfcmvp.training.strategy import configure_devices, make_strategy

TWO_CPUS = RuntimeConfig(virtual_cpus=2)


def main() -> None:
    configure_devices(TWO_CPUS)  # before anything initialises TF devices
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 4, 6)), tf.float32)
    layer = FusedBatchNormalization(synchronized=True)
    strategy = make_strategy(TWO_CPUS)
    per_replica = strategy.run(tf.function(lambda: tf.constant(layer._can_fuse(x, None))))
    two = [bool(v) for v in strategy.experimental_local_results(per_replica)]
    print(json.dumps({"two": two, "one": layer._can_fuse(x, None)}))


if __name__ == "__main__":
    main()
