"""Annotation readers: real THUMOS14 / ActivityNet1.3 / W-TALC / UCF101 files and bad input."""

import collections
import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from tfwsar.data import annotations as A
from tfwsar.errors import DataError

THUMOS14_CLASSES = [
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus",
    "VolleyballSpiking"]


def instance_multiset(frame, subset=None):
    """The rows of an instances frame as a Counter, optionally of one subset."""
    if subset is not None:
        frame = frame[frame["subset"] == subset]
    return collections.Counter(zip(frame["video"], frame["label"], frame["t_start"], frame["t_end"]))


def counts(annotations, frame_name):
    return getattr(annotations, frame_name)["subset"].value_counts().to_dict()


# ---------------------------------------------------------------------------------------------
# Packaged real files: run in every clone.


def test_packaged_thumos14_txt_has_the_published_counts():
    annotations = A.read_thumos14_txt(A.packaged_thumos14_directory())

    assert annotations.source == "thumos14_txt"
    assert annotations.classes == THUMOS14_CLASSES  # order of the shipped Class Index_Detection.txt
    assert counts(annotations, "videos") == {"validation": 200, "test": 212}
    assert counts(annotations, "instances") == {"validation": 3007, "test": 3358}
    assert counts(annotations, "ambiguous") == {"validation": 89, "test": 99}
    assert list(annotations.videos.columns) == list(A.VIDEO_COLUMNS)
    assert list(annotations.instances.columns) == list(A.INSTANCE_COLUMNS)
    assert annotations.videos["duration"].isna().all()
    assert set(annotations.instances["label"]) == set(THUMOS14_CLASSES)
    assert A.AMBIGUOUS_LABEL not in annotations.classes
    assert (annotations.ambiguous["label"] == A.AMBIGUOUS_LABEL).all()


def test_video_with_only_ambiguous_regions_is_not_a_labelled_video():
    annotations = A.read_thumos14_txt(A.packaged_thumos14_directory())

    assert "video_test_0001292" not in set(annotations.videos["video"])
    assert "video_test_0001292" in set(annotations.ambiguous["video"])


def test_every_cliff_diving_instance_is_also_diving_as_given():
    instances = A.read_thumos14_txt(A.packaged_thumos14_directory()).instances
    cliff = instances[instances["label"] == "CliffDiving"]
    diving = instances[instances["label"] == "Diving"]

    both = cliff.merge(diving, on=["video", "t_start", "t_end"])
    assert len(cliff) == 360 and len(both) == 360


def test_video_labels_are_sorted_unique_classes_of_its_instances():
    annotations = A.read_thumos14_txt(A.packaged_thumos14_directory())
    video = annotations.videos.set_index("video").loc["video_test_0000004"]

    assert video["labels"] == ("CricketBowling", "CricketShot")
    assert video["subset"] == "test"


def test_packaged_class_index_maps_names_to_ucf101_indices():
    index = A.read_thumos14_class_index(A.packaged_thumos14_directory() / A.THUMOS14_CLASS_INDEX_NAME)

    assert list(index) == THUMOS14_CLASSES
    assert index["BaseballPitch"] == 7 and index["VolleyballSpiking"] == 97


def test_packaged_ucf101_split_1_counts_and_thumos14_overlap():
    ucf = A.read_ucf101_splits(A.packaged_ucf101_directory(), split=1)

    assert counts(ucf, "videos") == {"training": 9537, "test": 3783}
    assert len(ucf.classes) == 101 and ucf.classes[0] == "ApplyEyeMakeup"
    assert ucf.instances.empty and ucf.videos["duration"].isna().all()
    first = ucf.videos.iloc[0]
    assert (first["video"], first["subset"], first["labels"]) == (
        "v_ApplyEyeMakeup_g08_c01", "training", ("ApplyEyeMakeup",))
    # File stems keep the file names' spelling, not the class name's.
    assert "v_HandStandPushups_g08_c01" in set(ucf.videos["video"])
    assert A.ucf101_classes_overlapping(THUMOS14_CLASSES, ucf.classes) == {
        name: name for name in THUMOS14_CLASSES}


