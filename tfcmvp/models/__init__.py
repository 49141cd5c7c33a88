"""Networks of tfcmvp (Keras 3, channels-last: video [B, T, H, W, C], image [B, H, W, C]).

Backbones are functional keras.Models built by `backbones.build_backbone(name,
**kwargs)`; each returns a dict of named stage outputs with the last stage as
"features". Options: `input_shape`, `width` (base channels), `blocks`
(ResNets), `sync_bn` (SyncBN across replicas), `zero_init_residual` (ResNets:
the last BN of each residual block starts at gamma 0, the authors') and
`stem` (r3d_10). Grids for the paper's inputs (batch omitted; trainable
parameters in brackets):

  video network, clip [16, 112, 112, 3]
    c3d          conv1 16x112x112x64, conv2 16x56x56x128, conv3 8x28x28x256,
                 conv4 4x14x14x512, conv5 = features 2x7x7x512        [27.66M]
    r3d_26       stem 16x28x28x64 (3x7x7 conv s(1,2,2) + 1x3x3 max pool),
                 layer1 16x28x28x256, layer2 8x14x14x512, layer3 4x7x7x1024,
                 layer4 = features 2x4x4x2048 (bottleneck blocks [2,2,2,2]) [26.50M]
    r2plus1d_26  same grids, every 3-D conv factorised (2+1)D          [26.51M]
  motion network, motion [8, 112, 112, 2]
    r3d_10       stem 8x56x56x64 (authors: 3x7x7 conv s1 + 1x3x3 max pool s(1,2,2);
                 "strided": conv s(1,2,2), no pool), layer1 8x56x56x64,
                 layer2 4x28x28x128, layer3 2x14x14x256,
                 layer4 = features 1x7x7x512: 49 targets                [14.35M]
  I-frame network, I-frame [112, 112, 3]
    r2d_10       stem 28x28x64 (7x7 s2 + 3x3 pool s2), layer1 28x28x64,
                 layer2 14x14x128, layer3 7x7x256, layer4 = features 4x4x512 [4.91M]

Motion prediction (video network map -> N = T3*H3*W3 predicted motion features):
  memory.PredictorMemory        stage maps -> tokens [B, M, width]. ResNets fuse
                                layer3 folded 2x in time (2x7x7x2048) with layer4
                                upsampled to 2x7x7 by addition (the authors';
                                or concatenation): 98 tokens of 2048 -> 512,
                                bias-free; C3D uses conv5 alone: 98 tokens of
                                512. `backbones.memory_spec(name)` says which
                                stages and fold.
  predictor_transformer.TransformerPredictor
                                DETR-style post-norm encoder-decoder (2 + 4 layers,
                                width 512, 8 heads, FFN 512, dropout 0.1):
                                [B, M, 512] -> [B, 49, 512]           [13.75M]
  predictor_convgru.ConvGRUPredictor
                                DPC-style ConvGRU alternative: backbone map
                                [B, T1, H1, W1, C1] -> [B, T3*H3*W3, width]
Heads:
  heads.MLPHead                 Dense 2048 -> BN -> ReLU -> Dense 512 -> BN -> L2,
                                on [B, C] or pointwise on [B, N, C]; float32 out
  heads.MotionValueHead         Dense read-out for the MSE / cross-entropy ablations

Initialisers of the memory, predictor and heads: `init="authors"` (the
authors' code) or "keras", see initializers.py.

Every custom layer is registered with keras.saving under package "tfcmvp" and
round-trips through get_config / from_config. Under a mixed-precision policy
the backbones and predictors compute in float16/bfloat16 and the heads
return float32. BatchNorm in the backbones uses TensorFlow's fused kernel
(fused_batch_norm.py) unless sync_bn is set.
"""

from tfcmvp.models.backbones import (
    BACKBONES,
    MEMORY_SPECS,
    RESIDUAL_BACKBONES,
    MemorySpec,
    build_backbone,
    memory_spec,
)
from tfcmvp.models.c3d import c3d
from tfcmvp.models.fused_batch_norm import FusedBatchNormalization
from tfcmvp.models.heads import MLPHead, MotionValueHead
from tfcmvp.models.initializers import INITS
from tfcmvp.models.memory import FUSIONS, PredictorMemory
from tfcmvp.models.predictor_convgru import ConvGRUCell, ConvGRUPredictor
from tfcmvp.models.predictor_transformer import (
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    TransformerPredictor,
)
from tfcmvp.models.resnet2d import build_resnet2d, r2d_10
from tfcmvp.models.resnet3d import MOTION_STEMS, build_resnet3d, r2plus1d_26, r3d_10, r3d_26

__all__ = [
    "BACKBONES",
    "MEMORY_SPECS",
    "RESIDUAL_BACKBONES",
    "MemorySpec",
    "build_backbone",
    "memory_spec",
    "FUSIONS",
    "INITS",
    "MOTION_STEMS",
    "c3d",
    "r3d_26",
    "r2plus1d_26",
    "r3d_10",
    "r2d_10",
    "build_resnet3d",
    "build_resnet2d",
    "FusedBatchNormalization",
    "PredictorMemory",
    "TransformerPredictor",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "ConvGRUPredictor",
    "ConvGRUCell",
    "MLPHead",
    "MotionValueHead",
]
