"""A ``[start, end)`` window in seconds of a decode: the seek, and which frames to keep.

See "Windows" in :mod:`tfcmvp.codec.decode`.
"""

from __future__ import annotations

import av

from tfcmvp.codec.errors import CorruptVideoError

# Frame times are compared with the window's bounds with this tolerance (seconds), so
# that a decimal bound written for a frame time ("0.48" at 25 fps) hits that frame.
_WINDOW_TOLERANCE = 1e-6


class Window:
    """The ``[start, end)`` seconds of :func:`tfcmvp.codec.decode.read_video`: seeks, and
    says which frames to keep."""

    def __init__(self, path, container, stream, start, end, fps, expected_all):
        self.path, self.start, self.end = path, start, end
        self.time_base = stream.time_base
        self.origin = stream.start_time or 0  # pts of the stream's first frame
        # Frames the window should hold: its length, cut at the end of the video.
        declared = expected_all / fps if expected_all else None
        if declared is not None and start >= declared:
            raise CorruptVideoError(
                path,
                f"the window [{start:g}, {end:g}) s starts after the video ends ({declared:.2f} s)",
                stage="decode",
            )
        stop = end if declared is None else min(end, declared)
        self.expected = int(round((stop - start) * fps)) if declared is not None else 0
        if start > 0:
            # Back to the key frame at or before `start` (pts in the stream's time base).
            target = self.origin + int(start / self.time_base)
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except av.FFmpegError as error:
                raise CorruptVideoError(
                    path, f"cannot seek to {start:g} s: {error}", stage="decode"
                ) from error
        self.checked = False

    def position(self, frame) -> int:
        """-1 before the window, 0 inside, 1 at or after its end."""
        if frame.pts is None:
            raise CorruptVideoError(
                self.path, "frames carry no timestamps: a window cannot be cut", stage="decode"
            )
        seconds = float((frame.pts - self.origin) * self.time_base)
        if not self.checked:
            self.checked = True
            # A seek that lands after `start` (a bad index) would silently lose frames.
            if self.start > 0 and seconds > self.start + _WINDOW_TOLERANCE:
                raise CorruptVideoError(
                    self.path,
                    f"seeking to {self.start:g} s landed at {seconds:.3f} s (no key frame "
                    f"before the window in the index)",
                    stage="decode",
                )
        if seconds < self.start - _WINDOW_TOLERANCE:
            return -1
        return 0 if seconds < self.end - _WINDOW_TOLERANCE else 1
