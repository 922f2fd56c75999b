"""Feature extraction: synthetic PyAV videos → rgb/ + flow/ features that the converters read."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

av = pytest.importorskip("av", reason="the video extra is not installed: pip install -e '.[video]'")
cv2 = pytest.importorskip("cv2", reason="the video extra is not installed: pip install -e '.[video]'")

from tfwsar.errors import DataError  # noqa: E402
from tfwsar.extraction import backbones, extract, flow, video  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def write_video(path, seconds=2.0, fps=30, size=(96, 128), moving=True, ramp=False, codec="mpeg4"):
    """A video of a red box sliding right 3 px/frame (or standing still) and a fixed green box.

    With `ramp`, frame i is instead uniformly grey at level 4 * i, so a decoded frame tells its index.
    """
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * fps)):
            image = np.full((height, width, 3), 4 * index if ramp else 40, np.uint8)
            if ramp:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
                continue
            left = 24 + (3 * index if moving else 0) % (width - 56)
            image[30:62, left:left + 28] = (230, 60, 60)
            image[70:86, 8:28] = (60, 200, 60)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def textured_frames(shift):
    """Two 64x64 RGB frames: a textured 20x20 square moving `shift` px right over a still textured
    background (texture everywhere, so the flow is determined everywhere, for TV-L1 too)."""
    random = np.random.default_rng(0)
    background = cv2.GaussianBlur(random.integers(0, 255, (64, 64, 3), dtype=np.uint8), (3, 3), 0)
    texture = cv2.GaussianBlur(random.integers(0, 255, (20, 20, 3), dtype=np.uint8), (3, 3), 0)
    frames = []
    for left in (20, 20 + shift):
        frame = background.copy()
        frame[22:42, left:left + 20] = texture
        frames.append(frame)
    return frames


# Decoding and segmenting.

def test_missing_video_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # Makes `import av` raise ImportError.
    with pytest.raises(ImportError, match=r"pip install -e '\.\[video\]'"):
        video.import_video_extra("av")


@pytest.mark.slow
def test_the_extraction_package_imports_without_the_video_extra():
    code = ("import sys; sys.modules['av'] = sys.modules['cv2'] = None;"  # Blocks both imports.
            "import tfwsar.extraction.extract, tfwsar.extraction.flow, tfwsar.extraction.video;"
            "print('imported')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["imported"]


def test_find_videos_searches_recursively_for_video_extensions_only(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/one.mp4", "two.AVI", "three.mkv", "four.webm", "notes.txt", "five.npy"):
        (tmp_path / name).write_bytes(b"x")
    assert [path.name for path in video.find_videos(tmp_path)] == [
        "one.mp4", "four.webm", "three.mkv", "two.AVI"]  # Sorted by path: a/one.mp4 first.


def test_find_videos_rejects_two_videos_with_the_same_stem(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "clip.mp4").write_bytes(b"x")
    (tmp_path / "clip.avi").write_bytes(b"x")
    with pytest.raises(DataError, match="clip"):
        video.find_videos(tmp_path)


@pytest.mark.parametrize("source_fps", [30, 10])
def test_reader_resamples_to_the_target_rate_and_crops_to_the_input_size(tmp_path, source_fps):
    path = write_video(tmp_path / "clip.mkv", seconds=2.0, fps=source_fps, ramp=True,
                       codec="ffv1")  # Lossless, so grey levels survive.
    with video.VideoReader(path, fps=25, short_side=73, crop_size=64) as reader:
        frames = list(reader.frames())
        assert reader.source_fps == pytest.approx(source_fps)
        assert reader.duration == pytest.approx(2.0, abs=0.05)
    assert len(frames) == 50 == reader.num_frames  # 2 s at 25 fps, whatever the source rate.
    assert frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    source_indices = [round(frame.mean() / 4) for frame in frames]
    # Output frame k (at k / 25 s) shows the source frame on screen then: 30 fps drops frames,
    # 10 fps repeats them.
    assert source_indices == [k * source_fps // 25 for k in range(50)]


def test_reader_reports_an_unreadable_file_by_name(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(os.urandom(4000))
    with pytest.raises(DataError, match="broken.mp4"):
        video.VideoReader(path)


def test_split_segments_keeps_whole_segments_with_the_next_frame_for_flow():
    segments = list(video.split_segments(range(35), stride=16))
    assert [(segment[0], segment[-1], following) for segment, following in segments] == [
        (0, 15, 16), (16, 31, 32)]  # T = floor(35 / 16); frames 32-34 are dropped.
    assert list(video.split_segments(range(32), stride=16))[-1][1] is None
    (short, following), = video.split_segments(range(5), stride=16)
    assert short == [0, 1, 2, 3, 4] + [4] * 11 and following is None


def test_segment_sampling_is_centred():
    assert extract.sample_indices(16, 1) == [8]
    assert extract.sample_indices(16, 4) == [2, 6, 10, 14]
    assert flow.window_indices(16, 5) == [6, 7, 8, 9, 10]
    with pytest.raises(DataError):
        flow.window_indices(4, 5)


# Optical flow.

def test_auto_flow_algorithm_is_tvl1_exactly_when_opencv_has_it():
    expected = "tvl1" if flow.tvl1_available() else "farneback"
    assert flow.OpticalFlow("auto").algorithm == expected
    assert flow.OpticalFlow("farneback").algorithm == "farneback"
    if not flow.tvl1_available():
        with pytest.raises(DataError, match="opencv-contrib-python-headless"):
            flow.resolve_algorithm("tvl1")


def test_flow_is_large_on_the_moving_square_and_near_zero_elsewhere():
    optical_flow = flow.OpticalFlow("auto")
    previous_frame, next_frame = textured_frames(shift=2)
    field = optical_flow(previous_frame, next_frame)
    assert field.shape == (64, 64, 2) and field.dtype == np.float32
    inside = field[26:38, 26:38]
    assert np.median(inside[..., 0]) == pytest.approx(2.0, abs=0.5)  # 2 px to the right.
    assert np.abs(np.median(inside[..., 1])) < 0.3
    background = np.linalg.norm(np.concatenate([field[:10], field[54:]]), axis=-1)
    assert background.mean() < 0.05 and np.percentile(background, 95) < 0.2


def test_flow_between_identical_frames_is_zero():
    frame = textured_frames(shift=0)[0]
    assert np.abs(flow.OpticalFlow("auto")(frame, frame)).max() < 0.1


def test_flow_images_clip_and_scale_to_uint8_with_zero_motion_grey():
    field = np.array([0.0, 20.0, -20.0, 35.0, -35.0, 10.0], np.float32)
    assert flow.flow_to_image(field, bound=20).tolist() == [128, 255, 0, 255, 0, 191]


def test_segment_flows_at_the_end_of_a_video_reuse_the_previous_pair():
    optical_flow = flow.OpticalFlow("farneback")
    still, moved = textured_frames(shift=2)
    segment = [still, moved]
    flows = flow.segment_flows(optical_flow, segment, None, [0, 1])
    np.testing.assert_array_equal(flows[0], flows[1])
    assert np.abs(flows[0]).max() > 1.0


# Backbones.

def test_cross_modality_initialisation_averages_the_rgb_filters_over_flow_channels():
    rgb = backbones.keras_rgb_backbone("tiny", weights="none", input_size=32)
    flow_net = backbones.keras_flow_backbone("tiny", rgb, input_size=32, flow_window=3)
    rgb_kernel, rgb_bias = rgb.network.get_layer("conv1").get_weights()
    flow_kernel, flow_bias = flow_net.network.get_layer("conv1").get_weights()
    assert flow_kernel.shape == (3, 3, 6, 16)
    for channel in range(6):
        np.testing.assert_allclose(flow_kernel[:, :, channel], rgb_kernel.mean(axis=2), rtol=1e-6)
    np.testing.assert_array_equal(flow_bias, rgb_bias)
    for name in ("conv2", "conv3"):
        for rgb_weight, flow_weight in zip(rgb.network.get_layer(name).get_weights(),
                                           flow_net.network.get_layer(name).get_weights()):
            np.testing.assert_array_equal(rgb_weight, flow_weight)
    assert "conv1" in flow_net.weights and flow_net.channels == 6


def test_frames_backbone_averages_the_frames_of_a_segment():
    rgb = backbones.keras_rgb_backbone("tiny", weights="none", input_size=32)
    frames = np.random.default_rng(1).integers(0, 255, (2, 3, 32, 32, 3), dtype=np.uint8)
    together = rgb(frames)
    one_by_one = np.stack([rgb(frames[:, [index]]) for index in range(3)]).mean(axis=0)
    assert together.shape == (2, 64) and together.dtype == np.float32
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)


def test_imagenet_weights_are_taken_from_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"h5")
    assert backbones.resolve_weights("mobilenet_v2", "imagenet", 224) == str(cached)
    assert backbones.resolve_weights("resnet50", "none", 224) is None
    with pytest.raises(DataError, match="no such weights file"):
        backbones.resolve_weights("resnet50", str(tmp_path / "absent.h5"), 224)
    with pytest.raises(DataError, match="no ImageNet weights"):
        backbones.resolve_weights("tiny", "imagenet", 64)


def test_weights_from_a_file_are_loaded_into_the_rgb_network_and_seed_the_flow_network(tmp_path):
    trained = backbones.build_keras_network("tiny", (64, 64, 3))
    path = tmp_path / "tiny.weights.h5"
    trained.save_weights(path)
    rgb, flow_net = backbones.build_backbones("tiny", weights=str(path), seed=123)
    for expected, loaded in zip(trained.get_weights(), rgb.network.get_weights()):
        np.testing.assert_array_equal(expected, loaded)
    np.testing.assert_allclose(flow_net.network.get_layer("conv3").get_weights()[0],
                               trained.get_layer("conv3").get_weights()[0])
    assert rgb.weights == str(path)


def save_clip_model(path, channels, dims=7):
    """A SavedModel mapping clips [N, L, H, W, C] in [-1, 1] to [N, dims] (mean colour → dense)."""
    import tensorflow as tf

    class ClipModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(tf.random.stateless_normal((channels, dims), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, channels], tf.float32)])
        def serve(self, clips):
            return {"features": tf.matmul(tf.reduce_mean(clips, axis=[1, 2, 3]), self.kernel)}

    model = ClipModel()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return f"saved_model:{path}"


def save_frames_model(path, channels, dims=5):
    """A SavedModel mapping frames [N, 32, 32, C] to a spatial map [N, 4, 4, dims]."""
    import tensorflow as tf

    class FramesModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(tf.random.stateless_normal((channels, dims), seed=(3, 4)))

        @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, channels], tf.float32)])
        def serve(self, frames):
            pooled = tf.nn.avg_pool2d(frames, 8, 8, "VALID")
            return {"output_0": tf.einsum("nhwc,cd->nhwd", pooled, self.kernel)}

    model = FramesModel()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return f"saved_model:{path}"


def test_saved_model_backbones_take_clips_or_frames_from_their_signature(tmp_path):
    rgb_spec = save_clip_model(tmp_path / "i3d_rgb", channels=3)
    flow_spec = save_frames_model(tmp_path / "flow_frames", channels=6)
    rgb, flow_net = backbones.build_backbones(rgb_spec, flow_backbone=flow_spec, input_size=32,
                                              stride=8)
    assert (rgb.kind, rgb.channels, rgb.feature_dim) == ("clip", 3, 7)
    assert (flow_net.kind, flow_net.channels, flow_net.flow_window, flow_net.feature_dim) == (
        "frames", 6, 3, 5)
    clips = np.full((2, 8, 32, 32, 3), 255, np.uint8)  # Scaled to 1.0 everywhere.
    np.testing.assert_allclose(rgb(clips), np.ones((2, 3)) @ rgb._keep_alive.kernel.numpy(), rtol=1e-5)
    with pytest.raises(DataError, match="--flow-backbone"):
        backbones.build_backbones(rgb_spec, input_size=32)
    with pytest.raises(DataError, match="channels"):
        backbones.saved_model_backbone(rgb_spec, "flow", 32, 8)  # A 3-channel clip net for flow.


# End to end.

@pytest.fixture
def video_directory(tmp_path):
    videos = tmp_path / "videos"
    (videos / "static_ones").mkdir(parents=True)
    write_video(videos / "moving.mp4", seconds=2.0, fps=30)
    write_video(videos / "static_ones" / "static.avi", seconds=2.0, fps=25, moving=False)
    (videos / "corrupt.webm").write_bytes(os.urandom(6000))
    return videos


@pytest.mark.slow
def test_extraction_writes_features_the_converter_accepts(video_directory, tmp_path, capsys):
    out = tmp_path / "features"
    status = load_tool().main(["--videos", str(video_directory), "--out", str(out),
                               "--backbone", "tiny", "--weights", "none", "--batch-size", "2"])
    assert status == 1  # The corrupt video failed; the others were extracted.
    stderr = capsys.readouterr().err
    assert "corrupt" in stderr and "extracted 2" in stderr and "failed 1" in stderr

    metadata = json.loads((out / "extraction.json").read_text())
    assert metadata["flow_algorithm"] == ("tvl1" if flow.tvl1_available() else "farneback")
    assert metadata["feature_rate"] == 1.5625 and metadata["fps"] == 25.0 and metadata["stride"] == 16
    assert metadata["backbone"] == "tiny" and metadata["weights"] == "none"
    assert metadata["feature_dims"] == {"rgb": 64, "flow": 64}
    assert set(metadata["failed"]) == {"corrupt"} and set(metadata["videos"]) == {"moving", "static"}
    assert metadata["videos"]["moving"]["num_frames"] == 50  # 2 s of 30 fps resampled to 25 fps.
    # Flow is non-zero where things move and near zero on the static video.
    assert metadata["videos"]["moving"]["flow_magnitude"] > 0.3
    assert metadata["videos"]["static"]["flow_magnitude"] < 0.1
    assert (out / "video_info.csv").read_text().splitlines() == [
        "video,duration", "moving,2.0", "static,2.0"]
    assert sorted(path.name for path in out.rglob("*.tmp")) == []

    for stream in ("rgb", "flow"):
        for stem in ("moving", "static"):
            features = np.load(out / stream / f"{stem}.npy")
            assert features.shape == (3, 64) and features.dtype == np.float32  # T = 50 // 16.
            assert np.isfinite(features).all()
    moving_flow = np.load(out / "flow" / "moving.npy")
    static_flow = np.load(out / "flow" / "static.npy")
    assert np.abs(moving_flow - static_flow).max() > 1e-3

    from tfwsar.data.features import PerVideoNpyFeatures

    source = PerVideoNpyFeatures(out)
    assert source.videos() == ["moving", "static"]
    rgb, flow_features = source.read("moving")
    assert rgb.shape[0] == flow_features.shape[0] == 3


@pytest.mark.slow
def test_rerun_skips_finished_videos_and_recomputes_deleted_ones_identically(video_directory, tmp_path):
    (video_directory / "corrupt.webm").unlink()
    out = tmp_path / "features"
    options = {"backbone": "tiny", "weights": "none", "input_size": 32, "flow_window": 3}
    first = extract.extract_features(video_directory, out, **options)
    assert sorted(first.extracted) == ["moving", "static"] and first.failed == {}
    before = np.load(out / "rgb" / "moving.npy")
    static_time = (out / "rgb" / "static.npy").stat().st_mtime_ns
    (out / "flow" / "moving.npy").unlink()  # As if interrupted between the two files.

    second = extract.extract_features(video_directory, out, **options)
    assert second.extracted == ["moving"] and second.skipped == ["static"]
    assert (out / "rgb" / "static.npy").stat().st_mtime_ns == static_time
    np.testing.assert_allclose(np.load(out / "rgb" / "moving.npy"), before, rtol=1e-5, atol=1e-6)
    assert set(json.loads((out / "extraction.json").read_text())["videos"]) == {"moving", "static"}

    with pytest.raises(DataError, match="stride"):
        extract.extract_features(video_directory, out, stride=8, **options)


@pytest.mark.slow
def test_clip_backbones_receive_every_frame_and_flow_of_a_segment(video_directory, tmp_path):
    (video_directory / "corrupt.webm").unlink()
    rgb_spec = save_clip_model(tmp_path / "i3d_rgb", channels=3, dims=4)
    flow_spec = save_clip_model(tmp_path / "i3d_flow", channels=2, dims=6)
    out = tmp_path / "features"
    summary = extract.extract_features(video_directory, out, backbone=rgb_spec,
                                       flow_backbone=flow_spec, input_size=32, stride=8)
    assert summary.failed == {}
    assert np.load(out / "rgb" / "moving.npy").shape == (6, 4)  # T = 50 // 8.
    assert np.load(out / "flow" / "static.npy").shape == (6, 6)
    metadata = json.loads((out / "extraction.json").read_text())
    assert metadata["backbones"]["rgb"]["kind"] == "clip" and metadata["weights"] == "saved_model"
    assert metadata["feature_rate"] == 25 / 8


def test_a_decoding_error_inside_the_tf_data_pipeline_keeps_its_type_and_message(tmp_path,
                                                                                 monkeypatch):
    path = write_video(tmp_path / "clip.mp4", seconds=2.0)
    original_frames = video.VideoReader.frames

    def failing_frames(reader):
        for index, frame in enumerate(original_frames(reader)):
            if index == 20:
                raise DataError(f"{reader.path}: damaged packet at frame 20")
            yield frame

    monkeypatch.setattr(video.VideoReader, "frames", failing_frames)
    rgb, flow_net = backbones.build_backbones("tiny", weights="none", input_size=32, flow_window=3)
    with pytest.raises(DataError, match="damaged packet at frame 20"):
        extract.extract_video(path, rgb, flow_net, flow.OpticalFlow("farneback"), batch_size=1)


def load_tool():
    """tools/extract_features.py as a module."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import extract_features
    finally:
        sys.path.remove(str(REPO / "tools"))
    return extract_features


