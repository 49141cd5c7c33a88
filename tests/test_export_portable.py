"""Portable exports (tfcmvp.export.portable): LiteRT and ONNX copies of `embed`.

Each network (and the two residual video network backbones) is converted from a
fake pretraining run's export (tests/export_support.py: random weights and
BatchNorm statistics), then the same random clips go through the SavedModel
and through the converted file in its own runtime (the LiteRT interpreter of
ai-edge-litert, onnxruntime). Tolerance: float32, max |diff| <= 1e-5 +
1e-4 * max |embedding| (measured: <= 5e-7). The MaxPool3D rewrite that makes
the 3-D networks convert to LiteRT builtins is compared with a written-out
NumPy max pool.
"""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.cli import export_cmd
from tfcmvp.export import export_pretrained, portable, read_export_info

from export_support import NETWORKS, TINY_SHAPES, fake_workdir, random_clips
from harness import run_command

pytest.importorskip("ai_edge_litert", reason="the export extra: pip install -e '.[export]'")
pytest.importorskip("tf2onnx", reason="the export extra: pip install -e '.[export]'")
pytest.importorskip("onnxruntime", reason="the export extra: pip install -e '.[export]'")

import onnxruntime  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

ATOL, RTOL = 1e-5, 1e-4
# Layers rewritten for LiteRT: C3D's four pools, the residual networks' stem pool.
REWRITTEN = {"video": ["pool1", "pool2", "pool3", "pool4"], "iframe": [], "motion": ["stem_pool"]}
RESIDUAL_VIDEO_BACKBONES = ("r2plus1d_26", "r3d_26")


def _run_litert(path, clips):
    interpreter = Interpreter(model_path=str(path))
    assert interpreter.get_signature_list() == {
        "embed": {"inputs": ["clips"], "outputs": ["embedding"]}
    }
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") for op in ops), ops  # builtins only: no Flex delegate
    return interpreter.get_signature_runner("embed")(clips=clips)["embedding"]


def _run_onnx(path, clips):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.name == "clips" and model_input.shape[1:] == list(clips.shape[1:])
    assert not isinstance(model_input.shape[0], int)  # any batch size
    return session.run(["embedding"], {"clips": clips})[0]


RUNTIMES = {"litert": _run_litert, "onnx": _run_onnx}


def _check_parity(model_dir, fmt, path):
    """Batch of 3 clips (not the converter's own check's 2): converted vs SavedModel."""
    info = read_export_info(model_dir)
    clips = random_clips(info["input"]["shape"], batch=3, seed=7)
    loaded = tf.saved_model.load(str(model_dir))
    expected = loaded.signatures["embed"](clips=tf.constant(clips))["embedding"].numpy()
    got = RUNTIMES[fmt](path, clips)
    assert got.shape == expected.shape == (3, info["embedding_dim"])
    scale = np.abs(expected).max()
    assert scale > 0.05  # random BatchNorm statistics: an embedding far from zero
    diff = float(np.abs(got - expected).max())
    assert diff <= ATOL + RTOL * scale, (fmt, diff, scale)
    return diff


# --------------------------------------------------------------------------- the rewrite


