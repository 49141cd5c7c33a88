"""tf.train.Example built by protobuf alone: the same bytes as TensorFlow's, no TF import."""

import subprocess
import sys
import textwrap

import numpy as np

from tfcmvp import example_proto, records, schema
from tfcmvp.codec import read_video


def tf_example(features):
    """The same message built with TensorFlow's own classes."""
    import tensorflow as tf

    def feature(kind, values):
        if kind == "bytes":
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        if kind == "int64":
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    return tf.train.Example(
        features=tf.train.Features(
            feature={key: feature(kind, values) for key, (kind, values) in features.items()}
        )
    )


def our_example(features):
    def feature(kind, values):
        if kind == "bytes":
            return example_proto.Feature(bytes_list=example_proto.BytesList(value=values))
        if kind == "int64":
            return example_proto.Feature(int64_list=example_proto.Int64List(value=values))
        return example_proto.Feature(float_list=example_proto.FloatList(value=values))

    return example_proto.Example(
        features=example_proto.Features(
            feature={key: feature(kind, values) for key, (kind, values) in features.items()}
        )
    )


FEATURES = {
    "b": ("bytes", [b"", b"\x00\xff", b"x" * 300]),
    "i": ("int64", [0, 1, -1, 2**40, -(2**63), 2**63 - 1]),
    "f": ("float", [0.0, -1.5, 3.25e-7, float("inf")]),
    "empty": ("int64", []),
    "a/slash": ("bytes", [b"key with a slash"]),
}


def test_same_bytes_as_tensorflow_both_ways():
    import tensorflow as tf

    ours = our_example(FEATURES).SerializeToString(deterministic=True)
    theirs = tf_example(FEATURES).SerializeToString(deterministic=True)
    assert ours == theirs
    assert tf.train.Example.FromString(ours) == tf_example(FEATURES)
    assert example_proto.Example.FromString(theirs) == our_example(FEATURES)
    # Packed repeated ints and floats, as TensorFlow writes them: int64_list (field 3)
    # holds one length-delimited field 1 (tag 0x0a), not one tag per value.
    packed = example_proto.Int64List(value=[1, 2, 3]).SerializeToString()
    assert packed == b"\x0a\x03\x01\x02\x03"


def test_real_record_parses_with_tensorflow(carphone_path):
    """A record of carphone (H.264 with B-frames) written without TF, read by tf.io."""
    import tensorflow as tf

    video = read_video(carphone_path, rgb=True, mv_cell=8, rgb_short_side=64)
    rec = records.build_record(
        video, video_id="carphone.mp4", label=2, label_name="talk", split="test", jpeg_quality=80
    )
    serialized = schema.encode_example(rec)
    assert (
        tf.train.Example.FromString(serialized).SerializeToString(deterministic=True) == serialized
    )
    parsed = schema.parse_example(tf.constant(serialized))
    assert parsed[schema.VIDEO_ID].numpy() == b"carphone.mp4"
    assert int(parsed[schema.LABEL]) == 2
    assert parsed[schema.FRAME_TYPES].numpy().decode() == video.frame_types
    assert list(parsed[schema.IFRAME_INDICES].numpy()) == list(video.iframe_indices)
    assert parsed[schema.RGB_ENCODED].shape == (120,)
    np.testing.assert_allclose(
        parsed[schema.MV_ENCODED].numpy(), video.motion_vectors, atol=1 / 8 + 1e-6
    )
    # And the same bytes twice: sorted keys make the record deterministic.
    assert schema.encode_example(rec) == serialized


def test_writing_records_does_not_import_tensorflow(carphone_path):
    """What a Beam worker runs per video must not pull TensorFlow in (3 s, 450 MB each)."""
    code = textwrap.dedent(f"""
        import sys
        from beam_jobs import extract, tfrecord_files
        from tfcmvp import records, schema
        from tfcmvp.codec import read_video
        video = read_video({str(carphone_path)!r}, rgb=True, rgb_short_side=64)
        rec = records.build_record(video, video_id="v", label=0, label_name="a",
                                   split="train")
        data = schema.encode_example(rec)
        back = schema.decode_example(data)
        tfrecord_files.gzip_member(tfrecord_files.frame_record(data))
        assert back.frame_types == video.frame_types
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print(loaded)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
