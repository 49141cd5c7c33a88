"""The round trips the tests check again and again, written once.

In the manner of keras-hub's ``TestCase.run_serialization_test`` and
``run_model_saving_test``: a test states what it round-trips and with which
inputs; the helper does the save/load and fails naming what differs. Each
helper returns what it loaded, for checks particular to one test.

Also here: starting the scripts of ``tests/scripts`` in a fresh Python with
the repository and this folder importable (:func:`script_command`,
:func:`run_script`, :func:`start_script`), and running a ``tfcmvp``
subcommand in this process (:func:`run_command`, :func:`set_flags`).
"""

import argparse
import copy
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SCRIPTS_DIR = TESTS_DIR / "scripts"


# --------------------------------------------------------------------------- round trips


def assert_same_outputs(actual, expected, *, atol: float = 0.0, what: str = "output") -> None:
    """``actual`` and ``expected`` (tensors, arrays, numbers, or dicts/lists of them) are
    equal (``atol=0``) or within ``atol``; a dict's keys must match."""
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), f"{what}: keys {sorted(actual)}"
        for key in expected:
            assert_same_outputs(actual[key], expected[key], atol=atol, what=f"{what}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{what}: {len(actual)} != {len(expected)} items"
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same_outputs(a, e, atol=atol, what=f"{what}[{index}]")
    elif atol:
        np.testing.assert_allclose(
            np.asarray(actual), np.asarray(expected), atol=atol, err_msg=what
        )
    else:
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected), err_msg=what)


def run_serialization_test(instance, inputs=None, *, call=None):
    """``type(instance).from_config(instance.get_config())`` gives the same config back
    and, with ``inputs`` (or ``call``), the same outputs on the same weights.

    ``call(obj)`` computes the outputs to compare (default ``obj(inputs)``: a layer or
    model in inference mode); a layer's clone is called once to build it, then gets
    the instance's weights. Returns the clone.
    """
    config = instance.get_config()
    # A copy: Functional.from_config pops the keys of the dict it is given.
    clone = type(instance).from_config(copy.deepcopy(config))
    assert clone.get_config() == config, f"{type(instance).__name__}: get_config changed"
    if inputs is None and call is None:
        return clone
    call = call or (lambda obj: obj(inputs))
    expected = call(instance)  # builds the instance if it was not
    if getattr(instance, "weights", None):
        call(clone)  # builds the clone's weights
        clone.set_weights(instance.get_weights())
    assert_same_outputs(call(clone), expected, what=f"{type(instance).__name__} clone")
    return clone


def run_model_saving_test(model, inputs, path):
    """``model.save(path)`` (a ``.keras`` file) and ``keras.saving.load_model`` give a
    model with identical outputs on ``inputs`` (inference mode). Returns the reloaded model."""
    expected = model(inputs, training=False)
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert_same_outputs(reloaded(inputs, training=False), expected, what=f"reloaded {path}")
    return reloaded


def run_checkpoint_test(written, restored, path, name: str = "optimizer"):
    """``tf.train.Checkpoint(name=written)`` saved under ``path`` restores into
    ``restored`` (every object matched) with equal variables. Returns the save path."""
    saved = tf.train.Checkpoint(**{name: written}).save(str(path))
    tf.train.Checkpoint(**{name: restored}).restore(saved).assert_existing_objects_matched()
    assert len(restored.variables) == len(written.variables)
    for a, b in zip(written.variables, restored.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.name)
    return saved


def run_config_file_test(config, path, load=None) -> pathlib.Path:
    """``tfcmvp.config.save_config(config, path)`` read back by ``load`` (default
    ``tfcmvp.config.load_config``) gives an equal config. Returns the written path."""
    from tfcmvp import config as cfg

    written = cfg.save_config(config, path)
    loaded = (load or cfg.load_config)(written)
    assert loaded == config, cfg.config_differences(config, loaded)
    return written


def run_saved_model_test(saved_model, signature: str, expected: dict, *, atol: float, **inputs):
    """The SavedModel ``saved_model`` (a folder, loaded with ``tf.saved_model.load``, or
    the loaded object) gives ``expected`` (``{output name: array}``, all of the
    signature's outputs) from signature ``signature`` called with ``inputs``.
    Returns its outputs as arrays."""
    if isinstance(saved_model, (str, os.PathLike)):
        loaded = tf.saved_model.load(str(saved_model))
    else:
        loaded = saved_model
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    outputs = {key: value.numpy() for key, value in outputs.items()}
    assert_same_outputs(outputs, expected, atol=atol, what=f"signature {signature}")
    return outputs


# --------------------------------------------------------------------------- scripts


def script_command(name: str, *args) -> list:
    """The command running ``tests/scripts/<name>`` with ``args``."""
    path = SCRIPTS_DIR / name
    assert path.is_file(), f"no test script {path}"
    return [sys.executable, str(path), *map(str, args)]


def script_env(extra_env=None) -> dict:
    """This environment with the repository and ``tests/`` first on ``PYTHONPATH`` (the
    scripts import tfcmvp from this checkout and the ``*_support`` modules)."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(
        os.environ,
        **(extra_env or {}),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(TESTS_DIR), *inherited]),
    )


def run_script(name: str, *args, timeout: float = 300) -> dict:
    """Runs ``tests/scripts/<name> args`` to its end; the JSON its last stdout line prints.
    Fails the test with the end of its stderr when it does not exit 0."""
    result = subprocess.run(
        script_command(name, *args),
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_script(name: str, *args, extra_env=None) -> subprocess.Popen:
    """Starts ``tests/scripts/<name> args`` (stdout and stderr together in ``.stdout``)."""
    return subprocess.Popen(
        script_command(name, *args),
        env=script_env(extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# --------------------------------------------------------------------------- command line


def run_command(module, command: str, *args) -> int:
    """Runs ``tfcmvp <command> args`` in this process: the parser that ``module`` (a
    ``tfcmvp.cli`` subcommand module) adds, then its ``run``. Returns the exit status.
    Arguments are turned into strings, so paths and numbers can be passed as they are."""
    parser = argparse.ArgumentParser(prog="tfcmvp")
    module.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([command, *map(str, args)])
    return args.run(args)


def set_flags(overrides) -> list:
    """``["--set", override, ...]``: config overrides as command-line flags."""
    return [flag for override in overrides for flag in ("--set", override)]
