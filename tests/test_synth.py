"""The synthetic motion data set: layout, splits, determinism, and that motion defines the class."""

import hashlib
import re

import numpy as np
import pytest

from tfcmvp import synth, synth_scenes
from tfcmvp.cli import main as cli
from tfcmvp.codec import check_gop, read_video

SEED = 7
FRAMES = 36  # three GOPs of 12; short to keep the suite fast
WIDTH, HEIGHT = 160, 128
CELL = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    summary = synth.make_dataset(
        root,
        seed=SEED,
        videos_per_class=4,
        clips_per_group=2,
        num_frames=FRAMES,
        width=WIDTH,
        height=HEIGHT,
    )
    return root, summary


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_layout_and_split_files_parse_exactly(dataset):
    root, summary = dataset
    class_ind = _lines(root / "splits" / "classInd.txt")
    assert class_ind == [f"{i} {name}" for i, name in enumerate(synth.CLASSES, start=1)]
    label_of = {name: i for i, name in enumerate(synth.CLASSES, start=1)}

    train_re = re.compile(r"^(\w+)/v_\1_g(\d\d)_c(\d\d)\.avi (\d+)$")
    test_re = re.compile(r"^(\w+)/v_\1_g(\d\d)_c(\d\d)\.avi$")
    train = [train_re.match(line) for line in _lines(root / "splits" / "trainlist01.txt")]
    test = [test_re.match(line) for line in _lines(root / "splits" / "testlist01.txt")]
    assert all(train) and all(test)
    for match in train:
        assert int(match.group(4)) == label_of[match.group(1)]  # 1-based label of the folder

    listed = sorted(m.group(0).split(" ")[0] for m in train + test)
    on_disk = sorted(
        p.relative_to(root / "videos").as_posix()
        for p in (root / "videos").rglob("*")
        if p.is_file()
    )
    assert listed == on_disk  # every video listed exactly once, nothing else on disk
    assert len(on_disk) == 5 * 4
    assert sorted(summary.train + summary.test) == listed


def test_classes_balanced_and_groups_disjoint(dataset):
    root, summary = dataset
    for name in synth.CLASSES:
        train = [p for p in summary.train if p.startswith(name + "/")]
        test = [p for p in summary.test if p.startswith(name + "/")]
        assert (len(train), len(test)) == (2, 2)
        group = lambda p: int(re.search(r"_g(\d\d)_", p).group(1))  # noqa: E731
        assert {group(p) for p in test} == {1}  # UCF101 style: lowest groups test
        assert {group(p) for p in train} == {2}


def test_split_groups():
    assert synth.split_groups(6, 1 / 3) == ([3, 4, 5, 6], [1, 2])
    assert synth.split_groups(2, 1 / 3) == ([2], [1])
    assert synth.split_groups(3, 0.9) == ([3], [1, 2])  # at least one train group


def test_videos_decode_with_frame_count_and_gop(dataset):
    root, summary = dataset
    for relative in summary.train[:3] + summary.test[:3]:
        video = read_video(root / "videos" / relative)
        assert (video.codec, video.width, video.height) == ("mpeg4", WIDTH, HEIGHT)
        assert video.num_frames == FRAMES
        assert video.fps == pytest.approx(25.0)
        assert video.frame_types == ("I" + "P" * 11) * 3
        assert check_gop(video.frame_types, 12).ok
        assert video.one_past_reference


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path):
    kwargs = dict(
        videos_per_class=2,
        clips_per_group=1,
        num_frames=14,
        width=64,
        height=48,
        classes=("MoveUp", "ZoomIn"),
    )
    synth.make_dataset(tmp_path / "a", seed=3, **kwargs)
    synth.make_dataset(tmp_path / "b", seed=3, **kwargs)
    synth.make_dataset(tmp_path / "c", seed=4, **kwargs)
    a, b, c = (_hashes(tmp_path / name) for name in "abc")
    assert len(a) == 4 + 3 + 1 and a == b  # videos, split files, labels.csv
    videos = [k for k in a if k.endswith(".avi")]
    assert all(a[k] != c[k] for k in videos)


def test_rendering_is_deterministic_and_in_range():
    one = synth.render_clip(5, "SwingSideways", 2, 1, num_frames=6, width=64, height=48)
    two = synth.render_clip(5, "SwingSideways", 2, 1, num_frames=6, width=64, height=48)
    other_clip = synth.render_clip(5, "SwingSideways", 2, 2, num_frames=6, width=64, height=48)
    assert one.frames.shape == (6, 48, 64, 3) and one.frames.dtype == np.uint8
    np.testing.assert_array_equal(one.frames, two.frames)
    assert not np.array_equal(one.frames, other_clip.frames)
    assert 0.0 <= one.object_alpha.min() and one.object_alpha.max() <= 1.0


