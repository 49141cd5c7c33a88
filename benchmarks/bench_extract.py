"""Extraction speed on one pinned core: tfcmvp against bare decoding and its peers.

    python benchmarks/bench_extract.py                 # ~2-3 min on one core
    python benchmarks/bench_extract.py --frames 100 --repeats 1   # quick look

Generates three 320x240 videos of a moving texture with
:func:`tfcmvp.codec.write_video` (MPEG-4 Part 2 and H.264, GOP 12, no
B-frames, one reference: the targets; and H.264 with 2 B-frames per P-frame,
shown for reference), pins this process to one core
(``os.sched_setaffinity``) and measures frames per second of:

  (i)   bare PyAV decode, single-threaded, every pixel reconstructed;
  (i')  the same with the skips ``read_video(rgb=False)`` uses (no inverse
        DCT, no deblocking filter: only the pixels need them), the ceiling
        of a vectors-only decode;
  (ii)  tfcmvp vectors: ``read_video(path)``, frame types + vectors rasterised
        to the 8-px grid;
  (iii) motion-vector-extractor (``mvextractor``), vectors only
        (``VideoCap.set_decode_frames(False)``; it offers no decoder skips);
  (iv)  OpenCV Farneback optical flow on the decoded grey frames (one
        OpenCV thread; on the first ``--flow_frames`` frames only);
  (v)   tfcmvp full record: ``read_video(rgb=True, rgb_short_side=128)``,
        JPEG of every frame and I-frame (PIL), int16 vectors, serialised
        ``tf.train.Example`` bytes (``tfcmvp.records`` + ``tfcmvp.schema``),
        i.e. the Beam job's per-video work without the gzip and file write.

Each method runs ``--repeats`` times; the best time counts (the machine is
shared, so the fastest run is the least disturbed one). Targets checked:
(ii) >= (iii) and >= 60% of (i) (> 3,000 frames/s on MPEG-4); (v) >= 1,500
frames/s. The load average before and after is printed with the table.

Measured on the 2-core development machine, nothing else running (load
average 0.50 before, 0.70 after), ``--repeats 5``, frames/s by wall-clock
time (process CPU time gave the same figures):

    method                              MPEG-4 Part 2      H.264              H.264+B
    (i)   bare PyAV decode              5,114              2,074              2,946
    (i')  bare decode, vectors skips    6,574              2,199              3,030
    (ii)  tfcmvp vectors + types        5,397  1.06x (i)   1,982  0.96x (i)   2,574
    (iii) mvextractor                   3,885  0.76x (i)   1,904  0.92x (i)   2,615
    (iv)  OpenCV Farneback                 88                 83                 83
    (v)   tfcmvp full record            2,115              1,284              1,418

(ii)/(iii): 1.39 on MPEG-4, 1.04 on H.264 (the targets), 0.98 on H.264 with
B-frames (not a target: bi-predicted blocks take the raster's exact averaging
path); (ii)/(i'): 0.82 and 0.90 (the rest is reading FFmpeg's side data and
rasterising it, about 11 us/frame). (v) is 1.4x the 1,500 frames/s target.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import av
from bench_common import best_of

from tfcmvp.codec import read_video, write_video
from tfcmvp.codec.decode import VECTORS_ONLY_OPTIONS
from tfcmvp.codec.synthetic import moving_texture


def bare_decode(path: str, options=None) -> int:
    """(i) Decode every frame, single-threaded, touching nothing."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        if options:
            stream.codec_context.options = dict(options)
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        return sum(1 for _ in container.decode(stream))


def bare_decode_skipping(path: str) -> int:
    """(i') The same, skipping the pixel work that read_video(rgb=False) skips."""
    return bare_decode(path, {"flags2": "+export_mvs", **VECTORS_ONLY_OPTIONS})


def tfcmvp_vectors(path: str) -> int:
    """(ii) Frame types + rasterised motion vectors."""
    return read_video(path).num_frames


def mvextractor_vectors(path: str) -> int:
    """(iii) motion-vector-extractor without RGB frames."""
    from mvextractor.videocap import VideoCap

    cap = VideoCap()
    if not cap.open(path):
        raise RuntimeError(f"mvextractor cannot open {path}")
    cap.set_decode_frames(False)
    count = 0
    while True:
        ok, _, _, _ = cap.read()
        if not ok:
            break
        count += 1
    cap.release()
    return count


