"""Writing an export folder: a SavedModel with named signatures plus its assets.

The SavedModel holds a plain ``tf.Module`` whose ``tf.function``s run the
Keras network's inference call (``training=False``) and whose only state is
the list of variables those functions read. Nothing Keras-specific is
serialised, so ``tf.saved_model.load`` needs TensorFlow only: no Keras, no
tfcmvp, no custom-object registration.

Signatures (each takes ``clips`` float32 ``[N, *input.shape]``):

* ``embed`` (also ``serving_default``): ``{"embedding": [N, D]}``, the global
  average of the network's last feature map;
* ``features``: ``{"features": [N, T', H', W', C]}`` (``[N, H', W', C]`` for
  the I-frame network);
* any ``extra_signatures`` (finetuned classifiers add ``classify``).

Video exports also get ``embed_frames``, which takes ``frames`` uint8
``[T, H, W, 3]`` (decoded frames of a whole video, any length and size) and
returns ``{"clip_embeddings": [N, D], "embedding": [D]}``: ``tfcmvp
embed``'s preprocessing inside the graph (:mod:`tfcmvp.export.frames`).

Signature calls (``loaded.signatures[name](clips=...)``, TF Serving,
``saved_model_cli run``) do not check input shapes against the signature, so
every function starts with an explicit check whose error names the expected
shape. Calls of the restored functions (``loaded.embed(clips)``) are checked
by TensorFlow itself against the same TensorSpec.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
from typing import Callable, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp import outputs
from tfcmvp.export import contract as ct
from tfcmvp.export import contract_checks, frames

logger = logging.getLogger(__name__)

SignatureFn = Callable[[tf.Tensor], Mapping[str, tf.Tensor]]


def check_clips(clips: tf.Tensor, input_shape, signature: str) -> tf.Tensor:
    """`clips` after a run-time check that it is ``[N, *input_shape]``.

    The check compares the dims as a string ("8, 32, 32, 3") rather than as
    numbers: Grappler folds the rank and the known dims of the traced
    TensorSpec into constants, so a numeric comparison would pass (or fail
    with an unrelated message) on a tensor of the wrong rank.
    """
    expected = ", ".join(str(int(d)) for d in input_shape)
    shape = tf.shape(clips)
    got = tf.strings.reduce_join(tf.strings.as_string(shape[1:]), separator=", ")
    message = tf.strings.format(
        f"tfcmvp {signature}: expected {ct.INPUT_NAME} float32 [N, {expected}] (see "
        f"assets/{ct.INFO_NAME}), got shape {{}}",
        [shape],
        summarize=-1,
    )
    assertion = tf.debugging.Assert(tf.equal(got, expected), [message])
    with tf.control_dependencies([assertion]):
        return tf.identity(clips)


def feature_map(network: keras.Model, clips: tf.Tensor) -> tf.Tensor:
    """The network's last feature map in inference mode, float32."""
    outputs = network(clips, training=False)
    if not isinstance(outputs, Mapping) or ct.FEATURES_OUTPUT not in outputs:
        raise ct.ExportError(
            f"network {network.name!r} must return a dict with a {ct.FEATURES_OUTPUT!r} entry "
            f"(a tfcmvp backbone), got {type(outputs).__name__}"
            + (f" with keys {sorted(outputs)}" if isinstance(outputs, Mapping) else "")
        )
    return tf.cast(outputs[ct.FEATURES_OUTPUT], tf.float32)  # [N, (T',) H', W', C]


def embedding_of(features: tf.Tensor) -> tf.Tensor:
    """Global average over every axis but batch and channels: [N, ..., C] -> [N, C]."""
    return tf.reduce_mean(features, axis=list(range(1, features.shape.rank - 1)))


