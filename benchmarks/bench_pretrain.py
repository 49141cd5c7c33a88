"""Pretraining speed on this CPU: step clips/s, FLOPs vs a matmul ceiling, pipeline, split.

Train-step clips/s, counted FLOPs against a matmul ceiling, a plain Keras
C3D peer, the input pipeline next to the step, and where the step's time goes.

    python benchmarks/bench_pretrain.py            # several minutes
    python benchmarks/bench_pretrain.py --quick    # under 2 minutes, fewer steps

Everything runs in this one process, float32, TensorFlow's default thread
pools (all visible cores), no tf.distribute strategy (one replica), no XLA
(as ``tfcmvp pretrain`` compiles the model).

1. Train step. ``PretrainModel.train_step`` of (a) the tiny CPU config and
   (b) the paper's C3D UCF101 config (16 x 112 x 112 clips, full widths) at
   ``--batch`` videos, wrapped in one tf.function and fed one in-memory batch
   of the right shapes (the input pipeline is timed apart, in 3). The time
   of a step is the median of ``--steps`` steps after ``--warmup`` steps.
   Configs run as written: both keep ``train.sync_bn=true``, which on one
   replica runs TensorFlow's fused BatchNorm kernel (nothing to synchronise;
   about 4% faster than Keras' unfused BatchNorm on the paper C3D step here,
   no difference on the tiny one).
2. FLOPs. The traced step graph (forward, backward and optimizer update) is
   counted by ``tfcmvp.training.flops``: 2 x multiply-adds of every
   convolution, its input- and weight-gradient ops, every MatMul and
   BatchMatMul that the step runs; elementwise work is not counted. FLOPs per
   step / median step time = achieved FLOP/s, divided by the ceiling: the
   best of several 4096 x 4096 float32 ``tf.matmul`` timed in the same run.
   TensorFlow's profiler count of the same graph is printed beside it. The
   peer is a plain Keras C3D (the original: conv + ReLU, no BN) with global
   pooling and a 101-way Dense classifier, trained by a plain tf.function SGD
   step at the same clip size and batch, counted the same way.
3. Input pipeline. Real records as the Beam job writes them
   (``bench_input_pipeline.build_shards``: a 320x240 MPEG-4 texture video,
   171x128 JPEGs, its motion vectors), read by ``tfcmvp.data.pretrain_dataset``
   with the config's data settings and the default parallelism (AUTOTUNE).
4. Time split of the paper config's step: forward + backward of each part
   alone, each in its own tf.function on inputs of the shapes it gets in the
   step (V-Network; I-Network; M-Network on 1 + negatives motion clips per
   video; predictor = memory + Transformer; the four heads and both losses),
   then the optimizer update alone.

The machine may be shared: the load average before and after is printed
(this process alone brings it to about 2 on 2 cores). Measured on the 2-core
development machine (load 0.8 before): ceiling 399 GFLOP/s; paper C3D step at
batch 4 77% of it, the plain C3D 99.5%; full run 3 min 15 s, --quick 72 s.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import pathlib
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
PAPER_CONFIG = REPO / "configs" / "pretrain_ucf101_c3d.yaml"
TINY_CONFIG = REPO / "configs" / "pretrain_tiny_cpu.yaml"
CEILING_SIZE = 4096  # side of the square float32 matmul that sets the ceiling
PEER_CLASSES = 101  # UCF101


def log(message: str) -> None:
    """Progress goes to stderr; the tables go to stdout."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Timing and counting
# ---------------------------------------------------------------------------


def time_calls(function, args, warmup: int, steps: int) -> list[float]:
    """Seconds of each of `steps` calls of `function(*args)` after `warmup` calls."""
    import tensorflow as tf

    def call():
        out = function(*args)
        # Reading one output waits for the call (CPU functions run synchronously,
        # this makes sure).
        first = tf.nest.flatten(out)[0]
        first.numpy()

    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def matmul_ceiling(size: int, repeats: int) -> float:
    """FLOP/s of the best of `repeats` float32 [size, size] x [size, size] tf.matmul."""
    import tensorflow as tf

    a = tf.random.normal([size, size], seed=1)
    b = tf.random.normal([size, size], seed=2)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    best = min(time_calls(product, (a, b), warmup=1, steps=repeats))
    return 2 * size**3 / best


