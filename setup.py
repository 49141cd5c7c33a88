"""Install tfcmvp. Versions are pinned to the set the test suite runs on.

`pip install -e .[test]` for development; Beam workers receive the package
through `--setup_file ./setup.py`.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "tensorboard==2.21.0",  # TF 2.21 no longer pulls it in; training writes event files
    "apache-beam[gcp]==2.77.0",
    "google-crc32c==1.9.0",  # TFRecord framing in beam_jobs (also pulled in by beam[gcp])
    "av==18.1.0",
    "numpy>=1.26,<2.5",
    "pillow==12.3.0",
    "pyyaml==6.0.3",
    "tqdm==4.70.1",
    "matplotlib==3.11.2",
]

SKLEARN = "scikit-learn==1.9.1"  # the linear probe's solver (tfcmvp.evaluation.linear_probe)
# `--runner DaskRunner` (beam_jobs.dask_cluster). Beam 2.77's extra asks for dask and
# distributed >= 2024.4.2 with no upper bound; these are the versions the tests run.
DASK = ["apache-beam[dask]==2.77.0", "dask==2026.8.0", "distributed==2026.8.0"]

# `tfcmvp export --format litert|onnx` (tfcmvp.export.portable): the converters and the
# runtimes of the parity check. TensorFlow's own converter makes the .tflite; tf2onnx 1.17
# imports and converts with TF 2.21 / Keras 3 / protobuf 6 / numpy 2 (no tf_keras needed).
EXPORT = ["ai-edge-litert==2.3.0", "tf2onnx==1.17.0", "onnx==1.23.2", "onnxruntime==1.31.1"]

EXTRAS = {
    # The tests run the linear probe too, so they need its solver, and the job on Dask;
    # ruff checks the style before them (.ci/run, pyproject.toml); the portable exports'
    # parity tests need the export extra (it installs beside the pinned stack unchanged).
    "test": ["pytest==9.0.3", "pytest-timeout==2.4.0", "ruff==0.17.5", SKLEARN, *DASK, *EXPORT],
    # `tfcmvp evaluate --linear` (kNN needs nothing beyond the install requirements).
    "eval": [SKLEARN],
    "dask": DASK,
    "export": EXPORT,
    # Peers measured side by side in benchmarks/ (not needed to use tfcmvp).
    "bench": ["opencv-python-headless==5.0.0.93", "motion-vector-extractor==2.0.0"],
}

setup(
    name="tfcmvp",
    version="0.1.0",
    description=(
        "Self-supervised video representation learning from compressed video: "
        "I-frames for context, motion vectors for motion (TensorFlow / Keras 3)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["tfcmvp", "tfcmvp.*", "beam_jobs", "beam_jobs.*"]),
    package_data={"tfcmvp": ["py.typed"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["tfcmvp=tfcmvp.cli.main:main"]},
)
