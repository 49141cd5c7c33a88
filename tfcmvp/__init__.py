"""tfcmvp: self-supervised video representation learning from compressed video.

Context from I-frames, motion from motion vectors (Huang et al., CVPR 2021),
in TensorFlow 2 / Keras 3 with Apache Beam for extraction.
"""

__version__ = "0.1.0"