def farneback_flow(path: str, max_frames: int) -> int:
    """(iv) Dense optical flow between consecutive decoded grey frames."""
    import cv2

    cv2.setNumThreads(1)
    previous = None
    count = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            grey = frame.to_ndarray(format="gray")  # [H, W]
            if previous is not None:
                cv2.calcOpticalFlowFarneback(previous, grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            previous = grey
            count += 1
            if count >= max_frames:
                break
    return count


def tfcmvp_full_record(path: str, short_side: int = 128) -> int:
    """(v) The Beam job's per-video work: decode, resize, JPEG, vectors, Example.

    Returns the number of frames; the serialised Example is built and dropped.
    """
    from tfcmvp import records, schema

    video = read_video(path, rgb=True, rgb_short_side=short_side)
    record = records.build_record(
        video, video_id=os.path.basename(path), label=-1, label_name="", split="train"
    )
    schema.encode_example(record)
    return video.num_frames


def best_rates(function, path, repeats, *args):
    """Frames per second of the fastest of ``repeats`` runs: (wall, CPU).

    Wall time on the pinned core is the measure asked for; this process's
    CPU time is printed beside it because on a shared machine the wall time
    also counts the time other processes hold the core.
    """
    frames, cpu, wall = best_of(lambda: function(path, *args), repeats)
    return frames / wall, frames / cpu


def make_videos(folder: str, num_frames: int) -> dict:
    frames = moving_texture(num_frames, 240, 320, velocity=(1.5, -0.5), seed=0)  # [T, 240, 320, 3]
    return {
        "MPEG-4": write_video(os.path.join(folder, "bench.avi"), frames, codec="mpeg4", gop=12),
        "H.264": write_video(os.path.join(folder, "bench.mp4"), frames, codec="h264", gop=12),
        # Not a target (the targets are on GOPs without B-frames), shown because most
        # H.264 in the wild has B-frames: their bi-predicted blocks take the raster's
        # exact averaging path.
        B_FRAMES: write_video(
            os.path.join(folder, "bench_b.mp4"), frames, codec="h264", gop=12, b_frames=2
        ),
    }


B_FRAMES = "H.264+B"  # the column of the H.264 video with 2 B-frames between P-frames
TARGET_CODECS = ("MPEG-4", "H.264")
BARE = "(i) bare PyAV decode"
BARE_SKIP = "(i') bare decode, vectors-only skips"
OURS = "(ii) tfcmvp vectors + types"
PEER = "(iii) mvextractor vectors only"
FLOW = "(iv) OpenCV Farneback"
FULL = "(v) tfcmvp full record"


def _print_table(rates, names, codecs):
    header = f"{'method':34s}" + "".join(f"{c + ' f/s':>14s}{'vs (i)':>9s}" for c in codecs)
    print(header)
    print("-" * len(header))
    for name in names:
        row = f"{name:34s}"
        for codec in codecs:
            rate = rates[name, codec]
            row += f"{rate:14,.0f}{rate / rates[BARE, codec]:9.2f}"
        print(row)
    for codec in codecs:
        print(
            f"{codec}: (ii)/(iii) = {rates[OURS, codec] / rates[PEER, codec]:.2f}, "
            f"(ii)/(i') = {rates[OURS, codec] / rates[BARE_SKIP, codec]:.2f}, "
            f"(ii)/(iv) = {rates[OURS, codec] / rates[FLOW, codec]:.0f}, "
            f"(v)/(iv) = {rates[FULL, codec] / rates[FLOW, codec]:.0f}"
        )


def _print_checks(rates, codecs):
    checks = [
        (
            "(ii) >= (iii) on MPEG-4 and H.264",
            all(rates[OURS, c] >= rates[PEER, c] for c in codecs),
        ),
        (
            "(ii) >= 60% of (i) on MPEG-4 and H.264",
            all(rates[OURS, c] >= 0.6 * rates[BARE, c] for c in codecs),
        ),
        ("(ii) > 3,000 frames/s on MPEG-4", rates[OURS, "MPEG-4"] > 3000),
        ("(v) >= 1,500 frames/s on MPEG-4", rates[FULL, "MPEG-4"] >= 1500),
    ]
    for text, ok in checks:
        print(f"  {'met   ' if ok else 'MISSED'}  {text}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per test video")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method; best counts")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to")
    parser.add_argument("--flow_frames", type=int, default=60, help="frames for Farneback")
    args = parser.parse_args(argv)

    os.sched_setaffinity(0, {args.core})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tfcmvp-bench-") as folder:
        videos = make_videos(folder, args.frames)
        methods = [
            (BARE, bare_decode, ()),
            (BARE_SKIP, bare_decode_skipping, ()),
            (OURS, tfcmvp_vectors, ()),
            (PEER, mvextractor_vectors, ()),
            (FLOW, farneback_flow, (args.flow_frames,)),
            (FULL, tfcmvp_full_record, ()),
        ]
        rates = {"wall": {}, "cpu": {}}
        for name, function, extra in methods:
            for codec, path in videos.items():
                function(path, *extra)  # warm-up: imports, caches
                wall, cpu = best_rates(function, path, args.repeats, *extra)
                rates["wall"][name, codec], rates["cpu"][name, codec] = wall, cpu
    load_after = os.getloadavg()

    codecs = list(videos)
    print(
        f"320x240, {args.frames} frames, GOP 12 (no B-frames; {B_FRAMES}: 2 B-frames per "
        f"P-frame, not a target), one pinned core "
        f"(core {args.core}), best of {args.repeats}"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"(1 min; {os.cpu_count()} cores)"
    )
    for clock in ("wall", "cpu"):
        print()
        print(f"frames/s by {'wall-clock' if clock == 'wall' else 'process CPU'} time")
        _print_table(rates[clock], [m[0] for m in methods], codecs)
        _print_checks(rates[clock], [c for c in codecs if c in TARGET_CODECS])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