def test_ucf101_overlap_leaves_out_classes_without_a_twin():
    assert A.ucf101_classes_overlapping(["Diving", "Ballet", "Archery"], ["Archery", "Diving"]) == {
        "Diving": "Diving", "Archery": "Archery"}


def test_ground_truth_round_trip_keeps_everything_of_the_labelled_videos(tmp_path):
    annotations = A.read_thumos14_txt(A.packaged_thumos14_directory())
    annotations.videos["duration"] = np.linspace(100.0, 300.0, len(annotations.videos))
    annotations.videos.loc[3, "duration"] = math.nan
    path = tmp_path / "ground_truth.json"

    A.write_ground_truth(path, annotations)
    again = A.read_ground_truth(path)

    assert again.classes == annotations.classes
    pd.testing.assert_frame_equal(again.videos, annotations.videos)
    pd.testing.assert_frame_equal(again.instances, annotations.instances)
    labelled = annotations.ambiguous[annotations.ambiguous["video"] != "video_test_0001292"]
    pd.testing.assert_frame_equal(again.ambiguous, labelled.reset_index(drop=True))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_ground_truth_json_has_the_activitynet_layout(tmp_path):
    annotations = A.read_thumos14_txt(A.packaged_thumos14_directory())
    path = tmp_path / "gt.json"

    A.write_ground_truth(path, annotations, subsets=["test"])
    document = json.loads(path.read_text())

    assert document["version"] == "tfwsar-1.0"
    assert document["taxonomy"] == [{"nodeName": name} for name in THUMOS14_CLASSES]
    assert len(document["database"]) == 212
    record = document["database"]["video_test_0000004"]
    assert record["subset"] == "test" and record["duration"] is None
    assert record["annotations"][0] == {"segment": [0.2, 1.1], "label": "CricketBowling"}
    assert all(isinstance(value, float) for a in record["annotations"] for value in a["segment"])
    assert all(set(r) == {"subset", "duration", "annotations", "ambiguous"}
               for r in document["database"].values())
    # 99 test regions minus the 3 of video_test_0001292, which is not a labelled video.
    assert sum(len(r["ambiguous"]) for r in document["database"].values()) == 99 - 3


def test_failed_ground_truth_write_leaves_the_old_file_and_no_temporary(tmp_path):
    annotations = A.read_thumos14_txt(A.packaged_thumos14_directory())
    path = tmp_path / "gt.json"
    path.write_text("old")
    annotations.instances.loc[0, "t_end"] = math.inf  # not representable in JSON

    with pytest.raises(ValueError):
        A.write_ground_truth(path, annotations)

    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_select_keeps_only_the_requested_subsets():
    test = A.read_thumos14_txt(A.packaged_thumos14_directory()).select("test")

    assert counts(test, "videos") == {"test": 212}
    assert counts(test, "instances") == {"test": 3358}
    assert counts(test, "ambiguous") == {"test": 99}
    with pytest.raises(ValueError, match="unknown subsets"):
        test.select(["testing"])


# ---------------------------------------------------------------------------------------------
# Tiny fixtures and synthetic files.


def test_official_activitynet_layout_maps_subsets_and_sorts_classes(tests_data):
    annotations = A.read_activitynet_json(tests_data / "annotations" / "activitynet_official_tiny.json")

    assert annotations.classes == ["Archery", "Long jump"]  # sorted labels, taxonomy not used
    videos = annotations.videos.set_index("video")
    assert list(videos.index) == ["-0aVOb2Cd5k", "3HHAEmr0Q34", "FWPJWq-uhUw"]
    assert videos["subset"].to_dict() == {
        "-0aVOb2Cd5k": "test", "3HHAEmr0Q34": "validation", "FWPJWq-uhUw": "training"}
    assert videos.loc["-0aVOb2Cd5k", "labels"] == ()
    assert videos.loc["3HHAEmr0Q34", "labels"] == ("Archery", "Long jump")
    assert videos.loc["FWPJWq-uhUw", "duration"] == pytest.approx(117.82)
    jumps = annotations.instances[annotations.instances["video"] == "FWPJWq-uhUw"]
    assert jumps["t_start"].tolist() == pytest.approx([54.038231522620904, 75.35943851794072])
    assert annotations.ambiguous.empty


