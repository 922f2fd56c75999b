"""The converter tools: their flags, their output, and their refusal of bad input (exit 1, no output)."""

import json
import pathlib
import re
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tfwsar.data import annotations as annotation_io
from tfwsar.data import convert
from tfwsar.data import records

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import convert_activitynet  # noqa: E402  pylint: disable=wrong-import-position
import convert_thumos14  # noqa: E402  pylint: disable=wrong-import-position
import convert_ucf101  # noqa: E402  pylint: disable=wrong-import-position

THUMOS_LINES = {
    "Diving_val.txt": ["video_validation_0000001  1.0 3.5", "video_validation_0000002  0.5 2.0"],
    "HighJump_val.txt": ["video_validation_0000001  4.0 5.0"],
    "Diving_test.txt": ["video_test_0000001  2.0 9.0"],  # ends past the 4.0 s video: clipped
    "Ambiguous_test.txt": ["video_test_0000001  0.0 1.0"],
}
THUMOS_LENGTHS = {"video_validation_0000001": 10, "video_validation_0000002": 6,
                  "video_test_0000001": 4}  # segments at 25/16 = 1.5625 per second


def _write_thumos14_annotations(directory, lines=None):
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (lines or THUMOS_LINES).items():
        (directory / name).write_text("\n".join(rows) + "\n")
    return directory


