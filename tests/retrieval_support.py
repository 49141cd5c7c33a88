"""Shared pieces of the retrieval and evaluation tests: tiny exports, tiny shards, a
reference, and a data set whose video features are known exactly.

Tiny export: a ``tf.Module`` saved per the export contract (``embed`` and
``features`` signatures, ``assets/tfcmvp_export.json``) whose embedding is
``scale * mean`` of each input channel over time and space. With a
``quantum`` the mean is snapped to multiples of it first: the records'
colours are chosen at the centres of those bins, so JPEG rounding (a few
levels out of 255) cannot move a feature and the expected features are exact.

Tiny shards: videos of solid colour (every RGB frame one colour, every I-frame
another, every motion vector one value), 6 frames of 16x12 pixels.

Known data (:func:`write_known_data` with :func:`save_known_export`): test videos
(``q0`` ...) and train videos (``g0`` ...) whose quantised export features are
exactly ``KNOWN_TEST`` and ``KNOWN_TRAIN``, so retrieval and kNN numbers can be
checked against brute-force references.
"""

import json
import pathlib

import numpy as np

from tfcmvp import schema
from tfcmvp.cli import retrieval_cmd
from tfcmvp.data import synthetic
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from tfcmvp.records import encode_jpeg

from harness import run_command

MEAN = np.array(IMAGENET_MEAN)
STD = np.array(IMAGENET_STD)
NUM_FRAMES = 6
RGB_HEIGHT, RGB_WIDTH = 12, 16
CROP = 8  # export input size: 8x8 crops, resize_short = round(8 * 128 / 112) = 9
FRAMES = 2  # frames per exported clip
NUM_CLASSES = 3  # of the tiny classifier export

# Video features on the 0.25 grid of the quantised export (exact after JPEG): three
# overlapping classes, so that neither retrieval (R@1, R@5) nor kNN or the linear
# probe is at 0 or 100.
KNOWN_TEST = [
    [1.0, -1.75, 0.5],
    [0.5, 0.75, 0.75],
    [1.25, -0.5, 1.5],
    [1.5, 0.75, 1.5],
    [-0.5, 1.25, 1.5],
    [-0.5, 2.0, 0.0],
    [0.0, -0.25, 1.75],
    [0.0, -1.25, 1.75],
    [0.25, -0.5, 1.75],
]
KNOWN_TEST_LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2]
KNOWN_TRAIN = [
    [2.0, -1.5, 0.75],
    [1.25, -1.0, -0.25],
    [2.0, -0.25, 0.0],
    [1.0, 0.75, 0.5],
    [-1.75, 1.5, 0.5],
    [-0.25, 1.25, -0.25],
    [0.25, -0.25, -0.75],
    [-1.5, 1.0, 0.5],
    [0.0, 0.5, 0.5],
    [2.0, 0.0, 1.0],
    [-0.5, -1.0, -0.25],
    [0.25, -1.5, 1.25],
]
KNOWN_TRAIN_LABELS = [0] * 4 + [1] * 4 + [2] * 4


def export_info(network, shape, **input_extra):
    """A contract-shaped ``tfcmvp_export.json`` for a network of input ``shape``."""
    channels = shape[-1]
    contract = {
        "shape": list(shape),
        "dtype": "float32",
        "frames": shape[0] if len(shape) == 4 else None,
        "stride": (1 if len(shape) == 4 else None),
        "size": list(shape[-3:-1]),
        "channels": channels,
    }
    if channels == 3:
        contract.update(
            mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), value_range="ImageNet-normalised RGB"
        )
    else:
        contract.update(mv_clip=10.0, mv_div=10.0, value_range="clamped and scaled vectors")
    contract.update(input_extra)
    info = {
        "format_version": 1,
        "network": network,
        "backbone": "tiny_mean",
        "input": contract,
        "embedding_dim": channels,
        "feature_shape": list(shape),
        "signatures": ["embed", "features"],
        "source": {"kind": "random_init", "workdir": None, "epoch": None},
        "tfcmvp_version": "test",
        "tensorflow_version": "test",
        "keras_version": "test",
        "created": "2000-01-01T00:00:00+00:00",
    }
    if network == "classifier":
        info.update(
            signatures=["embed", "features", "classify"],
            num_classes=NUM_CLASSES,
            class_names=None,
            source={"kind": "finetuned", "workdir": None, "epoch": None},
        )
    return info