def test_ground_truth_reader_takes_the_taxonomy_leaves_in_file_order(tests_data):
    annotations = A.read_ground_truth(tests_data / "annotations" / "activitynet_official_tiny.json")

    assert annotations.classes == ["Long jump", "Archery"]  # "Root" and "Sports" are parents
    assert len(annotations.instances) == 4


def test_clip_to_duration_clips_ends_and_drops_instances_after_the_end():
    videos = pd.DataFrame({"video": ["a", "b"], "subset": ["test", "test"],
                           "duration": [10.0, math.nan],
                           "labels": [("Jump", "Run", "Swim"), ("Run",)]})
    instances = pd.DataFrame({
        "video": ["a", "a", "a", "a", "b"], "subset": ["test"] * 5,
        "label": ["Run", "Jump", "Swim", "Run", "Run"],
        "t_start": [2.0, 8.0, 11.0, 10.0, 50.0], "t_end": [5.0, 12.0, 13.0, 14.0, 60.0]})
    annotations = A.Annotations(["Jump", "Run", "Swim"], videos, instances,
                                A._instances_frame(None), "test")

    clipped, number_clipped, number_dropped = A.clip_to_duration(annotations, return_dropped=True)
    _, only_clipped = A.clip_to_duration(annotations)

    assert (number_clipped, number_dropped, only_clipped) == (1, 2, 1)
    assert clipped.instances[["video", "label", "t_start", "t_end"]].values.tolist() == [
        ["a", "Run", 2.0, 5.0], ["a", "Jump", 8.0, 10.0], ["b", "Run", 50.0, 60.0]]
    # Swim only existed after the end of "a"; Run kept an instance inside the video.
    assert clipped.videos["labels"].tolist() == [("Jump", "Run"), ("Run",)]
    assert annotations.instances["t_end"].tolist()[1] == 12.0  # input left untouched


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("line, message", [
    ("video_validation_0000001  1.0", "line 2: expected 3 whitespace-separated fields"),
    ("video_validation_0000001  1.0  abc", "line 2: end 'abc' is not a number"),
    ("video_validation_0000001  9.5  3.0", "line 2: segment end 3.0 is before its start 9.5"),
])
def test_thumos14_txt_bad_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "deep" / "Diving_val.txt",
                 f"video_validation_0000001  1.0 2.0\r\n{line}\r\n")

    with pytest.raises(DataError) as raised:
        A.read_thumos14_txt(tmp_path)

    assert str(path) in str(raised.value) and message in str(raised.value)


def test_thumos14_txt_class_missing_from_the_class_index_is_unknown(tmp_path):
    write(tmp_path / "Class Index_Detection.txt", "26 Diving\r\n")
    write(tmp_path / "a" / "Diving_val.txt", "video_validation_0000001 1.0 2.0\n")
    stray = write(tmp_path / "b" / "Dancing_val.txt", "video_validation_0000002 1.0 2.0\n")

    with pytest.raises(DataError, match="unknown class 'Dancing'") as raised:
        A.read_thumos14_txt(tmp_path)
    assert str(stray) in str(raised.value)


