"""Feature sources: every layout reads back exactly what was stored, and bad features are refused."""

import h5py
import numpy as np
import pytest

from tfwsar.data import features
from tfwsar.errors import DataError


def _streams(seed, length=5, rgb_dim=3, flow_dim=2):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((length, rgb_dim)).astype(np.float32),
            rng.standard_normal((length, flow_dim)).astype(np.float32))


def _write_npy(directory, video, rgb, flow):
    for stream, values in (("rgb", rgb), ("flow", flow)):
        (directory / stream).mkdir(parents=True, exist_ok=True)
        np.save(directory / stream / f"{video}.npy", values)


def _write_wtalc(tmp_path, arrays, names):
    joint = np.empty(len(arrays), dtype=object)
    for position, array in enumerate(arrays):
        joint[position] = array
    npy_path = tmp_path / "Toy-I3D-JOINTFeatures.npy"
    np.save(npy_path, joint, allow_pickle=True)
    annotations_dir = tmp_path / "Toy-Annotations"
    annotations_dir.mkdir()
    np.save(annotations_dir / "videoname.npy", np.array([name.encode() for name in names]))
    return npy_path, annotations_dir


def test_per_video_npy_reads_back_the_stored_arrays_exactly(tmp_path):
    stored = {"video_b": _streams(1), "video_a": _streams(2, length=7)}
    for video, (rgb, flow) in stored.items():
        _write_npy(tmp_path, video, rgb, flow.astype(np.float64))
    source = features.PerVideoNpyFeatures(tmp_path)
    assert source.videos() == ["video_a", "video_b"]
    for video, (rgb, flow) in stored.items():
        read_rgb, read_flow = source.read(video)
        assert read_rgb.dtype == np.float32 and read_flow.dtype == np.float32
        np.testing.assert_array_equal(read_rgb, rgb)
        np.testing.assert_array_equal(read_flow, flow)


def test_per_video_npy_names_the_missing_stream_file(tmp_path):
    rgb, flow = _streams(0)
    _write_npy(tmp_path, "video_a", rgb, flow)
    (tmp_path / "flow" / "video_a.npy").unlink()
    with pytest.raises(DataError, match=r"video video_a: .*flow/video_a\.npy is missing"):
        features.PerVideoNpyFeatures(tmp_path).read("video_a")


def test_wtalc_joint_features_split_in_half_by_default(tmp_path):
    joint = [np.arange(24, dtype=np.float64).reshape(4, 6), np.ones((2, 6), np.float32)]
    npy_path, annotations_dir = _write_wtalc(tmp_path, joint, ["video_x", "video_y"])
    source = features.WtalcFeatures(npy_path, annotations_dir)
    assert source.videos() == ["video_x", "video_y"]
    rgb, flow = source.read("video_x")
    np.testing.assert_array_equal(rgb, joint[0][:, :3].astype(np.float32))
    np.testing.assert_array_equal(flow, joint[0][:, 3:].astype(np.float32))


def test_wtalc_rgb_dim_moves_the_stream_boundary(tmp_path):
    joint = [np.arange(20, dtype=np.float32).reshape(4, 5)]
    npy_path, annotations_dir = _write_wtalc(tmp_path, joint, ["video_x"])
    with pytest.raises(DataError, match="odd width 5"):
        features.WtalcFeatures(npy_path, annotations_dir).read("video_x")
    rgb, flow = features.WtalcFeatures(npy_path, annotations_dir, rgb_dim=2).read("video_x")
    assert rgb.shape == (4, 2) and flow.shape == (4, 3)
    np.testing.assert_array_equal(flow, joint[0][:, 2:])


def test_wtalc_features_must_align_with_the_video_names(tmp_path):
    npy_path, annotations_dir = _write_wtalc(tmp_path, [np.ones((2, 4))], ["video_x", "video_y"])
    with pytest.raises(DataError, match=r"holds 1 videos but .*videoname\.npy names 2"):
        features.WtalcFeatures(npy_path, annotations_dir).videos()


def test_hdf5_group_with_rgb_and_flow_datasets_reads_back_exactly(tmp_path):
    path = tmp_path / "features.h5"
    stored = {"v_one": _streams(3, length=6), "v_two": _streams(4, length=3)}
    with h5py.File(path, "w") as handle:
        for video, (rgb, flow) in stored.items():
            handle.create_group(video).create_dataset("rgb", data=rgb)
            handle[video].create_dataset("flow", data=flow.astype(np.float64))
    source = features.Hdf5Features(path)
    assert source.videos() == ["v_one", "v_two"]
    for video, (rgb, flow) in stored.items():
        read_rgb, read_flow = source.read(video)
        np.testing.assert_array_equal(read_rgb, rgb)
        np.testing.assert_array_equal(read_flow, flow)
        assert read_flow.dtype == np.float32