def save_tiny_export(path, network, shape, *, scale=1.0, quantum=None, **input_extra):
    """Saves the tiny export described in the module docstring; returns its folder.

    A ``"classifier"`` also gets a ``classify`` signature (logits: the first
    NUM_CLASSES channel means, zero-padded), as the contract requires.
    """
    import tensorflow as tf

    class MeanEmbedder(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(float(scale), name="scale")
            spec = tf.TensorSpec([None, *shape], tf.float32, name="clips")
            self.embed = tf.function(self._embed, input_signature=[spec])
            self.features = tf.function(self._features, input_signature=[spec])

        def _mean(self, clips):
            mean = tf.reduce_mean(clips, axis=list(range(1, len(shape))))  # [N, C]
            if quantum is not None:
                mean = tf.round(mean / quantum) * quantum
            return self.scale * mean

        def _embed(self, clips):
            return {"embedding": self._mean(clips)}

        def _features(self, clips):
            return {"features": self.scale * clips}

        def _classify(self, clips):
            mean = self._mean(clips)  # [N, C]
            logits = tf.pad(mean, [[0, 0], [0, max(NUM_CLASSES - shape[-1], 0)]])
            logits = logits[:, :NUM_CLASSES]  # [N, K]
            return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    module = MeanEmbedder()
    path = pathlib.Path(path)
    signatures = {
        "embed": module.embed.get_concrete_function(),
        "features": module.features.get_concrete_function(),
    }
    if network == "classifier":
        spec = tf.TensorSpec([None, *shape], tf.float32, name="clips")
        module.classify = tf.function(module._classify, input_signature=[spec])
        signatures["classify"] = module.classify.get_concrete_function()
    tf.saved_model.save(module, str(path), signatures=signatures)
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / "tfcmvp_export.json").write_text(
        json.dumps(export_info(network, shape, **input_extra), indent=2)
    )
    return path


def colour_of_feature(feature):
    """uint8 RGB whose ImageNet-normalised value is closest to ``feature`` [3]."""
    rgb = np.rint(255 * (np.asarray(feature) * STD + MEAN))
    assert np.all((rgb >= 0) & (rgb <= 255)), feature
    return rgb.astype(np.uint8)


