"""Split-file parsing: UCF101, HMDB51 and CSV layouts, and their error messages."""

import pytest

from tfcmvp import splits
from tfcmvp.splits import SplitFileError, VideoEntry

UCF_CLASSES = "1 ApplyEyeMakeup\r\n2 Archery\n3 HandstandPushups\n"
UCF_TRAIN = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
    "Archery/v_Archery_g08_c02.avi 2\n"
    "\n"
    "HandStandPushups/v_HandStandPushups_g08_c01.avi 3\n"
)
UCF_TEST = "Archery/v_Archery_g01_c01.avi\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"


def ucf_texts(**overrides):
    texts = {
        "s/classInd.txt": UCF_CLASSES,
        "s/trainlist01.txt": UCF_TRAIN,
        "s/testlist01.txt": UCF_TEST,
        "s/trainlist02.txt": "Archery/v_x.avi 2\n",
        "s/testlist02.txt": "Archery/v_y.avi\n",
    }
    texts.update({f"s/{name}": text for name, text in overrides.items()})
    return texts


def test_ucf101_split1_labels_paths_and_order():
    parsed = splits.parse_split_files(ucf_texts(), split=1)
    assert parsed.layout == "ucf101"
    assert parsed.class_names == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert parsed.entries == [
        VideoEntry("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0, "ApplyEyeMakeup", "train"),
        VideoEntry("Archery/v_Archery_g08_c02.avi", 1, "Archery", "train"),
        # The real UCF101 lists spell this folder with a capital S: matched to class 3.
        VideoEntry(
            "HandStandPushups/v_HandStandPushups_g08_c01.avi", 2, "HandstandPushups", "train"
        ),
        VideoEntry("Archery/v_Archery_g01_c01.avi", 1, "Archery", "test"),
        VideoEntry("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0, "ApplyEyeMakeup", "test"),
    ]
    assert parsed.listed() == {"train": 3, "test": 2}
    assert parsed.sources == ["s/classInd.txt", "s/trainlist01.txt", "s/testlist01.txt"]


def test_ucf101_other_split_number():
    parsed = splits.parse_split_files(ucf_texts(), split=2)
    assert [(e.path, e.split) for e in parsed.entries] == [
        ("Archery/v_x.avi", "train"),
        ("Archery/v_y.avi", "test"),
    ]


def test_ucf101_label_disagreeing_with_folder_names_file_and_line():
    bad = UCF_TRAIN.replace("v_Archery_g08_c02.avi 2", "v_Archery_g08_c02.avi 3")
    with pytest.raises(SplitFileError, match=r"s/trainlist01\.txt:2: class index 3 disagrees"):
        splits.parse_split_files(ucf_texts(**{"trainlist01.txt": bad}))


def test_ucf101_unknown_class_folder_names_file_and_line():
    bad = UCF_TEST + "Juggling/v_Juggling_g01_c01.avi\n"
    with pytest.raises(SplitFileError, match=r"s/testlist01\.txt:3: video 'Juggling/"):
        splits.parse_split_files(ucf_texts(**{"testlist01.txt": bad}))


def test_ucf101_train_line_without_label_is_an_error():
    with pytest.raises(SplitFileError, match=r"trainlist01\.txt:1: expected '<class>/<video> "):
        splits.parse_split_files(ucf_texts(**{"trainlist01.txt": "Archery/v_a.avi\n"}))


def test_ucf101_bad_class_index_line():
    with pytest.raises(SplitFileError, match=r"classInd\.txt:2: class index 3 out of order"):
        splits.parse_split_files(ucf_texts(**{"classInd.txt": "1 A\n3 B\n"}))


def test_ucf101_missing_file_is_named():
    texts = ucf_texts()
    del texts["s/testlist01.txt"]
    with pytest.raises(SplitFileError, match=r"missing testlist01\.txt"):
        splits.parse_split_files(texts)


def test_duplicate_video_names_both_places():
    bad = UCF_TEST + "Archery/v_Archery_g08_c02.avi\n"
    with pytest.raises(
        SplitFileError, match=r"testlist01\.txt:3: .*already listed at s/trainlist01\.txt:2"
    ):
        splits.parse_split_files(ucf_texts(**{"testlist01.txt": bad}))


HMDB = {
    "h/brush_hair_test_split1.txt": "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
    "Blonde_being_brushed_f_nm_np2_ri_med_0.avi 2 \n"
    "unused_one.avi 0 \n",
    "h/cartwheel_test_split1.txt": "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi 2\n"
    "Bodenturnen_cartwheel_f_cm_np1_ri_bad_1.avi 1\n",
    "h/brush_hair_test_split2.txt": "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2\n",
    "h/cartwheel_test_split2.txt": "x.avi 1\n",
}


def test_hmdb51_roles_classes_and_paths():
    parsed = splits.parse_split_files(HMDB, split=1)
    assert parsed.layout == "hmdb51"
    assert parsed.class_names == ["brush_hair", "cartwheel"]
    assert parsed.entries == [
        VideoEntry(
            "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0, "brush_hair", "train"
        ),
        VideoEntry(
            "cartwheel/Bodenturnen_cartwheel_f_cm_np1_ri_bad_1.avi", 1, "cartwheel", "train"
        ),
        VideoEntry(
            "brush_hair/Blonde_being_brushed_f_nm_np2_ri_med_0.avi", 0, "brush_hair", "test"
        ),
        VideoEntry(
            "cartwheel/(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi",
            1,
            "cartwheel",
            "test",
        ),
    ]
    assert parsed.listed() == {"train": 2, "test": 2}
    assert splits.parse_split_files(HMDB, split=2).listed() == {"train": 1, "test": 1}


def test_hmdb51_bad_role_names_file_and_line():
    texts = dict(HMDB)
    texts["h/cartwheel_test_split1.txt"] = "a.avi 1\nb.avi 3\n"
    with pytest.raises(SplitFileError, match=r"h/cartwheel_test_split1\.txt:2: expected "):
        splits.parse_split_files(texts)


def test_hmdb51_missing_split_number():
    with pytest.raises(SplitFileError, match=r"HMDB51 split 3: no <class>_test_split3\.txt"):
        splits.parse_split_files(HMDB, split=3)


def test_layout_detection():
    assert splits.detect_layout(["a/classInd.txt", "a/trainlist01.txt"]) == "ucf101"
    assert splits.detect_layout(["a/jump_test_split1.txt"]) == "hmdb51"
    with pytest.raises(ValueError, match="no split files recognised"):
        splits.detect_layout(["a/readme.txt"])
    with pytest.raises(ValueError, match="both UCF101"):
        splits.detect_layout(["classInd.txt", "jump_test_split1.txt"])


def test_csv_manifest():
    text = "path,split,label\nb/two.avi,test,dog\na/one.avi,train,cat\nc/three.mp4,train,\n"
    parsed = splits.parse_manifest_csv(text, "m.csv")
    assert parsed.layout == "csv"
    assert parsed.class_names == ["cat", "dog"]
    assert parsed.entries == [
        VideoEntry("a/one.avi", 0, "cat", "train"),
        VideoEntry("c/three.mp4", -1, "", "train"),
        VideoEntry("b/two.avi", 1, "dog", "test"),
    ]


def test_csv_manifest_errors_name_line():
    with pytest.raises(SplitFileError, match=r"m\.csv:3: split 'val' is not one of"):
        splits.parse_manifest_csv("path,label,split\na.avi,x,train\nb.avi,x,val\n", "m.csv")
    with pytest.raises(SplitFileError, match=r"m\.csv:1: missing column\(s\) \['split'\]"):
        splits.parse_manifest_csv("path,label\na.avi,x\n", "m.csv")


# path, refused by default, refused with allow_absolute=True
@pytest.mark.parametrize(
    "path, refused, refused_if_absolute_allowed",
    [
        ("Jump/v_Jump_g01_c01.avi", False, False),
        ("Jump/../Run/v.avi", False, False),  # stays inside the videos folder
        ("Jump/../../v.avi", True, True),
        ("Class/../../../etc/passwd", True, True),
        ("..", True, True),
        ("/etc/passwd", True, False),
        ("//server/share/v.avi", True, False),
        ("C:/videos/v.avi", True, False),
        ("gs://bucket/v.avi", True, False),
    ],
)
def test_path_problem(path, refused, refused_if_absolute_allowed):
    """An entry must resolve inside the videos folder; absolute ones only when allowed."""
    assert (splits.path_problem(path) is not None) == refused
    assert (
        splits.path_problem(path, allow_absolute=True) is not None
    ) == refused_if_absolute_allowed


def test_path_problem_reasons():
    assert "outside --videos_dir" in splits.path_problem("a/../../b.avi", allow_absolute=True)
    assert "--allow_absolute_paths" in splits.path_problem("/x.avi")
    assert splits.path_problem("/x.avi", allow_absolute=True) is None
    assert splits.is_absolute("s3://b/x") and not splits.is_absolute("b/x:y.avi")