def test_thumos14_txt_searches_recursively_and_tolerates_identical_copies(tmp_path):
    write(tmp_path / "x" / "Diving_test.txt", "video_test_0000002 3.0 4.0\nvideo_test_0000001 1.0 2.0\n")
    write(tmp_path / "y" / "z" / "Ambiguous_test.txt", "video_test_0000001 0.5 0.9\n")
    write(tmp_path / "w" / "Ambiguous_test.txt", "video_test_0000001 0.5 0.9\n")
    info = write(tmp_path / "info.csv", "video,duration\nvideo_test_0000001,12.5\n")

    annotations = A.read_thumos14_txt(tmp_path, video_info=info)

    assert annotations.classes == ["Diving"]
    assert annotations.videos["video"].tolist() == ["video_test_0000001", "video_test_0000002"]
    assert annotations.videos["duration"].tolist()[0] == 12.5
    assert math.isnan(annotations.videos["duration"].tolist()[1])
    assert len(annotations.ambiguous) == 1

    write(tmp_path / "w" / "Ambiguous_test.txt", "video_test_0000001 0.5 1.9\n")
    with pytest.raises(DataError, match="two different files named Ambiguous_test.txt"):
        A.read_thumos14_txt(tmp_path)


BSN_HEADER = "video,type,type_idx,start,end,startFrame,endFrame\n"
GT_HEADER = "video-name,t-init,t-end,f-init,f-end,video-duration,frame-rate,video-frames,label-idx\n"


@pytest.mark.parametrize("text, message", [
    (BSN_HEADER + "video_test_0000004,Diving,26,0.2,1.1,6,33\nvideo_test_0000004,Dancing,26,1,2,30,60\n",
     "line 3: unknown class 'Dancing'"),
    (BSN_HEADER + "video_test_0000004,Diving,27,0.2,1.1,6,33\n",
     "line 2: type_idx 27 does not match class 'Diving'"),
    (BSN_HEADER + "video_test_0000004,Ambiguous,26,0.2,1.1,6,33\n",
     "line 2: type_idx 26 does not match class 'Ambiguous'"),
    (BSN_HEADER + "video_test_0000004,Diving,26,0.2,1.1,6\n",
     "line 2: expected 7 comma-separated fields"),
    (BSN_HEADER + "video_test_0000004,Diving,26,5.2,1.1,156,33\n",
     "line 2: segment end 1.1 is before its start 5.2"),
    (BSN_HEADER + "clip_0000004,Diving,26,0.2,1.1,6,33\n",
     "line 2: video 'clip_0000004' is neither"),
    (GT_HEADER + "video_test_0000004,0.2,1.1,6,33,100.0,30.0,3000,7\n"
     "video_test_0000004,0.2,1.1,6,33,100.0,30.0,3000,20\n",
     "line 3: unknown class: label-idx 20"),
    (GT_HEADER + "video_test_0000004,0.2,x,6,33,100.0,30.0,3000,7\n",
     "line 2: t-end 'x' is not a number"),
])
def test_thumos14_csv_bad_row_names_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "annotation.csv", text)

    with pytest.raises(DataError) as raised:
        A.read_thumos14_csv(path)

    assert str(path) in str(raised.value) and message in str(raised.value)


def test_thumos14_groundtruth_label_idx_is_a_position_in_the_class_list(tmp_path):
    path = write(tmp_path / "gt.csv", GT_HEADER + "video_test_0000004,0.2,1.1,6,33,100.0,30.0,3000,7\n"
                 "video_test_0000004,2.0,3.0,60,90,100.0,30.0,3000,-1\n")

    annotations = A.read_thumos14_csv(path)

    assert annotations.instances["label"].tolist() == ["Diving"]  # position 7, UCF101 index 26
    assert annotations.ambiguous["label"].tolist() == ["Ambiguous"]
    assert annotations.videos["duration"].tolist() == [100.0]


