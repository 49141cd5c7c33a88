"""The tf.distribute strategy of a run, chosen by ``config.runtime``.

* ``default``: TensorFlow's default strategy (one device, no replicas).
* ``mirrored``: MirroredStrategy over all local GPUs (the CPU if none).
* ``multi_worker``: MultiWorkerMirroredStrategy; TensorFlow reads the cluster
  from the ``TF_CONFIG`` environment variable that the launcher sets.
* ``virtual_cpus = N >= 2``: the CPU is split into N logical devices and a
  MirroredStrategy mirrors over them, which runs the multi-replica code path
  (key gathering, SyncBN, gradient summing) on a laptop.

Logical devices can only be configured before TensorFlow initialises its
devices (before the first op, `list_logical_devices`, a strategy, ...), so
:func:`configure_devices` must run first in a process.

:func:`op_determinism` switches TensorFlow's op determinism for a block (the
kernels and the tf.data rewrites of ``train.deterministic``).
"""

from __future__ import annotations

import contextlib
import logging

import tensorflow as tf

# TensorFlow has a public op-determinism switch on only; the off switch (used by its own
# tests) lives in tensorflow.python.framework.config.
from tensorflow.python.framework import config as tf_config

from tfcmvp.config import RuntimeConfig
from tfcmvp.errors import ConfigError

logger = logging.getLogger(__name__)


def configure_devices(runtime: RuntimeConfig) -> None:
    """Splits the CPU into ``runtime.virtual_cpus`` logical devices (if >= 2).

    Raises RuntimeError when TensorFlow has already initialised its devices
    with another layout (the split must happen before anything runs).
    """
    count = runtime.virtual_cpus
    if count < 2:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return  # already split this way in this process
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"runtime.virtual_cpus={count}: cannot split the CPU because TensorFlow has already "
            f"initialised its devices in this process; configure devices before running any "
            f"TensorFlow op (start a new process) ({error})"
        ) from error


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """The strategy named by `runtime` (call :func:`configure_devices` first)."""
    if runtime.virtual_cpus >= 2:
        if runtime.strategy == "multi_worker":
            raise ValueError(
                "runtime.virtual_cpus cannot be combined with runtime.strategy=multi_worker"
            )
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devices) != runtime.virtual_cpus:
            raise RuntimeError(
                f"runtime.virtual_cpus={runtime.virtual_cpus} but TensorFlow has {len(devices)} "
                f"logical CPUs ({devices}); call configure_devices before any TensorFlow op"
            )
        # NCCL is GPU-only: CPU replicas reduce through one device.
        strategy = tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    elif runtime.strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif runtime.strategy == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif runtime.strategy == "default":
        strategy = tf.distribute.get_strategy()
    else:
        raise ValueError(
            f"runtime.strategy={runtime.strategy!r} is not one of "
            "'default', 'mirrored', 'multi_worker'"
        )
    logger.info(
        "strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    return strategy


def per_replica_batch_size(global_batch_size: int, num_replicas: int) -> int:
    """global / replicas; ValueError naming both when it does not divide."""
    if global_batch_size % num_replicas:
        raise ConfigError(
            f"train.global_batch_size={global_batch_size} is not divisible by the "
            f"{num_replicas} replicas of the strategy; choose a multiple of {num_replicas}"
        )
    return global_batch_size // num_replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes the run's files (always, on one machine).

    Under MultiWorkerMirroredStrategy that is the task of type "chief", or
    worker 0 when the cluster has no chief (TensorFlow's convention).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def worker_name(strategy: tf.distribute.Strategy) -> str:
    """ "worker-3"-style name of this task ("chief" on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "chief"
    return f"{resolver.task_type}-{resolver.task_id}"


@contextlib.contextmanager
def op_determinism(enabled: bool):
    """Runs the block with TensorFlow's op determinism on (or off), then restores it.

    On, every op either runs a deterministic kernel or raises
    ``UnimplementedError``, random ops need a global seed, and tf.data keeps
    element order and runs a parallel ``map`` / ``interleave`` whose function
    holds a stateful op (other than reading files and legacy random ops)
    sequentially. The setting is process-wide; restoring it keeps a run from
    changing the code that runs after it in the same process (tests, the
    quickstart's later stages).
    """
    previous = tf_config.is_op_determinism_enabled()
    _set_op_determinism(tf_config, enabled)
    try:
        yield
    finally:
        _set_op_determinism(tf_config, previous)


def _set_op_determinism(tf_config, enabled: bool) -> None:
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
