"""Range checks of the config sections: what types alone do not catch.

Each check is a ``(key, ok, requirement)`` row; :func:`raise_failed_check`
raises one :class:`tfcmvp.config_io.ConfigError` naming every failed key. The pretraining config
runs :func:`check_pretrain_ranges`; the finetuning config reuses the rows of the
sections it shares (:func:`section_checks`). Split from :mod:`tfcmvp.config`,
which still exports :func:`section_checks`.
"""

from __future__ import annotations

from tfcmvp.config_io import raise_failed_check


def check_pretrain_ranges(config) -> None:
    """The value checks of a :class:`tfcmvp.config.PretrainConfig` that types alone do not
    catch: raises :class:`tfcmvp.config_io.ConfigError` naming each failed key."""
    loss = config.loss
    shared = section_checks(config)
    raise_failed_check(
        config,
        [
            ("loss.alpha", 0.0 <= loss.alpha <= 1.0, "must lie in [0, 1]"),
            (
                "loss.motion_only_epochs",
                0.0 <= loss.motion_only_epochs <= config.train.epochs,
                f"must lie in [0, train.epochs = {config.train.epochs}]",
            ),
            ("loss.temperature", loss.temperature > 0, "must be > 0"),
            ("loss.scale", loss.scale > 0, "must be > 0"),
            ("loss.ce_bins", loss.ce_bins >= 2, "must be >= 2"),
            *shared["train"],
            *shared["optimizer"],
            *shared["runtime"],
            *shared["data"],
            *shared["model"],
        ],
    )


def section_checks(config) -> dict[str, list[tuple[str, bool, str]]]:
    """The range checks of the sections that finetuning reuses or extends
    (data, model, optimizer, train, runtime), as ``(key, ok, requirement)``
    rows per section, for :func:`raise_failed_check`."""
    train, opt, runtime = config.train, config.optimizer, config.runtime
    return {
        "train": [
            ("train.epochs", train.epochs >= 1, "must be >= 1"),
            ("train.global_batch_size", train.global_batch_size >= 1, "must be >= 1"),
            (
                "train.steps_per_epoch",
                train.steps_per_epoch is None or train.steps_per_epoch >= 1,
                "must be >= 1 or null",
            ),
            (
                "train.checkpoint_every_steps",
                train.checkpoint_every_steps is None or train.checkpoint_every_steps >= 1,
                "must be >= 1 or null",
            ),
            ("train.keep_checkpoints", train.keep_checkpoints >= 1, "must be >= 1"),
        ],
        "optimizer": [
            (
                "optimizer.warmup_epochs",
                0 <= opt.warmup_epochs < train.epochs,
                f"must lie in [0, train.epochs = {train.epochs})",
            ),
            ("optimizer.clipnorm", opt.clipnorm is None or opt.clipnorm > 0, "must be > 0 or null"),
            ("optimizer.base_lr_per_sample", opt.base_lr_per_sample > 0, "must be > 0"),
        ],
        "runtime": [
            ("runtime.virtual_cpus", runtime.virtual_cpus >= 0, "must be >= 0"),
            (
                "runtime.virtual_cpus",
                runtime.virtual_cpus < 2 or runtime.strategy != "multi_worker",
                "cannot be combined with runtime.strategy=multi_worker",
            ),
        ],
        "data": [],  # DataConfig checks its own values (data_checks)
        "model": [
            (
                "model.video_blocks",
                config.model.video_blocks is None or config.model.video_network != "c3d",
                "must be null for model.video_network=c3d (C3D has no residual blocks)",
            ),
        ],
    }
