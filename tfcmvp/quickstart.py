"""The main job on the embedded default data, end to end, with the paper's ablation.

synthetic videos with a motion and a scene label (``tfcmvp.synth``) -> Beam
extraction (DirectRunner) -> tiny pretraining of three objectives (context
only, motion only, joint: the paper's Table 4) over several seeds -> SavedModel
exports of each and of random-init twins -> retrieval scored by motion and by
scene -> a short finetune of the joint model and of random init -> one table.

Every stage writes under one WORKDIR and is skipped when its output is already
complete, so a second run (or a run that was interrupted) picks up where the
first one stopped (one quickstart at a time: a second one on the same WORKDIR
stops naming the first). The settings that made a WORKDIR are kept in it; a
run with other settings stops and names the difference instead of mixing results::

    WORKDIR/settings.json                 what made this folder
    WORKDIR/synth/                        videos/, splits/, labels.csv
    WORKDIR/records/                      TFRecord shards, manifest.json, failed.jsonl
    WORKDIR/pretrain/<row>/seed<k>/       each pretraining run (history.csv, ...)
    WORKDIR/models/<row>/seed<k>/         SavedModels (row "scratch": random init)
    WORKDIR/retrieval/<row>-seed<k>-<label kind>.json
    WORKDIR/finetune/<joint|scratch>/     the two short finetunes (results.json)
    WORKDIR/report/report_card.json       joint vs random init, seed 0 (tfcmvp report)
    WORKDIR/results.json                  the tables below, as data
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Callable, Dict, List, Optional, Sequence

from tfcmvp import quickstart_report, workdir_lock

logger = logging.getLogger(__name__)

REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
# Ablation rows (paper Table 4): name -> overrides of the pretraining config.
# "joint" keeps the config's own alpha (and its motion-only first epochs, which a
# context-only row must not have).
ROWS = {
    "context": ("loss.alpha=0", "loss.motion_only_epochs=0"),
    "motion": ("loss.alpha=1",),
    "joint": (),
}
SCRATCH = "scratch"  # random-init twins, one per seed
LABEL_KINDS = ("motion", "scene")
FINETUNED = ("joint", SCRATCH)
REPORTED = ("joint", SCRATCH)  # the report card's rows: pretrained vs scratch, first seed


class QuickstartError(ValueError):
    """The WORKDIR holds another run's results, or a setting is invalid."""


@dataclasses.dataclass
class QuickstartSettings:
    """Sizes of one quickstart run (defaults: the README's quickstart).

    Attributes:
      seed: seed of the synthetic data and of the first training run.
      num_seeds: pretraining runs per ablation row, seeds ``seed .. seed + n - 1``.
      videos_per_class: synthetic videos per motion class (5 classes).
      num_frames: frames per synthetic video.
      variant: generator variant of the data ("standard", or "heldout": the
        check on data the tiny recipe was never tuned on).
      pretrain_config: YAML config of the pretraining runs.
      finetune_config: YAML config of the short finetune.
      pretrain_overrides: ``key=value`` overrides of the pretraining config.
      finetune_overrides: ``key=value`` overrides of the finetune config.
      retrieval_clips: clips per video for retrieval features.
      workers: DirectRunner worker processes of the extraction (0 = all cores).
    """

    seed: int = 0
    num_seeds: int = 3
    videos_per_class: int = 24
    num_frames: int = 96
    variant: str = "standard"
    pretrain_config: pathlib.Path = REPO_CONFIGS / "pretrain_tiny_cpu.yaml"
    finetune_config: pathlib.Path = REPO_CONFIGS / "finetune_tiny_cpu.yaml"
    pretrain_overrides: Sequence[str] = ()
    finetune_overrides: Sequence[str] = ()
    retrieval_clips: int = 10
    workers: int = 0

    @classmethod
    def smoke(cls) -> "QuickstartSettings":
        """A minutes-long setting for CI: the whole chain, tiny sizes, one seed."""
        return cls(
            num_seeds=1,
            videos_per_class=4,
            num_frames=80,
            pretrain_overrides=(
                "train.epochs=1",
                "train.steps_per_epoch=2",
                "optimizer.warmup_epochs=0",
                # one motion-only step, then one joint step
                "loss.motion_only_epochs=0.5",
            ),
            finetune_overrides=("train.epochs=1", "train.steps_per_epoch=2"),
            retrieval_clips=2,
            workers=1,
        )

    @property
    def report_card(self) -> bool:
        """Whether the run ends with the report card: only when the linear probe's
        stratified folds get a video of each class (the synthetic split puts at least
        half of each class in train), which leaves out ``--smoke`` (2 train videos a
        class) and keeps the CI test fast."""
        from tfcmvp.evaluation.linear_probe import DEFAULT_FOLDS

        return self.videos_per_class >= 2 * DEFAULT_FOLDS

    @property
    def seeds(self) -> List[int]:
        return list(range(self.seed, self.seed + self.num_seeds))

    def as_record(self) -> Dict:
        """The settings as JSON-safe values (what WORKDIR/settings.json holds)."""
        record = dataclasses.asdict(self)
        for key, value in record.items():
            if isinstance(value, pathlib.Path):
                record[key] = str(value.resolve())
            elif isinstance(value, tuple):
                record[key] = list(value)
        return record