def traced(function, *specs):
    """(tf.function, its FlopCount) for inputs of the given TensorSpecs."""
    import tensorflow as tf

    from tfcmvp.training import flops

    function = tf.function(function)
    count = flops.count_graph_flops(function.get_concrete_function(*specs).graph)
    return function, count


def random_like(specs):
    import tensorflow as tf

    return tf.nest.map_structure(lambda s: tf.random.normal(s.shape, seed=0), specs)


# ---------------------------------------------------------------------------
# 1, 2: train steps
# ---------------------------------------------------------------------------


def load(path, batch: int | None):
    """The config at `path` on one device (batch overridden when given)."""
    from tfcmvp.config import load_config

    overrides = ["runtime.strategy=default", "runtime.virtual_cpus=0"]
    if batch is not None:
        overrides.append(f"train.global_batch_size={batch}")
    return load_config(path, overrides)


def batch_specs(config) -> dict:
    """TensorSpecs of one training batch of `config` (what the model reads)."""
    import tensorflow as tf

    d, b = config.data, config.train.global_batch_size
    return {
        "clip": tf.TensorSpec([b, d.clip_len, d.crop_size, d.crop_size, 3]),
        "iframe": tf.TensorSpec([b, d.crop_size, d.crop_size, 3]),
        "motion": tf.TensorSpec(
            [b, 1 + d.num_negatives, d.motion_len, d.crop_size, d.crop_size, 2]
        ),
    }


def build_pretrain_model(config):
    """PretrainModel with its optimizer, built as ``tfcmvp pretrain`` builds it."""
    from tfcmvp.training import PretrainModel, build_optimizer

    model = PretrainModel.from_pretrain_config(config)
    model.build()
    optimizer = build_optimizer(config, steps_per_epoch=100)
    model.compile(optimizer=optimizer, jit_compile=False)
    optimizer.build(model.trainable_variables)
    return model


def bench_pretrain_step(name: str, config, args) -> dict:
    """Times and counts PretrainModel.train_step of `config`."""
    model = build_pretrain_model(config)
    specs = batch_specs(config)
    log(f"[{name}] tracing the train step ...")
    step, count = traced(model.train_step, specs)
    batch = random_like(specs)
    log(f"[{name}] timing {args.steps} steps after {args.warmup} warm-up ...")
    times = time_calls(step, (batch,), args.warmup, args.steps)
    return {
        "name": name,
        "model": model,
        "step": step,
        "count": count,
        "times": times,
        "batch": config.train.global_batch_size,
        "config": config,
    }


def plain_c3d(input_shape, classes: int):
    """The original C3D conv1-conv5b (conv + ReLU, max pools) + global pool + Dense."""
    import keras

    layers = [keras.Input(input_shape)]
    for filters, convs, pool in (
        (64, 1, (1, 2, 2)),
        (128, 1, (2, 2, 2)),
        (256, 2, (2, 2, 2)),
        (512, 2, (2, 2, 2)),
        (512, 2, None),
    ):
        layers += [
            keras.layers.Conv3D(filters, 3, padding="same", activation="relu") for _ in range(convs)
        ]
        if pool is not None:
            layers.append(keras.layers.MaxPooling3D(pool))
    layers += [keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(classes)]
    return keras.Sequential(layers, name="plain_c3d")


