"""Names of the tensors the input pipelines yield: the sample and batch keys
(one place, like ``tfcmvp.schema`` for the records on disk).

The module is `keys`, not `features`: in this package "features" are the
networks' output maps and retrieval's per-video vectors.

Pretraining (:func:`tfcmvp.data.pretrain_dataset`) and finetuning yield
``CLIP``, ``IFRAME``, ``MOTION``, ``LABEL``, ``VIDEO_ID``; evaluation
(:func:`tfcmvp.data.eval_dataset`) yields ``CLIPS``, ``LABEL``, ``VIDEO_ID``,
``LABEL_NAME`` (and ``THUMBNAIL`` when retrieval asks for one). The
augmentation ops also read ``SEED`` and the intermediate keys below.
"""

CLIP = "clip"  # float32 [B, T, S, S, 3]: normalised RGB clip
IFRAME = "iframe"  # float32 [B, S, S, 3]: normalised I-frame
MOTION = "motion"  # float32 [B, 1 + K, L, S, S, 2]: index 0 = target, then K negatives
CLIPS = "clips"  # float32 [N, ...]: the evaluation clips of one video
LABEL = "label"  # int64 [B]
LABEL_NAME = "label_name"  # string [B]
VIDEO_ID = "video_id"  # string [B]
THUMBNAIL = "thumbnail"  # uint8 [h, w, 3]: the middle frame retrieval shows for a video

# Intermediate keys used between sampling and augmentation.
SEED = "seed"  # int [2]: the stateless seed of one sample
NEGATIVES = "negatives"  # float32 [K, L, h, w, 2]: negatives before augmentation
MV_EXTENT = "mv_extent"  # float32 [2]: fraction (y, x) of the vector grid the frame covers
