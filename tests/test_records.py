"""The converted dataset format: TFRecord round trips, manifest, ground truth, atomic output."""

import json
import math
import pathlib

import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfwsar.data import annotations as annotation_io
from tfwsar.data import features
from tfwsar.data import records
from tfwsar.errors import DataError

CLASSES = ["Diving", "HighJump", "LongJump"]


def _annotations(videos, instances=(), ambiguous=()):
    """Annotations from rows: videos (video, subset, duration, labels), instances (video, label, s, e)."""
    video_table = pd.DataFrame(videos, columns=["video", "subset", "duration", "labels"])
    subset_of = dict(zip(video_table["video"], video_table["subset"]))

    def instance_table(rows):
        table = pd.DataFrame(list(rows), columns=["video", "label", "t_start", "t_end"])
        table.insert(1, "subset", table["video"].map(subset_of))
        return table[["video", "subset", "label", "t_start", "t_end"]].astype(
            {"t_start": float, "t_end": float})

    return annotation_io.Annotations(list(CLASSES), video_table, instance_table(instances),
                                     instance_table(ambiguous), "hand-made")


def _toy(length_of=None):
    """Three videos in two subsets with their features."""
    length_of = length_of or {"video_a": 8, "video_b": 5, "video_c": 3}
    rng = np.random.default_rng(0)
    stored = {video: (rng.standard_normal((length, 4)).astype(np.float32),
                      rng.standard_normal((length, 2)).astype(np.float32))
              for video, length in length_of.items()}
    annotations = _annotations(
        [("video_a", "validation", 6.0, ("Diving", "LongJump")),
         ("video_b", "validation", math.nan, ("HighJump",)),
         ("video_c", "test", 2.0, ())],
        instances=[("video_a", "Diving", 0.5, 2.0), ("video_a", "LongJump", 3.0, 9.5),
                   ("video_b", "HighJump", 1.0, 2.0)],
        ambiguous=[("video_a", "Ambiguous", 2.0, 2.5)])
    return annotations, stored


def _parsed(out_dir, subset):
    manifest = records.read_manifest(out_dir)
    dataset = tf.data.TFRecordDataset(records.record_paths(out_dir, subset)).map(
        lambda serialized: records.parse_example(
            serialized, len(manifest["classes"]), manifest["feature_dims"]["rgb"],
            manifest["feature_dims"]["flow"]))
    return {example["video"].decode(): example for example in dataset.as_numpy_iterator()}


def test_serialized_video_parses_back_to_equal_tensors():
    rng = np.random.default_rng(1)
    rgb = rng.standard_normal((7, 5)).astype(np.float32)
    flow = rng.standard_normal((7, 3)).astype(np.float32)
    serialized = records.serialize_video("video_x", "test", 4.48, rgb, flow, [2, 0])
    parsed = records.parse_example(tf.constant(serialized), num_classes=4, rgb_dim=5, flow_dim=3)
    np.testing.assert_array_equal(parsed["rgb"].numpy(), rgb)
    np.testing.assert_array_equal(parsed["flow"].numpy(), flow)
    np.testing.assert_array_equal(parsed["labels"].numpy(), [1, 0, 1, 0])
    assert parsed["labels"].dtype == tf.float32
    assert parsed["video"].numpy() == b"video_x" and parsed["subset"].numpy() == b"test"
    assert parsed["num_segments"].dtype == tf.int32 and parsed["num_segments"].numpy() == 7
    assert parsed["duration"].numpy() == np.float32(4.48)


def test_a_video_without_labels_has_an_all_zero_label_vector_in_a_graph():
    serialized = records.serialize_video("v", "test", 1.0, np.ones((2, 3)), np.ones((2, 3)), [])
    parse = tf.function(lambda s: records.parse_example(s, num_classes=3, rgb_dim=3, flow_dim=3))
    graph_outputs = parse.get_concrete_function(tf.TensorSpec([], tf.string)).structured_outputs
    assert graph_outputs["labels"].shape.as_list() == [3]
    assert graph_outputs["rgb"].shape.as_list() == [None, 3]
    parsed = parse(tf.constant(serialized))
    np.testing.assert_array_equal(parsed["labels"].numpy(), [0, 0, 0])


