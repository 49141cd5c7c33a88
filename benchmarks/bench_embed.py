"""How fast ``tfcmvp embed`` decodes, per network, against a full RGB decode of the same videos.

    python benchmarks/bench_embed.py                     # ~1 min on one core
    python benchmarks/bench_embed.py --inputs /work/shared/data/videos --repeats 3

Makes ``tfcmvp synth`` videos at UCF101's size (320x240, 25 fps, MPEG-4 Part
2, GOP 12; ``--videos`` of ``--frames`` frames), or takes the videos under
``--inputs``, pins this process to one core and times per video:

* the peer, a full RGB decode: every frame decoded and converted to RGB at
  its own size (PyAV, one thread; what any pixel-based feature extractor does
  first);
* for each network, the embed path's per-video work before the clips are cut
  (:func:`tfcmvp.embedding.run.prepare_video`: decode, the record the
  extraction would store, serialised): V-Network every frame to RGB at the
  128-px short side plus JPEG; I-Network only the key frames; M-Network only
  the motion vectors.

Cutting clips (TensorFlow, on its own threads) and the model are left out:
they cost the same for any decoder, and the model's cost depends on the
export. Each configuration runs ``--repeats`` times; the best counts (the
machine is shared). Prints videos/s and frames/s by process CPU time (one
core: per core) and wall-clock time, and each path's ratio to the peer.

Measured on the 2-core development machine while others used it (load
9-11; the CPU-time columns are the meaningful ones on a loaded machine),
frames/s by CPU time and the ratio to the peer:

    videos                              peer    V-Network     I-Network      M-Network
    --videos 4 --frames 150 --repeats 3 6,167   3,016 0.49x   19,007  3.08x  7,100 1.15x
    --inputs /work/shared/data/videos   2,489   1,795 0.72x   30,367 12.20x  2,418 0.97x
      --repeats 5 (carphone, H.264+B, one key frame in 120)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from bench_common import (
    add_synthetic_arguments,
    best_of,
    make_ucf_size_videos,
    pin_to_one_core,
)

NETWORKS = (("video", "rgb"), ("iframe", "iframe"), ("motion", "motion"))


def full_rgb_decode(path: str) -> int:
    """Every frame to RGB at its own size, one thread; returns the frame count."""
    import av

    count = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")  # [H, W, 3]
            count += 1
    return count


def embed_path(network: str):
    """The embed command's per-video work for ``network``; returns the frame count."""
    from tfcmvp.embedding.clips import ClipLayout
    from tfcmvp.embedding.decode import StorageSettings
    from tfcmvp.embedding.run import prepare_video
    from tfcmvp.export import contract
    from tfcmvp.retrieval.features import eval_options

    # The input contracts of the default (paper) exports; they only place the clips.
    inputs = {
        "video": contract.video_input_contract(16, 4, 112),
        "iframe": contract.iframe_input_contract(112),
        "motion": contract.motion_input_contract(8, 112, 10.0, 10.0, "bilinear"),
    }
    options = eval_options({"network": network, "input": inputs[network]}, num_clips=10)

    def run(path: str) -> int:
        _, item = prepare_video(
            path, options=options, layout=ClipLayout(), storage=StorageSettings()
        )
        return item.record.num_frames

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--inputs",
        help="time these videos (a folder or list file, as "
        "`tfcmvp embed` takes) instead of synthetic ones",
    )
    add_synthetic_arguments(parser)
    args = parser.parse_args(argv)

    pin_to_one_core()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as folder:
        if args.inputs:
            from tfcmvp.embedding.inputs import gather_inputs

            paths = gather_inputs([args.inputs])
            what = f"{len(paths)} videos from {args.inputs}"
        else:
            paths = make_ucf_size_videos(folder, args.videos, args.frames)
            what = f"{len(paths)} synthetic videos x {args.frames} frames, 320x240 MPEG-4 GOP 12"
        works = [("full RGB decode (peer)", full_rgb_decode)]
        works += [
            (f"embed {network} ({modality})", embed_path(network)) for network, modality in NETWORKS
        ]
        for _, work in works:
            work(paths[0])  # warm-up: imports, caches
        print(f"{what}; one core, best of {args.repeats}")
        print(
            f"{'path':<26}{'videos/s':>10}{'frames/s':>10}{'x peer':>8}"
            f"{'wall videos/s':>15}{'wall frames/s':>15}{'x peer':>8}"
        )
        peer = None
        for name, work in works:
            frames, cpu, wall = best_of(lambda work=work: sum(map(work, paths)), args.repeats)
            rates = (len(paths) / cpu, frames / cpu, len(paths) / wall, frames / wall)
            peer = peer or rates
            print(
                f"{name:<26}{rates[0]:>10.2f}{rates[1]:>10,.0f}{rates[1] / peer[1]:>8.2f}"
                f"{rates[2]:>15.2f}{rates[3]:>15,.0f}{rates[3] / peer[3]:>8.2f}"
            )
    print(f"\nload average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