def _write_npy_features(directory, lengths, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    stored = {}
    for video, length in lengths.items():
        stored[video] = (rng.standard_normal((length, dim)).astype(np.float32),
                         rng.standard_normal((length, dim)).astype(np.float32))
        for stream, values in zip(("rgb", "flow"), stored[video]):
            (directory / stream).mkdir(parents=True, exist_ok=True)
            np.save(directory / stream / f"{video}.npy", values)
    return stored


def _read_examples(out_dir):
    manifest = records.read_manifest(out_dir)
    examples = {}
    for subset in manifest["subsets"]:
        for path in records.record_paths(out_dir, subset):
            for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
                example = records.parse_example(
                    serialized, len(manifest["classes"]), manifest["feature_dims"]["rgb"],
                    manifest["feature_dims"]["flow"])
                examples[example["video"].numpy().decode()] = {
                    key: value.numpy() for key, value in example.items()}
    return manifest, examples


@pytest.fixture
def thumos(tmp_path):
    annotations = _write_thumos14_annotations(tmp_path / "annotations")
    stored = _write_npy_features(tmp_path / "features", THUMOS_LENGTHS)
    return annotations, tmp_path / "features", stored


def test_convert_thumos14_writes_records_manifest_and_ground_truth(tmp_path, thumos, capsys):
    annotations, features_dir, stored = thumos
    out_dir = tmp_path / "out"
    status = convert_thumos14.main(["--annotations", str(annotations), "--features",
                                    str(features_dir), "--out", str(out_dir)])
    assert status == 0, capsys.readouterr().err
    assert "validation: 2 videos, 3 instances" in capsys.readouterr().out
    manifest, examples = _read_examples(out_dir)
    assert manifest["classes"] == ["Diving", "HighJump"]
    assert manifest["subsets"]["test"]["videos"] == 1
    assert manifest["clipped_segments"] == 1
    for video, (rgb, flow) in stored.items():
        np.testing.assert_array_equal(examples[video]["rgb"], rgb)
        np.testing.assert_array_equal(examples[video]["flow"], flow)
    np.testing.assert_array_equal(examples["video_validation_0000001"]["labels"], [1, 1])
    ground_truth = annotation_io.read_ground_truth(out_dir / "ground_truth.json")
    test_instance = ground_truth.instances[ground_truth.instances["subset"] == "test"]
    assert test_instance["t_end"].tolist() == [4 / 1.5625]  # clipped to T / rate = 2.56 s
    assert len(ground_truth.ambiguous) == 1


def test_video_info_durations_are_used_and_the_rate_is_a_flag(tmp_path, thumos):
    annotations, features_dir, _ = thumos
    info = tmp_path / "info.csv"
    info.write_text("video,duration\nvideo_validation_0000001,30.0\nvideo_validation_0000002,20.0\n"
                    "video_test_0000001,12.0\n")
    status = convert_thumos14.main(["--annotations", str(annotations), "--features",
                                    str(features_dir), "--out", str(tmp_path / "out"),
                                    "--video-info", str(info), "--fps", "30", "--stride", "15"])
    assert status == 0
    manifest, examples = _read_examples(tmp_path / "out")
    assert manifest["feature_rate"] == 2.0 and manifest["clipped_segments"] == 0
    assert examples["video_test_0000001"]["duration"] == 12.0


def _break_nan(features_dir, stored):
    rgb, _ = stored["video_validation_0000002"]
    rgb[3, 0] = np.nan
    np.save(features_dir / "rgb" / "video_validation_0000002.npy", rgb)


def _break_empty(features_dir, stored):
    for stream in ("rgb", "flow"):
        np.save(features_dir / stream / "video_validation_0000002.npy", np.zeros((0, 4), np.float32))


def _break_length(features_dir, stored):
    np.save(features_dir / "flow" / "video_validation_0000002.npy", np.ones((3, 4), np.float32))


def _break_missing_features(features_dir, stored):
    for stream in ("rgb", "flow"):
        (features_dir / stream / "video_test_0000001.npy").unlink()


def _break_missing_annotations(features_dir, stored):
    for stream in ("rgb", "flow"):
        np.save(features_dir / stream / "video_test_0000999.npy", np.ones((3, 4), np.float32))


def _break_annotation_line(annotations_dir):
    (annotations_dir / "HighJump_val.txt").write_text(
        "video_validation_0000001  4.0 5.0\nvideo_validation_0000002  four 5.0\n")


@pytest.mark.parametrize("breakage, expected", [
    (_break_nan, r"video video_validation_0000002 \(.*rgb/video_validation_0000002\.npy.*NaN or inf"),
    (_break_empty, r"video video_validation_0000002 .*empty \(T = 0\)"),
    (_break_length, r"video video_validation_0000002 .*RGB has 6 segments but flow has 3"),
    (_break_missing_features, r"no features for 1 video\(s\): video_test_0000001"),
    (_break_missing_annotations, r"no annotations for 1 video\(s\): video_test_0000999"),
    (_break_annotation_line, r"HighJump_val\.txt, line 2: .*'four' is not a number"),
])
def test_bad_input_exits_1_with_a_message_and_leaves_no_output(tmp_path, thumos, capsys,
                                                               breakage, expected):
    annotations, features_dir, stored = thumos
    if breakage is _break_annotation_line:
        breakage(annotations)
    else:
        breakage(features_dir, stored)
    capsys.readouterr()
    status = convert_thumos14.main(["--annotations", str(annotations), "--features",
                                    str(features_dir), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert status == 1
    assert error.startswith("error: ")
    assert re.search(expected, error), error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["annotations", "features"]


@pytest.mark.parametrize("breakage", [_break_missing_features, _break_missing_annotations])
def test_skip_missing_converts_the_rest_and_counts_the_skipped(tmp_path, thumos, breakage):
    annotations, features_dir, stored = thumos
    breakage(features_dir, stored)
    status = convert_thumos14.main(["--annotations", str(annotations), "--features",
                                    str(features_dir), "--out", str(tmp_path / "out"),
                                    "--skip-missing"])
    assert status == 0
    skipped = records.read_manifest(tmp_path / "out")["skipped_videos"]
    if breakage is _break_missing_features:
        assert skipped == {"missing_features": ["video_test_0000001"], "missing_annotations": []}
    else:
        assert skipped == {"missing_features": [], "missing_annotations": ["video_test_0000999"]}


def test_thumos14_from_wtalc_joint_features_found_beside_the_annotations(tmp_path, thumos):
    annotations, _, stored = thumos
    names = sorted(stored)
    joint = np.empty(len(names), dtype=object)
    for position, video in enumerate(names):
        joint[position] = np.concatenate(stored[video], axis=1)
    np.save(tmp_path / "Toy-I3D-JOINTFeatures.npy", joint, allow_pickle=True)
    (annotations / "Toy-Annotations").mkdir()
    np.save(annotations / "Toy-Annotations" / "videoname.npy", np.array([v.encode() for v in names]))
    manifest = convert.convert_thumos14(annotations, tmp_path / "Toy-I3D-JOINTFeatures.npy",
                                        tmp_path / "out")
    assert manifest["feature_dims"] == {"rgb": 4, "flow": 4}
    _, examples = _read_examples(tmp_path / "out")
    np.testing.assert_array_equal(examples["video_test_0000001"]["flow"],
                                  stored["video_test_0000001"][1])


def _write_ucf101_lists(directory):
    directory.mkdir()
    (directory / "classInd.txt").write_text("1 Archery\r\n2 Diving\r\n3 HighJump\r\n")
    (directory / "trainlist01.txt").write_text(
        "Archery/v_Archery_g01_c01.avi 1\r\nDiving/v_Diving_g01_c01.avi 2\r\n"
        "HighJump/v_HighJump_g01_c01.avi 3\r\n")
    (directory / "testlist01.txt").write_text("Diving/v_Diving_g02_c01.avi\r\n")
    return directory


def test_ucf101_with_classes_of_keeps_shared_classes_in_the_untrimmed_order(tmp_path, thumos):
    annotations, features_dir, _ = thumos
    assert convert.convert_thumos14(annotations, features_dir, tmp_path / "thumos")["classes"] == [
        "Diving", "HighJump"]
    splits = _write_ucf101_lists(tmp_path / "lists")
    # No features for the Archery clip: its class is not a THUMOS class, so it is not needed.
    _write_npy_features(tmp_path / "clips", {"v_Diving_g01_c01": 3, "v_Diving_g02_c01": 2,
                                             "v_HighJump_g01_c01": 4})
    status = convert_ucf101.main(["--splits", str(splits), "--features", str(tmp_path / "clips"),
                                  "--out", str(tmp_path / "ucf"), "--classes-of",
                                  str(tmp_path / "thumos"), "--split", "1"])
    assert status == 0
    manifest, examples = _read_examples(tmp_path / "ucf")
    assert manifest["classes"] == ["Diving", "HighJump"]
    assert manifest["class_mapping"] == {"Diving": "Diving", "HighJump": "HighJump"}
    assert sorted(examples) == ["v_Diving_g01_c01", "v_Diving_g02_c01", "v_HighJump_g01_c01"]
    np.testing.assert_array_equal(examples["v_HighJump_g01_c01"]["labels"], [0, 1])
    assert examples["v_Diving_g02_c01"]["subset"] == b"test"
    assert examples["v_Diving_g01_c01"]["duration"] == np.float32(3 / 1.5625)


def test_ucf101_class_names_match_across_spellings():
    ucf101 = annotation_io.read_ucf101_splits(
        annotation_io.packaged_ucf101_directory(), split=1)
    restricted, matched = convert.restrict_to_classes(ucf101, ["Long jump", "Walking the dog",
                                                               "Shot put"], "ActivityNet")
    assert matched == {"Long jump": "LongJump", "Shot put": "Shotput"}
    assert restricted.classes == ["Long jump", "Walking the dog", "Shot put"]
    assert set(label for labels in restricted.videos["labels"] for label in labels) == {
        "Long jump", "Shot put"}


def test_ucf101_without_features_for_kept_clips_exits_1(tmp_path, thumos, capsys):
    annotations, features_dir, _ = thumos
    convert.convert_thumos14(annotations, features_dir, tmp_path / "thumos")
    splits = _write_ucf101_lists(tmp_path / "lists")
    _write_npy_features(tmp_path / "clips", {"v_Diving_g01_c01": 3})
    status = convert_ucf101.main(["--splits", str(splits), "--features", str(tmp_path / "clips"),
                                  "--out", str(tmp_path / "ucf"), "--classes-of",
                                  str(tmp_path / "thumos")])
    assert status == 1
    assert "no features for 2 video(s): v_Diving_g02_c01, v_HighJump_g01_c01" in capsys.readouterr().err
    assert not (tmp_path / "ucf").exists()


def test_activitynet_from_official_json_and_c3d_hdf5_with_v_prefixes(tmp_path):
    ground_truth = {"version": "VERSION 1.3", "taxonomy": [], "database": {
        "abc": {"subset": "training", "duration": 4.0,
                "annotations": [{"segment": [1.0, 2.5], "label": "Long jump"}]},
        "def": {"subset": "validation", "duration": 3.0,
                "annotations": [{"segment": [0.0, 1.0], "label": "Archery"}]},
        "ghi": {"subset": "testing", "duration": 2.0, "annotations": []}}}
    (tmp_path / "anet.json").write_text(json.dumps(ground_truth))
    c3d = {video: np.arange(length * 6, dtype=np.float32).reshape(length, 6)
           for video, length in (("abc", 6), ("def", 4), ("ghi", 3))}
    with h5py.File(tmp_path / "c3d.hdf5", "w") as handle:
        for video, values in c3d.items():
            handle.create_group(f"v_{video}").create_dataset("c3d_features", data=values)
    status = convert_activitynet.main(["--annotations", str(tmp_path / "anet.json"),
                                       "--features", str(tmp_path / "c3d.hdf5"),
                                       "--out", str(tmp_path / "out")])
    assert status == 0
    manifest, examples = _read_examples(tmp_path / "out")
    assert list(manifest["subsets"]) == ["training", "validation", "test"]
    assert manifest["feature_dims"] == {"rgb": 6, "flow": 6}
    assert sorted(examples) == ["abc", "def", "ghi"]
    np.testing.assert_array_equal(examples["abc"]["rgb"], c3d["abc"])
    np.testing.assert_array_equal(examples["abc"]["flow"], c3d["abc"])
    assert manifest["classes"] == ["Archery", "Long jump"]
    np.testing.assert_array_equal(examples["ghi"]["labels"], [0, 0])
    assert not examples["ghi"]["labels"].any()


def test_activitynet_malformed_json_exits_1_naming_the_file(tmp_path, capsys):
    (tmp_path / "anet.json").write_text('{"database": {"abc": {"subset": "training",\n "dur')
    (tmp_path / "features").mkdir()
    status = convert_activitynet.main(["--annotations", str(tmp_path / "anet.json"),
                                       "--features", str(tmp_path / "features"),
                                       "--out", str(tmp_path / "out")])
    assert status == 1
    assert "anet.json, line 2: invalid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tool_runs_as_a_script_from_the_repository(tmp_path, thumos):
    annotations, features_dir, _ = thumos
    result = subprocess.run(
        [sys.executable, "tools/convert_thumos14.py", "--annotations", str(annotations),
         "--features", str(features_dir), "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()
    (features_dir / "flow" / "video_test_0000001.npy").unlink()
    result = subprocess.run(
        [sys.executable, "tools/convert_thumos14.py", "--annotations", str(annotations),
         "--features", str(features_dir), "--out", str(tmp_path / "out2")],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "error: video video_test_0000001: " in result.stderr
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_real_thumos14_annotations_convert_to_the_official_counts(tmp_path, shared_data):
    """All 412 annotated videos with small random features (D = 4, T from the real durations)."""
    thumos = shared_data / "thumos14"
    info = json.loads((thumos / "TH14_video_info.json").read_text())
    labelled = annotation_io.read_thumos14_txt(thumos / "annotations_val")
    labelled_test = annotation_io.read_thumos14_txt(thumos / "annotations_test")
    videos = list(labelled.videos["video"]) + list(labelled_test.videos["video"])
    assert len(videos) == 412
    rate = 25 / 16
    _write_npy_features(tmp_path / "features",
                        {video: max(1, int(info[video]["duration"] * rate)) for video in videos})
    started = time.perf_counter()
    # The folder also holds W-TALC's copy of Ambiguous_test.txt (byte-identical) and CSVs: the
    # original txt files are found among them.
    status = convert_thumos14.main(["--annotations", str(thumos), "--features",
                                    str(tmp_path / "features"), "--out", str(tmp_path / "out"),
                                    "--video-info", str(thumos / "TH14_video_info.json")])
    elapsed = time.perf_counter() - started
    assert status == 0
    print(f"converted 412 THUMOS14 videos in {elapsed:.2f} s")
    assert elapsed < 30, f"conversion took {elapsed:.1f} s"
    database = json.loads((tmp_path / "out" / "ground_truth.json").read_text())["database"]
    for subset, video_count, instance_count in (("validation", 200, 3007), ("test", 212, 3358)):
        entries = [entry for entry in database.values() if entry["subset"] == subset]
        assert len(entries) == video_count
        assert sum(len(entry["annotations"]) for entry in entries) == instance_count
    manifest = records.read_manifest(tmp_path / "out")
    assert manifest["subsets"]["validation"]["videos"] == 200
    assert manifest["subsets"]["test"]["instances"] == 3358
    assert manifest["segments_past_end"] == 30  # kept, as the official evaluation counts them
