"""Synthetic videos with known motion, for tests and benchmarks.

:func:`moving_texture` translates a smooth random texture by an exact,
possibly sub-pixel, velocity per frame. The texture is periodic and
band-limited, so the shift is applied exactly in the Fourier domain; the
frames are cropped from the middle of a larger texture so that content
wrapping round the period never enters the view when the motion is small.
"""

from __future__ import annotations

import av
import numpy as np


def moving_texture(
    num_frames: int,
    height: int,
    width: int,
    velocity=(2.0, -1.0),
    seed: int = 0,
    smoothness: float = 2.0,
    margin: int = 64,
) -> np.ndarray:
    """uint8 RGB frames of a textured plane moving by ``velocity`` px/frame.

    Frame t shows the texture displaced by ``t * velocity``: content at
    ``(x, y)`` in frame 0 is at ``(x + t*dx, y + t*dy)`` in frame t (x right,
    y down), which is the forward motion the codec layer's vectors report.

    Args:
      num_frames, height, width: output size ``[T, H, W, 3]``.
      velocity: (dx, dy) in pixels per frame; any real numbers.
      seed: seed of the random texture.
      smoothness: standard deviation in pixels of the Gaussian that smooths
        the white noise (larger: blobs large enough for block matching).
      margin: extra texture on each side beyond the visible frame.

    Returns:
      uint8 ``[T, H, W, 3]``.
    """
    dx, dy = (float(v) for v in velocity)
    full_h, full_w = height + 2 * margin, width + 2 * margin
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((3, full_h, full_w))  # [3, Hf, Wf]
    ky = np.fft.fftfreq(full_h)[:, None]  # [Hf, 1] cycles per pixel
    kx = np.fft.fftfreq(full_w)[None, :]  # [1, Wf]
    gaussian = np.exp(-2.0 * (np.pi * smoothness) ** 2 * (kx**2 + ky**2))  # [Hf, Wf]
    spectrum = np.fft.fft2(noise) * gaussian  # [3, Hf, Wf]
    # The channels share most of their structure so that luma carries texture.
    spectrum = 0.7 * spectrum.mean(0, keepdims=True) + 0.3 * spectrum  # [3, Hf, Wf]
    base = np.fft.ifft2(spectrum).real
    low, high = np.percentile(base, [0.5, 99.5])
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        # f_t(x) = f_0(x - t*v): multiply by exp(-2*pi*i*k.(t*v)).
        phase = np.exp(-2j * np.pi * (kx * dx * t + ky * dy * t))  # [Hf, Wf]
        image = np.fft.ifft2(spectrum * phase).real  # [3, Hf, Wf]
        image = image[:, margin : margin + height, margin : margin + width]  # [3, H, W]
        scaled = (image - low) * (255.0 / (high - low))
        frames[t] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return frames


def write_tone(path, codec: str = "aac", seconds: float = 1.0, rate: int = 16000) -> str:
    """Writes an audio-only file (a 440 Hz mono tone): a file with no video.

    Args:
      path: output file; the container follows the extension (.mp4, .mka).
      codec: an FFmpeg audio encoder ("aac", "mp2", ...).
    Returns:
      ``path`` as a string.
    """
    path = str(path)
    total = int(seconds * rate)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)  # [S]
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        size = stream.codec_context.frame_size or 1024
        fmt = stream.codec_context.format.name
        for start in range(0, total - size + 1, size):
            chunk = tone[start : start + size]
            if fmt.startswith("s16"):
                samples = (chunk * 32767).astype(np.int16)
            else:
                samples = chunk.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples[None], format=fmt, layout="mono")  # [1, S]
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