def _numpy_max_pool3d(x, pool, strides):
    """Valid max pooling over (T, H, W) of [N, T, H, W, C], written out."""
    (kt, kh, kw), (st, sh, sw) = pool, strides
    n, t, h, w, c = x.shape
    out_t, out_h, out_w = (t - kt) // st + 1, (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((n, out_t, out_h, out_w, c), x.dtype)
    for i in range(out_t):
        for j in range(out_h):
            for k in range(out_w):
                window = x[:, i * st : i * st + kt, j * sh : j * sh + kh, k * sw : k * sw + kw]
                out[:, i, j, k] = window.max(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize(
    "pool, strides",
    [
        ((1, 2, 2), (1, 2, 2)),  # C3D pool1
        ((2, 2, 2), (2, 2, 2)),  # C3D pool2-4
        ((1, 3, 3), (1, 2, 2)),  # the ResNets' stem pool (after padding)
        ((3, 2, 3), (2, 1, 2)),  # overlapping in time, odd sizes
    ],
)
def test_factorised_max_pool_equals_max_pool3d(pool, strides):
    x = np.random.default_rng(3).standard_normal((2, 7, 9, 11, 3)).astype(np.float32)
    layer = portable.FactorisedMaxPooling3D(pool, strides)
    got = np.asarray(layer(x))
    expected = _numpy_max_pool3d(x, pool, strides)
    assert got.shape == expected.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(got, expected)  # a maximum: exact
    keras_pool = keras.layers.MaxPooling3D(pool, strides, padding="valid")
    np.testing.assert_array_equal(np.asarray(keras_pool(x)), expected)


def _convert_builtins_only(model, shape):
    function = tf.function(lambda clips: model(clips), input_signature=[tf.TensorSpec([1, *shape])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], model
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def test_conv3d_is_a_builtin_but_max_pool3d_is_not():
    """What the README states: Conv3D converts as it is, MaxPool3D needs the rewrite."""
    shape = (4, 8, 8, 2)
    inputs = keras.Input(shape)
    conv = keras.Model(inputs, keras.layers.Conv3D(3, 3, padding="same")(inputs))
    ops = {
        op["op_name"]
        for op in Interpreter(model_content=_convert_builtins_only(conv, shape))._get_ops_details()
    }
    assert "CONV_3D" in ops
    pool = keras.Model(inputs, keras.layers.MaxPooling3D((2, 2, 2))(inputs))
    with pytest.raises(Exception, match="MaxPool3D"):
        _convert_builtins_only(pool, shape)
    rewritten, names = portable.litert_network(pool)
    assert len(names) == 1
    blob = _convert_builtins_only(rewritten, shape)
    x = random_clips(shape, batch=1, seed=4)
    runner = Interpreter(model_content=blob)
    runner.allocate_tensors()
    runner.set_tensor(runner.get_input_details()[0]["index"], x)
    runner.invoke()
    got = runner.get_tensor(runner.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, _numpy_max_pool3d(x, (2, 2, 2), (2, 2, 2)))


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("fmt", portable.FORMATS)
@pytest.mark.parametrize("network", NETWORKS)
def test_converted_embed_matches_the_saved_model(network, fmt, exports, capsys):
    model_dir = exports[network]
    path = portable.convert_export(model_dir, fmt, overwrite=True)
    assert path == model_dir.with_name(f"{network}{portable.SUFFIXES[fmt]}")
    diff = _check_parity(model_dir, fmt, path)

    described = json.loads(portable.contract_path(path).read_text())
    info = read_export_info(model_dir)
    assert described["input"] == info["input"]  # the same contract: shape, normalisation
    entry = described["portable"]
    assert entry["format"] == fmt and entry["file"] == path.name and entry["signature"] == "embed"
    assert entry["inputs"]["clips"]["shape"] == [-1, *TINY_SHAPES[network][0]]
    assert entry["outputs"]["embedding"]["shape"] == [-1, TINY_SHAPES[network][2]]
    rewritten = [name for rewrite in entry["rewrites"] for name in rewrite["layers"]]
    assert rewritten == (REWRITTEN[network] if fmt == "litert" else [])
    assert entry["parity"]["max_abs_diff"] <= entry["parity"]["tolerance"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes files
    with capsys.disabled():  # the numbers of the README table
        print(f"\n{network} {fmt}: max |diff| {diff:.2e}, {path.stat().st_size} bytes")


@pytest.fixture(scope="module")
def residual_video_exports(tmp_path_factory):
    """{backbone: export} of fake runs whose video network is R(2+1)D-26 / R3D-26."""
    result = {}
    for backbone in RESIDUAL_VIDEO_BACKBONES:
        run = tmp_path_factory.mktemp(backbone)
        fake_workdir(run, f"model.video_network={backbone}")
        result[backbone] = export_pretrained(run, run.parent / f"{backbone}_export", "video")
    return result


@pytest.mark.parametrize("fmt", portable.FORMATS)
@pytest.mark.parametrize("backbone", RESIDUAL_VIDEO_BACKBONES)
def test_residual_video_backbones_convert(backbone, fmt, residual_video_exports, capsys):
    model_dir = residual_video_exports[backbone]
    path = portable.convert_export(model_dir, fmt, overwrite=True)
    diff = _check_parity(model_dir, fmt, path)
    with capsys.disabled():
        print(f"\nvideo/{backbone} {fmt}: max |diff| {diff:.2e}, {path.stat().st_size} bytes")


def test_parity_failure_refuses_the_file(exports, monkeypatch, tmp_path):
    output = tmp_path / "bad.onnx"
    monkeypatch.setitem(portable.RUNTIMES, "onnx", lambda blob, clips: np.zeros((len(clips), 32)))
    with pytest.raises(portable.PortableExportError, match="differs from the SavedModel"):
        portable.convert_export(exports["iframe"], "onnx", output)
    assert not output.exists() and not portable.contract_path(output).exists()


# --------------------------------------------------------------------------- command line


def _cli(argv):
    """``tfcmvp export argv`` in this process: the exit status."""
    return run_command(export_cmd, "export", *argv)


def test_cli_export_format_onnx_writes_both(workdir, tmp_path, capsys, caplog):
    out = tmp_path / "motion_model"
    argv = ["--workdir", str(workdir[0]), "--network", "motion", "--output", str(out)]
    assert _cli(argv + ["--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert (out / "saved_model.pb").is_file()  # the SavedModel as without --format
    onnx_path = tmp_path / "motion_model.onnx"
    assert f"onnx copy of the embed signature: {onnx_path}" in printed
    assert "input clips float32 [-1, 8, 32, 32, 2] -> embedding [-1, 32]" in printed
    assert "parity with the SavedModel: max |diff|" in printed
    _check_parity(out, "onnx", onnx_path)

    # A second run without --overwrite stops before writing anything.
    caplog.set_level(logging.ERROR)
    assert _cli(argv + ["--format", "litert"]) == 2  # the SavedModel folder is in the way
    assert not (tmp_path / "motion_model.tflite").exists()
    argv[-1] = str(tmp_path / "new_model")
    onnx_path.rename(tmp_path / "new_model.onnx")
    caplog.clear()
    assert _cli(argv + ["--format", "onnx"]) == 2
    assert "new_model.onnx already exists" in caplog.text
    assert not (tmp_path / "new_model").exists()  # refused before the SavedModel was written


def test_cli_export_format_without_the_extra_names_the_install(
    workdir, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(portable, "_installed", lambda module: module != "tf2onnx")
    out = tmp_path / "model"
    argv = ["--workdir", str(workdir[0]), "--output", str(out), "--format", "onnx"]
    assert _cli(argv) == 2
    assert "needs tf2onnx, which is not installed: pip install -e '.[export]'" in caplog.text
    assert not out.exists()