def bench_plain_step(config, args) -> dict:
    """A plain Keras C3D classifier step at the config's clip size and batch."""
    import keras
    import tensorflow as tf

    d, b = config.data, config.train.global_batch_size
    model = plain_c3d((d.clip_len, d.crop_size, d.crop_size, 3), PEER_CLASSES)
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)

    def step(clips, labels):
        with tf.GradientTape() as tape:
            logits = model(clips, training=True)  # [B, classes]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    clip_spec = tf.TensorSpec([b, d.clip_len, d.crop_size, d.crop_size, 3])
    label_spec = tf.TensorSpec([b], tf.int32)
    log("[plain C3D] tracing ...")
    function, count = traced(step, clip_spec, label_spec)
    clips = random_like(clip_spec)
    labels = tf.random.uniform([b], 0, PEER_CLASSES, tf.int32, seed=0)
    log(f"[plain C3D] timing {args.steps} steps after {args.warmup} warm-up ...")
    times = time_calls(function, (clips, labels), args.warmup, args.steps)
    return {"name": "plain Keras C3D (peer)", "count": count, "times": times, "batch": b}


# ---------------------------------------------------------------------------
# 4: time split
# ---------------------------------------------------------------------------


def part_functions(model, specs) -> list:
    """[(part name, function, input specs)]: forward + backward of each part of
    the step alone, inputs shaped as in the step. Each returns the gradients
    the step computes: of the part's weights, and of its inputs where the
    step sends gradients further back (every input but the data)."""
    import tensorflow as tf
    from keras import ops

    from tfcmvp import losses

    if model.value_head is not None or model.model_config.predictor != "transformer":
        raise ValueError(
            "the time split covers the paper's objective (loss.motion_loss="
            "infonce, model.predictor=transformer)"
        )
    b, k = specs["motion"].shape[:2]
    v_out = model.v_network.output  # dict of symbolic stage maps
    m_out = model.m_network.output["features"]  # [B*K, T3, H3, W3, C]
    stages = list(model.memory_stages)
    map_specs = [tf.TensorSpec([b, *v_out[s].shape[1:]]) for s in stages]
    v_features = tf.TensorSpec([b, *v_out["features"].shape[1:]])
    i_features = tf.TensorSpec([b, *model.i_network.output["features"].shape[1:]])
    predicted = tf.TensorSpec([b, model.num_positions, model.model_config.predictor_width])
    m_features = tf.TensorSpec([b * k, *m_out.shape[1:]])

    def gradient(tape, loss, layers, inputs=()):
        variables = [v for layer in layers for v in layer.trainable_variables]
        return tape.gradient(loss, variables + list(inputs))

    def square_mean(*tensors):  # a scalar that reads every output
        return tf.add_n([tf.reduce_mean(tf.square(t)) for t in tensors])

    def v_part(clip):
        with tf.GradientTape() as tape:
            maps = model.v_network(clip, training=True)
            loss = square_mean(*{id(maps[s]): maps[s] for s in ["features", *stages]}.values())
        return gradient(tape, loss, [model.v_network])

    def i_part(iframe):
        with tf.GradientTape() as tape:
            loss = square_mean(model.i_network(iframe, training=True)["features"])
        return gradient(tape, loss, [model.i_network])

    def m_part(motion):
        with tf.GradientTape() as tape:
            flat = tf.reshape(motion, [-1, *motion.shape[2:]])  # [B*K, L, S, S, 2]
            loss = square_mean(model.m_network(flat, training=True)["features"])
        return gradient(tape, loss, [model.m_network])

    def predictor_part(*maps):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            tokens = model.memory(list(maps))  # [B, M, width]
            loss = square_mean(model.predictor(tokens, training=True))  # [B, N, width]
        return gradient(tape, loss, [model.memory, model.predictor], maps)

    def heads_part(clip_map, iframe_map, prediction, motion_map):
        inputs = (clip_map, iframe_map, prediction, motion_map)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            # As PretrainModel.call, from the networks' outputs on.
            outputs = {
                "context_query": model.clip_head(ops.mean(clip_map, axis=(1, 2, 3)), training=True),
                "context_key": model.iframe_head(ops.mean(iframe_map, axis=(1, 2)), training=True),
                "motion_query": model.prediction_head(prediction, training=True),
            }
            flat = tf.reshape(motion_map, [-1, model.num_positions, motion_map.shape[-1]])
            keys = model.motion_head(flat, training=True)  # [B*K, N, D]
            outputs["motion_keys"] = tf.reshape(keys, [-1, k, model.num_positions, keys.shape[-1]])
            per_example = model.per_example_losses(None, outputs)
            loss = losses.replica_mean(per_example["loss"], b)
        heads = [model.clip_head, model.iframe_head, model.prediction_head, model.motion_head]
        return gradient(tape, loss, heads, inputs)

    variables = model.trainable_variables

    def optimizer_part(*gradients):
        model.optimizer.apply_gradients(zip(gradients, variables))
        return model.optimizer.iterations

    return [
        (
            "V-Network (C3D)" if model.model_config.video_network == "c3d" else "V-Network",
            v_part,
            [specs["clip"]],
        ),
        ("I-Network", i_part, [specs["iframe"]]),
        (f"M-Network ({k} motion clips)", m_part, [specs["motion"]]),
        ("predictor (memory + Transformer)", predictor_part, map_specs),
        ("heads + losses", heads_part, [v_features, i_features, predicted, m_features]),
        ("optimizer update", optimizer_part, [tf.TensorSpec(v.shape, v.dtype) for v in variables]),
    ]