@pytest.mark.parametrize("name, text, message", [
    ("trainlist01.txt", "Diving/v_Diving_g01_c01.avi 2\r\nDancing/v_Dancing_g01_c01.avi 2\r\n",
     "line 2: unknown class 'Dancing'"),
    ("trainlist01.txt", "Diving/v_Diving_g01_c01.avi 1\r\n", "line 1: label 1 does not match class 'Diving'"),
    ("trainlist01.txt", "Diving/v_Diving_g01_c01.avi\r\n", "line 1: expected 2 whitespace-separated fields"),
    ("testlist01.txt", "\r\nArchery/v_Archery_g01_c01.avi\r\nBallet/v_Ballet_g01_c01.avi\r\n",
     "line 3: unknown class 'Ballet'"),
    ("classInd.txt", "1 Archery\r\none Diving\r\n", "line 2: index 'one' is not a number"),
])
def test_ucf101_bad_line_names_file_and_line(tmp_path, name, text, message):
    files = {"classInd.txt": "1 Archery\r\n2 Diving\r\n",
             "trainlist01.txt": "Diving/v_Diving_g01_c01.avi 2\r\n",
             "testlist01.txt": "Archery/v_Archery_g01_c01.avi\r\n"}
    files[name] = text
    for file_name, content in files.items():
        write(tmp_path / file_name, content)

    with pytest.raises(DataError) as raised:
        A.read_ucf101_splits(tmp_path)

    assert str(tmp_path / name) in str(raised.value) and message in str(raised.value)


def test_activitynet_segment_ending_before_it_starts_names_file_and_video(tmp_path):
    path = write(tmp_path / "anet.json", json.dumps({"database": {
        "abc": {"subset": "training", "duration": 10.0,
                "annotations": [{"segment": [5.0, 2.0], "label": "Archery"}]}}}))

    with pytest.raises(DataError, match="video abc: segment end 2.0 is before its start 5.0") as raised:
        A.read_activitynet_json(path)
    assert str(path) in str(raised.value)


def test_ground_truth_label_outside_the_taxonomy_is_unknown(tmp_path):
    path = write(tmp_path / "gt.json", json.dumps({"taxonomy": [{"nodeName": "Archery"}], "database": {
        "abc": {"subset": "test", "duration": 10.0,
                "annotations": [{"segment": [1.0, 2.0], "label": "Ballet"}]}}}))

    with pytest.raises(DataError, match="video abc: unknown class 'Ballet'"):
        A.read_ground_truth(path)


def test_bsn_layout_without_video_info_is_an_error(tmp_path):
    path = write(tmp_path / "anet_anno_action.json", json.dumps({"v_abc": {
        "duration_second": 3.0, "duration_frame": 90, "feature_frame": 80, "annotations": []}}))

    with pytest.raises(DataError, match="no subsets; pass video_info"):
        A.read_activitynet_json(path)


def write_wtalc(directory, labels_all, names=(b"Diving", b"Archery")):
    directory.mkdir()
    arrays = {
        "videoname": np.array([b"video_validation_1", b"video_test_2"]),
        "subset": np.array([b"validation", b"test"]),
        "duration": np.array([[20.0], [30.0]]),
        "labels": np.array([["Diving", "Diving"], ["Archery"]], dtype=object),
        "segments": np.array([[[4.0, 6.0], [1.0, 2.0]], [[3.0, 9.0]]], dtype=object),
        "labels_all": np.array(labels_all, dtype=object),
        "classlist": np.array(list(names)),
    }
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array, allow_pickle=True)


def test_wtalc_decodes_bytes_and_keeps_file_order(tmp_path):
    write_wtalc(tmp_path / "w", [["Diving"], ["Archery"]])

    annotations = A.read_wtalc(tmp_path / "w")

    assert annotations.classes == ["Diving", "Archery"]  # classlist order
    assert annotations.videos.values.tolist() == [
        ["video_validation_1", "validation", 20.0, ("Diving",)], ["video_test_2", "test", 30.0, ("Archery",)]]
    assert annotations.instances[["video", "t_start", "t_end"]].values.tolist() == [
        ["video_validation_1", 1.0, 2.0], ["video_validation_1", 4.0, 6.0], ["video_test_2", 3.0, 9.0]]


def test_wtalc_unknown_class_names_file_and_video(tmp_path):
    write_wtalc(tmp_path / "w", [["Diving"], ["Ballet"]])

    with pytest.raises(DataError, match="labels_all.npy: video video_test_2: unknown class 'Ballet'"):
        A.read_wtalc(tmp_path / "w")


