"""SavedModel export: round trips, the JSON contract, input checks, random init.

Exports come from a fake pretraining workdir (tests/export_support.py): the
tiny networks of training_support with random BatchNorm statistics, saved
the way `tfcmvp pretrain` saves them.
"""

import datetime
import hashlib
import json
import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcmvp
from tfcmvp import config as cfg
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from tfcmvp.export import (
    ExportError,
    contract,
    contract_checks,
    describe_export,
    export_network,
    export_random_init,
    load_keras_network,
    make_export_info,
    networks,
    read_export_info,
)

from export_support import EPOCHS, NETWORKS, TINY_SHAPES, random_clips
from harness import run_saved_model_test
from training_support import tiny_config

# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("network", NETWORKS)
def test_saved_model_outputs_equal_keras_outputs(network, workdir, exports):
    _, _, models = workdir
    input_shape, feature_shape, dim = TINY_SHAPES[network]
    clips = random_clips(input_shape, batch=3, seed=1)
    expected_features = models[network](clips, training=False)["features"].numpy()
    assert expected_features.shape == (3, *feature_shape)
    axes = tuple(range(1, expected_features.ndim - 1))
    expected_embedding = expected_features.mean(axis=axes)  # global average pool, NumPy
    assert np.abs(expected_embedding).max() > 0.1  # the BN statistics make outputs non-trivial

    loaded = tf.saved_model.load(str(exports[network]))
    # Video exports also take decoded frames (tests/test_export_serving_frames.py).
    frames = {"embed_frames"} if network == "video" else set()
    assert set(loaded.signatures) == {"embed", "features", "serving_default"} | frames
    embed = {"embedding": expected_embedding}
    got = run_saved_model_test(loaded, "embed", embed, atol=1e-5, clips=clips)
    assert got["embedding"].shape == (3, dim) and got["embedding"].dtype == np.float32
    features = {"features": expected_features}
    run_saved_model_test(loaded, "features", features, atol=1e-5, clips=clips)
    # serving_default is embed; the restored tf.functions give the same.
    run_saved_model_test(loaded, "serving_default", embed, atol=1e-5, clips=clips)
    np.testing.assert_allclose(
        loaded.embed(tf.constant(clips))["embedding"].numpy(), expected_embedding, atol=1e-5
    )