def test_command_line_reports_a_missing_video_directory(tmp_path, capsys):
    status = load_tool().main(["--videos", str(tmp_path / "absent"), "--out", str(tmp_path / "out"),
                               "--backbone", "tiny", "--weights", "none"])
    assert status == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'absent'}: not a directory"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_raw_videos_become_a_converted_thumos14_dataset(tmp_path):
    """The whole path inside tfwsar: videos → extract_features → convert_thumos14 → TFRecords."""
    converter_path = REPO / "tools" / "convert_thumos14.py"
    annotations = REPO / "tfwsar" / "resources" / "thumos14"
    if not converter_path.is_file() or not annotations.is_dir():
        pytest.skip("the THUMOS14 converter or its packaged annotations are absent")
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("video_validation_0000051", "video_test_0000004"):  # Both annotated videos.
        write_video(videos / f"{name}.mp4", seconds=3.0, fps=30)
    features = tmp_path / "features"
    summary = extract.extract_features(videos, features, backbone="tiny", weights="none",
                                       input_size=32, flow_window=3)
    assert summary.failed == {}

    sys.path.insert(0, str(REPO / "tools"))
    try:
        import convert_thumos14
    finally:
        sys.path.remove(str(REPO / "tools"))
    status = convert_thumos14.main(["--annotations", str(annotations), "--features", str(features),
                                    "--video-info", str(features / "video_info.csv"),
                                    "--out", str(tmp_path / "dataset"), "--skip-missing"])
    assert not status
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert manifest["feature_rate"] == 1.5625
    assert manifest["feature_dims"] == {"rgb": 64, "flow": 64}
    assert {subset: (entry["videos"], entry["segments"])
            for subset, entry in manifest["subsets"].items()} == {
                "validation": (1, 4), "test": (1, 4)}  # 3 s at 25 fps = 75 frames → T = 4.
