"""The main job on the embedded default data, end to end.

synthetic videos (``tfcmvp.synth``) -> Beam extraction (DirectRunner) -> tiny
pretraining -> SavedModel export (pretrained and random init) -> retrieval and
a short finetune of both -> one table, pretrained vs scratch.

Every stage writes under one WORKDIR and is skipped when its output is already
complete, so a second run (or a run that was interrupted) picks up where the
first one stopped:

    WORKDIR/synth/          videos/ + splits/ (UCF101 layout)
    WORKDIR/records/        TFRecord shards, manifest.json, failed.jsonl
    WORKDIR/pretrain/       the pretraining run (history.csv, checkpoints, ...)
    WORKDIR/models/         pretrained/ and scratch/ SavedModels
    WORKDIR/retrieval/      <model>.json (+ .png)
    WORKDIR/finetune/       <model>/ runs with results.json
    WORKDIR/results.json    the table below, as data
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Callable, Dict, List, Optional, Sequence

logger = logging.getLogger(__name__)

REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
MODELS = ("pretrained", "scratch")
TABLE_KS = (1, 5, 10, 20)


@dataclasses.dataclass
class QuickstartSettings:
    """Sizes of one quickstart run (defaults: the README's quickstart).

    Attributes:
      seed: seed of the synthetic data and of training.
      videos_per_class: synthetic videos per class (5 classes).
      num_frames: frames per synthetic video.
      pretrain_config: YAML config of the pretraining run.
      finetune_config: YAML config of the short finetune.
      pretrain_overrides: ``key=value`` overrides of the pretraining config.
      finetune_overrides: ``key=value`` overrides of the finetune config.
      retrieval_clips: clips per video for retrieval features.
      workers: DirectRunner worker processes of the extraction (0 = all cores).
    """

    seed: int = 0
    videos_per_class: int = 24
    num_frames: int = 96
    pretrain_config: pathlib.Path = REPO_CONFIGS / "pretrain_tiny_cpu.yaml"
    finetune_config: pathlib.Path = REPO_CONFIGS / "finetune_tiny_cpu.yaml"
    pretrain_overrides: Sequence[str] = ()
    finetune_overrides: Sequence[str] = ()
    retrieval_clips: int = 10
    workers: int = 0

    @classmethod
    def smoke(cls) -> "QuickstartSettings":
        """A minutes-long setting for CI: the whole chain, tiny sizes."""
        return cls(videos_per_class=4, num_frames=80,
                   pretrain_overrides=("train.epochs=1", "train.steps_per_epoch=2",
                                       "optimizer.warmup_epochs=0"),
                   finetune_overrides=("train.epochs=1", "train.steps_per_epoch=2"),
                   retrieval_clips=2, workers=1)


@dataclasses.dataclass
class StageTiming:
    name: str
    seconds: float
    skipped: bool


class Quickstart:
    """Runs the stages in order; each is a method that returns its output path."""

    def __init__(self, workdir, settings: Optional[QuickstartSettings] = None,
                 progress: Callable[[str], None] = print):
        self.workdir = pathlib.Path(workdir)
        self.settings = settings or QuickstartSettings()
        self.progress = progress
        self.timings: List[StageTiming] = []

    # Paths ---------------------------------------------------------------
    @property
    def synth_dir(self) -> pathlib.Path:
        return self.workdir / "synth"

    @property
    def records_dir(self) -> pathlib.Path:
        return self.workdir / "records"

    @property
    def pretrain_dir(self) -> pathlib.Path:
        return self.workdir / "pretrain"

    def model_dir(self, name: str) -> pathlib.Path:
        return self.workdir / "models" / name

    def retrieval_json(self, name: str) -> pathlib.Path:
        return self.workdir / "retrieval" / f"{name}.json"

    def finetune_dir(self, name: str) -> pathlib.Path:
        return self.workdir / "finetune" / name

    # Stages --------------------------------------------------------------
    def _stage(self, name: str, done: bool, work: Callable[[], object]) -> None:
        if done:
            self.progress(f"[quickstart] {name}: already done, skipped")
            self.timings.append(StageTiming(name, 0.0, True))
            return
        self.progress(f"[quickstart] {name} ...")
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        self.timings.append(StageTiming(name, seconds, False))
        self.progress(f"[quickstart] {name}: done in {seconds:.0f} s")

    def make_data(self) -> None:
        from tfcmvp import synth

        s = self.settings
        self._stage(
            "synthetic videos", (self.synth_dir / "splits" / "testlist01.txt").is_file(),
            lambda: synth.make_dataset(self.synth_dir, seed=s.seed,
                                       videos_per_class=s.videos_per_class,
                                       num_frames=s.num_frames))

    def extract(self) -> None:
        from beam_jobs import extract

        workers = self.settings.workers or os.cpu_count() or 1
        argv = ["--videos_dir", str(self.synth_dir / "videos"),
                "--splits_dir", str(self.synth_dir / "splits"),
                "--output_dir", str(self.records_dir),
                "--overwrite",
                "--direct_num_workers", str(workers),
                "--direct_running_mode", "multi_processing" if workers > 1 else "in_memory"]
        self._stage("Beam extraction", (self.records_dir / "manifest.json").is_file(),
                    lambda: extract.run(argv))

    def pretrain(self) -> None:
        from tfcmvp.config import load_config
        from tfcmvp.training.pretrain import pretrain

        s = self.settings
        overrides = [f"train.seed={s.seed}", *s.pretrain_overrides]
        config = load_config(s.pretrain_config, overrides)
        weights = self.pretrain_dir / "weights" / "v_network.weights.h5"
        history = self.pretrain_dir / "history.csv"
        finished = weights.is_file() and history.is_file() and (
            _count_rows(history) >= config.train.epochs)
        self._stage("pretraining", finished,
                    lambda: pretrain(config, self.records_dir, self.pretrain_dir, verbose=2))

    def export(self) -> None:
        from tfcmvp.config import load_config
        from tfcmvp.export import export_pretrained, export_random_init

        pretrained, scratch = self.model_dir("pretrained"), self.model_dir("scratch")
        self._stage("export pretrained", (pretrained / "saved_model.pb").is_file(),
                    lambda: export_pretrained(self.pretrain_dir, pretrained, network="video"))
        config = load_config(self.pretrain_dir / "config.yaml")
        self._stage("export random init", (scratch / "saved_model.pb").is_file(),
                    lambda: export_random_init(config, scratch, network="video",
                                               seed=self.settings.seed))

    def retrieval(self) -> None:
        from tfcmvp.retrieval.evaluate import evaluate_retrieval

        for name in MODELS:
            out = self.retrieval_json(name)
            self._stage(f"retrieval ({name})", out.is_file(),
                        lambda name=name, out=out: evaluate_retrieval(
                            self.model_dir(name), self.records_dir, output=out,
                            clips=self.settings.retrieval_clips,
                            png=out.with_suffix(".png")))

    def finetune(self) -> None:
        from tfcmvp.finetuning.config import load_finetune_config
        from tfcmvp.finetuning.finetune import finetune

        s = self.settings
        for name in MODELS:
            # Both start from an export: "scratch" is the random-init export of the
            # same architecture (the paper's baseline), so only the weights differ.
            workdir, model = self.finetune_dir(name), self.model_dir(name)
            config = load_finetune_config(
                s.finetune_config, [f"train.seed={s.seed}", *s.finetune_overrides],
                model_dir=model)
            self._stage(f"finetune ({name})", (workdir / "results.json").is_file(),
                        lambda config=config, workdir=workdir, model=model: finetune(
                            config, self.records_dir, workdir, model_dir=model, verbose=2))

    def run(self) -> Dict:
        """All stages in order; returns (and writes) the results table as data."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        self.make_data()
        self.extract()
        self.pretrain()
        self.export()
        self.retrieval()
        self.finetune()
        results = self.collect()
        results["seconds"] = round(time.perf_counter() - start, 1)
        results["stages"] = [dataclasses.asdict(t) for t in self.timings]
        (self.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        return results

    def collect(self) -> Dict:
        """Reads every stage's output into one dict (the quickstart's table)."""
        manifest = json.loads((self.records_dir / "manifest.json").read_text())
        rows = {}
        for name in MODELS:
            retrieval = json.loads(self.retrieval_json(name).read_text())
            finetune = json.loads((self.finetune_dir(name) / "results.json").read_text())
            rows[name] = {**{f"R@{k}": retrieval[f"R@{k}"] for k in TABLE_KS},
                          "top1": finetune["top1"], "top5": finetune["top5"]}
        history = _read_last_row(self.pretrain_dir / "history.csv")
        return {
            "workdir": str(self.workdir),
            "records": {split: {k: v for k, v in counts.items() if k in
                                ("listed", "written", "failed", "short")}
                        for split, counts in manifest["splits"].items()},
            "pretrain_last_epoch": history,
            "models": rows,
            "artifacts": {
                "records": str(self.records_dir),
                "pretrain": str(self.pretrain_dir),
                "saved_models": {n: str(self.model_dir(n)) for n in MODELS},
                "retrieval": {n: str(self.retrieval_json(n)) for n in MODELS},
                "finetune": {n: str(self.finetune_dir(n)) for n in MODELS},
            },
        }


def format_results(results: Dict) -> str:
    """The printed table: retrieval R@k and finetune top-1, pretrained vs scratch."""
    header = ["model"] + [f"R@{k}" for k in TABLE_KS] + ["top-1", "top-5"]
    lines = ["  ".join(f"{h:>10}" for h in header)]
    for name, row in results["models"].items():
        values = [row[f"R@{k}"] for k in TABLE_KS] + [row["top1"], row["top5"]]
        lines.append("  ".join([f"{name:>10}"] + [f"{v:10.1f}" for v in values]))
    pre, scr = results["models"]["pretrained"], results["models"]["scratch"]
    lines.append("")
    lines.append(f"pretrained - scratch: R@1 {pre['R@1'] - scr['R@1']:+.1f}, "
                 f"top-1 {pre['top1'] - scr['top1']:+.1f} (percentage points)")
    last = results.get("pretrain_last_epoch") or {}
    if last:
        lines.append("pretraining, last epoch: " + ", ".join(
            f"{k} {float(last[k]):.3f}" for k in
            ("loss", "context_loss", "motion_loss", "context_acc", "motion_acc") if k in last))
    lines.append("")
    lines.append("artifacts:")
    art = results["artifacts"]
    lines.append(f"  records      {art['records']}")
    lines.append(f"  pretraining  {art['pretrain']}  (history.csv, history.png, tensorboard/)")
    for name in MODELS:
        lines.append(f"  {name:<12} {art['saved_models'][name]}  (SavedModel)")
    lines.append(f"  retrieval    {pathlib.Path(art['retrieval']['pretrained']).parent}")
    lines.append(f"  finetune     {pathlib.Path(art['finetune']['pretrained']).parent}")
    if "seconds" in results:
        lines.append(f"total time: {results['seconds'] / 60:.1f} min")
    return "\n".join(lines)


def _count_rows(csv_path: pathlib.Path) -> int:
    with open(csv_path) as f:
        return max(sum(1 for _ in f) - 1, 0)


def _read_last_row(csv_path: pathlib.Path) -> Optional[Dict[str, str]]:
    import csv

    if not csv_path.is_file():
        return None
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else None