def test_load_keras_network_rebuilds_the_same_network(workdir, exports):
    _, _, models = workdir
    rebuilt = load_keras_network(exports["video"])
    original = models["video"]
    assert isinstance(rebuilt, keras.Model)
    for a, b in zip(original.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    clips = random_clips(TINY_SHAPES["video"][0], seed=2)
    np.testing.assert_allclose(
        rebuilt(clips, training=False)["features"].numpy(),
        original(clips, training=False)["features"].numpy(),
        atol=1e-6,
    )


def test_saved_variables_are_the_networks(workdir, exports):
    _, _, models = workdir
    loaded = tf.saved_model.load(str(exports["motion"]))
    saved = sorted(v.numpy().size for v in loaded.network_variables)
    # Every weight of the network is read by the signatures (BN moving stats included).
    assert saved == sorted(int(np.prod(w.shape)) for w in models["motion"].weights)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("network", NETWORKS)
def test_export_info_states_the_input_and_output_shapes(network, exports):
    info = read_export_info(exports[network])
    input_shape, feature_shape, dim = TINY_SHAPES[network]
    assert info["format_version"] == 1
    assert info["network"] == network
    assert info["input"]["shape"] == list(input_shape)
    assert info["input"]["dtype"] == "float32"
    assert info["input"]["size"] == [32, 32]
    assert info["input"]["channels"] == input_shape[-1]
    assert info["embedding_dim"] == dim
    assert info["feature_shape"] == list(feature_shape)
    frames = ["embed_frames"] if network == "video" else []  # test_export_serving_frames
    assert info["signatures"] == ["embed", "features", *frames]


@pytest.mark.parametrize("network", NETWORKS)
def test_export_info_names_the_run_and_weights_it_came_from(network, workdir, exports):
    path = workdir[0]
    weights = networks.workdir_paths(path, network)[1]
    assert read_export_info(exports[network])["source"] == {
        "kind": "pretrained",
        "workdir": str(path.resolve()),
        "epoch": EPOCHS,
        "weights": str(weights.resolve()),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }


@pytest.mark.parametrize("network", NETWORKS)
def test_export_info_records_versions_and_creation_time(network, exports):
    info = read_export_info(exports[network])
    assert info["tfcmvp_version"] == tfcmvp.__version__
    assert info["tensorflow_version"] == tf.__version__
    assert info["keras_version"] == keras.__version__
    created = datetime.datetime.fromisoformat(info["created"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created).total_seconds() < 3600


def test_export_info_names_each_networks_backbone(exports):
    backbones = [read_export_info(exports[n])["backbone"] for n in NETWORKS]
    assert backbones == ["c3d", "r2d_10", "r3d_10"]


def test_export_info_states_the_preprocessing_of_each_input(exports):
    video, iframe, motion = (read_export_info(exports[n])["input"] for n in NETWORKS)
    assert (video["frames"], video["stride"]) == (8, 2)  # tiny config: clip_len 8, stride 2
    assert (iframe["frames"], iframe["stride"]) == (None, None)
    assert (motion["frames"], motion["stride"]) == (8, 1)
    for rgb in (video, iframe):
        assert rgb["mean"] == list(IMAGENET_MEAN) and rgb["std"] == list(IMAGENET_STD)
    assert (motion["mv_clip"], motion["mv_div"]) == (10.0, 10.0)
    assert motion["mv_resize_method"] == "bilinear"
    assert motion["value_range"] == "[-1, 1]"
    assert video["resize_short"] == 37  # round(32 * 128 / 112)


def test_assets_hold_the_resolved_config_and_the_weights(workdir, exports):
    _, config, models = workdir
    assets = exports["iframe"] / "assets"
    assert sorted(p.name for p in assets.iterdir()) == [
        "config.yaml",
        "network.weights.h5",
        "tfcmvp_export.json",
    ]
    assert cfg.load_config(assets / "config.yaml") == config
    rebuilt = networks.build_network("iframe", config)
    rebuilt.load_weights(str(assets / "network.weights.h5"))
    for a, b in zip(models["iframe"].get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The SavedModel tracks the assets: their paths come back with the model.
    loaded = tf.saved_model.load(str(exports["iframe"]))
    info_path = pathlib.Path(loaded.export_info.asset_path.numpy().decode())
    assert json.loads(info_path.read_text())["network"] == "iframe"


def test_validate_export_info_names_every_problem(exports):
    info = read_export_info(exports["video"])
    assert contract_checks.validate_export_info(info) is info
    broken = json.loads(json.dumps(info))
    broken["input"]["channels"] = 2
    broken["signatures"] = ["embed"]
    broken["source"]["kind"] = "downloaded"
    problems = contract_checks.export_info_problems(broken)
    assert len(problems) == 3
    assert any("input.channels 2" in p for p in problems)
    assert any("lack ['features']" in p for p in problems)
    assert any("'downloaded'" in p for p in problems)
    with pytest.raises(ExportError, match="my.json is not a valid tfcmvp export"):
        contract_checks.validate_export_info(broken, "my.json")
    newer = {**info, "format_version": 2}  # from a newer tfcmvp
    assert contract_checks.export_info_problems(newer)


def test_corrupt_description_is_an_error_naming_the_file(exports, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exports["video"], copy)
    (copy / "assets" / "tfcmvp_export.json").write_text("{not json")
    with pytest.raises(ExportError, match=r"tfcmvp_export.json: not valid JSON"):
        read_export_info(copy)


# --------------------------------------------------------------------------- input checks


def test_wrong_shape_or_dtype_errors_say_what_was_expected(exports):
    loaded = tf.saved_model.load(str(exports["video"]))
    embed = loaded.signatures["embed"]
    # Signature calls (what TF Serving and saved_model_cli run) are checked in the graph.
    with pytest.raises(tf.errors.InvalidArgumentError) as wrong_size:
        embed(clips=tf.zeros([2, 8, 16, 32, 3]))
    assert "expected clips float32 [N, 8, 32, 32, 3]" in str(wrong_size.value)
    assert "got shape [2 8 16 32 3]" in str(wrong_size.value)
    with pytest.raises(tf.errors.InvalidArgumentError) as wrong_rank:
        embed(clips=tf.zeros([8, 32, 32, 3]))  # one clip without the batch axis
    assert "expected clips float32 [N, 8, 32, 32, 3]" in str(wrong_rank.value)
    assert "got shape [8 32 32 3]" in str(wrong_rank.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        embed(clips=tf.zeros([2, 8, 32, 32, 3], tf.float64))
    # The restored functions are checked by TensorFlow against the TensorSpec.
    with pytest.raises(
        TypeError,
        match=r"TensorSpec\(shape=\(None, 8, 32, 32, 3\), "
        r"dtype=tf.float32",
    ):
        loaded.features(tf.zeros([2, 8, 32, 16, 3]))


# --------------------------------------------------------------------------- random init


def test_random_init_export_is_seeded_and_untrained(workdir, tmp_path):
    _, config, models = workdir
    a = export_random_init(config, tmp_path / "a", "video", seed=5)
    b = export_random_init(config, tmp_path / "b", "video", seed=5)
    info = read_export_info(a)
    assert info["source"] == {
        "kind": "random_init",
        "workdir": None,
        "epoch": None,
        "seed": 5,
        "config": None,
    }
    weights = {name: load_keras_network(path).get_weights() for name, path in (("a", a), ("b", b))}
    weights["c"] = networks.build_network("video", config, seed=6).get_weights()
    for x, y in zip(weights["a"], weights["b"], strict=True):
        np.testing.assert_array_equal(x, y)  # same seed, same network
    kernels = [i for i, w in enumerate(weights["a"]) if w.ndim == 5]  # conv kernels
    assert all(not np.array_equal(weights["a"][i], weights["c"][i]) for i in kernels)
    trained = models["video"].get_weights()
    assert all(not np.array_equal(weights["a"][i], trained[i]) for i in kernels)
    # Untrained BatchNorm: identity statistics, so a zero clip embeds to exactly zero.
    loaded = tf.saved_model.load(str(a))
    zeros = loaded.signatures["embed"](clips=tf.zeros([1, 8, 32, 32, 3]))["embedding"]
    np.testing.assert_array_equal(zeros.numpy(), np.zeros((1, 32), np.float32))


def test_random_init_of_a_resnet_video_network(tmp_path):
    config = tiny_config("model.video_network=r3d_10")
    path = export_random_init(config, tmp_path / "r3d", "video", seed=1)
    info = read_export_info(path)
    assert info["backbone"] == "r3d_10"
    assert info["feature_shape"] == [1, 2, 2, 32]  # no stem pool: 8x32x32 -> 1x2x2
    model = load_keras_network(path)
    clips = random_clips((8, 32, 32, 3), seed=3)
    expected = model(clips, training=False)["features"].numpy().mean(axis=(1, 2, 3))
    run_saved_model_test(path, "embed", {"embedding": expected}, atol=1e-5, clips=clips)


# --------------------------------------------------------------------------- extra signatures


def test_extra_signature_is_exported_with_its_variables(tmp_path):
    config = tiny_config()
    backbone = networks.build_network("video", config, seed=0)
    head = keras.layers.Dense(3, name="classifier_head")
    head.build((None, 32))
    head.kernel.assign(np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32))

    def classify(clips):
        features = backbone(clips, training=False)["features"]
        logits = head(tf.reduce_mean(features, axis=[1, 2, 3]))
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    info = make_export_info(
        network="classifier",
        backbone="c3d",
        input_spec=contract.input_contract("video", config.data),
        source={"kind": "finetuned", "workdir": "ft", "epoch": 1},
        num_classes=3,
        class_names=["a", "b", "c"],
    )
    path = export_network(
        backbone,
        tmp_path / "clf",
        info,
        cfg.dump_config(config),
        extra_signatures={"classify": classify},
    )
    written = read_export_info(path)
    assert written["signatures"] == ["embed", "features", "classify"]
    assert written["num_classes"] == 3
    clips = random_clips((8, 32, 32, 3), seed=4)
    expected = classify(tf.constant(clips))
    got = run_saved_model_test(path, "classify", expected, atol=1e-5, clips=clips)
    np.testing.assert_allclose(got["probabilities"].sum(axis=1), np.ones(2), atol=1e-6)
    with pytest.raises(ExportError, match="holds a 'classifier' network"):
        load_keras_network(path)
    text = describe_export(path)
    assert (
        "classify: clips float32 [None, 8, 32, 32, 3] -> logits float32 [None, 3], "
        "probabilities float32 [None, 3]"
    ) in text
    assert "classes: 3" in text and "source: finetuned (workdir ft, epoch 1)" in text


def test_export_network_rejects_a_contract_that_does_not_fit(tmp_path):
    config = tiny_config()
    backbone = networks.build_network("video", config)
    info = make_export_info(
        network="video",
        backbone="c3d",
        input_spec=contract.video_input_contract(16, 4, 32),
        source={"kind": "random_init"},
    )
    with pytest.raises(ExportError, match=r"input.shape \[16, 32, 32, 3\] does not fit"):
        export_network(backbone, tmp_path / "x", info, "")
    assert not (tmp_path / "x").exists()