class ExportModule(tf.Module):
    """What the SavedModel holds: checked tf.functions over `network` and its variables.

    Args:
      network: a tfcmvp backbone (returns a dict with "features").
      input_shape: one example's shape, e.g. (16, 112, 112, 3).
      extra_signatures: {name: fn(clips) -> dict of tensors}; the variables
        the functions read are saved with the network's.
      input_spec, frames_spec: the input contract and the
        ``frames_signature`` of a video export
        (:func:`tfcmvp.export.contract.frames_contract`); with both, the
        module also has ``embed_frames`` (:mod:`tfcmvp.export.frames`).
    """

    def __init__(
        self,
        network: keras.Model,
        input_shape,
        extra_signatures: Optional[Mapping[str, SignatureFn]] = None,
        name: str = "tfcmvp_export",
        *,
        input_spec: Optional[Mapping] = None,
        frames_spec: Optional[Mapping] = None,
    ):
        super().__init__(name=name)
        input_shape = tuple(int(d) for d in input_shape)
        spec = tf.TensorSpec((None, *input_shape), tf.float32, name=ct.INPUT_NAME)

        def features(clips):
            return {ct.FEATURES_OUTPUT: feature_map(network, clips)}

        def embed(clips):
            return {ct.EMBED_OUTPUT: embedding_of(feature_map(network, clips))}

        functions = {ct.EMBED: embed, ct.FEATURES: features}
        for signature, fn in (extra_signatures or {}).items():
            if signature in functions or signature in (ct.SERVING_DEFAULT, ct.EMBED_FRAMES):
                raise ct.ExportError(
                    f"extra signature {signature!r} clashes with the built-in "
                    f"{list(functions) + [ct.SERVING_DEFAULT]}"
                )
            if not signature.isidentifier():
                raise ct.ExportError(f"signature name {signature!r} must be a Python identifier")
            functions[signature] = _float32_outputs(fn, signature)

        for signature, fn in functions.items():
            checked = _checked(fn, input_shape, signature)
            # autograph off: the Keras call is plain graph code, nothing to convert.
            setattr(self, signature, tf.function(checked, input_signature=[spec], autograph=False))
        self._signature_names = tuple(functions)
        if frames_spec is not None:
            if input_spec is None:
                raise ct.ExportError("frames_spec needs the input contract (input_spec)")
            frames_fn = frames.embed_frames_fn(
                lambda clips: embedding_of(feature_map(network, clips)), input_spec, frames_spec
            )
            frames_tensor = tf.TensorSpec([None, None, None, 3], tf.uint8, name=ct.FRAMES_INPUT)
            # autograph off as above: the preprocessing is written with tf.cond / map_fn.
            self.embed_frames = tf.function(
                frames_fn, input_signature=[frames_tensor], autograph=False
            )
            self._signature_names += (ct.EMBED_FRAMES,)
        # The only state saved: the variables the traced functions read.
        self.network_variables = _variables_of(self.concrete_functions().values())

    def concrete_functions(self) -> dict:
        """{signature name: concrete function}, in export order."""
        return {name: getattr(self, name).get_concrete_function() for name in self._signature_names}

    def signature_map(self) -> dict:
        """The `signatures` argument of tf.saved_model.save (serving_default = embed)."""
        functions = self.concrete_functions()
        return {**functions, ct.SERVING_DEFAULT: functions[ct.EMBED]}


def _checked(fn: SignatureFn, input_shape, signature: str) -> SignatureFn:
    def checked(clips):
        return fn(check_clips(clips, input_shape, signature))

    checked.__name__ = signature
    return checked


def _float32_outputs(fn: SignatureFn, signature: str) -> SignatureFn:
    """`fn` with a dict check and floating outputs cast to float32 (mixed precision)."""

    def wrapped(clips):
        outputs = fn(clips)
        if not isinstance(outputs, Mapping) or not outputs:
            raise ct.ExportError(
                f"signature {signature!r} must return a non-empty dict of "
                f"tensors, got {type(outputs).__name__}"
            )
        return {
            key: tf.cast(value, tf.float32) if value.dtype.is_floating else value
            for key, value in outputs.items()
        }

    return wrapped


def _variables_of(concrete_functions) -> list:
    seen, variables = set(), []
    for function in concrete_functions:
        for variable in function.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    return variables


def _complete_info(info: Mapping, module: ExportModule) -> dict:
    """`info` with signatures / embedding_dim / feature_shape from the traced functions.

    Values the caller gave must agree with the traced network.
    """
    info = dict(info)
    functions = module.concrete_functions()
    features = functions[ct.FEATURES].structured_outputs[ct.FEATURES_OUTPUT].shape
    traced = {
        "signatures": list(functions),
        "embedding_dim": int(features[-1]),
        "feature_shape": [int(d) for d in features[1:]],
    }
    for key, value in traced.items():
        given = info.get(key)
        if key == "signatures" and given is not None and list(given) == list(ct.BASE_SIGNATURES):
            given = None  # the default of make_export_info: extra signatures may follow
        if given is not None and given != value:
            raise ct.ExportError(
                f"export info {key}={given!r} disagrees with the traced network ({value!r})"
            )
        info[key] = value
    return info


def _check_network_input(network: keras.Model, input_shape) -> None:
    inputs = getattr(network, "inputs", None) or []
    if len(inputs) != 1:
        return  # a subclassed model: the trace with the TensorSpec is the check
    declared = tuple(inputs[0].shape[1:])
    if any(d is not None and d != e for d, e in zip(declared, input_shape)) or len(declared) != len(
        input_shape
    ):
        raise ct.ExportError(
            f"export info input.shape {list(input_shape)} does not fit the "
            f"network {network.name!r}, whose input is {list(declared)}"
        )


