"""The ``embed_frames`` signature of video exports against ``tfcmvp embed``.

``embed_frames`` takes a video's decoded frames (uint8 ``[T, H, W, 3]``) and
does ``tfcmvp embed``'s preprocessing in the graph (tfcmvp/export/frames.py).
The reference is :func:`tfcmvp.embedding.embed_videos` on the video file; the
signature gets the same decoder's frames at their decoded size
(``read_video(rgb=True)``, no resize).

Tolerances (measured on these videos with the tiny fake-run C3D, whose
embedding entries reach about 0.7; pixel differences in levels of 0..255):

* short side 128, what the extraction stores, so neither path resamples
  (``stored_size``, and ``short`` with T = 9 < one clip span of 15): the
  JPEG round trip in the graph decodes to the stored pixels, the clips are
  equal (0 levels) and only float rounding is left: max |diff| of the
  video embedding 1.2e-7; asserted 1e-5. Without the in-graph JPEG round
  trip (``jpeg_quality`` None) the clips would differ by 3.2 levels on
  average (max 23) and the embedding by 3.0e-3 (0.44 % of its largest
  entry): why the signature keeps it.
* other sizes: the graph resizes RGB with TensorFlow, ``tfcmvp embed``
  resizes YUV with swscale before the RGB conversion. Clip pixels differ
  by 1.0 (carphone 176x144), 1.4 (48x64, enlarged) and 4.4 (320x240,
  shrunk) levels on average; the video embedding by 1.7e-4, 3.9e-4 and
  8.7e-4 (0.03 %, 0.06 %, 0.13 % of its largest entry); asserted 1 %. A
  trained, larger network need not average these differences away as well:
  the pixel differences are the network-independent figure.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.codec import read_video, write_video
from tfcmvp.codec.synthetic import moving_texture
from tfcmvp.export import (
    ExportError,
    describe_export,
    export_network,
    load_export,
    make_export_info,
    read_export_info,
    validate_export_info,
)
from tfcmvp.export import contract as ct

EXACT_ATOL = 1e-5  # same clips, float rounding of a graph traced apart from tf.data
RESIZED_RTOL = 0.01  # of max |embedding|: TF's RGB resize vs swscale's YUV resize


@pytest.fixture(scope="module")
def video_export(workdir, tmp_path_factory):
    from tfcmvp.export import export_pretrained

    return export_pretrained(workdir[0], tmp_path_factory.mktemp("export") / "video", "video")


@pytest.fixture(scope="module")
def videos(tmp_path_factory, carphone_path):
    """{name: path}: stored size (short side 128), shorter than a clip, enlarged, shrunk."""
    root = tmp_path_factory.mktemp("videos")

    def texture(name, frames, height, width, seed):
        pixels = moving_texture(frames, height, width, velocity=(1.5, -0.5), seed=seed)
        return write_video(root / f"{name}.avi", pixels, codec="mpeg4", gop=12)

    return {
        "stored_size": texture("stored_size", 40, 128, 170, 1),  # T > span: 10 distinct clips
        "short": texture("short", 9, 128, 170, 2),  # T < span 15: clips repeat the last frame
        "enlarged": texture("enlarged", 30, 48, 64, 3),
        "shrunk": texture("shrunk", 50, 240, 320, 4),
        "carphone": str(carphone_path),  # 176x144 H.264 with B-frames, 120 frames
    }


@pytest.fixture(scope="module")
def embed_reference(video_export, videos, tmp_path_factory):
    """{name: (clip embeddings [10, D], their mean [D], the clips embed fed the export)}."""
    from tfcmvp.embedding import embed_videos
    from tfcmvp.retrieval.features import load_embedding_fn

    export_embed = load_embedding_fn(video_export)
    clips = []

    def recording_embed(batch):
        clips.append(np.asarray(batch))  # one call per video: 10 clips < batch size 20
        return export_embed(batch)

    out = tmp_path_factory.mktemp("embed") / "out"
    paths = list(videos.values())
    embed_videos(paths, video_export, out, progress=False, embed_fn=recording_embed)
    matrix = np.load(out / "embeddings.npy").reshape(len(paths), 10, -1)  # rows in input order
    assert len(clips) == len(paths)
    return {
        name: (rows, rows.mean(axis=0), batch)
        for name, rows, batch in zip(videos, matrix, clips, strict=True)
    }


def _decoded(path) -> np.ndarray:
    return read_video(path, rgb=True).frames  # uint8 [T, H, W, 3] at the decoded size


def _embed_frames(model_dir, frames: np.ndarray) -> dict:
    loaded = tf.saved_model.load(str(model_dir))
    result = loaded.signatures[ct.EMBED_FRAMES](frames=tf.constant(frames))
    return {key: value.numpy() for key, value in result.items()}


def test_stored_size_is_the_decoders():
    """The in-graph output size equals tfcmvp.codec.decode.rgb_size (rounding, ties, 1 px)."""
    from tfcmvp.codec.decode import rgb_size
    from tfcmvp.export.frames import stored_size

    sizes = [
        (h, w)
        for h in (1, 2, 3, 48, 97, 128, 144, 240, 256, 1080)
        for w in (1, 5, 64, 170, 176, 320, 1920)
    ]
    sizes += [(200, 300), (300, 200)]  # 128 * 300 / 200 = 192.0 exactly
    sizes += [(256, 385), (256, 387), (387, 256)]  # 192.5 -> 192, 193.5 -> 194: as round()
    for height, width in sizes:
        got = tuple(int(v) for v in stored_size(height, width, 128))
        assert got == rgb_size(height, width, 128), (height, width)


def test_export_lists_the_signature_and_its_contract(video_export):
    info = read_export_info(video_export)
    assert info["signatures"] == ["embed", "features", "embed_frames"]
    assert info["format_version"] == 1  # an optional key: older readers still read it
    spec = info["frames_signature"]
    assert (spec["num_clips"], spec["positions"]) == (10, "vcop")
    assert (spec["stored_short_side"], spec["jpeg_quality"]) == (128, 90)
    assert spec["input"] == "frames" and spec["dtype"] == "uint8"
    # The embed defaults the contract records.
    from tfcmvp.embedding.clips import ClipLayout
    from tfcmvp.embedding.decode import StorageSettings

    storage = StorageSettings()
    assert (spec["stored_short_side"], spec["jpeg_quality"]) == (
        storage.rgb_short_side,
        storage.jpeg_quality,
    )
    assert spec["num_clips"] == ClipLayout().num_clips
    text = describe_export(video_export)
    assert "embed_frames contract (frames)" in text
    assert "clips: 10 at the 'vcop' positions" in text
    assert "stored frames: short side 128, JPEG quality 90" in text
    assert (
        "embed_frames: frames uint8 [None, None, None, 3] -> clip_embeddings float32 [10, 32], "
        "embedding float32 [32]" in text
    )


def test_equals_embed_at_the_stored_size(video_export, videos, embed_reference):
    for name in ("stored_size", "short"):
        frames = _decoded(videos[name])
        assert frames.shape[1:3] == (128, 170)
        got = _embed_frames(video_export, frames)
        clips, mean, _ = embed_reference[name]
        assert got["clip_embeddings"].shape == (10, 32) and got["embedding"].shape == (32,)
        difference = np.abs(got["embedding"] - mean).max()
        print(f"{name} {frames.shape}: max |diff| {difference:.2e}")
        np.testing.assert_allclose(got["clip_embeddings"], clips, rtol=0, atol=EXACT_ATOL)
        np.testing.assert_allclose(got["embedding"], mean, rtol=0, atol=EXACT_ATOL)
        assert np.abs(mean).max() > 0.1  # a real signal (randomised BatchNorm)
    # The short video's clips all start at 0: ten equal rows, as in embed.
    short = _embed_frames(video_export, _decoded(videos["short"]))["clip_embeddings"]
    np.testing.assert_array_equal(short, np.repeat(short[:1], 10, axis=0))


def test_frames_decoded_at_the_stored_size_give_embed_exactly(
    video_export, videos, embed_reference
):
    """A client that scales to a 128-px short side as the decoder does (swscale AREA, in
    YUV, then RGB: PyAV's ``frame.reformat``) gets embed's numbers (the README's advice)."""
    frames = read_video(videos["carphone"], rgb=True, rgb_short_side=128).frames
    assert frames.shape[1:3] == (128, 156)  # from 144x176
    got = _embed_frames(video_export, frames)
    clips, mean, _ = embed_reference["carphone"]
    np.testing.assert_allclose(got["clip_embeddings"], clips, rtol=0, atol=EXACT_ATOL)
    np.testing.assert_allclose(got["embedding"], mean, rtol=0, atol=EXACT_ATOL)


def test_close_to_embed_at_other_sizes(video_export, videos, embed_reference):
    for name in ("enlarged", "shrunk", "carphone"):
        frames = _decoded(videos[name])
        got = _embed_frames(video_export, frames)["embedding"]
        _, mean, _ = embed_reference[name]
        relative = np.abs(got - mean).max() / np.abs(mean).max()
        print(f"{name} {frames.shape}: max |diff| / max |embedding| {relative:.3%}")
        assert relative < RESIZED_RTOL
        # Far closer than the embedding of another video: the same video, not noise.
        others = [embed_reference[other][1] for other in videos if other != name]
        assert all(np.abs(got - mean).max() < 0.5 * np.abs(mean - o).max() for o in others)


def _levels(clips, input_spec) -> np.ndarray:
    """Normalised clips -> pixel values in levels of 0..255 (undoing (x / 255 - m) / s)."""
    return clips * np.asarray(input_spec["std"]) * 255.0


def test_clips_against_embed_with_and_without_the_jpeg_round_trip(
    video_export, videos, embed_reference
):
    """The in-graph clips, in pixel levels: why the signature does the JPEG round trip."""
    from tfcmvp.export import frames as frames_lib

    info = read_export_info(video_export)
    spec = info[ct.FRAMES_SIGNATURE_KEY]
    mean_levels = {}
    for name in videos:
        decoded = tf.constant(_decoded(videos[name]))
        reference = _levels(embed_reference[name][2], info["input"])
        for quality in (spec["jpeg_quality"], None):
            variant = dict(spec, jpeg_quality=quality)
            clips = tf.function(
                lambda f, variant=variant: frames_lib.frames_to_clips(f, info["input"], variant)
            )(decoded).numpy()  # [10, L, S, S, 3]
            assert clips.shape == reference.shape
            difference = np.abs(_levels(clips, info["input"]) - reference)
            mean_levels[name, quality] = difference.mean()
            print(f"{name} jpeg {quality}: levels max {difference.max():.1f}", end=" ")
            print(f"mean {difference.mean():.2f}")
            if name in ("stored_size", "short") and quality is not None:
                assert difference.max() < 1e-3  # the stored pixels: equal up to float rounding
    for name in ("stored_size", "short"):
        assert mean_levels[name, None] > 1.0  # the JPEG loss the round trip reproduces
    for name in ("enlarged", "shrunk", "carphone"):
        assert mean_levels[name, spec["jpeg_quality"]] < 8.0  # TF's RGB vs swscale's YUV resize
        assert mean_levels[name, spec["jpeg_quality"]] < mean_levels[name, None]


def test_any_length_and_size(video_export):
    """T from 1 frame to past 10 spans; odd sizes, portrait and landscape, both one frame."""
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 1, 3), (7, 5, 300, 3), (16, 200, 31, 3), (200, 64, 64, 3)]:
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        got = _embed_frames(video_export, frames)
        assert got["clip_embeddings"].shape == (10, 32) and got["embedding"].shape == (32,)
        assert np.all(np.isfinite(got["embedding"]))
        np.testing.assert_allclose(
            got["embedding"], got["clip_embeddings"].mean(axis=0), rtol=0, atol=1e-6
        )