# ---------------------------------------------------------------------------------------------
# The real files in ../shared/data.


def test_thumos14_txt_with_afsd_durations_and_clipping(shared_data):
    thumos = shared_data / "thumos14"
    annotations = A.read_thumos14_txt(
        thumos, video_info=[thumos / "val_video_info.csv", thumos / "test_video_info.csv"])

    # The whole thumos14 tree holds three byte-identical Ambiguous_test.txt copies (two W-TALC's).
    assert counts(annotations, "instances") == {"validation": 3007, "test": 3358}
    assert counts(annotations, "ambiguous") == {"validation": 89, "test": 99}
    assert not annotations.videos["duration"].isna().any()
    reference = json.loads((thumos / "TH14_video_info.json").read_text())
    durations = annotations.videos.set_index("video")["duration"]
    assert durations.to_dict() == pytest.approx({v: reference[v]["duration"] for v in durations.index})

    clipped, number_clipped, number_dropped = A.clip_to_duration(annotations, return_dropped=True)

    # 30 instances lie entirely after the end of their video; none straddles it.
    assert (number_clipped, number_dropped) == (0, 30)
    dropped = instance_multiset(annotations.instances) - instance_multiset(clipped.instances)
    assert collections.Counter(video for video, *_ in dropped.elements()) == {
        "video_test_0000270": 22, "video_test_0000814": 3, "video_test_0001081": 1,
        "video_validation_0000364": 2, "video_validation_0000856": 2}
    assert clipped.videos["labels"].tolist() == annotations.videos["labels"].tolist()


def test_thumos14_csvs_agree_with_the_txt_files(shared_data):
    thumos = shared_data / "thumos14"
    txt = A.read_thumos14_txt(thumos)
    validation = A.read_thumos14_csv(thumos / "val_Annotation.csv")
    test = A.read_thumos14_csv(thumos / "test_Annotation.csv")
    groundtruth = A.read_thumos14_csv(thumos / "thumos14_test_groundtruth.csv")

    # Same instances row for row: 3,096 = 3,007 + 89 and 3,457 = 3,358 + 99 CSV rows.
    assert instance_multiset(validation.instances) == instance_multiset(txt.instances, "validation")
    assert sum(instance_multiset(validation.instances).values()) == 3007
    assert instance_multiset(test.instances) == instance_multiset(txt.instances, "test")
    assert sum(instance_multiset(test.instances).values()) == 3358
    assert instance_multiset(validation.ambiguous) == instance_multiset(txt.ambiguous, "validation")
    assert instance_multiset(test.ambiguous) == instance_multiset(txt.ambiguous, "test")
    assert validation.classes == test.classes == txt.classes
    pd.testing.assert_frame_equal(validation.videos.drop(columns="duration"),
                                  txt.select("validation").videos.drop(columns="duration"))
    # label-idx read as positions in the 20-class list gives exactly test_Annotation.csv.
    pd.testing.assert_frame_equal(groundtruth.instances, test.instances)
    pd.testing.assert_frame_equal(groundtruth.ambiguous, test.ambiguous)
    afsd = A._read_video_info(thumos / "test_video_info.csv")["duration"]
    assert groundtruth.videos.set_index("video")["duration"].to_dict() == pytest.approx(afsd.to_dict())


def test_gtad_thumos_gt_json_omits_two_known_wrong_test_videos(shared_data):
    gtad = A.read_activitynet_json(shared_data / "thumos14" / "thumos_gt.json")
    txt = A.read_thumos14_txt(A.packaged_thumos14_directory())

    # Its validation videos are called "train"; test drops 0000270 (29) and 0001496 (18 instances).
    assert counts(gtad, "videos") == {"training": 200, "test": 210}
    assert counts(gtad, "instances") == {"training": 3007, "test": 3358 - 47}
    omitted = set(txt.select("test").videos["video"]) - set(gtad.videos["video"])
    assert omitted == {"video_test_0000270", "video_test_0001496"}