def bench_parts(result: dict, args) -> list[dict]:
    """Times and counts each part of `result`'s step (see part_functions)."""

    rows = []
    specs = batch_specs(result["config"])
    for name, function, input_specs in part_functions(result["model"], specs):
        log(f"[split] {name} ...")
        function, count = traced(function, *input_specs)
        inputs = random_like(input_specs)
        if name == "optimizer update":  # small gradients: the weights stay sane
            inputs = [0.001 * t for t in inputs]
        times = time_calls(function, inputs, args.warmup, args.steps)
        rows.append({"name": name, "count": count, "times": times})
        del function
        gc.collect()
    return rows


# ---------------------------------------------------------------------------
# 3: input pipeline
# ---------------------------------------------------------------------------


def bench_pipeline(config, pattern: str, args) -> float:
    """clips/s of tfcmvp.data.pretrain_dataset with `config.data`, default parallelism."""
    from tfcmvp.data import pretrain_dataset

    batch = config.train.global_batch_size
    dataset = pretrain_dataset(pattern, batch, config.data, seed=0, count_skipped=False)
    iterator = iter(dataset)
    times = time_calls(
        lambda: next(iterator)["clip"], (), args.pipeline_warmup, args.pipeline_batches
    )
    return batch * len(times) / sum(times)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def step_stats(result: dict, ceiling: float) -> dict:
    seconds = statistics.median(result["times"])
    flop_rate = result["count"].total / seconds
    return {
        "seconds": seconds,
        "clips_per_s": result.get("batch", 0) / seconds,
        "gflop": result["count"].total / 1e9,
        "gflop_per_s": flop_rate / 1e9,
        "fraction": flop_rate / ceiling,
    }


