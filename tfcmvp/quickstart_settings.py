"""The sizes of one quickstart run (:class:`QuickstartSettings`) and its error.

The run itself is :class:`tfcmvp.quickstart.Quickstart`; these settings are
what ``WORKDIR/settings.json`` records.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Dict, List, Sequence

from tfcmvp.errors import RunError
from tfcmvp.evaluation.linear_probe import DEFAULT_FOLDS

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


class QuickstartError(RunError, ValueError):
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

    @classmethod
    def long(cls) -> "QuickstartSettings":
        """The ablation at the step count where the joint model learns scene as well:
        configs/pretrain_tiny_cpu_long.yaml (grey, 84 epochs) on 48 videos per class,
        the setting of the README's "Decoupling at tiny scale" measurements. About an
        hour on 2 CPU cores instead of the default's quarter hour."""
        return cls(
            videos_per_class=48,
            pretrain_config=REPO_CONFIGS / "pretrain_tiny_cpu_long.yaml",
        )

    @property
    def report_card(self) -> bool:
        """Whether the run ends with the report card: only when the linear probe's
        stratified folds get a video of each class (the synthetic split puts at least
        half of each class in train), which leaves out ``--smoke`` (2 train videos a
        class) and keeps the CI test fast."""
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
