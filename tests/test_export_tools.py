"""An export works outside tfcmvp: TensorFlow alone, and TensorFlow's saved_model_cli.

The parent test exports the tiny video network of a fake run (random BatchNorm
statistics, so a zero clip has a non-zero embedding) and saves the outputs the
in-memory Keras network gives; child processes must reproduce them.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfcmvp.export import export_pretrained

from export_support import TINY_SHAPES, fake_workdir, random_clips

INPUT_SHAPE, FEATURE_SHAPE, DIM = TINY_SHAPES["video"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(export folder, folder of inputs / expected outputs as .npy)."""
    root = tmp_path_factory.mktemp("tools")
    _, models = fake_workdir(root / "run")
    model_dir = export_pretrained(root / "run", root / "model", "video")
    arrays = root / "arrays"
    arrays.mkdir()
    inputs = {
        "zeros": np.zeros((1, *INPUT_SHAPE), np.float32),
        "random": random_clips(INPUT_SHAPE, batch=2, seed=9),
    }
    for name, clips in inputs.items():
        features = models["video"](clips, training=False)["features"].numpy()
        np.save(arrays / f"{name}_clips.npy", clips)
        np.save(arrays / f"{name}_embedding.npy", features.mean(axis=(1, 2, 3)))
        np.save(arrays / f"{name}_features.npy", features)
    assert np.abs(np.load(arrays / "zeros_embedding.npy")).max() > 0.1  # a test that can fail
    return model_dir, arrays


def _run(argv, cwd) -> subprocess.CompletedProcess:
    # A clean environment: no PYTHONPATH (so no checkout on the path), quiet TF logs.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _saved_model_cli() -> list:
    """TensorFlow's saved_model_cli of this interpreter (its script, else the module)."""
    script = pathlib.Path(sys.executable).parent / "saved_model_cli"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


LOAD_WITHOUT_TFCMVP = textwrap.dedent("""
    import sys
    # Neither tfcmvp nor Keras may be imported while loading and running the model.
    sys.modules["tfcmvp"] = None
    sys.modules["keras"] = None
    import numpy as np
    import tensorflow as tf

    model_dir, arrays = sys.argv[1], sys.argv[2]
    try:
        import tfcmvp  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("tfcmvp is importable: the test does not test anything")
    loaded = tf.saved_model.load(model_dir)
    for name in ("zeros", "random"):
        clips = tf.constant(np.load(f"{arrays}/{name}_clips.npy"))
        embedding = loaded.signatures["embed"](clips=clips)["embedding"].numpy()
        features = loaded.signatures["features"](clips=clips)["features"].numpy()
        np.testing.assert_allclose(embedding, np.load(f"{arrays}/{name}_embedding.npy"),
                                   atol=1e-5)
        np.testing.assert_allclose(features, np.load(f"{arrays}/{name}_features.npy"),
                                   atol=1e-5)
    info = loaded.export_info.asset_path.numpy().decode()
    print("OK", embedding.shape, features.shape, info.rsplit("/", 1)[-1])
""")


def test_loads_and_runs_with_tensorflow_only(exported, tmp_path):
    model_dir, arrays = exported
    # -I: isolated mode (no user site, no current directory on sys.path).
    result = _run(
        [sys.executable, "-I", "-c", LOAD_WITHOUT_TFCMVP, str(model_dir), str(arrays)], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f"OK (2, {DIM}) (2, {', '.join(map(str, FEATURE_SHAPE))}) tfcmvp_export.json"
        in result.stdout
    )


def test_saved_model_cli_show_lists_the_signatures(exported, tmp_path):
    model_dir, _ = exported
    result = _run([*_saved_model_cli(), "show", "--dir", str(model_dir), "--all"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for name in ("embed", "features", "serving_default"):
        assert f"signature_def['{name}']" in out
    assert out.count("inputs['clips'] tensor_info:") == 3
    assert "shape: (-1, 8, 32, 32, 3)" in out
    assert "outputs['embedding'] tensor_info:" in out and "shape: (-1, 32)" in out
    assert "outputs['features'] tensor_info:" in out and "shape: (-1, 1, 2, 2, 32)" in out


def test_saved_model_cli_run_gives_the_keras_outputs(exported, tmp_path):
    model_dir, arrays = exported
    # TF 2.21's --input_exprs accepts Python literals only (no np.zeros), so the
    # input goes in as a .npy file.
    result = _run(
        [
            *_saved_model_cli(),
            "run",
            "--dir",
            str(model_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "embed",
            "--inputs",
            f"clips={arrays / 'zeros_clips.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    embedding = np.load(tmp_path / "out" / "embedding.npy")
    assert embedding.shape == (1, DIM)
    np.testing.assert_allclose(embedding, np.load(arrays / "zeros_embedding.npy"), atol=1e-5)