def solid_record(
    video_id,
    label,
    split,
    *,
    rgb,
    iframe=None,
    mv=(0.0, 0.0),
    label_name=None,
    num_frames=NUM_FRAMES,
):
    """A video whose RGB frames are all ``rgb``, I-frames (0 and 3) ``iframe``, vectors ``mv``."""
    iframe = rgb if iframe is None else iframe
    frame = np.broadcast_to(np.asarray(rgb, np.uint8), (RGB_HEIGHT, RGB_WIDTH, 3)).copy()
    iframe_image = np.broadcast_to(np.asarray(iframe, np.uint8), (RGB_HEIGHT, RGB_WIDTH, 3)).copy()
    iframes = [0, 3]
    mv_cell = 8
    vectors = np.zeros(
        [num_frames, 2 * RGB_HEIGHT // mv_cell, 2 * RGB_WIDTH // mv_cell, 2], np.float32
    )
    vectors[...] = np.asarray(mv, np.float32)
    types = ["P"] * num_frames
    for i in iframes:
        types[i] = "I"
    return schema.VideoRecord(
        video_id=video_id,
        label=label,
        label_name=label_name or f"class{label}",
        split=split,
        fps=25.0,
        width=2 * RGB_WIDTH,
        height=2 * RGB_HEIGHT,
        codec="mpeg4",
        frame_types="".join(types),
        iframe_indices=iframes,
        one_past_reference=True,
        rgb_jpegs=[encode_jpeg(frame, 95)] * num_frames,
        rgb_height=RGB_HEIGHT,
        rgb_width=RGB_WIDTH,
        iframe_jpegs=[encode_jpeg(iframe_image, 95)] * len(iframes),
        motion_vectors=vectors,
        mv_cell=mv_cell,
    )


def write_data(folder, test_records, train_records, *, num_shards=2, manifest=True):
    """``folder/test-*``, ``folder/train-*`` shards (and the manifest.json listing them)."""
    from tfcmvp import verify

    folder = pathlib.Path(folder)
    synthetic.write_shards(test_records, str(folder / "test"), num_shards=num_shards)
    synthetic.write_shards(train_records, str(folder / "train"), num_shards=num_shards)
    if manifest:
        labels = {r.label for r in list(test_records) + list(train_records)}
        verify.write_manifest(
            folder, layout="csv", num_classes=len(labels), created="2000-01-01T00:00:00+00:00"
        )
    return folder


def write_known_data(folder, *, num_shards=2):
    """The known data set in ``folder``: test videos ``q<i>`` of colour ``KNOWN_TEST[i]``,
    train videos ``g<i>`` of colour ``KNOWN_TRAIN[i]``, labelled as ``KNOWN_*_LABELS``."""
    test = [
        solid_record(f"q{i}", label, "test", rgb=colour_of_feature(f))
        for i, (f, label) in enumerate(zip(KNOWN_TEST, KNOWN_TEST_LABELS))
    ]
    train = [
        solid_record(f"g{i}", label, "train", rgb=colour_of_feature(f))
        for i, (f, label) in enumerate(zip(KNOWN_TRAIN, KNOWN_TRAIN_LABELS))
    ]
    return write_data(folder, test, train, num_shards=num_shards)


def save_known_export(path):
    """The quantised tiny video export that gives the known data its exact features."""
    return save_tiny_export(path, "video", [FRAMES, CROP, CROP, 3], quantum=0.25)


def write_labels_csv(path, test_labels, test_scenes, train_labels, train_scenes):
    """A labels CSV (``video,motion,scene``) of the known data's videos: motion
    ``m<label>``, scene ``"ab"[scene]``. Returns ``path``."""
    path.write_text(
        "video,motion,scene\n"
        + "".join(
            f"{prefix}{i},m{label},{'ab'[scene]}\n"
            for prefix, labels, scenes in (
                ("q", test_labels, test_scenes),
                ("g", train_labels, train_scenes),
            )
            for i, (label, scene) in enumerate(zip(labels, scenes))
        )
    )
    return path


def run_retrieval(model, data, output, *flags) -> int:
    """``tfcmvp retrieval --model model --data data --output output flags`` in this
    process; returns its exit status."""
    return run_command(
        retrieval_cmd, "retrieval", "--model", model, "--data", data, "--output", output, *flags
    )


def reference_recall(query, query_labels, gallery, gallery_labels, ks, protocol="vcop"):
    """R@k in percent by brute force in float64, written from the protocol definitions."""
    query = np.asarray(query, np.float64)
    gallery = np.asarray(gallery, np.float64)
    if protocol == "coclr":
        query = query - query.mean(axis=0)
        gallery = gallery - gallery.mean(axis=0)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    similarity = query @ gallery.T  # [Q, G]
    order = np.argsort(-similarity, axis=1, kind="stable")
    same = np.asarray(gallery_labels)[order] == np.asarray(query_labels)[:, None]  # [Q, G]
    return {f"R@{k}": 100.0 * np.mean(same[:, :k].any(axis=1)) for k in ks}, similarity


class ModelCalls:
    """Counts the calls of the exported model (clips per call) by wrapping the loader."""

    def __init__(self, monkeypatch):
        from tfcmvp.retrieval import features

        self.clips_per_call = []
        self.loads = 0
        original = features.load_embedding_fn

        def loader(model_dir):
            self.loads += 1
            embed = original(model_dir)

            def counted(clips):
                self.clips_per_call.append(int(clips.shape[0]))
                return embed(clips)

            return counted

        monkeypatch.setattr(features, "load_embedding_fn", loader)

    def reset(self):
        self.clips_per_call.clear()
        self.loads = 0
