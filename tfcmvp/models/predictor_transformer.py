"""Transformer motion predictor: memory tokens [B, M, D] -> predictions [B, N, D].

A DETR-style post-norm encoder-decoder (the paper's "shallow Transformer":
2 encoder and 4 decoder layers, width 512, 8 heads, FFN 512, dropout 0.1).

Positions are learned embeddings added to the queries and keys of every
attention layer, never to the values (DETR): encoder self-attention uses
q = k = x + pos_m, v = x; decoder self-attention q = k = y + pos_q, v = y;
cross-attention q = y + pos_q, k = memory + pos_m, v = memory. The decoder
starts from y = 0, so query j differs from the others only through its
learned embedding pos_q[j]; prediction j is matched with flattened (t, y, x)
position j of the motion network output (N = T3 * H3 * W3, 49 in the paper).
There is no extra LayerNorm after the stacks: each post-norm layer already
ends in one.

Initialisation (`init`, see initializers.py): "authors" follows the authors'
code: FFN layers and attention output projections N(0, 0.01) with zero bias
(their nn.Linear rule), attention input projections Xavier-uniform over the
stacked [3 D, D] matrix, positional embeddings U(0, 1). "keras" keeps Keras'
Glorot-uniform kernels and N(0, 1) embeddings (DETR's nn.Embedding default).
"""

from __future__ import annotations

import keras
from keras import ops

from tfcmvp.models.initializers import (
    attention_input_initializer,
    check_init,
    embedding_initializer,
    linear_initializer,
    reinitialize,
)

# PyTorch's LayerNorm epsilon, as in the reference Transformer.
LN_EPSILON = 1e-5


def _check_width(width: int, num_heads: int, owner: str) -> None:
    if int(width) < 1 or int(num_heads) < 1 or int(width) % int(num_heads):
        raise ValueError(
            f"{owner}: width {width} must be a positive multiple of num_heads {num_heads}"
        )


def _attention(width: int, num_heads: int, dropout: float, init: str, name: str):
    """Multi-head attention whose query / key / value kernels follow `init`
    (the output projection is set by :func:`_init_attention_output` once built)."""
    return keras.layers.MultiHeadAttention(
        num_heads,
        width // num_heads,
        dropout=dropout,
        kernel_initializer=attention_input_initializer(init, width),
        name=name,
    )


def _init_attention_output(attention, init: str) -> None:
    """The authors' nn.Linear rule for the attention output projection (a
    Linear in PyTorch); keras.layers.MultiHeadAttention takes one initialiser
    for all four projections, so the built kernel is overwritten."""
    if init == "authors":
        reinitialize(attention.output_dense.kernel, linear_initializer(init))


def _dense(units: int, init: str, name: str, activation=None):
    """A Transformer FFN layer: kernel by `init`, zero bias."""
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=linear_initializer(init), name=name
    )


