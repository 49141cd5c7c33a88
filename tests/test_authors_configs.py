"""The `_authors` configs: each loads and differs from its paper config in exactly
the keys that the README's settings table lists for it, with the values of the
authors' code (alibaba/Deep-Vision, Context-Motion-Decoupling: cfg/ucf_config.py,
cfg/finetune_ucf_config.py, dataset/transforms.py) on one side and the paper
config's on the other."""

import pathlib

import pytest
import yaml

from tfcmvp import config as cfg
from tfcmvp.finetuning.config import load_finetune_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs"
README_SECTION = "## Reproducing the paper"

# key: (paper config's value, authors' config's value)
PRETRAIN_DIFFERENCES = {
    "optimizer.weight_decay": (5e-3, 1e-3),  # paper text vs cfg.weight_decay
    "data.flip_negates_mv_x": (True, False),  # CoViAR negates; their MRandomHFlip does not
    "data.iframe_excludes_clip_frames": (True, False),  # their I-frame may be at a clip index
}
FINETUNE_DIFFERENCES = {
    "optimizer.warmup_epochs": (0.0, 10.0),  # cfg.warmup_epochs
    "optimizer.final_learning_rate": (0.0, 1e-6),  # cfg.final_lr
}
# authors' config -> (paper config, loader, known differences)
AUTHORS_CONFIGS = {
    **{
        f"pretrain_ucf101_{arch}_authors.yaml": (
            f"pretrain_ucf101_{arch}.yaml",
            cfg.load_config,
            PRETRAIN_DIFFERENCES,
        )
        for arch in ("c3d", "r3d26", "r2plus1d26")
    },
    **{
        f"finetune_{data}_authors.yaml": (
            f"finetune_{data}.yaml",
            load_finetune_config,
            FINETUNE_DIFFERENCES,
        )
        for data in ("ucf101", "hmdb51")
    },
}


def test_every_authors_config_is_covered():
    assert sorted(p.name for p in CONFIG_DIR.glob("*_authors.yaml")) == sorted(AUTHORS_CONFIGS)


@pytest.mark.parametrize("name", sorted(AUTHORS_CONFIGS))
def test_authors_config_differs_from_its_paper_config_in_exactly_the_listed_keys(name):
    paper_name, load, differences = AUTHORS_CONFIGS[name]
    paper = cfg.flatten(cfg.config_to_dict(load(CONFIG_DIR / paper_name)))
    authors = cfg.flatten(cfg.config_to_dict(load(CONFIG_DIR / name)))
    assert paper.keys() == authors.keys()
    differing = {key for key in paper if paper[key] != authors[key]}
    assert differing == set(differences)
    for key, (paper_value, authors_value) in differences.items():
        assert paper[key] == pytest.approx(paper_value), key
        assert authors[key] == pytest.approx(authors_value), key


@pytest.mark.parametrize("name", sorted(AUTHORS_CONFIGS))
def test_authors_config_file_starts_from_its_paper_config_and_sets_only_the_listed_keys(name):
    paper_name, _, differences = AUTHORS_CONFIGS[name]
    values = yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))
    assert values.pop(cfg.BASE_KEY) == paper_name
    assert set(cfg.flatten(values)) == set(differences)


@pytest.mark.parametrize("name", sorted(AUTHORS_CONFIGS))
def test_authors_config_header_names_each_listed_key(name):
    header = "\n".join(
        line
        for line in (CONFIG_DIR / name).read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    for key in AUTHORS_CONFIGS[name][2]:
        assert key in header, f"{name}: header does not name {key}"


def test_readme_settings_table_lists_each_key():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert README_SECTION in readme
    section = readme.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    for key in {**PRETRAIN_DIFFERENCES, **FINETUNE_DIFFERENCES}:
        assert f"`{key}" in section, f"README {README_SECTION!r} does not list {key}"