def test_bad_frames_name_the_expected_shape(video_export):
    loaded = tf.saved_model.load(str(video_export))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected frames uint8 \[T, H, W"):
        loaded.signatures[ct.EMBED_FRAMES](frames=tf.zeros([0, 8, 8, 3], tf.uint8))


SCRIPT = '''\
"""Loads an export with TensorFlow alone and runs embed_frames on frames.npy."""
import sys

import numpy as np
import tensorflow as tf

model_dir, frames_path, output_path = sys.argv[1:4]
loaded = tf.saved_model.load(model_dir)
frames = tf.constant(np.load(frames_path))
result = loaded.signatures["embed_frames"](frames=frames)
np.save(output_path, result["embedding"].numpy())
assert not any(name.split(".")[0] == "tfcmvp" for name in sys.modules), "tfcmvp was imported"
print("ok")
'''


def test_runs_in_a_fresh_process_without_tfcmvp(video_export, videos, tmp_path):
    frames = _decoded(videos["carphone"])
    script = tmp_path / "serve_frames.py"
    script.write_text(SCRIPT, encoding="utf-8")
    np.save(tmp_path / "frames.npy", frames)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(video_export),
            str(tmp_path / "frames.npy"),
            str(tmp_path / "embedding.npy"),
        ],
        cwd=tmp_path,  # not the repository: tfcmvp is not importable by accident
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
    got = np.load(tmp_path / "embedding.npy")
    np.testing.assert_allclose(
        got, _embed_frames(video_export, frames)["embedding"], rtol=0, atol=1e-6
    )