def test_converted_dataset_round_trips_features_and_labels(tmp_path):
    annotations, stored = _toy()
    out_dir = tmp_path / "converted"
    manifest = records.write_converted_dataset(
        out_dir, name="toy", annotations=annotations, features=features.InMemoryFeatures(stored))
    parsed = {**_parsed(out_dir, "validation"), **_parsed(out_dir, "test")}
    assert sorted(parsed) == ["video_a", "video_b", "video_c"]
    for video, (rgb, flow) in stored.items():
        np.testing.assert_array_equal(parsed[video]["rgb"], rgb)
        np.testing.assert_array_equal(parsed[video]["flow"], flow)
    np.testing.assert_array_equal(parsed["video_a"]["labels"], [1, 0, 1])
    np.testing.assert_array_equal(parsed["video_c"]["labels"], [0, 0, 0])
    assert parsed["video_c"]["subset"] == b"test"
    assert manifest == records.read_manifest(out_dir)


def test_manifest_has_the_documented_keys_and_counts(tmp_path):
    annotations, stored = _toy()
    manifest = records.write_converted_dataset(
        tmp_path / "converted", name="toy", annotations=annotations,
        features=features.InMemoryFeatures(stored), feature_fps=30.0, feature_stride=15)
    assert manifest["format"] == "tfwsar-v3" and manifest["dataset"] == "toy"
    assert manifest["classes"] == CLASSES
    assert (manifest["feature_fps"], manifest["feature_stride"], manifest["feature_rate"]) == (30.0, 15, 2.0)
    assert manifest["feature_dims"] == {"rgb": 4, "flow": 2}
    assert manifest["subsets"] == {
        "validation": {"videos": 2, "instances": 3, "segments": 13, "directory": "validation"},
        "test": {"videos": 1, "instances": 0, "segments": 3, "directory": "test"}}
    assert manifest["skipped_videos"] == {"missing_features": [], "missing_annotations": []}
    assert {"clipped_segments", "segments_past_end"} <= set(manifest)


def test_unknown_durations_come_from_the_feature_rate_and_segments_past_the_end_are_clipped(tmp_path):
    annotations, stored = _toy()
    out_dir = tmp_path / "converted"
    manifest = records.write_converted_dataset(
        out_dir, name="toy", annotations=annotations, features=features.InMemoryFeatures(stored),
        feature_fps=25.0, feature_stride=16)
    ground_truth = json.loads((out_dir / "ground_truth.json").read_text())
    database = ground_truth["database"]
    assert database["video_b"]["duration"] == pytest.approx(5 / (25 / 16))  # T / rate = 3.2 s
    assert _parsed(out_dir, "validation")["video_b"]["duration"] == np.float32(3.2)
    assert database["video_a"]["duration"] == 6.0  # the annotated duration wins
    # LongJump [3.0, 9.5] ends past video_a's 6.0 s: clipped to [3.0, 6.0] and counted.
    assert {"segment": [3.0, 6.0], "label": "LongJump"} in database["video_a"]["annotations"]
    assert manifest["clipped_segments"] == 1 and manifest["segments_past_end"] == 0
    assert database["video_a"]["ambiguous"] == [[2.0, 2.5]]
    assert [node["nodeName"] for node in ground_truth["taxonomy"]] == CLASSES


def test_instances_starting_after_the_video_end_are_kept_and_counted(tmp_path):
    annotations = _annotations([("video_a", "test", 4.0, ("Diving",))],
                               instances=[("video_a", "Diving", 1.0, 2.0),
                                          ("video_a", "Diving", 5.0, 6.0)])
    manifest = records.write_converted_dataset(
        tmp_path / "out", name="toy", annotations=annotations,
        features=features.InMemoryFeatures({"video_a": (np.ones((6, 2)), np.ones((6, 2)))}))
    database = json.loads((tmp_path / "out" / "ground_truth.json").read_text())["database"]
    assert [entry["segment"] for entry in database["video_a"]["annotations"]] == [[1.0, 2.0], [5.0, 6.0]]
    assert manifest["segments_past_end"] == 1 and manifest["clipped_segments"] == 0
    assert manifest["subsets"]["test"]["instances"] == 2


