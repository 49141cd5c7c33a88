"""A keras.Model that is fully built before ``fit`` runs under any tf.distribute strategy.

Keras 3's TensorFlow trainer starts ``fit`` / ``evaluate`` under a strategy
by reducing the first distributed batch across replicas (a MEAN) to build
the model symbolically, even when nothing is left to build. Under
MultiWorkerMirroredStrategy that reduce fails on a dict batch ("Attempt to
convert a value ({'clip': PerReplica ...") and on string tensors such as
video ids: keras-team/keras#20329, open at Keras 3.15. Our models build
their variables and their optimizer before ``fit``, so the mixin skips that
reduce when there is nothing to build and only finishes the build as Keras
would.
"""

from __future__ import annotations


class BuiltBeforeFit:
    """Mixin for keras.Model subclasses whose variables and optimizer exist before ``fit``.

    Put it before ``keras.Model`` in the bases. A model that is not fully
    built yet goes through Keras' own path unchanged.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is not None and self._nothing_to_build():
            with self.distribute_strategy.scope():
                # With everything built this only runs Keras' post-build step.
                self._symbolic_build(data_batch=None)
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _nothing_to_build(self) -> bool:
        layers_built = all(layer.built for layer in self._flatten_layers())
        metrics = getattr(self, "_compile_metrics", None)
        loss = getattr(self, "_compile_loss", None)
        return (
            layers_built
            and (metrics is None or metrics.built)
            and (loss is None or loss.built)
            and (self.optimizer is None or self.optimizer.built)
        )