# --------------------------------------------------------------------------- old exports


def test_exports_without_the_signature_still_load(workdir, tmp_path):
    """An export written before embed_frames (no frames_signature) loads and describes."""
    from tfcmvp import config as cfg

    _, config, models = workdir
    info = make_export_info(
        network="video",
        backbone="c3d",
        input_spec=ct.input_contract("video", config.data),
        source={"kind": "random_init", "seed": 0},
    )
    path = export_network(models["video"], tmp_path / "old", info, cfg.dump_config(config))
    written = json.loads((pathlib.Path(path) / "assets" / ct.INFO_NAME).read_text())
    assert written["signatures"] == ["embed", "features"]
    assert ct.FRAMES_SIGNATURE_KEY not in written
    loaded, _ = load_export(path)
    assert ct.EMBED_FRAMES not in loaded.signatures
    text = describe_export(path)
    assert "embed_frames" not in text and "embed: clips float32" in text


def test_contract_rejects_a_half_described_signature(video_export):
    info = read_export_info(video_export)
    without_entry = {k: v for k, v in info.items() if k != ct.FRAMES_SIGNATURE_KEY}
    with pytest.raises(ExportError, match="needs its frames_signature entry"):
        validate_export_info(without_entry)
    bad = dict(info, frames_signature=dict(info["frames_signature"], positions="sliding"))
    with pytest.raises(ExportError, match="positions must be 'vcop' or 'authors'"):
        validate_export_info(bad)
    motion = dict(info, network="motion")
    with pytest.raises(ExportError, match="frames_signature is for video networks"):
        validate_export_info(motion)