@dataclasses.dataclass
class StageTiming:
    name: str
    seconds: float
    skipped: bool


class Quickstart:
    """Runs the stages in order; a stage is skipped when its output is complete."""

    def __init__(
        self,
        workdir,
        settings: Optional[QuickstartSettings] = None,
        progress: Callable[[str], None] = print,
    ):
        self.workdir = pathlib.Path(workdir)
        self.settings = settings or QuickstartSettings()
        self.progress = progress
        self.timings: List[StageTiming] = []
        if self.settings.num_seeds < 1:
            raise QuickstartError(f"num_seeds must be >= 1, got {self.settings.num_seeds}")

    # Paths ---------------------------------------------------------------
    @property
    def synth_dir(self) -> pathlib.Path:
        return self.workdir / "synth"

    @property
    def records_dir(self) -> pathlib.Path:
        return self.workdir / "records"

    @property
    def labels_csv(self) -> pathlib.Path:
        from tfcmvp.synth import LABELS_FILE

        return self.synth_dir / LABELS_FILE

    @property
    def settings_json(self) -> pathlib.Path:
        return self.workdir / "settings.json"

    def pretrain_dir(self, row: str, seed: int) -> pathlib.Path:
        return self.workdir / "pretrain" / row / f"seed{seed}"

    def model_dir(self, row: str, seed: int) -> pathlib.Path:
        return self.workdir / "models" / row / f"seed{seed}"

    def retrieval_json(self, row: str, seed: int, kind: str) -> pathlib.Path:
        return self.workdir / "retrieval" / f"{row}-seed{seed}-{kind}.json"

    @property
    def report_json(self) -> pathlib.Path:
        return self.workdir / "report" / "report_card.json"

    def finetune_dir(self, row: str) -> pathlib.Path:
        return self.workdir / "finetune" / row

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

    def check_settings(self) -> None:
        """Records the settings in a new WORKDIR; refuses one made with others.

        Skipped stages would otherwise mix another run's data or models into
        this run's table (e.g. a ``--smoke`` folder re-run at full size).
        """
        wanted = self.settings.as_record()
        if self.settings_json.is_file():
            made = json.loads(self.settings_json.read_text())
            diff = [
                f"{key}: {made.get(key)!r} -> {value!r}"
                for key, value in wanted.items()
                if made.get(key) != value
            ]
            if diff:
                raise QuickstartError(
                    f"{self.workdir} holds a quickstart made with other settings ("
                    + "; ".join(diff)
                    + "): choose another --workdir, or delete that folder "
                    "to start over"
                )
            return
        if self.workdir.is_dir() and any(
            p.name != workdir_lock.LOCK_NAME for p in self.workdir.iterdir()
        ):
            raise QuickstartError(
                f"{self.workdir} is not empty and was not made by the quickstart (no "
                f"{self.settings_json.name}): choose an empty or new --workdir"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings_json.write_text(json.dumps(wanted, indent=2) + "\n")

    def make_data(self) -> None:
        from tfcmvp import synth

        s = self.settings
        self._stage(
            "synthetic videos",
            self.labels_csv.is_file(),
            lambda: synth.make_dataset(
                self.synth_dir,
                seed=s.seed,
                videos_per_class=s.videos_per_class,
                num_frames=s.num_frames,
                variant=s.variant,
            ),
        )

    def extract(self) -> None:
        from beam_jobs import extract

        workers = self.settings.workers or os.cpu_count() or 1
        argv = [
            "--videos_dir",
            str(self.synth_dir / "videos"),
            "--splits_dir",
            str(self.synth_dir / "splits"),
            "--output_dir",
            str(self.records_dir),
            "--overwrite",
            "--direct_num_workers",
            str(workers),
            "--direct_running_mode",
            "multi_processing" if workers > 1 else "in_memory",
        ]
        self._stage(
            "Beam extraction",
            (self.records_dir / "manifest.json").is_file(),
            lambda: extract.run(argv),
        )

    def pretrain_config(self, row: str, seed: int):
        from tfcmvp.config import load_config

        s = self.settings
        return load_config(
            s.pretrain_config, [f"train.seed={seed}", *s.pretrain_overrides, *ROWS[row]]
        )

    def pretrain(self) -> None:
        from tfcmvp.training.pretrain import pretrain

        for row in ROWS:
            for seed in self.settings.seeds:
                config, workdir = self.pretrain_config(row, seed), self.pretrain_dir(row, seed)
                weights = workdir / "weights" / "v_network.weights.h5"
                history = workdir / "history.csv"
                finished = (
                    weights.is_file()
                    and history.is_file()
                    and (quickstart_report.count_rows(history) >= config.train.epochs)
                )
                self._stage(
                    f"pretraining ({row}, seed {seed})",
                    finished,
                    lambda config=config, workdir=workdir: pretrain(
                        config, self.records_dir, workdir, verbose=2
                    ),
                )

    def export(self) -> None:
        from tfcmvp.export import export_pretrained, export_random_init

        for seed in self.settings.seeds:
            for row in ROWS:
                out = self.model_dir(row, seed)
                self._stage(
                    f"export ({row}, seed {seed})",
                    (out / "saved_model.pb").is_file(),
                    lambda row=row, seed=seed, out=out: export_pretrained(
                        self.pretrain_dir(row, seed), out, network="video"
                    ),
                )
            out = self.model_dir(SCRATCH, seed)
            self._stage(
                f"export (random init, seed {seed})",
                (out / "saved_model.pb").is_file(),
                lambda seed=seed, out=out: export_random_init(
                    self.pretrain_config("joint", seed), out, network="video", seed=seed
                ),
            )

    def retrieval(self) -> None:
        from tfcmvp.retrieval.evaluate import evaluate_retrieval
        from tfcmvp.retrieval.labels import read_label_table

        tables = {kind: read_label_table(self.labels_csv, kind) for kind in LABEL_KINDS}
        for row in (*ROWS, SCRATCH):
            for seed in self.settings.seeds:
                for kind, table in tables.items():
                    out = self.retrieval_json(row, seed, kind)
                    self._stage(
                        f"retrieval ({row}, seed {seed}, by {kind})",
                        out.is_file(),
                        lambda row=row, seed=seed, out=out, table=table: evaluate_retrieval(
                            self.model_dir(row, seed),
                            self.records_dir,
                            output=out,
                            clips=self.settings.retrieval_clips,
                            labels=table,
                            png=out.with_suffix(".png"),
                            progress=False,
                        ),
                    )

    def finetune(self) -> None:
        from tfcmvp.finetuning.config import load_finetune_config
        from tfcmvp.finetuning.finetune import finetune

        s = self.settings
        for row in FINETUNED:
            # Both start from an export: "scratch" is the random-init export of the
            # same architecture (the paper's baseline), so only the weights differ.
            workdir, model = self.finetune_dir(row), self.model_dir(row, s.seed)
            config = load_finetune_config(
                s.finetune_config, [f"train.seed={s.seed}", *s.finetune_overrides], model_dir=model
            )
            self._stage(
                f"finetune ({row})",
                (workdir / "results.json").is_file(),
                lambda config=config, workdir=workdir, model=model: finetune(
                    config, self.records_dir, workdir, model_dir=model, verbose=2
                ),
            )

    def report(self) -> None:
        """The report card of the joint seed-0 export vs its random-init twin: retrieval
        (vcop and coclr), kNN and the linear probe by motion, over the run's seeds for the
        probe (:func:`tfcmvp.evaluation.report_card.report_card`; the finetune is the
        stage above). Full size only (:attr:`QuickstartSettings.report_card`)."""
        if not self.settings.report_card:
            return
        from tfcmvp.evaluation.report_card import report_card
        from tfcmvp.retrieval.labels import read_label_table

        s = self.settings
        self._stage(
            f"report card ({' vs '.join(REPORTED)}, seed {s.seed})",
            self.report_json.is_file(),
            lambda: report_card(
                {row: self.model_dir(row, s.seed) for row in REPORTED},
                self.records_dir,
                seeds=s.seeds,
                labels=read_label_table(self.labels_csv, LABEL_KINDS[0]),
                clips=s.retrieval_clips,
                progress=False,
                output=self.report_json,
                png=self.report_json.with_suffix(".png"),
            ),
        )

    def run(self) -> Dict:
        """All stages in order; returns (and writes) the results as data.

        Holds the WORKDIR's lock throughout (:mod:`tfcmvp.workdir_lock`): a second
        quickstart on the same WORKDIR raises WorkdirBusyError before reading it.
        """
        with workdir_lock.hold(self.workdir):
            return self._run()

    def _run(self) -> Dict:
        self.check_settings()
        start = time.perf_counter()
        self.make_data()
        self.extract()
        self.pretrain()
        self.export()
        self.retrieval()
        self.finetune()
        self.report()
        results = self.collect()
        results["seconds"] = round(time.perf_counter() - start, 1)
        results["stages"] = [dataclasses.asdict(t) for t in self.timings]
        (self.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        return results

    def collect(self) -> Dict:
        """Reads every stage's output into one dict (the quickstart's tables)."""
        manifest = json.loads((self.records_dir / "manifest.json").read_text())
        seeds = self.settings.seeds
        ablation = {}
        for row in (SCRATCH, *ROWS):
            entry = {}
            for kind in LABEL_KINDS:
                for k in quickstart_report.TABLE_KS:
                    entry[f"{kind}_R@{k}"] = [
                        json.loads(self.retrieval_json(row, s, kind).read_text())[f"R@{k}"]
                        for s in seeds
                    ]
            if row != SCRATCH:
                last = [
                    quickstart_report.read_last_row(self.pretrain_dir(row, s) / "history.csv")
                    for s in seeds
                ]
                for name in ("context_acc", "motion_acc", "context_loss", "motion_loss"):
                    entry[name] = [float(r[name]) for r in last if r and name in r]
            ablation[row] = entry
        finetuned = {
            row: {
                k: v
                for k, v in json.loads(
                    (self.finetune_dir(row) / "results.json").read_text()
                ).items()
                if k in ("top1", "top5")
            }
            for row in FINETUNED
        }
        return {
            "workdir": str(self.workdir),
            "settings": self.settings.as_record(),
            "seeds": seeds,
            "records": {
                split: {
                    k: v for k, v in counts.items() if k in ("listed", "written", "failed", "short")
                }
                for split, counts in manifest["splits"].items()
            },
            "ablation": ablation,
            "finetune": finetuned,
            "report_card": (
                json.loads(self.report_json.read_text()) if self.settings.report_card else None
            ),
            "artifacts": {
                "records": str(self.records_dir),
                "labels": str(self.labels_csv),
                "pretrain": str(self.workdir / "pretrain"),
                "saved_models": str(self.workdir / "models"),
                "retrieval": str(self.workdir / "retrieval"),
                "finetune": str(self.workdir / "finetune"),
                **({"report_card": str(self.report_json)} if self.settings.report_card else {}),
            },
        }


format_results = quickstart_report.format_results