def export_network(
    network: keras.Model,
    output_dir,
    info: Mapping,
    config_yaml: str,
    extra_signatures: Optional[Mapping[str, SignatureFn]] = None,
    *,
    overwrite: bool = False,
    inputs: Sequence = (),
) -> pathlib.Path:
    """Writes `network` as a tfcmvp export folder and returns its path.

    Args:
      network: a tfcmvp backbone (returns a dict with "features"); its
        weights are exported as they are now.
      output_dir: the export folder (created; its parent too). The folder is
        written beside it under a temporary name and swapped in when complete
        (:func:`tfcmvp.outputs.swap_in`), so a crash or a kill never leaves a
        half-written export, and a previous export stays whole until then.
      info: the description (see :mod:`tfcmvp.export.contract`, e.g. from
        :func:`~tfcmvp.export.contract.make_export_info`); ``signatures``,
        ``embedding_dim`` and ``feature_shape`` are filled in from the
        traced network when missing. Its ``input.shape`` fixes the
        signatures' input shape; a ``frames_signature`` entry (video
        networks) adds the ``embed_frames`` signature.
      config_yaml: the resolved training config, written to assets/config.yaml.
      extra_signatures: {name: fn(clips) -> dict of tensors}, e.g. a
        classifier's ``classify``.
      overwrite: replace a previous export in `output_dir`; a folder holding
        anything else is never replaced (:func:`tfcmvp.outputs.export_problem`).
      inputs: paths the export is made from (e.g. the pretraining workdir):
        `output_dir` must be none of them and no parent of one.

    Returns: the export folder.

    Raises:
      ExportError: `info` is invalid or does not fit the network.
      FileExistsError (:class:`tfcmvp.outputs.OverwriteRefused`): `output_dir`
        is not empty and `overwrite` is False; or it holds something other
        than an export; or it is (or holds) one of `inputs`.
    """
    output_dir = pathlib.Path(output_dir)
    outputs.check_export_output(output_dir, overwrite=overwrite, inputs=inputs)
    contract_input = info.get("input") if isinstance(info, Mapping) else None
    if not isinstance(contract_input, Mapping) or "shape" not in contract_input:
        raise ct.ExportError(f"export info needs input.shape, got input={contract_input!r}")
    input_shape = [int(d) for d in contract_input["shape"]]
    _check_network_input(network, input_shape)

    frames_spec = info.get(ct.FRAMES_SIGNATURE_KEY)
    if frames_spec is not None:
        problems = contract_checks.frames_contract_problems(frames_spec)
        if info.get("network") != "video":
            problems.append(f"it is for video networks, not {info.get('network')!r}")
        if problems:
            raise ct.ExportError(
                f"export info {ct.FRAMES_SIGNATURE_KEY} is invalid: " + "; ".join(problems)
            )
    module = ExportModule(
        network,
        input_shape,
        extra_signatures,
        input_spec=contract_input,
        frames_spec=frames_spec,
    )
    info = contract_checks.validate_export_info(_complete_info(info, module), "export info")

    staging = outputs.make_staging_dir(output_dir.parent, f".{output_dir.name}.tfcmvp-staging-")
    try:
        assets, written = staging / "assets_in", staging / "saved_model"
        assets.mkdir()
        (assets / ct.INFO_NAME).write_text(ct.dumps_export_info(info), encoding="utf-8")
        (assets / ct.CONFIG_NAME).write_text(config_yaml, encoding="utf-8")
        network.save_weights(str(assets / ct.WEIGHTS_NAME))
        # Tracked assets are copied into assets/ by the save and their paths
        # are restored with the model (loaded.export_info.asset_path).
        module.export_info = tf.saved_model.Asset(str(assets / ct.INFO_NAME))
        module.config_yaml = tf.saved_model.Asset(str(assets / ct.CONFIG_NAME))
        module.network_weights = tf.saved_model.Asset(str(assets / ct.WEIGHTS_NAME))
        tf.saved_model.save(module, str(written), signatures=module.signature_map())
        for name in (ct.INFO_NAME, ct.CONFIG_NAME, ct.WEIGHTS_NAME):
            if not (written / ct.ASSETS_DIR / name).is_file():
                raise ct.ExportError(f"the SavedModel in {written} lacks {ct.ASSETS_DIR}/{name}")
        # Again: the folder may have changed during the export.
        outputs.check_export_output(output_dir, overwrite=overwrite, inputs=inputs)
        outputs.swap_in(written, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
