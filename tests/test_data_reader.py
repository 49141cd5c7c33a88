"""Reading shards: file resolution, parsing, scanning, JPEG decoding, grid extent."""

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp import schema
from tfcmvp.data import reader, synthetic


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reader")
    records = [
        synthetic.painted_record("a/v0", 20, label=3, gop=6),
        synthetic.painted_record("a/v1", 8, label=1, gop=6),
        synthetic.painted_record("b/v2", 15, label=0, iframe_indices=[]),
        synthetic.painted_record("b/v3", 30, label=2, width=76, height=60),
    ]
    paths = synthetic.write_shards(records, str(folder / "train"), num_shards=2)
    return folder, paths, records


def test_resolve_files_pattern_list_and_errors(shards):
    folder, paths, _ = shards
    assert reader.resolve_files(str(folder / "train-*.tfrecord.gz")) == sorted(paths)
    assert reader.resolve_files([paths[1], paths[0], paths[1]]) == sorted(paths)
    with pytest.raises(ValueError, match="no TFRecord files match '.*nothing-\\*'"):
        reader.resolve_files(str(folder / "nothing-*"))
    with pytest.raises(ValueError, match="empty list"):
        reader.resolve_files([])


def test_scan_records_and_skip_reasons(shards):
    _, paths, records = shards
    scan = reader.scan_records(paths)
    assert len(scan) == 4
    by_id = dict(zip(scan.video_ids, zip(scan.num_frames, scan.num_iframes)))
    assert by_id == {"a/v0": (20, 4), "a/v1": (8, 2), "b/v2": (15, 0), "b/v3": (30, 3)}
    assert scan.skipped(11) == {"fewer than 11 frames": ["a/v1"], "no I-frame": ["b/v2"]}


def test_records_dataset_reads_every_record_once(shards):
    _, paths, _ = shards
    ids = [
        schema.decode_example(s).video_id for s in reader.records_dataset(paths).as_numpy_iterator()
    ]
    assert sorted(ids) == ["a/v0", "a/v1", "b/v2", "b/v3"]


def test_parse_record_and_eligibility(shards):
    _, paths, records = shards
    serialized = next(iter(tf.data.TFRecordDataset(paths[0], compression_type="GZIP")))
    parsed = reader.parse_record(serialized)
    assert parsed[schema.VIDEO_ID].numpy() == b"a/v0"
    assert parsed[schema.MV_ENCODED].shape == (20, 8, 10, 2)
    np.testing.assert_allclose(parsed[schema.MV_ENCODED].numpy(), records[0].motion_vectors)
    summary = reader.parse_summary(serialized)
    assert int(summary["num_iframes"]) == 4
    assert bool(reader.eligible(summary, 20)) and not bool(reader.eligible(summary, 21))


def test_parse_record_rejects_other_schema_version(shards):
    _, paths, _ = shards
    serialized = next(iter(tf.data.TFRecordDataset(paths[0], compression_type="GZIP"))).numpy()
    example = tf.train.Example.FromString(serialized)
    example.features.feature[schema.VERSION].int64_list.value[0] = schema.SCHEMA_VERSION + 1
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="a/v0.* has schema version 2; this tfcmvp reads 1"
    ):
        reader.parse_record(example.SerializeToString())


def test_decode_frames_gathers_with_repeats(shards):
    _, paths, _ = shards
    parsed = reader.parse_record(
        next(iter(tf.data.TFRecordDataset(paths[0], compression_type="GZIP")))
    )
    indices = tf.constant([[0, 5, 5], [19, 0, 7]])
    frames = reader.decode_frames(parsed[schema.RGB_ENCODED], indices).numpy()
    assert frames.shape == (2, 3, 32, 40, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(
        synthetic.frame_index_from_rgb(frames.astype(np.float32)), [[0, 5, 5], [19, 0, 7]]
    )
    # Graph mode (inside tf.data) gives the same frames.
    in_graph = (
        tf.data.Dataset.from_tensors(parsed[schema.RGB_ENCODED])
        .map(lambda enc: reader.decode_frames(enc, indices))
        .get_single_element()
    )
    np.testing.assert_array_equal(in_graph.numpy(), frames)


def test_mv_extent_of_partial_cells(shards):
    _, paths, _ = shards
    for serialized in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
        parsed = reader.parse_record(serialized)
        extent = reader.mv_extent(parsed).numpy()
        if parsed[schema.VIDEO_ID].numpy() == b"b/v3":
            np.testing.assert_allclose(extent, [60 / 64, 76 / 80])  # 8x10 cells of 8 px
        else:
            np.testing.assert_allclose(extent, [1.0, 1.0])