def test_hdf5_single_dataset_per_video_is_duplicated_or_split(tmp_path):
    """ActivityNet C3D style (group/c3d_features) and a top-level dataset per video."""
    path = tmp_path / "c3d.hdf5"
    c3d = np.arange(32, dtype=np.float32).reshape(4, 8)
    with h5py.File(path, "w") as handle:
        handle.create_group("v_abc").create_dataset("c3d_features", data=c3d)
        handle.create_dataset("v_top", data=c3d + 1)
    duplicated = features.Hdf5Features(path)
    assert duplicated.videos() == ["v_abc", "v_top"]
    rgb, flow = duplicated.read("v_abc")
    np.testing.assert_array_equal(rgb, c3d)
    np.testing.assert_array_equal(flow, c3d)
    rgb, flow = features.Hdf5Features(path, single_dataset="split").read("v_top")
    np.testing.assert_array_equal(rgb, c3d[:, :4] + 1)
    np.testing.assert_array_equal(flow, c3d[:, 4:] + 1)


def test_hdf5_group_with_unrecognised_datasets_is_refused(tmp_path):
    path = tmp_path / "features.h5"
    with h5py.File(path, "w") as handle:
        group = handle.create_group("v_abc")
        group.create_dataset("a", data=np.ones((2, 2)))
        group.create_dataset("b", data=np.ones((2, 2)))
    with pytest.raises(DataError, match=r"group /v_abc of .*features\.h5 holds datasets \[a, b\]"):
        features.Hdf5Features(path).read("v_abc")


def test_hdf5_nan_names_the_video_and_the_dataset(tmp_path):
    path = tmp_path / "features.h5"
    rgb, flow = _streams(5)
    rgb[2, 1] = np.nan
    with h5py.File(path, "w") as handle:
        handle.create_group("v_bad").create_dataset("rgb", data=rgb)
        handle["v_bad"].create_dataset("flow", data=flow)
    with pytest.raises(DataError, match=r"video v_bad \(.*features\.h5:/v_bad.*NaN or inf .*segment 2"):
        features.Hdf5Features(path).read("v_bad")


def test_in_memory_features_read_back_what_was_given():
    rgb, flow = _streams(6)
    source = features.InMemoryFeatures({"clip": (rgb, flow)})
    assert source.videos() == ["clip"]
    np.testing.assert_array_equal(source.read("clip")[0], rgb)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_features_name_the_video_and_the_file(tmp_path, bad_value):
    rgb, flow = _streams(7)
    flow[4, 0] = bad_value
    _write_npy(tmp_path, "video_nan", rgb, flow)
    with pytest.raises(DataError) as error:
        features.PerVideoNpyFeatures(tmp_path).read("video_nan")
    message = str(error.value)
    assert "video video_nan" in message and "flow/video_nan.npy" in message
    assert "flow features contain NaN or inf (first at segment 4 of 5)" in message


def test_empty_features_are_refused():
    source = features.InMemoryFeatures({"empty": (np.zeros((0, 3)), np.zeros((0, 3)))})
    with pytest.raises(DataError, match=r"video empty .*rgb features are empty \(T = 0\)"):
        source.read("empty")


def test_lengths_differing_by_more_than_one_segment_are_refused():
    rgb, _ = _streams(8, length=10)
    _, flow = _streams(8, length=8)
    source = features.InMemoryFeatures({"mismatch": (rgb, flow)})
    with pytest.raises(DataError, match="video mismatch .*RGB has 10 segments but flow has 8"):
        source.read("mismatch")


def test_lengths_differing_by_one_segment_are_trimmed_to_the_shorter():
    rgb, _ = _streams(9, length=10)
    _, flow = _streams(9, length=9)
    read_rgb, read_flow = features.InMemoryFeatures({"video": (rgb, flow)}).read("video")
    assert read_rgb.shape == (9, 3) and read_flow.shape == (9, 2)
    np.testing.assert_array_equal(read_rgb, rgb[:9])


def test_features_that_are_not_two_dimensional_are_refused():
    source = features.InMemoryFeatures({"flat": (np.ones(5), np.ones((5, 2)))})
    with pytest.raises(DataError, match=r"video flat .*rgb features have shape \(5,\); expected \[T, D\]"):
        source.read("flat")


def test_open_features_recognises_each_layout(tmp_path):
    rgb, flow = _streams(10)
    _write_npy(tmp_path / "npy", "video", rgb, flow)
    with h5py.File(tmp_path / "features.h5", "w") as handle:
        handle.create_dataset("video", data=rgb)
    npy_path, _ = _write_wtalc(tmp_path, [np.ones((2, 4))], ["video"])
    assert isinstance(features.open_features(tmp_path / "npy"), features.PerVideoNpyFeatures)
    assert isinstance(features.open_features(tmp_path / "features.h5"), features.Hdf5Features)
    wtalc = features.open_features(npy_path)  # finds Toy-Annotations/ beside the file
    assert isinstance(wtalc, features.WtalcFeatures) and wtalc.videos() == ["video"]
    with pytest.raises(DataError, match="do not exist"):
        features.open_features(tmp_path / "absent")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="has no rgb/ and flow/ folders"):
        features.open_features(tmp_path / "empty_dir")