def print_report(
    args,
    env: dict,
    ceiling: float,
    steps: list[dict],
    peer: dict,
    paper: dict,
    profiler: dict,
    pipelines: list,
    parts: list[dict],
) -> None:
    g = 1e9
    print(
        f"\ntfcmvp pretraining benchmark ({'--quick' if args.quick else 'full'}): "
        f"TF {env['tf']}, Keras {env['keras']}, {env['cores']} cores visible, float32, "
        f"one replica, no XLA"
    )
    print(
        f"load average before {env['load_before']:.2f}, after {os.getloadavg()[0]:.2f}; "
        f"step times: median of {args.steps} after {args.warmup} warm-up"
    )
    sync = {result["config"].train.sync_bn for result in steps}
    print(
        f"configs as written, train.sync_bn={'/'.join(map(str, sorted(sync)))} (on one replica "
        f"the fused BatchNorm kernel either way)"
    )
    print(
        f"ceiling: {CEILING_SIZE}x{CEILING_SIZE} float32 tf.matmul, best of "
        f"{args.ceiling_repeats}: {ceiling / g:.1f} GFLOP/s"
    )

    print("\n1-2. Train step (model's train_step in one tf.function, in-memory batch)")
    header = (
        f"{'model':<34} {'batch':>5} {'step ms':>9} {'clips/s':>8} {'GFLOP/step':>11} "
        f"{'GFLOP/s':>8} {'% ceiling':>9}"
    )
    print(header)
    print("-" * len(header))
    stats = {}
    for result in steps + [peer]:
        s = stats[result["name"]] = step_stats(result, ceiling)
        print(
            f"{result['name']:<34} {result['batch']:>5} {1000 * s['seconds']:>9.1f} "
            f"{s['clips_per_s']:>8.2f} {s['gflop']:>11.2f} {s['gflop_per_s']:>8.1f} "
            f"{100 * s['fraction']:>8.1f}%"
        )
    paper_stats, peer_stats = stats[paper["name"]], stats[peer["name"]]
    print(
        f"tfcmvp / plain, fraction of ceiling: "
        f"{paper_stats['fraction'] / peer_stats['fraction']:.2f} "
        f"(target for the paper config: >= 35% of the ceiling)"
    )

    count = paper["count"]
    groups = count.grouped()
    print(
        "\nFLOPs of one paper-config step, counted in its traced graph "
        "(tfcmvp.training.flops; 2 per multiply-add):"
    )
    print(
        f"  conv forward {groups.get('forward', 0) / g:.1f} G + conv input gradients "
        f"{groups.get('input gradient', 0) / g:.1f} G + conv weight gradients "
        f"{groups.get('weight gradient', 0) / g:.1f} G + MatMul/BatchMatMul (fwd + bwd) "
        f"{groups.get('matmul', 0) / g:.1f} G = {count.total / g:.1f} G"
    )
    print("  ops: " + ", ".join(f"{n} x{count.ops[n]}" for n in sorted(count.ops)))
    print("  not counted: elementwise work (BatchNorm, ReLU, pooling, softmax, optimizer update)")
    profiled = sum(profiler.values())
    missed = sum(v for k, v in count.by_type.items() if k not in profiler)
    elementwise = sum(v for k, v in profiler.items() if k not in count.by_type)
    print(
        f"  TF profiler (float_operation) on the same graph: {profiled / g:.1f} G; it has no "
        f"statistics for {', '.join(sorted(k for k in count.by_type if k not in profiler))} "
        f"({missed / g:.1f} G) and adds {elementwise / g:.1f} G of elementwise ops"
    )

    print(
        "\n3. Input pipeline (tfcmvp.data.pretrain_dataset, default AUTOTUNE parallelism, "
        "real records) vs the train step"
    )
    header = (
        f"{'config':<34} {'pipeline clips/s':>16} {'per core':>9} {'step clips/s':>13} "
        f"{'pipeline/step':>14} {'input adds':>11}  bottleneck"
    )
    print(header)
    print("-" * len(header))
    for name, rate in pipelines:
        step_rate = stats[name]["clips_per_s"]
        verdict = "pipeline" if rate < step_rate else "train step"
        print(
            f"{name:<34} {rate:>16.1f} {rate / env['cores']:>9.1f} {step_rate:>13.2f} "
            f"{rate / step_rate:>13.1f}x {100 * step_rate / rate:>10.1f}%  {verdict}"
        )
    print(
        f"  Each timed alone on all {env['cores']} cores (per core = clips/s / "
        f"{env['cores']}). The pipeline is the bottleneck when it makes fewer clips/s\n"
        f"  than the step takes. Here both share the cores, so feeding the step adds "
        f"step/pipeline to its time (input adds)."
    )

    total = statistics.median(paper["times"])
    part_sum = sum(statistics.median(p["times"]) for p in parts)
    print(
        f"\n4. Time split of the paper-config step (batch {paper['batch']}): forward + "
        f"backward of each part alone"
    )
    header = f"{'part':<34} {'ms':>9} {'share':>7} {'GFLOP':>8} {'GFLOP/s':>8} {'% ceiling':>9}"
    print(header)
    print("-" * len(header))
    for part in parts:
        seconds = statistics.median(part["times"])
        flop = part["count"].total
        rate = flop / seconds
        print(
            f"{part['name']:<34} {1000 * seconds:>9.1f} {100 * seconds / part_sum:>6.1f}% "
            f"{flop / g:>8.2f} {rate / g:>8.1f} {100 * rate / ceiling:>8.1f}%"
        )
    print("-" * len(header))
    print(f"{'sum of parts':<34} {1000 * part_sum:>9.1f}")
    print(
        f"{'whole train step':<34} {1000 * total:>9.1f}  (difference "
        f"{1000 * (total - part_sum):+.1f} ms: metrics, glue, and what parts gain or lose "
        f"when traced together)"
    )


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps: under 2 minutes")
    parser.add_argument(
        "--batch", type=int, help="global batch of the paper config (default 4, --quick 2)"
    )
    parser.add_argument("--paper_config", default=str(PAPER_CONFIG))
    parser.add_argument("--tiny_config", default=str(TINY_CONFIG))
    parser.add_argument("--steps", type=int, help="timed steps (default 8, --quick 2)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 2, --quick 1)")
    parser.add_argument("--videos", type=int, default=16, help="records for the pipeline")
    args = parser.parse_args(argv)
    args.batch = args.batch or (2 if args.quick else 4)
    args.steps = args.steps or (2 if args.quick else 8)
    args.warmup = args.warmup or (1 if args.quick else 2)
    args.ceiling_repeats = 3 if args.quick else 6
    args.pipeline_batches = 4 if args.quick else 12
    args.pipeline_warmup = 2

    import keras
    import tensorflow as tf

    env = {
        "tf": tf.__version__,
        "keras": keras.__version__,
        "cores": len(os.sched_getaffinity(0)),
        "load_before": os.getloadavg()[0],
    }
    keras.utils.set_random_seed(0)
    log("matmul ceiling ...")
    ceiling = matmul_ceiling(CEILING_SIZE, args.ceiling_repeats)

    tiny = load(args.tiny_config, None) if pathlib.Path(args.tiny_config).is_file() else None
    if tiny is None:
        log(f"no tiny config at {args.tiny_config}: its rows are skipped")
    paper_config = load(args.paper_config, args.batch)

    steps = []
    if tiny is not None:
        result = bench_pretrain_step(f"tiny ({pathlib.Path(args.tiny_config).stem})", tiny, args)
        result.pop("model")  # not needed further: free it
        steps.append(result)
    paper = bench_pretrain_step("paper C3D UCF101", paper_config, args)
    steps.append(paper)
    peer = bench_plain_step(paper_config, args)

    from tfcmvp.training import flops

    log("[paper] TF profiler count ...")
    with contextlib.redirect_stdout(sys.stderr):
        profiler = flops.profiler_flops(
            paper["step"].get_concrete_function(batch_specs(paper_config)).graph
        )

    parts = bench_parts(paper, args)

    log("[pipeline] writing records ...")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from bench_input_pipeline import build_shards

    pipelines = []
    with tempfile.TemporaryDirectory() as folder:
        with contextlib.redirect_stdout(sys.stderr):
            pattern = build_shards(folder, args.videos)
        for result in steps:
            log(f"[pipeline] {result['name']} ...")
            pipelines.append((result["name"], bench_pipeline(result["config"], pattern, args)))

    print_report(args, env, ceiling, steps, peer, paper, profiler, pipelines, parts)
    return 0


if __name__ == "__main__":
    sys.exit(run())
