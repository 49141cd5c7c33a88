"""The ``embed_frames`` signature of a video network export: decoded frames in, embeddings out.

``tfcmvp embed`` prepares a video in Python before the export's ``embed``
signature sees it (:mod:`tfcmvp.embedding`): it decodes every frame, stores
it as the extraction job would (short side resized to 128 by swscale, JPEG
at quality 90), places 10 clips at the VCOP retrieval positions, cuts them
with retrieval's sample (centre crop, ImageNet normalisation) and averages
the clip embeddings. ``embed_frames`` does the same inside the SavedModel,
so a client (TF Serving, another language) sends decoded frames and gets
the video's embedding:

    frames uint8 [T, H, W, 3]  (any T >= 1, H, W >= 1; RGB)
      -> clip starts: sampling.eval_clip_starts(T, positions="vcop", N)
      -> the frames the clips use, each once: short side resized to
         ``stored_short_side`` (area / bilinear, rounded to uint8), then a
         JPEG round trip at ``jpeg_quality`` (tf.io, libjpeg as Pillow)
      -> evaluation.make_eval_sample's RGB ops: centre crop after resizing
         the short side to input.resize_short, [0, 1], ImageNet (x - m) / s
      -> the network on the N clips  -> clip_embeddings [N, D]
      -> their mean                  -> embedding [D]

Where it equals ``tfcmvp embed`` (measured by
tests/test_export_serving_frames.py): frames whose short side already is
``stored_short_side`` are stored unresized by both, and the JPEG round
trip here (tf.io.encode_jpeg) decodes to the same pixels as the
extraction's (Pillow; the files differ in a few bytes only), so the clips
are the same and the embedding differs only in the float rounding of a
graph traced apart from ``tf.data``. Frames of any other size are resized
here in RGB by TensorFlow, but by swscale in the decoder's YUV (before the
RGB conversion) in ``tfcmvp embed``, so the stored pixels differ by a few
levels of 255 on average and the embedding by a fraction of a percent on
the tests' network (the test states both). A client that scales its
frames to a 128-px short side as the decoder does (PyAV:
``frame.reformat(width, height, interpolation="AREA")``, then rgb24)
before sending gets ``tfcmvp embed``'s numbers.

The parameters are recorded in ``assets/tfcmvp_export.json`` under
``frames_signature`` (:func:`tfcmvp.export.contract.frames_contract`).
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from tfcmvp.data import augment, keys, sampling
from tfcmvp.export import contract as ct


def stored_size(height, width, short_side: int):
    """(h, w) int32 of a frame resized to ``short_side``, as the decoder sizes it.

    :func:`tfcmvp.codec.decode.rgb_size` in TensorFlow: the long side is
    ``round(long * short_side / short)`` in float64, halves to even as
    Python's ``round``, at least 1.
    """
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    side = tf.constant(float(short_side), tf.float64)
    long_w = tf.maximum(tf.round(w * side / h), 1.0)  # height is the short side
    long_h = tf.maximum(tf.round(h * side / w), 1.0)  # width is the short side
    out_h = tf.where(h <= w, side, long_h)
    out_w = tf.where(h <= w, long_w, side)
    return tf.cast(out_h, tf.int32), tf.cast(out_w, tf.int32)


def store_frames(frames, short_side: int, jpeg_quality) -> tf.Tensor:
    """uint8 ``[U, H, W, 3]`` -> uint8 ``[U, h, w, 3]`` as the extraction stores frames.

    Short side to ``short_side`` (area averaging when shrinking, bilinear
    when enlarging, nothing when it already has that size), rounded to
    uint8, then, unless ``jpeg_quality`` is None, encoded and decoded as JPEG
    (4:2:0, the quality of the stored frames).
    """
    shape = tf.shape(frames)
    out_h, out_w = stored_size(shape[1], shape[2], short_side)
    size = tf.stack([out_h, out_w])
    same = tf.logical_and(tf.equal(out_h, shape[1]), tf.equal(out_w, shape[2]))

    def resize(method):
        resized = tf.image.resize(frames, size, method=method)  # float32
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    # swscale's AREA filter (tfcmvp embed's resize) averages each output
    # pixel's footprint when shrinking and interpolates when enlarging; of
    # TensorFlow's filters, "area" and "bilinear" come nearest to it in each
    # case (measured on synthetic textures and the carphone clip).
    shrinks = tf.less(out_h * out_w, shape[1] * shape[2])
    resized = tf.cond(
        same,
        lambda: frames,
        lambda: tf.cond(shrinks, lambda: resize("area"), lambda: resize("bilinear")),
    )  # [U, h, w, 3]
    if jpeg_quality is None:
        return resized
    quality = int(jpeg_quality)
    return tf.map_fn(
        lambda image: tf.io.decode_jpeg(
            tf.io.encode_jpeg(image, quality=quality, chroma_downsampling=True), channels=3
        ),
        resized,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )  # [U, h, w, 3]


def check_frames(frames: tf.Tensor) -> tf.Tensor:
    """`frames` after a run-time check that it is uint8 ``[T, H, W, 3]`` with T, H, W >= 1.

    Signature calls do not check shapes against the TensorSpec; the rank is
    compared as a string for the reason :func:`tfcmvp.export.savedmodel.check_clips` gives.
    """
    shape = tf.shape(frames)
    rank = tf.strings.as_string(tf.size(shape))
    ok = tf.logical_and(
        tf.equal(rank, "4"),
        tf.reduce_all(
            tf.concat([tf.equal(shape[-1:], 3), tf.greater_equal(shape[:-1], 1)], axis=0)
        ),
    )
    message = tf.strings.format(
        f"tfcmvp {ct.EMBED_FRAMES}: expected {ct.FRAMES_INPUT} uint8 [T, H, W, 3] with "
        f"T, H, W >= 1 (see assets/{ct.INFO_NAME}, frames_signature), got shape {{}}",
        [shape],
        summarize=-1,
    )
    assertion = tf.debugging.Assert(ok, [message])
    with tf.control_dependencies([assertion]):
        return tf.identity(frames)


def frames_to_clips(frames, input_spec: Mapping, spec: Mapping) -> tf.Tensor:
    """Decoded frames uint8 ``[T, H, W, 3]`` -> float32 clips ``[N, *input.shape]``.

    ``input_spec`` is the export's input contract (frames, stride, size,
    resize_short); ``spec`` its ``frames_signature`` (clips, positions,
    stored short side, JPEG quality). The clip starts, the index clamping
    (a video shorter than a clip repeats its last frame) and the crop and
    scaling are the functions of :mod:`tfcmvp.data` that ``tfcmvp embed``
    runs, traced into the graph.
    """
    clip_len, clip_stride = int(input_spec["frames"]), int(input_spec["stride"])
    crop_size = int(input_spec["size"][0])
    t = tf.shape(frames, out_type=tf.int64)[0]
    starts = sampling.eval_clip_starts(
        t,
        positions=spec["positions"],
        num_clips=int(spec["num_clips"]),
        clip_len=clip_len,
        clip_stride=clip_stride,
    )  # [N]
    idx = sampling.clip_indices(starts, clip_len, clip_stride, t)  # [N, L]
    # Store each used frame once (overlapping clips share frames), as
    # reader.decode_frames decodes each stored JPEG once.
    unique, position = tf.unique(tf.reshape(idx, [-1]))  # [U], [N * L]
    stored = store_frames(
        tf.gather(frames, unique), int(spec["stored_short_side"]), spec.get("jpeg_quality")
    )  # [U, h, w, 3]
    clips = tf.gather(stored, position)  # [N * L, h, w, 3]
    clips = tf.reshape(clips, tf.concat([tf.shape(idx), tf.shape(stored)[1:]], axis=0))
    clips.set_shape([int(spec["num_clips"]), clip_len, None, None, 3])  # [N, L, h, w, 3]
    ops = augment.chain(
        augment.center_crop(keys.CLIPS, crop_size, resize_short=int(input_spec["resize_short"])),
        augment.to_unit_range(keys.CLIPS),
        augment.normalize(keys.CLIPS, mean=input_spec["mean"], std=input_spec["std"]),
    )
    return ops({keys.CLIPS: clips})[keys.CLIPS]  # [N, L, S, S, 3]


def embed_frames_fn(embed, input_spec: Mapping, spec: Mapping):
    """The ``embed_frames`` function: ``frames -> {clip_embeddings [N, D], embedding [D]}``.

    ``embed`` maps clips ``[N, *input.shape]`` to embeddings ``[N, D]`` (the
    export's ``embed``).
    """

    def embed_frames(frames):
        clips = frames_to_clips(check_frames(frames), input_spec, spec)  # [N, L, S, S, 3]
        clip_embeddings = embed(clips)  # [N, D]
        return {
            ct.CLIP_EMBEDDINGS_OUTPUT: clip_embeddings,
            ct.EMBED_OUTPUT: tf.reduce_mean(clip_embeddings, axis=0),  # [D]
        }

    embed_frames.__name__ = ct.EMBED_FRAMES
    return embed_frames
