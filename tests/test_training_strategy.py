"""Strategy selection, per-replica batch and the logical-CPU split."""

import pytest
import tensorflow as tf

from tfcmvp.config import RuntimeConfig
from tfcmvp.training.strategy import (
    configure_devices,
    is_chief,
    make_strategy,
    per_replica_batch_size,
    worker_name,
)


def test_per_replica_batch_divides_or_names_both_numbers():
    assert per_replica_batch_size(64, 4) == 16
    assert per_replica_batch_size(512, 32) == 16
    with pytest.raises(
        ValueError,
        match=r"global_batch_size=10 is not divisible by the 4 "
        r"replicas",
    ):
        per_replica_batch_size(10, 4)


def test_default_strategy_is_one_replica_and_the_chief():
    strategy = make_strategy(RuntimeConfig())
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy) and worker_name(strategy) == "chief"
    configure_devices(RuntimeConfig())  # virtual_cpus=0: nothing to do, never an error


def test_splitting_the_cpu_after_tensorflow_started_is_a_clear_error():
    tf.constant(1.0) + 1.0  # TensorFlow's devices are initialised now
    if len(tf.config.list_logical_devices("CPU")) == 3:
        pytest.skip("this process already has 3 logical CPUs")
    with pytest.raises(
        RuntimeError,
        match=r"runtime\.virtual_cpus=3: cannot split the CPU "
        r"because TensorFlow has already initialised",
    ):
        configure_devices(RuntimeConfig(virtual_cpus=3))
    with pytest.raises(RuntimeError, match=r"virtual_cpus=3 but TensorFlow has \d+ logical CPUs"):
        make_strategy(RuntimeConfig(virtual_cpus=3))