def test_objects_cover_a_good_part_of_the_frame():
    # Non-sliding classes keep their objects in view: 25-40 % of the frame (overlap may lower it).
    for clip in range(1, 5):
        rendered = synth.render_clip(11, "StayStill", 1, clip, num_frames=2)
        coverage = rendered.object_alpha[0].mean()
        assert 0.15 < coverage < 0.42, (clip, coverage)


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="multiple of clips_per_group"):
        synth.make_dataset(tmp_path, videos_per_class=5, clips_per_group=2)
    with pytest.raises(ValueError, match="Jump"):
        synth.make_dataset(tmp_path, classes=("MoveUp", "Jump"))
    with pytest.raises(ValueError, match="unknown synthetic class 'Jump'"):
        synth.render_clip(0, "Jump", 1, 1)


def test_existing_dataset_is_kept_unless_overwrite(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(ValueError, match="not empty"):
        synth.make_dataset(root, videos_per_class=2, clips_per_group=1)
    kwargs = dict(clips_per_group=1, num_frames=2, width=32, height=32, classes=("MoveUp",))
    synth.make_dataset(tmp_path, videos_per_class=3, **kwargs)
    (tmp_path / "notes.txt").write_text("mine")
    synth.make_dataset(tmp_path, videos_per_class=2, overwrite=True, **kwargs)
    videos = sorted(p.name for p in (tmp_path / "videos").rglob("*.avi"))
    assert videos == ["v_MoveUp_g01_c01.avi", "v_MoveUp_g02_c01.avi"]  # g03 of the old set gone
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------
# Known answers: the motion vectors the encoder stored follow each class's motion.


def _vectors_and_cells(root, class_name, group, clip):
    """Decoded vectors of P-frames with per-cell object coverage and cell centres."""
    video = read_video(
        root / "videos" / class_name / synth.video_name(class_name, group, clip), mv_cell=CELL
    )
    rendered = synth.render_clip(
        SEED, class_name, group, clip, width=WIDTH, height=HEIGHT, num_frames=FRAMES
    )
    coverage = rendered.object_alpha.reshape(FRAMES, HEIGHT // CELL, CELL, WIDTH // CELL, CELL)
    coverage = coverage.mean(axis=(2, 4))  # [T, Hc, Wc]
    predicted = np.array([t == "P" for t in video.frame_types])
    inside = (coverage > 0.9) & predicted[:, None, None]  # cells wholly on an object
    outside = (coverage == 0) & predicted[:, None, None]
    return video.motion_vectors, inside, outside, rendered


@pytest.mark.parametrize("class_name,sign", [("MoveUp", -1), ("MoveDown", 1)])
def test_vertical_classes_move_vertically(dataset, class_name, sign):
    root, _ = dataset
    for group, clip in ((1, 1), (1, 2), (2, 1), (2, 2)):
        mv, inside, outside, _ = _vectors_and_cells(root, class_name, group, clip)
        relative = mv[inside] - mv[outside].mean(axis=0)  # [N, 2] minus the camera drift
        vx, vy = relative.mean(axis=0)
        assert sign * vy > 0.8, (class_name, group, clip, vx, vy)  # speeds are 1-3 px/frame
        assert abs(vx) < 0.3 * abs(vy)


def test_swing_vectors_follow_the_objects_horizontal_velocity(dataset):
    root, _ = dataset
    for group, clip in ((1, 1), (2, 2)):
        mv, inside, _, rendered = _vectors_and_cells(root, "SwingSideways", group, clip)
        t, cy, cx = np.nonzero(inside)
        centres = np.stack(rendered.object_centres)  # [n_obj, T, 2] (x, y)
        velocity = np.diff(centres, axis=1, prepend=centres[:, :1])  # [n_obj, T, 2]
        # Expected vx of each object cell: the velocity of the object whose centre is nearest.
        cell_xy = np.stack([cx * CELL + 3.5, cy * CELL + 3.5], axis=-1)  # [N, 2]
        nearest = np.argmin(np.linalg.norm(centres[:, t] - cell_xy[None], axis=-1), axis=0)
        expected = velocity[nearest, t, 0]
        measured = mv[t, cy, cx]  # [N, 2]
        assert np.corrcoef(expected, measured[:, 0])[0, 1] > 0.8
        assert np.abs(measured[:, 0]).mean() > 3 * np.abs(measured[:, 1]).mean()


def test_zoom_vectors_point_away_from_the_object_centre(dataset):
    root, _ = dataset
    for group, clip in ((1, 1), (2, 2)):
        mv, inside, _, rendered = _vectors_and_cells(root, "ZoomIn", group, clip)
        t, cy, cx = np.nonzero(inside)
        centres = np.stack(rendered.object_centres)  # [n_obj, T, 2]
        cell_xy = np.stack([cx * CELL + 3.5, cy * CELL + 3.5], axis=-1)  # [N, 2]
        nearest = np.argmin(np.linalg.norm(centres[:, t] - cell_xy[None], axis=-1), axis=0)
        outward = cell_xy - centres[nearest, t]  # [N, 2]
        distance = np.linalg.norm(outward, axis=-1)
        far = distance > 12  # the centre itself does not move
        radial = np.sum(mv[t, cy, cx] * outward, axis=-1)[far] / distance[far]
        assert np.mean(radial > 0) > 0.7
        assert radial.mean() > 0.5


def test_still_objects_have_near_zero_vectors(dataset):
    root, _ = dataset
    for group, clip in ((1, 1), (2, 2)):
        mv, inside, _, _ = _vectors_and_cells(root, "StayStill", group, clip)
        magnitude = np.linalg.norm(mv[inside], axis=-1)
        assert np.median(magnitude) < 0.25
        assert magnitude.mean() < 0.3


# ---------------------------------------------------------------------------
# Command line.

# A small set: 2 videos per class, 1 clip per group, 14 frames of 64x48.
SMALL_SET = "--videos_per_class 2 --clips_per_group 1 --frames 14 --size 64x48".split()


def test_cli_writes_dataset_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "ds"
    code = cli.main(["synth", "--out", str(out), *SMALL_SET, "--seed", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "10 videos (5 train, 5 test), 64x48, 14 frames" in printed
    assert "MoveUp" in printed and str(out / "splits") in printed
    assert len(list((out / "videos").rglob("*.avi"))) == 10
    assert read_video(out / "videos" / "ZoomIn" / "v_ZoomIn_g02_c01.avi").width == 64


def test_cli_reports_errors_with_exit_code_2(tmp_path, capsys):
    out = tmp_path / "ds"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "junk.txt").write_text("x")
    assert cli.main(["synth", "--out", str(out), *SMALL_SET]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and str(out / "videos") in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "--out", str(out), "--size", "64by48"])
    assert exit_info.value.code == 2
    assert "64by48" in capsys.readouterr().err


def test_labels_csv_lists_both_labels_of_every_video(dataset):
    root, summary = dataset
    lines = _lines(root / synth.LABELS_FILE)
    assert lines[0] == "video,split,motion,scene"
    rows = [line.split(",") for line in lines[1:]]
    assert sorted(r[0] for r in rows) == sorted(summary.train + summary.test)
    for video, split, motion, scene in rows:
        assert split == ("test" if video in summary.test else "train")
        assert motion == video.split("/")[0]
        assert scene == summary.scene_of[video] and scene in summary.scenes


def test_scene_and_motion_labels_are_independent_and_balanced():
    # 12 groups per class (24 videos, 2 per group), 4 of them test: every
    # (motion, scene) pair occurs equally often in test and in train.
    num_scenes = len(synth_scenes.STANDARD_SCENES)
    train_groups, test_groups = synth.split_groups(12, 1 / 3)
    for groups, per_pair in ((test_groups, 1), (train_groups, 2)):
        counts = np.zeros((len(synth.CLASSES), num_scenes), int)
        for label in range(len(synth.CLASSES)):
            for group in groups:
                counts[label, synth_scenes.scene_of(label, group, num_scenes)] += 1
        np.testing.assert_array_equal(counts, per_pair)


def test_scene_family_sets_the_background_structure_not_its_colour():
    # The same scene drawn for two groups: same family, different palettes.
    a = synth.render_clip(1, "MoveUp", 1, 1, num_frames=1, scene="Stripes")
    b = synth.render_clip(1, "MoveUp", 2, 1, num_frames=1, scene="Stripes")
    assert a.scene == b.scene == "Stripes"
    mean_a, mean_b = a.frames[0].reshape(-1, 3).mean(0), b.frames[0].reshape(-1, 3).mean(0)
    assert np.abs(mean_a - mean_b).max() > 5  # colour differs between instances
    # Without a scene argument the family follows (class, group).
    c = synth.render_clip(1, "MoveDown", 3, 1, num_frames=1)
    assert c.scene == synth_scenes.STANDARD_SCENES[(3 - 1 + 1) % 4]


@pytest.mark.parametrize("variant", ["standard", "heldout"])
def test_every_scene_of_each_variant_renders(variant):
    knobs = synth_scenes.get_variant(variant)
    for scene in knobs.scenes:
        clip = synth.render_clip(
            2, "ZoomIn", 1, 1, num_frames=2, width=64, height=48, variant=variant, scene=scene
        )
        assert clip.frames.shape == (2, 48, 64, 3) and clip.scene == scene
        assert clip.frames.std() > 10  # a textured background, not a flat one


def test_unknown_variant_and_scene_are_named():
    with pytest.raises(ValueError, match="unknown synthetic variant 'other'"):
        synth.render_clip(0, "MoveUp", 1, 1, num_frames=1, variant="other")
    with pytest.raises(ValueError, match="unknown synthetic scene 'Beach'"):
        synth.render_clip(0, "MoveUp", 1, 1, num_frames=1, scene="Beach")


def test_heldout_variant_differs_from_standard():
    standard = synth.render_clip(3, "MoveUp", 1, 1, num_frames=2)
    heldout = synth.render_clip(3, "MoveUp", 1, 1, num_frames=2, variant="heldout")
    assert standard.scene != heldout.scene
    # Smaller objects in the held-out variant.
    assert heldout.object_alpha.mean() < standard.object_alpha.mean()
