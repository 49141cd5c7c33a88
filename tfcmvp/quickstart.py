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
from typing import Callable, Dict, List, Optional

from tfcmvp import quickstart_report, workdir_lock
from tfcmvp.quickstart_settings import (
    FINETUNED,
    LABEL_KINDS,
    REPO_CONFIGS,
    REPORTED,
    ROWS,
    SCRATCH,
    QuickstartError,
    QuickstartSettings,
)

# The settings live in quickstart_settings; importable from here too.
__all__ = [
    "FINETUNED",
    "LABEL_KINDS",
    "REPO_CONFIGS",
    "REPORTED",
    "ROWS",
    "SCRATCH",
    "Quickstart",
    "QuickstartError",
    "QuickstartSettings",
    "StageTiming",
    "format_results",
]

logger = logging.getLogger(__name__)


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
        from tfcmvp.training.workdir import NETWORK_WEIGHTS_STEMS, WEIGHTS_DIR

        for row in ROWS:
            for seed in self.settings.seeds:
                config, workdir = self.pretrain_config(row, seed), self.pretrain_dir(row, seed)
                stem = NETWORK_WEIGHTS_STEMS["video"]
                weights = workdir / WEIGHTS_DIR / f"{stem}.weights.h5"
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
        from tfcmvp.evaluation.report_card import ReportSettings, report_card
        from tfcmvp.retrieval.labels import read_label_table

        s = self.settings
        self._stage(
            f"report card ({' vs '.join(REPORTED)}, seed {s.seed})",
            self.report_json.is_file(),
            lambda: report_card(
                {row: self.model_dir(row, s.seed) for row in REPORTED},
                self.records_dir,
                ReportSettings(
                    seeds=s.seeds,
                    labels=read_label_table(self.labels_csv, LABEL_KINDS[0]),
                    clips=s.retrieval_clips,
                    progress=False,
                ),
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
        results = quickstart_report.collect(self)
        results["seconds"] = round(time.perf_counter() - start, 1)
        results["stages"] = [dataclasses.asdict(t) for t in self.timings]
        (self.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        return results


format_results = quickstart_report.format_results
