"""The default data set: small, real encoded videos with a motion label and a scene label.

``make_dataset(out_dir)`` renders a few dozen short videos, encodes them with
FFmpeg (MPEG-4 Part 2, GOP 12, no B-frames: the CoViAR layout) and writes them
in the UCF101 layout, so that every stage of the pipeline (extraction,
pretraining, finetuning, retrieval) runs end to end on a laptop without
downloading anything::

    DIR/videos/<Class>/v_<Class>_gXX_cYY.avi
    DIR/splits/classInd.txt     "1 MoveUp"
    DIR/splits/trainlist01.txt  "MoveUp/v_MoveUp_g03_c01.avi 1"   (1-based label)
    DIR/splits/testlist01.txt   "MoveUp/v_MoveUp_g01_c01.avi"
    DIR/labels.csv              "MoveUp/v_MoveUp_g01_c01.avi,test,MoveUp,Tiles"

Design: context and motion are decoupled by construction
------------------------------------------------------------------
The paper's claim is that I-frames carry context and motion vectors carry
motion. This data set makes the two independent, so that a representation can
only tell the classes apart through motion:

* **Context** (independent of the class): every group ``gXX`` of a class has
  its own scene, an instance of one of a few **scene families** (backgrounds
  of one structure: stripes, tiles, clouds, a horizon; see
  :mod:`tfcmvp.synth_scenes`) with its own random palette, so colour says
  nothing about the family. The family rotates with the group and the class,
  so motion and scene labels are independent and balanced; ``labels.csv``
  holds both for every video. Every clip ``cYY`` adds its own objects and a
  slow camera drift (a pan of at most ``camera_speed`` px/frame that moves
  background and objects alike, as a real camera would).
* **Objects** (drawn independently of the class): one or two textured shapes
  (ellipse, rounded rectangle or wobbly blob) covering 25-40 % of the frame in
  total, so that they fill many whole 8x8 motion cells and the encoder finds
  real vectors on them. Their texture is a multi-scale noise through their own
  palette, the same generator for every class.
* **Motion** (the only thing that depends on the class), 1-3 px/frame:

  ==============  ==========================================================
  MoveUp          objects slide upwards, leave at the top, re-enter below
  MoveDown        the same, downwards
  SwingSideways   objects swing left and right (sinusoid, random phase)
  ZoomIn          the texture inside each object expands from its centre
                  (a seamless endless zoom, see :func:`_zoom_texture`)
  StayStill       objects stay put, with a sub-pixel wobble
  ==============  ==========================================================

  Every class is its own mirror image: the training pipeline flips clips
  horizontally, so left-vs-right or clockwise-vs-anticlockwise classes would
  be indistinguishable after augmentation. A single frame carries almost no
  class information (only a sliding object is sometimes cut by the frame
  edge); the motion between frames does.

Train and test are split by group, as in UCF101 (test = the lowest groups),
so that no scene appears on both sides. Each video is rendered from its own
random stream seeded by ``(seed, class, group, clip)``, so a video does not
depend on how many others are made. Rendering is pure NumPy and the same seed
gives the same pixels everywhere; the encoded files are byte-identical on a
given machine (across machines only if the encoder's thread count is fixed,
since FFmpeg's slice threads change the bitstream).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from typing import Optional, Sequence

from tfcmvp import codec as codec_lib
from tfcmvp import outputs
from tfcmvp import synth_scenes as scenes
from tfcmvp.errors import ConfigError
from tfcmvp.synth_render import CLASSES, RenderedClip, render_clip

# Rendering lives in synth_render; its names stay importable from here.
__all__ = [
    "CLASSES",
    "LABELS_FILE",
    "MIN_PRETRAIN_FRAMES",
    "DatasetSummary",
    "RenderedClip",
    "make_dataset",
    "render_clip",
    "split_groups",
    "video_name",
]

logger = logging.getLogger(__name__)

# One pretraining sample needs a 61-frame clip (16 frames at stride 4), a
# 2-frame gap and 8 future motion frames: shorter videos give no sample.
MIN_PRETRAIN_FRAMES = 71

# Both labels of every video (motion, scene), beside videos/ and splits/.
LABELS_FILE = "labels.csv"


@dataclasses.dataclass
class DatasetSummary:
    """What :func:`make_dataset` wrote.

    Attributes:
      out_dir: the data set root.
      classes: class names in classInd.txt order.
      train: relative video paths ("Class/v_Class_gXX_cYY.avi") of the train split.
      test: relative video paths of the test split.
      num_frames, width, height, fps, codec, gop: the encoding of every video.
      total_bytes: size of all video files.
      seconds: wall time to render and encode.
      variant: the generator variant (``tfcmvp.synth_scenes``).
      scenes: scene family names of the variant (the scene labels, in order).
      scene_of: relative video path -> its scene family.
    """

    out_dir: str
    classes: tuple
    train: list
    test: list
    num_frames: int
    width: int
    height: int
    fps: int
    codec: str
    gop: int
    total_bytes: int
    seconds: float
    variant: str = "standard"
    scenes: tuple = ()
    scene_of: dict = dataclasses.field(default_factory=dict)

    def format(self) -> str:
        """A short human-readable report (what the CLI prints)."""
        lines = [
            f"synthetic motion data set in {self.out_dir} (variant {self.variant})",
            f"  {len(self.train) + len(self.test)} videos ({len(self.train)} train, "
            f"{len(self.test)} test), {self.width}x{self.height}, {self.num_frames} frames "
            f"at {self.fps} fps, {self.codec} GOP {self.gop}, "
            f"{self.total_bytes / 1e6:.1f} MB, made in {self.seconds:.1f} s",
        ]
        for label, name in enumerate(self.classes, start=1):
            n_train = sum(1 for p in self.train if p.split("/")[0] == name)
            n_test = sum(1 for p in self.test if p.split("/")[0] == name)
            lines.append(f"  {label} {name:<14s} train {n_train:3d}  test {n_test:3d}")
        for scene in self.scenes:
            n_train = sum(1 for p in self.train if self.scene_of.get(p) == scene)
            n_test = sum(1 for p in self.test if self.scene_of.get(p) == scene)
            lines.append(f"  scene {scene:<10s} train {n_train:3d}  test {n_test:3d}")
        root = pathlib.Path(self.out_dir)
        lines.append(f"  videos: {root / 'videos'}")
        lines.append(f"  splits: {root / 'splits'} (classInd.txt, trainlist01.txt, testlist01.txt)")
        lines.append(f"  labels: {root / LABELS_FILE} (motion and scene label of every video)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Data set.


def video_name(class_name: str, group: int, clip: int) -> str:
    """UCF101 file name, e.g. ``v_MoveUp_g01_c02.avi``."""
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def split_groups(num_groups: int, test_fraction: float) -> tuple:
    """(train groups, test groups), 1-based; test takes the lowest groups, as in UCF101."""
    num_test = min(max(int(round(num_groups * test_fraction)), 1), num_groups - 1)
    groups = list(range(1, num_groups + 1))
    return groups[num_test:], groups[:num_test]


def make_dataset(
    out_dir,
    seed: int = 0,
    *,
    videos_per_class: int = 12,
    clips_per_group: int = 2,
    test_fraction: float = 1.0 / 3.0,
    width: int = 160,
    height: int = 128,
    num_frames: int = 96,
    fps: int = 25,
    codec: str = "mpeg4",
    gop: int = 12,
    camera_speed: Optional[float] = None,
    classes: Sequence[str] = CLASSES,
    variant: str = "standard",
    overwrite: bool = False,
) -> DatasetSummary:
    """Render, encode and write the synthetic motion data set in the UCF101 layout.

    Args:
      out_dir: root folder; ``videos/`` and ``splits/`` are created in it.
      seed: the same seed gives byte-identical files.
      videos_per_class: videos per class, a multiple of ``clips_per_group``.
      clips_per_group: clips per UCF-style group (clips of a group share a scene).
      test_fraction: share of each class's groups in the test split (at least
        one group on each side).
      width, height: frame size (even numbers; the encoders need them).
      num_frames: frames per video; at least ``MIN_PRETRAIN_FRAMES`` for one
        pretraining sample (fewer is allowed, with a warning, for tests).
      fps: frame rate written in the container.
      codec: "mpeg4" (default, CoViAR), "h264" or "mpeg2video".
      gop: I-frame interval; no B-frames, one reference frame.
      camera_speed: largest camera drift in px/frame (0 for a fixed camera);
        None = the variant's.
      classes: motion classes, a subset of :data:`CLASSES`, in label order.
      variant: generator variant: "standard" (what the tiny recipe is tuned on)
        or "heldout" (other scenes, sizes, speeds, colours; never tuned on).
      overwrite: replace a data set that synth wrote in ``out_dir`` before
        (``videos/``, ``splits/``, ``labels.csv``); refused when they hold
        anything else (:func:`tfcmvp.outputs.synth_problem`). The new set is
        written beside the old one and swapped in at the end, so a killed run
        leaves the old set whole; nothing else in ``out_dir`` is touched.

    Returns:
      A :class:`DatasetSummary`.

    Raises:
      ValueError: bad arguments, or ``out_dir`` already holds a data set and
        ``overwrite`` is False (or it holds files synth did not write).
    """
    classes = tuple(classes)
    knobs = scenes.get_variant(variant)
    _check_arguments(classes, videos_per_class, clips_per_group, width, height, num_frames)
    root = pathlib.Path(out_dir)
    # Written into a staging folder in root, swapped in whole at the end (outputs.py).
    staging = outputs.begin_synth(root, overwrite)
    start = time.perf_counter()
    train_groups, test_groups = split_groups(videos_per_class // clips_per_group, test_fraction)
    size = dict(width=width, height=height, num_frames=num_frames)
    render = dict(size, camera_speed=camera_speed, classes=classes, variant=variant)
    encode = dict(fps=fps, codec=codec, gop=gop, b_frames=0, refs=1)
    train, test, scene_of, total_bytes = _write_videos(
        staging / "videos",
        seed,
        classes,
        clips_per_group,
        train_groups,
        test_groups,
        render,
        encode,
    )
    _write_label_files(staging, classes, train, test, scene_of)
    outputs.finish_synth(staging, root)
    return DatasetSummary(
        out_dir=str(root),
        classes=classes,
        train=train,
        test=test,
        num_frames=num_frames,
        width=width,
        height=height,
        fps=fps,
        codec=codec,
        gop=gop,
        total_bytes=total_bytes,
        seconds=time.perf_counter() - start,
        variant=knobs.name,
        scenes=knobs.scenes,
        scene_of=scene_of,
    )


def _write_videos(videos_dir, seed, classes, clips_per, train_groups, test_groups, render, encode):
    """Renders and encodes every video: (train paths, test paths, scene of each, bytes)."""
    train, test, scene_of = [], [], {}
    total_bytes = 0
    for class_name in classes:
        (videos_dir / class_name).mkdir(parents=True, exist_ok=True)
        for group in sorted(train_groups + test_groups):
            for clip in range(1, clips_per + 1):
                rendered = render_clip(seed, class_name, group, clip, **render)
                relative = f"{class_name}/{video_name(class_name, group, clip)}"
                scene_of[relative] = rendered.scene
                path = videos_dir / relative
                codec_lib.write_video(path, rendered.frames, **encode)
                total_bytes += path.stat().st_size
                (test if group in test_groups else train).append(relative)
    return train, test, scene_of, total_bytes


def _check_arguments(classes, videos_per_class, clips_per_group, width, height, num_frames):
    """ValueError naming a bad argument of :func:`make_dataset` (a warning for short videos)."""
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be distinct names from {CLASSES}, got {classes}")
    if videos_per_class < 2 * clips_per_group or videos_per_class % clips_per_group:
        raise ConfigError(
            f"videos_per_class={videos_per_class} must be a multiple of clips_per_group="
            f"{clips_per_group} with at least two groups (one for train, one for test)"
        )
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise ConfigError(f"frame size {width}x{height}: width and height must be even and >= 32")
    if num_frames < 2:
        raise ConfigError(f"num_frames={num_frames}: need at least 2 frames")
    if num_frames < MIN_PRETRAIN_FRAMES:
        logger.warning(
            "num_frames=%d < %d: these videos are too short for a pretraining sample",
            num_frames,
            MIN_PRETRAIN_FRAMES,
        )


def _write_label_files(staging: pathlib.Path, classes, train, test, scene_of: dict) -> None:
    """The UCF101 split files and ``labels.csv`` (both labels of every video)."""
    splits_dir = staging / "splits"
    splits_dir.mkdir(parents=True, exist_ok=True)
    label_of = {name: index for index, name in enumerate(classes, start=1)}
    _write_lines(splits_dir / "classInd.txt", [f"{label_of[c]} {c}" for c in classes])
    _write_lines(
        splits_dir / "trainlist01.txt", [f"{p} {label_of[p.split('/')[0]]}" for p in train]
    )
    _write_lines(splits_dir / "testlist01.txt", test)
    # Both labels of every video, for evaluation by motion and by scene
    # (`tfcmvp retrieval --labels DIR/labels.csv --label_column scene`).
    _write_lines(
        staging / LABELS_FILE,
        ["video,split,motion,scene"]
        + [
            f"{p},{'test' if p in test else 'train'},{p.split('/')[0]},{scene_of[p]}"
            for p in sorted(train + test)
        ],
    )


def _write_lines(path: pathlib.Path, lines: Sequence[str]) -> None:
    # UCF101's own files use CRLF; every reader of them strips it, so plain LF is fine.
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(line + "\n" for line in lines))
