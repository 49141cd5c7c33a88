"""GPU-hours of the paper's runs, estimated from the counted FLOPs of our train steps.

    python benchmarks/estimate_gpu_hours.py                  # about 2 min on 2 CPU cores
    python benchmarks/estimate_gpu_hours.py --gpu_tflops 19.5 --gpu_name "A100 fp32" ...

Nothing is trained or timed: each paper config's step is traced on the CPU at
a small batch and its FLOPs are counted by ``tfcmvp.training.flops`` (2 per
multiply-add of every convolution, its input and weight gradients, and every
matrix product; elementwise work such as BatchNorm, activations, pooling and
the optimizer update is not counted). Then

    GPU-hours = FLOPs per video-step x videos x epochs / (peak x utilisation) / 3600

with the peak and the utilisation stated on the command line (default: an
NVIDIA V100's fp32 peak of 15.7 TFLOP/s at an assumed 40 % sustained, the
authors' PyTorch code trains in fp32). The utilisation is an assumption, not
a measurement: it has to cover the uncounted elementwise work, the input
pipeline and the all-gathers as well as the convolutions' own efficiency.

Per video, a pretraining step costs ``a + c x G``: ``a`` for the networks,
heads and predictor (linear in the batch), and ``c x G`` for the two InfoNCE
similarity products, whose every local query meets the keys of all ``G``
videos of the global batch (64 on UCF101, 512 on Kinetics-400; with 4 motion
clips of 49 positions per key video). One replica traced at two batch sizes
B1, B2 gives F(B) = a B + c B^2 and so ``a`` and ``c`` exactly; the
Kinetics-400 configs share the UCF101 networks (checked) and differ in G only.

Finetuning (configs/finetune_ucf101.yaml with each backbone) costs the
V-Network's forward and backward and the classifier per training video, and
its tests (forward only) 10 clips per test video at each of the config's test
epochs; retrieval runs the forward on 10 clips of every train and test video.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONFIGS = REPO / "configs"
# (name, UCF101 pretraining config, Kinetics-400 pretraining config, backbone key)
PAPER_RUNS = (
    ("C3D", "pretrain_ucf101_c3d.yaml", "pretrain_k400_c3d.yaml", "c3d"),
    ("R3D-26", "pretrain_ucf101_r3d26.yaml", "pretrain_k400_r3d26.yaml", "r3d_26"),
    (
        "R(2+1)D-26",
        "pretrain_ucf101_r2plus1d26.yaml",
        "pretrain_k400_r2plus1d26.yaml",
        "r2plus1d_26",
    ),
)
FINETUNE_CONFIG = CONFIGS / "finetune_ucf101.yaml"
# Training / test videos of split 1 (the extraction's `listed` counts).
UCF101_TRAIN, UCF101_TEST = 9_537, 3_783
HMDB51_TRAIN, HMDB51_TEST = 3_570, 1_530
UCF101_CLASSES = 101
RETRIEVAL_CLIPS = 10


def log(message: str) -> None:
    """Progress to stderr; the tables go to stdout."""
    print(message, file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches",
        type=int,
        nargs=2,
        default=(2, 4),
        metavar=("B1", "B2"),
        help="the two one-replica batch sizes traced per pretraining config (default 2 4)",
    )
    parser.add_argument(
        "--gpu_name",
        default="NVIDIA V100 (fp32)",
        help="GPU named in the output (default: NVIDIA V100 (fp32))",
    )
    parser.add_argument(
        "--gpu_tflops",
        type=float,
        default=15.7,
        help="peak TFLOP/s of that GPU at the precision trained (default 15.7, V100 SXM2 fp32)",
    )
    parser.add_argument(
        "--utilisation",
        type=float,
        default=0.4,
        help="assumed sustained fraction of the peak (default 0.4)",
    )
    parser.add_argument("--epochs", type=int, default=120, help="epochs of every run (120)")
    parser.add_argument(
        "--k400_videos",
        type=int,
        default=240_000,
        help="Kinetics-400 training videos (default 240,000: the paper lists "
        "246k; copies downloaded today hold about 240k)",
    )
    parser.add_argument(
        "--skip_finetune",
        action="store_true",
        help="pretraining only (skips the finetuning and retrieval counts)",
    )
    args = parser.parse_args(argv)
    b1, b2 = args.batches
    if not 1 <= b1 < b2:
        parser.error(f"--batches needs 1 <= B1 < B2, got {b1} {b2}")
    if not 0 < args.utilisation <= 1 or args.gpu_tflops <= 0:
        parser.error("--utilisation must lie in (0, 1] and --gpu_tflops be > 0")
    return args


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------


def load_pretrain(path: pathlib.Path, batch: int):
    """The config at `path`, on one device, at `batch` videos."""
    from tfcmvp.config import load_config

    return load_config(
        path,
        ["runtime.strategy=default", "runtime.virtual_cpus=0", f"train.global_batch_size={batch}"],
    )


def pretrain_step_flops(path: pathlib.Path, batch: int) -> int:
    """Counted FLOPs of one PretrainModel.train_step of `path` at `batch` videos."""
    import keras
    import tensorflow as tf

    from tfcmvp.training import PretrainModel, build_optimizer, flops

    config = load_pretrain(path, batch)
    keras.backend.clear_session()
    model = PretrainModel.from_pretrain_config(config)
    model.build()
    optimizer = build_optimizer(config, steps_per_epoch=100)
    model.compile(optimizer=optimizer, jit_compile=False)
    optimizer.build(model.trainable_variables)
    d = config.data
    specs = {
        "clip": tf.TensorSpec([batch, d.clip_len, d.crop_size, d.crop_size, 3]),
        "iframe": tf.TensorSpec([batch, d.crop_size, d.crop_size, 3]),
        "motion": tf.TensorSpec(
            [batch, 1 + d.num_negatives, d.motion_len, d.crop_size, d.crop_size, 2]
        ),
    }
    return flops.count_function_flops(model.train_step, specs).total


def finetune_flops(backbone: str, batch: int) -> tuple[int, int]:
    """(FLOPs per training video, forward FLOPs per test clip) of the UCF101
    finetuning config with `backbone` (101 classes; HMDB51's 51 change only
    the classifier, under 0.001 % of the step)."""
    import keras
    import tensorflow as tf

    from tfcmvp.finetuning import VideoClassifier
    from tfcmvp.finetuning.config import load_finetune_config
    from tfcmvp.finetuning.optimizer import build_finetune_optimizer
    from tfcmvp.training import flops

    config = load_finetune_config(
        FINETUNE_CONFIG,
        [
            f"model.video_network={backbone}",
            "runtime.strategy=default",
            f"train.global_batch_size={batch}",
        ],
    )
    keras.backend.clear_session()
    model = VideoClassifier.from_finetune_config(config, UCF101_CLASSES)
    model.build()
    optimizer = build_finetune_optimizer(config, steps_per_epoch=100)
    model.compile(optimizer=optimizer, jit_compile=False)
    optimizer.build(model.trainable_variables)
    d = config.data
    clip = tf.TensorSpec([batch, d.clip_len, d.crop_size, d.crop_size, 3])
    train = flops.count_function_flops(
        model.train_step, {"clip": clip, "label": tf.TensorSpec([batch], tf.int32)}
    ).total
    forward = flops.count_function_flops(lambda x: model(x, training=False), clip).total
    return train // batch, forward // batch


def split_linear_quadratic(b1: int, f1: int, b2: int, f2: int) -> tuple[float, float]:
    """(a, c) with F(B) = a B + c B^2 through (b1, f1) and (b2, f2)."""
    c = (f2 / b2 - f1 / b1) / (b2 - b1)
    return f1 / b1 - c * b1, c


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def gpu_hours(flops_total: float, args) -> float:
    """Hours of one GPU at the assumed sustained rate for `flops_total` FLOPs."""
    return flops_total / (args.gpu_tflops * 1e12 * args.utilisation) / 3600.0


def main(argv=None) -> None:
    args = parse_args(argv)
    from tfcmvp.config import config_to_dict, load_config

    started = time.perf_counter()
    b1, b2 = args.batches
    rows = []
    for name, ucf_file, k400_file, backbone in PAPER_RUNS:
        counts = []
        for batch in (b1, b2):
            log(f"[{name}] tracing the pretraining step at batch {batch} ...")
            tick = time.perf_counter()
            counts.append(pretrain_step_flops(CONFIGS / ucf_file, batch))
            log(f"[{name}]   {counts[-1] / 1e9:,.1f} GFLOP ({time.perf_counter() - tick:.0f} s)")
        a, c = split_linear_quadratic(b1, counts[0], b2, counts[1])
        ucf = load_pretrain(CONFIGS / ucf_file, 1)
        k400 = load_pretrain(CONFIGS / k400_file, 1)
        for section in ("data", "model", "loss"):
            if config_to_dict(getattr(ucf, section)) != config_to_dict(getattr(k400, section)):
                raise SystemExit(
                    f"{k400_file} and {ucf_file} differ in {section}: the UCF101 "
                    f"count does not carry over"
                )
        global_ucf = load_config(CONFIGS / ucf_file).train.global_batch_size
        global_k400 = load_config(CONFIGS / k400_file).train.global_batch_size
        row = {
            "name": name,
            "backbone": backbone,
            "a": a,
            "c": c,
            "counts": counts,
            "ucf_batch": global_ucf,
            "k400_batch": global_k400,
            "ucf_video": a + c * global_ucf,
            "k400_video": a + c * global_k400,
        }
        if not args.skip_finetune:
            log(f"[{name}] tracing the finetuning step and the test forward at batch {b1} ...")
            row["ft_video"], row["fwd_clip"] = finetune_flops(backbone, b1)
        rows.append(row)

    peak = args.gpu_tflops * args.utilisation
    print(
        f"Assumed GPU: {args.gpu_name}, peak {args.gpu_tflops:g} TFLOP/s x "
        f"{args.utilisation:.0%} sustained = {peak:.2f} TFLOP/s; {args.epochs} epochs; "
        f"UCF101 split 1 {UCF101_TRAIN:,} train videos, Kinetics-400 "
        f"{args.k400_videos:,}."
    )
    print(
        f"Pretraining step FLOPs counted at one-replica batches {b1} and {b2} "
        f"(tfcmvp.training.flops; F(B) = a B + c B^2)."
    )
    print()
    print(
        "| V-Network | step GFLOP at B1 / B2 | a: GFLOP per video | c: MFLOP per video "
        f"per key video | GFLOP per video-step, UCF101 (G={rows[0]['ucf_batch']}) | "
        f"K400 (G={rows[0]['k400_batch']}) | "
        "GPU-hours UCF101 | GPU-hours K400 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ucf_hours = gpu_hours(r["ucf_video"] * UCF101_TRAIN * args.epochs, args)
        k400_hours = gpu_hours(r["k400_video"] * args.k400_videos * args.epochs, args)
        r["ucf_hours"], r["k400_hours"] = ucf_hours, k400_hours
        print(
            f"| {r['name']} | {r['counts'][0] / 1e9:,.1f} / {r['counts'][1] / 1e9:,.1f} | "
            f"{r['a'] / 1e9:,.1f} | {r['c'] / 1e6:,.1f} | {r['ucf_video'] / 1e9:,.1f} | "
            f"{r['k400_video'] / 1e9:,.1f} | {ucf_hours:,.0f} | {k400_hours:,.0f} |"
        )
    if not args.skip_finetune:
        ucf_tests = len(set(_finetune_test_epochs()) | {args.epochs})
        print()
        print(
            f"Finetuning ({args.epochs} epochs; tests of {RETRIEVAL_CLIPS} clips per test "
            f"video after {ucf_tests} epochs) and retrieval ({RETRIEVAL_CLIPS} clips of "
            f"every train and test video), same GPU assumption:"
        )
        print()
        print(
            "| V-Network | GFLOP per video-step | GFLOP per test clip | GPU-hours finetune "
            "UCF101 | finetune HMDB51 | retrieval UCF101 + HMDB51 |"
        )
        print("|---|---|---|---|---|---|")
        for r in rows:
            ft = r["ft_video"] * args.epochs
            test = r["fwd_clip"] * RETRIEVAL_CLIPS * ucf_tests
            ucf = gpu_hours(ft * UCF101_TRAIN + test * UCF101_TEST, args)
            hmdb = gpu_hours(ft * HMDB51_TRAIN + test * HMDB51_TEST, args)
            videos = UCF101_TRAIN + UCF101_TEST + HMDB51_TRAIN + HMDB51_TEST
            retrieval = gpu_hours(r["fwd_clip"] * RETRIEVAL_CLIPS * videos, args)
            print(
                f"| {r['name']} | {r['ft_video'] / 1e9:,.1f} | {r['fwd_clip'] / 1e9:,.1f} | "
                f"{ucf:,.1f} | {hmdb:,.1f} | {retrieval:,.2f} |"
            )
    log(f"done in {time.perf_counter() - started:.0f} s")


def _finetune_test_epochs() -> tuple[int, ...]:
    from tfcmvp.finetuning.config import load_finetune_config

    return tuple(load_finetune_config(FINETUNE_CONFIG).test.eval_epochs)


if __name__ == "__main__":
    main()