def test_activitynet_bsn_files(shared_data):
    activitynet = shared_data / "activitynet"
    start = time.perf_counter()
    annotations = A.read_activitynet_json(activitynet / "anet_anno_action.json",
                                          video_info=activitynet / "video_info_new.csv")
    elapsed = time.perf_counter() - start

    assert elapsed < 2.0
    assert len(annotations.videos) == 19228
    assert counts(annotations, "videos") == {"training": 9649, "validation": 4728, "test": 4851}
    assert counts(annotations, "instances") == {"training": 14859, "validation": 7293}
    test = annotations.select("test").videos
    assert (test["labels"].map(len) == 0).all()
    assert len(annotations.classes) == 200
    assert annotations.classes == sorted(pd.read_csv(activitynet / "action_name.csv")["action"])
    keys = json.loads((activitynet / "anet_anno_action.json").read_text())
    assert set(annotations.videos["video"]) == {key[2:] for key in keys}  # "v_" stripped once
    assert "v_v_UmAH95xls" in keys and "v_UmAH95xls" in set(annotations.videos["video"])
    first = annotations.videos.set_index("video").loc["QOlSCBRmfWY"]
    assert first["duration"] == pytest.approx(82.73) and first["labels"] == ("Ballet",)
    assert annotations.videos["duration"].notna().all()
    assert annotations.videos["video"].is_monotonic_increasing


def test_wtalc_thumos14_reduced(shared_data):
    wtalc = A.read_wtalc(shared_data / "thumos14" / "Thumos14reduced-Annotations")
    txt = A.read_thumos14_txt(A.packaged_thumos14_directory())

    assert len(wtalc.videos) == 412
    assert counts(wtalc, "videos") == {"validation": 200, "test": 212}
    assert wtalc.classes == THUMOS14_CLASSES
    assert instance_multiset(wtalc.instances) == instance_multiset(txt.instances)
    assert instance_multiset(wtalc.ambiguous) == instance_multiset(txt.ambiguous, "test")
    assert wtalc.videos["video"].iloc[0] == "video_validation_0000051"  # videoname.npy order
    # Video-level labels are labels_all.npy as given: 28 videos disagree with their instances.
    from_instances = txt.videos.set_index("video")["labels"]
    given = wtalc.videos.set_index("video")["labels"]
    assert (given != from_instances.reindex(given.index)).sum() == 28
    assert given["video_validation_0000316"] == ("HammerThrow", "ThrowDiscus")
    assert "ThrowDiscus" not in from_instances["video_validation_0000316"]
    assert given["video_test_0000270"] == ()


def test_wtalc_activitynet(shared_data):
    wtalc = A.read_wtalc(shared_data / "activitynet" / "ActivityNet1.3-Annotations")

    assert len(wtalc.videos) == 13912
    assert counts(wtalc, "videos") == {"training": 9337, "validation": 4575}
    assert len(wtalc.classes) == 200
    assert sum(counts(wtalc, "instances").values()) == 21434
    assert wtalc.ambiguous.empty  # its Ambiguous_test.txt is empty


def test_ucf101_shared_splits(shared_data):
    lists = shared_data / "ucf101"
    split_1 = A.read_ucf101_splits(lists, split=1)
    packaged = A.read_ucf101_splits(A.packaged_ucf101_directory(), split=1)

    pd.testing.assert_frame_equal(split_1.videos, packaged.videos)
    assert counts(A.read_ucf101_splits(lists, split=2), "videos") == {"training": 9586, "test": 3734}
    assert counts(A.read_ucf101_splits(lists, split=3), "videos") == {"training": 9624, "test": 3696}
    thumos_index = A.read_thumos14_class_index(shared_data / "thumos14" / A.THUMOS14_CLASS_INDEX_NAME)
    ucf_index = A.read_thumos14_class_index(lists / "ucfTrainTestlist" / "classInd.txt")
    assert all(ucf_index[name] == index for name, index in thumos_index.items())
    assert len(A.ucf101_classes_overlapping(list(thumos_index), split_1.classes)) == 20
