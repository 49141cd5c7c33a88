"""The 10-clip test protocol: softmax averaged over clips, top-1 / top-5, on known logits."""

import csv

import numpy as np
import pytest

from tfcmvp.finetuning.evaluate import (
    EvalResult,
    evaluate_classifier,
    evaluate_clips,
    softmax,
    top_k_hits,
)


class TableClassifier:
    """A hand-made classifier: clip c (its value at [0, 0, 0]) gets logits table[c]."""

    def __init__(self, table):
        self.table = np.asarray(table, np.float64)
        self.calls = []

    def __call__(self, clips):
        clips = np.asarray(clips)
        self.calls.append(clips.shape)
        return self.table[clips[:, 0, 0, 0].astype(int)]


def clip_batch(ids, labels, names):
    """Videos whose clips carry their row index of the logit table; clips [V, N, 2, 3, 3]."""
    ids = np.asarray(ids)  # [V, N]
    clips = np.broadcast_to(ids[:, :, None, None, None], (*ids.shape, 2, 3, 3)).astype(np.float32)
    return {
        "clips": clips,
        "label": np.asarray(labels, np.int64),
        "video_id": np.asarray([n.encode() for n in names]),
    }


def test_softmax_is_averaged_over_clips_not_logits():
    # Video 0: clip 0 is sure of class 0, clip 1 mildly prefers class 1. The mean of
    # the logits prefers class 1 ([0, 0.5, 0]); the mean of the softmax prefers class 0.
    table = [[10.0, 0.0, 0.0], [-10.0, 1.0, 0.0]]
    batch = clip_batch([[0, 1]], [0], ["a"])
    result = evaluate_clips(TableClassifier(table), [batch])
    expected = (softmax(np.array(table[0])) + softmax(np.array(table[1]))) / 2
    np.testing.assert_allclose(result.probabilities[0], expected, rtol=1e-12)
    assert np.argmax(np.mean(table, axis=0)) == 1  # what logit averaging would say
    assert result.top1 == 100.0


def test_ten_clip_top1_top5_match_numpy_reference():
    rng = np.random.default_rng(0)
    num_videos, num_clips, num_classes = 7, 10, 8
    table = rng.normal(scale=3.0, size=(num_videos * num_clips, num_classes))
    ids = np.arange(num_videos * num_clips).reshape(num_videos, num_clips)
    labels = rng.integers(0, num_classes, size=num_videos)
    names = [f"v{i}" for i in range(num_videos)]
    classifier = TableClassifier(table)
    # Two batches of videos (4 + 3), as eval_dataset(batch_size=4) yields them.
    batches = [
        clip_batch(ids[:4], labels[:4], names[:4]),
        clip_batch(ids[4:], labels[4:], names[4:]),
    ]
    result = evaluate_clips(classifier, batches)

    # Reference, written out: exp / sum per clip, mean over the 10 clips, ranks.
    e = np.exp(table - table.max(axis=1, keepdims=True))
    probs = (e / e.sum(axis=1, keepdims=True)).reshape(num_videos, num_clips, -1).mean(axis=1)
    order = np.argsort(-probs, axis=1)
    top1 = 100.0 * np.mean(order[:, 0] == labels)
    top5 = 100.0 * np.mean([labels[v] in order[v, :5] for v in range(num_videos)])
    assert 0 < top1 < top5 < 100  # the data tell top-1 from top-5 from trivial
    assert result.top1 == pytest.approx(top1, abs=1e-9)
    assert result.top5 == pytest.approx(top5, abs=1e-9)
    np.testing.assert_allclose(result.probabilities, probs, rtol=1e-10)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert result.num_videos == num_videos and result.video_ids == names
    np.testing.assert_array_equal(result.labels, labels)
    # All clips of a batch of videos go through the classifier in one call.
    assert classifier.calls == [(40, 2, 3, 3), (30, 2, 3, 3)]


def test_exact_accuracies_of_a_constructed_case():
    # 4 videos, 1 clip each, 6 classes; the label's rank is 0, 1, 4 and 5.
    base = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    table = [base, base, base, base]
    labels = [0, 1, 4, 5]
    result = evaluate_clips(
        TableClassifier(table), [clip_batch([[0], [1], [2], [3]], labels, list("abcd"))]
    )
    assert result.top1 == 25.0  # only the rank-0 label
    assert result.top5 == 75.0  # ranks 0, 1 and 4


def test_ties_count_in_favour_of_the_label():
    probs = np.array([[0.25, 0.25, 0.25, 0.25], [0.4, 0.4, 0.1, 0.1]])
    np.testing.assert_array_equal(top_k_hits(probs, [3, 1], 1), [True, True])
    np.testing.assert_array_equal(top_k_hits(probs, [2, 2], 2), [True, False])


def test_labels_outside_the_classes_are_an_error():
    with pytest.raises(ValueError, match=r"test labels \[3\] lie outside the classifier's 3"):
        evaluate_clips(TableClassifier(np.eye(3)), [clip_batch([[0]], [3], ["a"])])


def test_empty_test_set_gives_nan():
    result = evaluate_clips(TableClassifier(np.eye(3)), [])
    assert result.num_videos == 0 and np.isnan(result.top1) and np.isnan(result.top5)


def test_predictions_csv(tmp_path):
    result = EvalResult(
        top1=50.0,
        top5=100.0,
        num_videos=2,
        probabilities=np.array([[0.7, 0.3], [0.6, 0.4]]),
        labels=np.array([0, 1]),
        video_ids=["a/x.avi", "b/y.avi"],
    )
    path = result.write_predictions(tmp_path / "p.csv", ["run", "jump"])
    rows = list(csv.DictReader(path.open()))
    assert [(r["video_id"], r["label_name"], r["predicted_name"]) for r in rows] == [
        ("a/x.avi", "run", "run"),
        ("b/y.avi", "jump", "run"),
    ]
    assert [float(r["label_probability"]) for r in rows] == [0.7, 0.4]


def test_evaluate_classifier_on_records(tmp_path):
    """The tf.data path: painted test records, a Keras model with known constant logits."""
    import keras

    from tfcmvp.data import synthetic
    from tfcmvp.finetuning.config import load_finetune_config

    labels = [0, 1, 2, 2, 1]
    records = [
        synthetic.painted_record(f"v{i}", 12 + 3 * i, label=label) for i, label in enumerate(labels)
    ]
    files = synthetic.write_shards(records, str(tmp_path / "test"))
    config = load_finetune_config(
        None,
        [
            "data.clip_len=4",
            "data.clip_stride=2",
            "data.crop_size=16",
            "test.resize_short=20",
            "test.num_clips=3",
            "test.batch_size=2",
        ],
    )
    bias = np.array([0.5, 2.0, 1.0])
    inputs = keras.Input((4, 16, 16, 3))
    dense = keras.layers.Dense(
        3, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias)
    )
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    result = evaluate_classifier(model, config, files)
    assert result.video_ids == [f"v{i}" for i in range(5)]
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_allclose(result.probabilities, np.tile(softmax(bias), (5, 1)), rtol=1e-5)
    assert result.top1 == 40.0  # class 1 is predicted: videos 1 and 4
    assert result.top5 == 100.0