@pytest.mark.parametrize("layout", ["npy", "wtalc", "hdf5"])
def test_every_feature_source_round_trips_through_tfrecords_exactly(tmp_path, layout):
    annotations, stored = _toy()
    if layout == "npy":
        for video, (rgb, flow) in stored.items():
            for stream, values in (("rgb", rgb), ("flow", flow)):
                (tmp_path / "npy" / stream).mkdir(parents=True, exist_ok=True)
                np.save(tmp_path / "npy" / stream / f"{video}.npy", values)
        source = features.PerVideoNpyFeatures(tmp_path / "npy")
    elif layout == "wtalc":
        stored = {video: (rgb, flow[:, [0, 1, 0, 1]]) for video, (rgb, flow) in stored.items()}
        joint = np.empty(len(stored), dtype=object)
        for position, (rgb, flow) in enumerate(stored.values()):
            joint[position] = np.concatenate([rgb, flow], axis=1)
        np.save(tmp_path / "joint.npy", joint, allow_pickle=True)
        (tmp_path / "names").mkdir()
        np.save(tmp_path / "names" / "videoname.npy", np.array([v.encode() for v in stored]))
        source = features.WtalcFeatures(tmp_path / "joint.npy", tmp_path / "names")
    else:
        with h5py.File(tmp_path / "features.h5", "w") as handle:
            for video, (rgb, flow) in stored.items():
                handle.create_group(video).create_dataset("rgb", data=rgb)
                handle[video].create_dataset("flow", data=flow)
        source = features.Hdf5Features(tmp_path / "features.h5")
    out_dir = tmp_path / "converted"
    records.write_converted_dataset(out_dir, name="toy", annotations=annotations, features=source)
    parsed = {**_parsed(out_dir, "validation"), **_parsed(out_dir, "test")}
    for video, (rgb, flow) in stored.items():
        np.testing.assert_array_equal(parsed[video]["rgb"], rgb)
        np.testing.assert_array_equal(parsed[video]["flow"], flow)
        assert parsed[video]["num_segments"] == len(rgb)


def test_each_video_gets_its_own_file_listed_in_the_subset_index(tmp_path):
    annotations, stored = _toy()
    records.write_converted_dataset(tmp_path / "out", name="toy", annotations=annotations,
                                    features=features.InMemoryFeatures(stored))
    index = records.read_index(tmp_path / "out", "validation")
    assert index["video"].tolist() == ["video_a", "video_b"]
    assert [pathlib.Path(path).name for path in index["file"]] == [
        "000000.tfrecord", "000001.tfrecord"]
    assert index["num_segments"].tolist() == [len(stored[v][0]) for v in ("video_a", "video_b")]
    labels = {video: [CLASSES.index(label) for label in annotations.videos.set_index("video")
                      .loc[video, "labels"]] for video in ("video_a", "video_b")}
    assert [[int(i) for i in text.split()] for text in index["labels"]] == [
        labels["video_a"], labels["video_b"]]
    for path, video in zip(index["file"], index["video"]):
        (serialized,) = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        assert tf.train.Example.FromString(serialized).features.feature[
            "video"].bytes_list.value[0].decode() == video
    assert sorted(_parsed(tmp_path / "out", "validation")) == ["video_a", "video_b"]


