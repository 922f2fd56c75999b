"""`--weights imagenet`: the Keras cache when the file is there, Keras' download when it is not.

No test touches the network: the cache is pre-filled with a file the test writes, and the failing
download goes to a closed port on localhost.
"""

import pathlib
import runpy

import numpy as np
import pytest

from tfwsar.errors import DataError
from tfwsar.extraction import backbones

REPO = pathlib.Path(__file__).resolve().parents[1]
INPUT_SIZE = 96  # The smallest MobileNetV2 size Keras has ImageNet weights for: builds in a second.
WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
UNREACHABLE = "http://127.0.0.1:9/"  # The discard port on this machine: the connection is refused.


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache in tmp_path, the /tmp fallback cache out of the way, no proxies."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(backbones, "FALLBACK_CACHE_DIRECTORY", tmp_path / "no_fallback" / "models")
    for variable in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                     "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "keras"


@pytest.fixture
def unreachable_weights_server(monkeypatch):
    monkeypatch.setattr(backbones, "_WEIGHTS_URLS",
                        {"resnet": UNREACHABLE, "mobilenet_v2": UNREACHABLE})


def test_imagenet_weights_in_the_keras_cache_are_loaded_without_a_download(keras_home, monkeypatch):
    import keras

    keras.utils.set_random_seed(1)
    cached_network = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(INPUT_SIZE, INPUT_SIZE, 3), pooling="avg")
    cached = keras_home / "models" / WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached_network.save(cached)  # Legacy HDF5, the format of Keras' own ImageNet files.

    def no_download(*args, **kwargs):
        raise AssertionError("a cached file must not be downloaded")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    keras.utils.set_random_seed(2)  # The random initialisation now differs from the cached file.
    rgb = backbones.keras_rgb_backbone("mobilenet_v2", "imagenet", input_size=INPUT_SIZE)
    assert rgb.weights == f"imagenet:{cached}"
    first_kernel = rgb.network.get_layer("Conv1").kernel.numpy()
    np.testing.assert_array_equal(first_kernel, cached_network.get_layer("Conv1").kernel.numpy())
    for loaded, written in zip(rgb.network.get_weights(), cached_network.get_weights()):
        np.testing.assert_array_equal(loaded, written)


def test_imagenet_weights_absent_from_the_cache_are_downloaded_by_keras_into_it(
        keras_home, monkeypatch):
    import keras

    requests = []

    def fake_get_file(fname, origin, cache_dir, cache_subdir, file_hash):
        requests.append((fname, origin, cache_dir, cache_subdir, file_hash))
        path = pathlib.Path(cache_dir) / cache_subdir / fname
        path.write_bytes(b"h5")
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    path = backbones.resolve_weights("resnet50", "imagenet", 224)
    file_name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert path == str(keras_home / "models" / file_name)
    (request,) = requests
    assert request[:4] == (file_name, backbones._WEIGHTS_URLS["resnet"] + file_name,
                           str(keras_home), "models")
    from keras.src.applications import resnet

    assert request[4] == resnet.WEIGHTS_HASHES["resnet50"][1]  # Keras' own hash of that file.
    assert backbones.resolve_weights("resnet50", "imagenet", 224) == path  # Cached: no second one.
    assert len(requests) == 1


def test_a_failed_download_is_one_error_saying_what_was_tried_and_leaves_nothing_behind(
        keras_home, unreachable_weights_server):
    with pytest.raises(DataError) as raised:
        backbones.resolve_weights("mobilenet_v2", "imagenet", INPUT_SIZE)
    message = str(raised.value)
    target = keras_home / "models" / WEIGHTS_FILE
    assert "\n" not in message
    assert message.startswith(f"ImageNet weights for mobilenet_v2: downloading "
                              f"{UNREACHABLE}{WEIGHTS_FILE} into {target} failed (")
    assert f"copy the file to {target.parent}/" in message and "KERAS_HOME" in message
    assert list(target.parent.iterdir()) == []


def test_command_line_with_a_failed_download_exits_with_one_line_and_writes_no_output(
        keras_home, unreachable_weights_server, tmp_path, capsys):
    pytest.importorskip("av", reason="the video extra is not installed: pip install -e '.[video]'")
    pytest.importorskip("cv2", reason="the video extra is not installed: pip install -e '.[video]'")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(b"not decoded: the weights come first")
    main = runpy.run_path(str(REPO / "tools" / "extract_features.py"))["main"]
    status = main(["--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                               "--backbone", "mobilenet_v2", "--input-size", str(INPUT_SIZE)])
    assert status == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: ImageNet weights for mobilenet_v2: downloading {UNREACHABLE}")
    assert "\n" not in error
    assert not (tmp_path / "out").exists()
    assert list((keras_home / "models").iterdir()) == []
