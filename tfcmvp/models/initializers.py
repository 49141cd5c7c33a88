"""Weight initialisers of the predictor, the memory and the heads, by recipe name.

Two recipes (``ModelConfig.init``):

  "authors"  the authors' pretraining code (PyTorch), layer by layer:
             - every nn.Linear (memory projection, Transformer FFN layers, attention
               output projections): weight N(0, 0.01), bias 0;
             - attention input projections (PyTorch keeps them outside nn.Linear,
               as one [3 D, D] matrix that the Transformer Xavier-initialises):
               U(-a, a) with a = sqrt(6 / (D + 3 D)), bias 0;
             - positional embeddings (nn.Embedding): U(0, 1);
             - the MLP heads, which are 1x1 nn.Conv1d there, not nn.Linear:
               Kaiming normal, fan-out, gain sqrt(2).
  "keras"    Keras' defaults (Glorot-uniform kernels, zero biases) and N(0, 1)
             positional embeddings: what tfcmvp used before the option existed.

Keras initialisers without a seed repeat the same values on every call with
the same shape, so each function returns a new instance: one per weight.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf  # the TF backend's init scope: the models are TF-only

from tfcmvp.models.conv_bn import conv_initializer

INITS = ("authors", "keras")

# Standard deviation of the authors' nn.Linear weights.
AUTHORS_LINEAR_STDDEV = 0.01


def check_init(init: str, owner: str) -> str:
    """Returns `init`, or raises ValueError naming `owner` and the valid names."""
    if init not in INITS:
        raise ValueError(f"{owner}: unknown init {init!r}; expected one of {INITS}")
    return init


def linear_initializer(init: str) -> keras.initializers.Initializer:
    """Kernel of a linear (Dense) layer: N(0, 0.01) ("authors") or Glorot-uniform."""
    if check_init(init, "linear_initializer") == "authors":
        return keras.initializers.RandomNormal(mean=0.0, stddev=AUTHORS_LINEAR_STDDEV)
    return keras.initializers.GlorotUniform()


def attention_input_initializer(init: str, width: int) -> keras.initializers.Initializer:
    """Query / key / value kernels of an attention layer of model width `width`.

    "authors": PyTorch's Xavier-uniform on the stacked [3 D, D] input
    projection of nn.MultiheadAttention, U(-a, a) with a = sqrt(6 / (4 D)).
    "keras": Glorot-uniform, which keras.layers.EinsumDense applies to its
    [D, heads, D / heads] kernel as to a [D, D] matrix: a = sqrt(6 / (2 D)),
    sqrt(2) wider than the authors'.
    """
    if check_init(init, "attention_input_initializer") == "authors":
        bound = math.sqrt(6.0 / (4 * int(width)))
        return keras.initializers.RandomUniform(minval=-bound, maxval=bound)
    return keras.initializers.GlorotUniform()


def embedding_initializer(init: str) -> keras.initializers.Initializer:
    """Learned positional embeddings: U(0, 1) ("authors", nn.init.uniform_) or N(0, 1)."""
    if check_init(init, "embedding_initializer") == "authors":
        return keras.initializers.RandomUniform(minval=0.0, maxval=1.0)
    return keras.initializers.RandomNormal(mean=0.0, stddev=1.0)


def head_initializer(init: str) -> keras.initializers.Initializer:
    """Dense kernels of the MLP heads: Kaiming fan-out ("authors") or Glorot-uniform."""
    if check_init(init, "head_initializer") == "authors":
        return conv_initializer()
    return keras.initializers.GlorotUniform()


def reinitialize(variable, initializer: keras.initializers.Initializer) -> None:
    """Overwrites a built variable with fresh values of `initializer`.

    For weights whose layer takes one initialiser for several kernels (the
    output projection of keras.layers.MultiHeadAttention). Runs eagerly
    (``tf.init_scope``) even when the layer is built inside a traced function,
    so that the assignment is not replayed by every call of that function.
    """
    with tf.init_scope():
        variable.assign(initializer(tuple(variable.shape), variable.dtype))