def test_a_dataset_in_the_old_sharded_format_asks_to_be_converted_again(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": "tfwsar-v1"}')
    with pytest.raises(DataError, match="convert the dataset again"):
        records.read_manifest(tmp_path)


def test_a_damaged_index_is_one_error_naming_the_file(tmp_path):
    annotations, stored = _toy()
    records.write_converted_dataset(tmp_path / "out", name="toy", annotations=annotations,
                                    features=features.InMemoryFeatures(stored))
    (tmp_path / "out" / "validation" / "index.tsv").write_text("file\tvideo\n000000.tfrecord\ta\n")
    with pytest.raises(DataError, match="index.tsv"):
        records.read_index(tmp_path / "out", "validation")


def test_missing_features_are_an_error_naming_the_videos_and_leave_no_output(tmp_path):
    annotations, stored = _toy()
    del stored["video_b"]
    stored["video_extra"] = stored["video_a"]
    with pytest.raises(DataError) as error:
        records.write_converted_dataset(tmp_path / "out", name="toy", annotations=annotations,
                                        features=features.InMemoryFeatures(stored))
    message = str(error.value)
    assert "no features for 1 video(s): video_b" in message
    assert "no annotations for 1 video(s): video_extra" in message
    assert list(tmp_path.iterdir()) == []


def test_missing_videos_are_skipped_and_listed_when_asked(tmp_path):
    annotations, stored = _toy()
    del stored["video_b"]
    stored["video_extra"] = stored["video_a"]
    manifest = records.write_converted_dataset(
        tmp_path / "out", name="toy", annotations=annotations,
        features=features.InMemoryFeatures(stored), on_missing="skip")
    assert manifest["skipped_videos"] == {"missing_features": ["video_b"],
                                          "missing_annotations": ["video_extra"]}
    assert manifest["subsets"]["validation"]["videos"] == 1
    assert manifest["subsets"]["validation"]["instances"] == 2
    database = json.loads((tmp_path / "out" / "ground_truth.json").read_text())["database"]
    assert sorted(database) == ["video_a", "video_c"]


def test_a_failure_midway_leaves_no_output_directory(tmp_path):
    annotations, stored = _toy()
    stored["video_c"][0][1, 1] = np.nan  # the last video written
    with pytest.raises(DataError, match="video video_c"):
        records.write_converted_dataset(tmp_path / "out", name="toy", annotations=annotations,
                                        features=features.InMemoryFeatures(stored))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_conversion_leaves_an_earlier_one_untouched_and_a_good_one_replaces_it(tmp_path):
    annotations, stored = _toy()
    out_dir = tmp_path / "out"
    records.write_converted_dataset(out_dir, name="first", annotations=annotations,
                                    features=features.InMemoryFeatures(stored))
    before = {path.relative_to(out_dir): path.read_bytes() for path in out_dir.rglob("*")
              if path.is_file()}
    broken = dict(stored, video_b=(np.ones((0, 4)), np.ones((0, 2))))
    with pytest.raises(DataError, match="video video_b .*empty"):
        records.write_converted_dataset(out_dir, name="second", annotations=annotations,
                                        features=features.InMemoryFeatures(broken))
    assert {path.relative_to(out_dir): path.read_bytes() for path in out_dir.rglob("*")
            if path.is_file()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    records.write_converted_dataset(out_dir, name="third", annotations=annotations,
                                    features=features.InMemoryFeatures(stored))
    assert records.read_manifest(out_dir)["dataset"] == "third"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_an_existing_directory_that_is_not_a_dataset_is_never_replaced(tmp_path):
    annotations, stored = _toy()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a converted dataset"):
        records.write_converted_dataset(tmp_path / "out", name="toy", annotations=annotations,
                                        features=features.InMemoryFeatures(stored))
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"


def test_streams_of_different_widths_across_videos_are_refused(tmp_path):
    annotations, stored = _toy()
    stored["video_c"] = (np.ones((3, 7), np.float32), stored["video_c"][1])
    with pytest.raises(DataError, match="video video_c: features have D_rgb=7"):
        records.write_converted_dataset(tmp_path / "out", name="toy", annotations=annotations,
                                        features=features.InMemoryFeatures(stored))


def test_read_manifest_of_a_directory_that_is_not_a_dataset_says_so(tmp_path):
    with pytest.raises(DataError, match="is not a converted dataset"):
        records.read_manifest(tmp_path)
