"""The inspection report and figure, and the `tfcmvp inspect` command."""

import re

import numpy as np
import pytest
from PIL import Image

from tfcmvp import inspection, inspection_figure, synth
from tfcmvp.cli import main as cli
from tfcmvp.codec import read_video, write_video


@pytest.fixture(scope="module")
def synth_video(tmp_path_factory):
    """MPEG-4, GOP 12, no B: 24 frames of objects moving up."""
    path = tmp_path_factory.mktemp("inspect") / "up.avi"
    rendered = synth.render_clip(
        0, "MoveUp", 1, 1, width=96, height=64, num_frames=24, camera_speed=0.0
    )
    write_video(path, rendered.frames, fps=25, codec="mpeg4", gop=12)
    return path


def test_describe_carphone(carphone_path):
    text = inspection.describe_video(carphone_path)
    assert re.search(r"codec:\s+h264, 176x144, 29\.970 fps, 120 frames", text)
    counts = re.search(r"frame types: I (\d+), P (\d+), B (\d+)", text)
    i, p, b = (int(n) for n in counts.groups())
    assert i + p + b == 120 and b > 0
    assert "pattern:     IBPB" in text  # B-frames in the pattern itself
    assert "B-frames present" in text and "departs from the CoViAR layout" in text
    assert "one-frame vectors: no" in text
    covered = float(re.search(r"cells with a vector: ([\d.]+) %", text).group(1))
    assert 10 < covered <= 100  # a real camera sequence: vectors on most cells


def test_describe_coviar_layout_and_motion_stats(synth_video):
    text = inspection.describe_video(synth_video)
    assert "mpeg4, 96x64, 25.000 fps, 24 frames" in text
    assert "I 2, P 22, B 0; I-frames at 0, 12 (spacing 12)" in text
    assert "I P×11 | I P×11" in text
    assert "matches the CoViAR layout" in text
    assert "one-frame vectors: yes" in text
    # Objects move up at 1-3 px/frame over a still background: the mean vector points up.
    mean_vy = float(re.search(r"mean vector \(([+-][\d.]+), ([+-][\d.]+)\)", text).group(2))
    assert mean_vy < -0.5


def test_motion_stats_known_answer(synth_video):
    video = read_video(synth_video)
    video.motion_vectors[:] = 0
    video.motion_vectors[1, 0, 0] = (3.0, 4.0)  # one P-frame cell, |v| = 5
    video.motion_vectors[2, 1, 1] = (0.0, -1.0)  # another, |v| = 1
    video.motion_vectors[12, 2, 2] = (9.0, 9.0)  # on the I-frame: ignored
    stats = inspection.motion_stats(video)
    cells = 22 * video.motion_vectors.shape[1] * video.motion_vectors.shape[2]
    assert stats.predicted_frames == 22
    assert stats.covered == pytest.approx(2 / cells)
    assert stats.mean_magnitude == pytest.approx(3.0)
    assert stats.mean_vector == pytest.approx((1.5, 1.5))


def test_flow_colours_known_answers():
    vectors = np.array([[1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.5, 0.0]])
    colours = inspection.flow_colours(vectors, max_magnitude=1.0)
    np.testing.assert_allclose(colours[0], [1.0, 0.0, 0.0])  # right: red (hue 0)
    np.testing.assert_allclose(colours[1], [0.5, 1.0, 0.0])  # up (y < 0): hue 90 degrees
    np.testing.assert_allclose(colours[2], [0.0, 1.0, 1.0])  # left: cyan (hue 180)
    np.testing.assert_allclose(colours[3], [0.5, 0.0, 1.0])  # down: hue 270
    np.testing.assert_allclose(colours[4], [0.0, 0.0, 0.0])  # no motion: black
    np.testing.assert_allclose(colours[5], [0.5, 0.0, 0.0])  # half magnitude: half brightness
    wheel = inspection.colour_wheel(21)
    assert wheel.shape == (21, 21, 4)
    np.testing.assert_allclose(wheel[10, 20, :3], [1.0, 0.0, 0.0])  # right edge = "right"
    np.testing.assert_allclose(wheel[0, 10, :3], [0.5, 1.0, 0.0])  # top edge = "up"
    assert wheel[0, 0, 3] == 0 and wheel[10, 10, 3] == 1  # transparent corner, opaque centre


def test_choose_frames():
    coviar = ("I" + "P" * 11) * 8
    assert inspection.choose_frames(coviar, 8) == [12, 15, 18, 21, 24, 27, 30, 33]
    assert inspection.choose_frames(coviar, 4, start=0, stride=1) == [0, 1, 2, 3]
    assert inspection.choose_frames("IPPPPPPP", 4) == [0, 2, 4, 6]  # one I-frame: spread out
    assert inspection.choose_frames(coviar[:20], 8) == [0, 2, 4, 6, 8, 10, 12, 14]  # fits
    with pytest.raises(ValueError, match="start=50"):
        inspection.choose_frames("IPPP", 2, start=50)


def test_plot_carphone_png_size(carphone_path, tmp_path):
    png = tmp_path / "carphone.png"
    size = inspection_figure.plot_video(carphone_path, png, columns=4, panel_width=2.0, dpi=50)
    expected = (round(5 * 2.0 * 50), round((3 * 2.0 * 144 / 176 + 1.25) * 50))
    assert size == expected
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == expected
        pixels = np.asarray(image.convert("RGB"), np.float32)
    assert pixels.std() > 20  # frames and colours were drawn, not a blank canvas


def test_cli_inspect_prints_report_and_writes_png(synth_video, tmp_path, capsys):
    png = tmp_path / "up.png"
    assert cli.main(["inspect", str(synth_video), "--png", str(png), "--columns", "3"]) == 0
    out = capsys.readouterr().out
    assert "matches the CoViAR layout" in out and f"figure:      {png}" in out
    with Image.open(png) as image:
        assert image.size == (round(4 * 1.8 * 100), round((3 * 1.8 * 64 / 96 + 1.25) * 100))


def test_cli_inspect_bad_file_exit_2(tmp_path, capsys):
    fake = tmp_path / "notes.avi"
    fake.write_text("this is not a video\n")
    assert cli.main(["inspect", str(fake)]) == 2
    captured = capsys.readouterr()
    assert f"tfcmvp inspect: error: {fake}: cannot open" in captured.err
    assert "Invalid data" in captured.err  # the cause
    assert "Traceback" not in captured.err + captured.out
    missing = tmp_path / "missing.avi"
    assert cli.main(["inspect", str(missing)]) == 2
    assert "No such file" in capsys.readouterr().err