class _PostNormLayer(keras.layers.Layer):
    """What the encoder and decoder layers share: their settings, the FFN block
    that ends both, and their config.

    A subclass makes its attention layers first, then calls :meth:`_make_ffn`:
    the layers are made, and their dropout seeds drawn, in the order the
    checkpoints of the first runs were written in.
    """

    def __init__(
        self,
        width: int = 512,
        num_heads: int = 8,
        ffn_width: int = 512,
        dropout: float = 0.1,
        init: str = "authors",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_width(width, num_heads, type(self).__name__)
        self.width = int(width)
        self.num_heads = int(num_heads)
        self.ffn_width = int(ffn_width)
        self.dropout = float(dropout)
        self.init = check_init(init, type(self).__name__)

    def _make_attention(self, name: str):
        """An attention layer of this layer's settings."""
        return _attention(self.width, self.num_heads, self.dropout, self.init, name)

    def _make_ffn(self) -> None:
        """The FFN block: hidden (ReLU) and output layers, their dropouts, the last norm."""
        self.ffn_hidden = _dense(self.ffn_width, self.init, "ffn_hidden", activation="relu")
        self.ffn_hidden_dropout = keras.layers.Dropout(self.dropout)
        self.ffn_output = _dense(self.width, self.init, "ffn_output")
        self.ffn_dropout = keras.layers.Dropout(self.dropout)
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="ffn_norm")

    def _build_attention(self, attention, norm) -> None:
        shape = (None, None, self.width)
        attention.build(shape, shape, shape)
        _init_attention_output(attention, self.init)
        norm.build(shape)

    def _build_ffn(self) -> None:
        shape = (None, None, self.width)
        self.ffn_hidden.build(shape)
        self.ffn_output.build((None, None, self.ffn_width))
        self.ffn_norm.build(shape)

    def _ffn(self, x, training):
        """x = LN(x + FFN(x)), dropout on the hidden layer and the residual branch."""
        hidden = self.ffn_hidden_dropout(self.ffn_hidden(x), training=training)
        return self.ffn_norm(x + self.ffn_dropout(self.ffn_output(hidden), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "width": self.width,
                "num_heads": self.num_heads,
                "ffn_width": self.ffn_width,
                "dropout": self.dropout,
                "init": self.init,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfcmvp")
class TransformerEncoderLayer(_PostNormLayer):
    """Post-norm encoder layer: x = LN(x + SA(x + pos, x + pos, x)); x = LN(x + FFN(x)).

    Args:
      width: token width D.
      num_heads: attention heads (key size D / num_heads).
      ffn_width: hidden width of the feed-forward block.
      dropout: rate on attention weights, residual branches and the FFN hidden layer.
      init: "authors" or "keras" initialisers (module docstring).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.self_attention = self._make_attention("self_attention")
        self.attention_dropout = keras.layers.Dropout(self.dropout)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=LN_EPSILON, name="attention_norm"
        )
        self._make_ffn()

    def build(self, input_shape):
        self._build_attention(self.self_attention, self.attention_norm)
        self._build_ffn()
        self.built = True

    def call(self, x, pos, training=None):
        """x: [B, M, D] tokens; pos: [1 or B, M, D] positions. Returns [B, M, D]."""
        query_key = x + pos
        attended = self.self_attention(query_key, x, key=query_key, training=training)
        x = self.attention_norm(x + self.attention_dropout(attended, training=training))
        return self._ffn(x, training)  # [B, M, D]


@keras.saving.register_keras_serializable(package="tfcmvp")
class TransformerDecoderLayer(_PostNormLayer):
    """Post-norm decoder layer: self-attention, cross-attention to memory, FFN.

    Args: as TransformerEncoderLayer.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.self_attention = self._make_attention("self_attention")
        self.self_attention_dropout = keras.layers.Dropout(self.dropout)
        self.self_attention_norm = keras.layers.LayerNormalization(
            epsilon=LN_EPSILON, name="self_attention_norm"
        )
        self.cross_attention = self._make_attention("cross_attention")
        self.cross_attention_dropout = keras.layers.Dropout(self.dropout)
        self.cross_attention_norm = keras.layers.LayerNormalization(
            epsilon=LN_EPSILON, name="cross_attention_norm"
        )
        self._make_ffn()

    def build(self, input_shape):
        self._build_attention(self.self_attention, self.self_attention_norm)
        self._build_attention(self.cross_attention, self.cross_attention_norm)
        self._build_ffn()
        self.built = True

    def call(self, y, memory, query_pos, memory_pos, training=None):
        """y: [B, N, D] queries; memory: [B, M, D]; query_pos: [1, N, D];
        memory_pos: [1, M, D]. Returns [B, N, D]."""
        query_key = y + query_pos
        attended = self.self_attention(query_key, y, key=query_key, training=training)
        y = self.self_attention_norm(y + self.self_attention_dropout(attended, training=training))
        attended = self.cross_attention(
            y + query_pos, memory, key=memory + memory_pos, training=training
        )
        y = self.cross_attention_norm(y + self.cross_attention_dropout(attended, training=training))
        return self._ffn(y, training)  # [B, N, D]


@keras.saving.register_keras_serializable(package="tfcmvp")
class TransformerPredictor(keras.layers.Layer):
    """Predict N motion features from M memory tokens.

    Input: memory [B, M, width] (M fixed at build: one positional embedding
    per token). Output: [B, num_queries, width], row j for flattened (t, y, x)
    position j of the motion network's output grid.

    Args:
      num_queries: N = T3 * H3 * W3 (49 for 8 x 112 x 112 motion clips).
      width: model width (512).
      num_heads: attention heads (8).
      ffn_width: feed-forward hidden width (512).
      num_encoder_layers: encoder depth (2).
      num_decoder_layers: decoder depth (4).
      dropout: dropout rate (0.1).
      init: "authors" or "keras" initialisers (module docstring).
    """

    def __init__(
        self,
        num_queries: int,
        width: int = 512,
        num_heads: int = 8,
        ffn_width: int = 512,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 4,
        dropout: float = 0.1,
        init: str = "authors",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_width(width, num_heads, type(self).__name__)
        if int(num_queries) < 1 or int(num_decoder_layers) < 1 or int(num_encoder_layers) < 0:
            raise ValueError(
                f"TransformerPredictor: need num_queries >= 1 ({num_queries}), "
                f"num_decoder_layers >= 1 ({num_decoder_layers}) and "
                f"num_encoder_layers >= 0 ({num_encoder_layers})"
            )
        self.num_queries = int(num_queries)
        self.width = int(width)
        self.num_heads = int(num_heads)
        self.ffn_width = int(ffn_width)
        self.num_encoder_layers = int(num_encoder_layers)
        self.num_decoder_layers = int(num_decoder_layers)
        self.dropout = float(dropout)
        self.init = check_init(init, type(self).__name__)
        # Layers.
        layer_args = dict(
            width=self.width,
            num_heads=self.num_heads,
            ffn_width=self.ffn_width,
            dropout=self.dropout,
            init=self.init,
        )
        self.encoder_layers = [
            TransformerEncoderLayer(**layer_args, name=f"encoder_{i}")
            for i in range(self.num_encoder_layers)
        ]
        self.decoder_layers = [
            TransformerDecoderLayer(**layer_args, name=f"decoder_{i}")
            for i in range(self.num_decoder_layers)
        ]

    def build(self, memory_shape):
        if len(memory_shape) != 3 or memory_shape[1] is None or memory_shape[2] != self.width:
            raise ValueError(
                f"TransformerPredictor expects memory [B, M, {self.width}] with a "
                f"static M, got {tuple(memory_shape)}"
            )
        # One initialiser instance each: an unseeded Keras initialiser repeats its
        # values, which would make query_pos a copy of memory_pos's first rows.
        self.memory_pos = self.add_weight(
            shape=(memory_shape[1], self.width),
            initializer=embedding_initializer(self.init),
            name="memory_pos",
        )
        self.query_pos = self.add_weight(
            shape=(self.num_queries, self.width),
            initializer=embedding_initializer(self.init),
            name="query_pos",
        )
        for layer in self.encoder_layers + self.decoder_layers:
            layer.build((None, None, self.width))
        self.built = True

    def call(self, memory, training=None):
        """memory: [B, M, width] -> predictions [B, num_queries, width]."""
        memory_pos = ops.cast(self.memory_pos, memory.dtype)[None]  # [1, M, D]
        query_pos = ops.cast(self.query_pos, memory.dtype)[None]  # [1, N, D]
        for layer in self.encoder_layers:
            memory = layer(memory, memory_pos, training=training)
        # DETR: decoder input starts at zero; queries are told apart by query_pos.
        y = ops.zeros_like(memory[:, :1, :]) + ops.zeros_like(query_pos)  # [B, N, D]
        for layer in self.decoder_layers:
            y = layer(y, memory, query_pos, memory_pos, training=training)
        return y  # [B, N, D]

    def compute_output_shape(self, memory_shape):
        return (memory_shape[0], self.num_queries, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_queries": self.num_queries,
                "width": self.width,
                "num_heads": self.num_heads,
                "ffn_width": self.ffn_width,
                "num_encoder_layers": self.num_encoder_layers,
                "num_decoder_layers": self.num_decoder_layers,
                "dropout": self.dropout,
                "init": self.init,
            }
        )
        return config
