"""The train / test step shared by the keras.Model subclasses that ``model.fit`` runs.

:class:`~tfcmvp.training.pretrain_model.PretrainModel` and
:class:`~tfcmvp.finetuning.classifier.VideoClassifier` differ only in their
forward pass and per-example losses; both give ``per_example_losses(inputs,
outputs) -> {name: [B] tensor}`` (the ``"loss"`` entry is minimised) and keep
one ``keras.metrics.Mean`` per loss name plus ``"lr"`` in ``trackers``.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tfcmvp import losses


def train_step(model, inputs: dict, forward: Callable, local_batch) -> dict:
    """One optimizer step of ``model`` on this replica's ``inputs``; returns the metric values.

    ``forward(inputs, training=True)`` gives the outputs; ``local_batch`` is
    this replica's number of videos (a scalar tensor).
    """
    learning_rate = model.optimizer.learning_rate  # the rate this step applies
    with tf.GradientTape() as tape:
        outputs = forward(inputs, training=True)
        per_example = model.per_example_losses(inputs, outputs)
        # Loss scaling contract (tfcmvp.losses.scaling): this replica's loss
        # is sum(local per-example) / global batch, i.e. the local mean
        # divided by num_replicas_in_sync, exactly once. Every replica holds
        # the same number of videos (the input pipelines drop incomplete
        # batches), so the global batch is B x replicas. The replicas'
        # gradients are *summed* (ReplicaSumSGD), which makes the applied
        # gradient that of the global-batch mean, the same as one device
        # running the whole batch.
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        loss = losses.replica_mean(per_example["loss"], local_batch * replicas)
        if model.losses:  # layer regularisers, if a config adds any
            loss += tf.add_n(model.losses) / tf.cast(replicas, loss.dtype)
        scaled = model.optimizer.scale_loss(loss)  # loss scaling of mixed_float16
    variables = model.trainable_variables
    gradients = tape.gradient(scaled, variables)
    model.optimizer.apply_gradients(zip(gradients, variables))
    return update_metrics(model.trackers, per_example, learning_rate)


def test_step(model, inputs: dict, forward: Callable) -> dict:
    """The losses of ``model`` on ``inputs`` (``forward(inputs, training=False)``), as metric
    values."""
    outputs = forward(inputs, training=False)
    per_example = model.per_example_losses(inputs, outputs)
    learning_rate = model.optimizer.learning_rate if model.optimizer is not None else 0.0
    return update_metrics(model.trackers, per_example, learning_rate)


def update_metrics(trackers: dict, per_example: dict, learning_rate) -> dict:
    """Feeds the per-example losses and the learning rate to their Mean trackers.

    Mean metrics sum their (total, count) over replicas when read, so the
    epoch value is the mean over every video of the global batches.
    """
    for name, values in per_example.items():
        trackers[name].update_state(values)
    trackers["lr"].update_state(learning_rate)
    logs = {name: tracker.result() for name, tracker in trackers.items()}
    if _multi_worker(tf.distribute.get_strategy()):
        # Keras 3 reduces every log of a multi-worker step with
        # strategy.reduce("MEAN", value, axis=0), which rejects scalars (keras
        # backend/tensorflow/trainer.py, reduce_per_replica); a [1] value reduces to
        # the scalar mean over the replicas, as on one machine.
        logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def _multi_worker(strategy) -> bool:
    """Whether `strategy` is a MultiWorkerMirroredStrategy spanning several workers
    (the test Keras applies before its multi-worker reduction)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_mode()) if callable(in_mode) else True
