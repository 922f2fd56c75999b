"""RGB and flow backbones: a network that maps one segment's frames to one feature vector.

Choices (`--backbone`):
- `resnet101` (default, as in TSRNet), `resnet50`, `mobilenet_v2`: keras.applications without the
  classifier, global-average pooled (2048, 2048, 1280 dims);
- `tiny`: three strided convolutions + global pooling (64 dims), for tests and CPU smoke runs;
- `saved_model:PATH`: any TensorFlow SavedModel whose serving signature maps frames
  `[N, H, W, C]` or a clip `[N, L, H, W, C]` (float32 in [-1, 1], the I3D convention) to features
  (any extra axes are averaged away), e.g. a locally stored I3D RGB or flow network.

Weights (`--weights`): `imagenet` loads the Keras application's ImageNet file from the Keras cache
(`$KERAS_HOME/models`, default `~/.keras/models`); a file not there yet is downloaded into it by
Keras' own downloader (`keras.utils.get_file`, checked against Keras' hash where Keras has one),
and a download that fails is one error naming the URL, the cache file and how to place it by hand;
`none` keeps the random initialisation (seeded, so re-runs agree); a file path is loaded with
`model.load_weights`.

Flow network: the same architecture with a first convolution taking the `2 · window` stacked flow
channels, initialised from the RGB network by cross-modality initialisation (Wang et al., TSN 2016):
the first-layer kernel is averaged over its 3 RGB input channels and the average is replicated over
the flow channels, `W_flow[:, :, c, :] = (1/3) Σ_k W_rgb[:, :, k, :]` for every flow channel c;
every later layer is copied unchanged.

Input scaling matches what the RGB weights were trained with: ResNets use Caffe scaling (RGB→BGR
minus the ImageNet mean), so flow images are centred (`x − 127.5`); MobileNetV2, the tiny net and
SavedModels use `x / 127.5 − 1` for both streams.
"""

import os
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from tfwsar.errors import DataError

KERAS_BACKBONES = ("resnet101", "resnet50", "mobilenet_v2", "tiny")
SAVED_MODEL_PREFIX = "saved_model:"

# Keras falls back to this cache when the home directory is not writable.
FALLBACK_CACHE_DIRECTORY = pathlib.Path("/tmp/.keras/models")
_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
_MOBILENET_V2_ROWS = (96, 128, 160, 192, 224)
_WEIGHTS_URLS = {
    "resnet": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
    "mobilenet_v2": "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
}


def default_input_size(backbone):
    """The square input side a backbone is built for (224, or 64 for `tiny`)."""
    return 64 if backbone == "tiny" else 224


def keras_cache_directory():
    """Where Keras keeps downloaded application weights: `$KERAS_HOME/models` or `~/.keras/models`."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return pathlib.Path(home) / "models"


def imagenet_weights_file(backbone, input_size):
    """File name of the no-top ImageNet weights Keras uses for `backbone` at `input_size`."""
    if backbone in ("resnet101", "resnet50"):
        return f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if backbone == "mobilenet_v2":
        rows = input_size if input_size in _MOBILENET_V2_ROWS else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    raise DataError(f"backbone {backbone!r} has no ImageNet weights; use --weights none or a file")


def resolve_weights(backbone, weights, input_size):
    """The weights file to load for `weights` (imagenet | none | PATH), or None for random weights.

    `imagenet` takes the file from the Keras cache, downloading it there first if it is absent.

    Raises:
      DataError: the ImageNet download failed, or no such file.
    """
    if weights is None or weights == "none":
        return None
    if weights == "imagenet":
        file_name = imagenet_weights_file(backbone, input_size)
        candidates = [keras_cache_directory() / file_name, FALLBACK_CACHE_DIRECTORY / file_name]
        for candidate in candidates:
            if candidate.is_file():
                return str(candidate)
        return download_imagenet_weights(backbone, file_name, candidates[0])
    path = pathlib.Path(weights)
    if not path.is_file():
        raise DataError(f"{weights}: no such weights file (expected imagenet, none or a file path)")
    return str(path)


def download_imagenet_weights(backbone, file_name, target):
    """Downloads `file_name` into the cache file `target` with Keras' downloader; returns its path.

    A failure leaves nothing behind in the cache.

    Raises:
      DataError: one line saying what was tried (URL, cache file, the reason) and how to place the
        file by hand.
    """
    import keras

    url = _WEIGHTS_URLS["mobilenet_v2" if backbone == "mobilenet_v2" else "resnet"] + file_name
    file_hash = None
    if backbone.startswith("resnet"):
        from keras.src.applications import resnet  # The hashes Keras checks its own downloads with.

        file_hash = resnet.WEIGHTS_HASHES[backbone][1]
    try:
        # An absent cache directory would send keras.utils.get_file to /tmp/.keras instead.
        target.parent.mkdir(parents=True, exist_ok=True)
        return keras.utils.get_file(file_name, url, cache_dir=str(target.parent.parent),
                                    cache_subdir=target.parent.name, file_hash=file_hash)
    except Exception as error:  # URL, HTTP, socket, OS and hash errors alike.
        target.unlink(missing_ok=True)  # A download that failed its hash check stays otherwise.
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(
            f"ImageNet weights for {backbone}: downloading {url} into {target} failed ({reason}). "
            f"Without network, fetch that URL on a machine with internet and copy the file to "
            f"{target.parent}/ (set KERAS_HOME to use another cache), or pass --weights PATH / "
            "--weights none") from error


def build_keras_network(backbone, input_shape, weights_path=None):
    """A global-pooled keras.applications network (no classifier) `[N, H, W, C] → [N, D]`."""
    with warnings.catch_warnings():
        # Flow networks take 2 · window channels on purpose; Keras warns about anything but 1 or 3.
        warnings.filterwarnings("ignore", message=".*usually expects 1 or 3 input channels")
        return _build_keras_network(backbone, input_shape, weights_path)


def _build_keras_network(backbone, input_shape, weights_path):
    import keras  # Keras 3; imported here so that importing this module stays cheap.

    if backbone == "resnet101":
        return keras.applications.ResNet101(include_top=False, weights=weights_path,
                                            input_shape=input_shape, pooling="avg")
    if backbone == "resnet50":
        return keras.applications.ResNet50(include_top=False, weights=weights_path,
                                           input_shape=input_shape, pooling="avg")
    if backbone == "mobilenet_v2":
        return keras.applications.MobileNetV2(include_top=False, weights=weights_path,
                                              input_shape=input_shape, pooling="avg")
    if backbone == "tiny":
        inputs = keras.Input(shape=input_shape, name="frames")
        x = inputs
        for index, filters in enumerate((16, 32, 64), start=1):
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                    name=f"conv{index}")(x)
        outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        model = keras.Model(inputs, outputs, name="tiny")
        if weights_path is not None:
            model.load_weights(weights_path)
        return model
    raise DataError(f"unknown backbone {backbone!r}; choose one of {', '.join(KERAS_BACKBONES)} "
                    f"or {SAVED_MODEL_PREFIX}PATH")


def cross_modality_initialise(rgb_network, flow_network):
    """Copies `rgb_network`'s weights into `flow_network` (same architecture, more input channels).

    The first convolution whose input channels differ gets the TSN cross-modality kernel:
    `W_flow[..., c, :] = mean_k W_rgb[..., k, :]` for every flow input channel c. All other
    weights are copied as they are.

    Returns:
      The name of the layer whose kernel was averaged.
    """
    rgb_layers, flow_layers = rgb_network.layers, flow_network.layers
    if len(rgb_layers) != len(flow_layers):
        raise DataError(f"{rgb_network.name} and {flow_network.name} differ in architecture")
    averaged_layer = None
    for rgb_layer, flow_layer in zip(rgb_layers, flow_layers):
        rgb_weights, flow_weights = rgb_layer.get_weights(), flow_layer.get_weights()
        if len(rgb_weights) != len(flow_weights):
            raise DataError(f"layers {rgb_layer.name} and {flow_layer.name} differ in weights")
        converted = []
        for rgb_weight, flow_weight in zip(rgb_weights, flow_weights):
            if rgb_weight.shape == flow_weight.shape:
                converted.append(rgb_weight)
            elif (averaged_layer is None and rgb_weight.ndim == 4
                  and rgb_weight.shape[:2] == flow_weight.shape[:2]
                  and rgb_weight.shape[3] == flow_weight.shape[3]):
                # Kernel [kh, kw, in, out]: average over the RGB channels, replicate over flow ones.
                mean = rgb_weight.mean(axis=2, keepdims=True)
                converted.append(np.repeat(mean, flow_weight.shape[2], axis=2))
                averaged_layer = flow_layer.name
            else:
                raise DataError(f"layer {flow_layer.name}: weight shape {flow_weight.shape} does not "
                                f"match {rgb_weight.shape} beyond the first convolution")
        if converted:
            flow_layer.set_weights(converted)
    if averaged_layer is None:
        raise DataError(f"{flow_network.name}: no first convolution with different input channels")
    return averaged_layer


def _reduce_to_vectors(outputs):
    """[N, ..., D] → [N, D] by averaging every axis between the first and the last."""
    rank = outputs.shape.rank
    if rank is None or rank < 2:
        raise DataError(f"backbone output must be at least [N, D], got shape {outputs.shape}")
    if rank > 2:
        outputs = tf.reduce_mean(outputs, axis=list(range(1, rank - 1)))
    return outputs


class Backbone:
    """A network mapping one segment's frames to a feature vector, with its input contract.

    Calling it maps uint8 `[B, N, H, W, C]` (N frames of each of B segments) to float32 `[B, D]`:
    a `frames` network is applied to each of the N frames and the N vectors are averaged; a `clip`
    network takes the N frames as one clip.

    Attributes:
      name: `resnet101`, ..., or `saved_model:PATH`.
      modality: `rgb` or `flow`.
      kind: `frames` or `clip`.
      input_size: square side H = W.
      channels: C (3 for RGB; 2 · window stacked flow channels for `frames` flow; 2 for `clip` flow).
      flow_window: flow fields stacked per segment (`frames` flow networks), else None.
      scaling: `caffe` or `tf` (see the module docstring).
      weights: what was loaded (`imagenet:<file>`, `none`, a path, or how the flow net was initialised).
      feature_dim: D.
    """

    def __init__(self, name, network, modality, kind, input_size, channels, scaling, weights,
                 flow_window=None, clip_length=2, keep_alive=None):
        self.name, self.modality, self.kind = name, modality, kind
        self.input_size, self.channels, self.scaling = input_size, channels, scaling
        self.weights, self.flow_window = weights, flow_window
        self.network = network
        self._keep_alive = keep_alive  # A loaded SavedModel must outlive its signature function.
        self._features = tf.function(self._compute, reduce_retracing=True)
        probe_frames = 1 if kind == "frames" else clip_length
        probe = np.zeros((1, probe_frames, input_size, input_size, channels), np.uint8)
        self.feature_dim = int(self(probe).shape[-1])

    def _scale(self, images):
        if self.scaling == "caffe":
            if self.modality == "rgb":
                return images[..., ::-1] - tf.constant(_IMAGENET_MEAN_BGR, tf.float32)
            return images - 127.5
        return images / 127.5 - 1.0

    def _compute(self, batch):
        images = self._scale(tf.cast(batch, tf.float32))
        if self.kind == "clip":
            return _reduce_to_vectors(tf.convert_to_tensor(self.network(images)))
        shape = tf.shape(images)
        frames = tf.reshape(images, [-1, self.input_size, self.input_size, self.channels])
        vectors = _reduce_to_vectors(tf.convert_to_tensor(self.network(frames)))
        vectors = tf.reshape(vectors, [shape[0], shape[1], -1])
        return tf.reduce_mean(vectors, axis=1)

    def __call__(self, batch):
        """uint8 `[B, N, H, W, C]` → float32 numpy `[B, D]`."""
        return self._features(tf.convert_to_tensor(batch, tf.uint8)).numpy().astype(np.float32)

    def describe(self):
        """A JSON-ready summary for the extraction metadata."""
        return {"name": self.name, "kind": self.kind, "input_size": self.input_size,
                "channels": self.channels, "flow_window": self.flow_window, "scaling": self.scaling,
                "weights": self.weights, "feature_dim": self.feature_dim}


def _keras_scaling(backbone):
    return "caffe" if backbone.startswith("resnet") else "tf"


def keras_rgb_backbone(backbone, weights="imagenet", input_size=None):
    """The RGB `Backbone` for a keras.applications name (or `tiny`) with `weights`."""
    input_size = input_size or default_input_size(backbone)
    weights_path = resolve_weights(backbone, weights, input_size)
    network = build_keras_network(backbone, (input_size, input_size, 3), weights_path)
    described = "none" if weights_path is None else (
        f"imagenet:{weights_path}" if weights == "imagenet" else weights_path)
    return Backbone(backbone, network, "rgb", "frames", input_size, 3, _keras_scaling(backbone),
                    described)


def keras_flow_backbone(backbone, rgb=None, weights=None, input_size=None, flow_window=5):
    """The flow `Backbone` (stacked `2 · flow_window` channels) for a keras.applications name.

    Args:
      backbone: the architecture name.
      rgb: an RGB `Backbone` of the same architecture to initialise from (cross-modality);
        used when `weights` is None.
      weights: a weights file of a flow network with `2 · flow_window` input channels; loaded
        directly instead of the cross-modality initialisation.
      input_size: square input side.
      flow_window: flow fields stacked per segment.
    """
    input_size = input_size or default_input_size(backbone)
    shape = (input_size, input_size, 2 * flow_window)
    if weights is not None and weights != "none":
        network = build_keras_network(backbone, shape, resolve_weights(backbone, weights, input_size))
        described = weights
    else:
        network = build_keras_network(backbone, shape, None)
        if rgb is None or rgb.name != backbone:
            raise DataError(f"the {backbone} flow network needs an RGB {backbone} to initialise from")
        layer = cross_modality_initialise(rgb.network, network)
        described = f"cross-modality from rgb ({rgb.weights}); averaged layer {layer}"
    return Backbone(backbone, network, "flow", "frames", input_size, 2 * flow_window,
                    _keras_scaling(backbone), described, flow_window=flow_window)


def saved_model_backbone(spec, modality, input_size=None, stride=16, flow_window=5):
    """A `Backbone` from `saved_model:PATH` (the serving signature with one input).

    The input's rank says the kind: `[N, H, W, C]` frames or `[N, L, H, W, C]` clips. RGB needs
    C = 3; a frames flow network C = 2 · window (its C sets the window); a clip flow network C = 2.
    A static clip length must equal `stride`. Inputs are float32 in [-1, 1].
    """
    path = spec[len(SAVED_MODEL_PREFIX):] if spec.startswith(SAVED_MODEL_PREFIX) else spec
    if not pathlib.Path(path).is_dir():
        raise DataError(f"{path}: no SavedModel directory")
    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # Parse and op-registration errors of every kind.
        raise DataError(f"{path}: cannot load SavedModel ({error})") from error
    signatures = dict(loaded.signatures)
    if "serving_default" in signatures:
        signature = signatures["serving_default"]
    elif len(signatures) == 1:
        signature = next(iter(signatures.values()))
    else:
        raise DataError(f"{path}: no serving_default signature (found {sorted(signatures)})")
    _, input_specs = signature.structured_input_signature
    if len(input_specs) != 1:
        raise DataError(f"{path}: the signature must take one input, it takes {sorted(input_specs)}")
    (input_name, input_spec), = input_specs.items()
    outputs = signature.structured_outputs
    output_names = sorted(outputs)
    if len(output_names) == 1:
        output_name = output_names[0]
    elif "features" in outputs or "default" in outputs:
        output_name = "features" if "features" in outputs else "default"
    else:
        raise DataError(f"{path}: several outputs {output_names}; name the feature output 'features'")
    shape = input_spec.shape
    if shape.rank not in (4, 5):
        raise DataError(f"{path}: input {input_name} has shape {shape}; expected [N, H, W, C] "
                        "frames or [N, L, H, W, C] clips")
    kind = "frames" if shape.rank == 4 else "clip"
    channels = shape[-1]
    if kind == "clip" and shape[1] is not None and shape[1] != stride:
        raise DataError(f"{path}: the model takes clips of {shape[1]} frames; use --stride {shape[1]}")
    if modality == "rgb":
        expected = 3
    elif kind == "clip":
        expected = 2
    else:
        expected = channels if channels is not None else 2 * flow_window
        if expected % 2:
            raise DataError(f"{path}: a flow frames network needs an even channel count, "
                            f"got {expected}")
        flow_window = expected // 2
    if channels is not None and channels != expected:
        raise DataError(f"{path}: {modality} input needs {expected} channels, "
                        f"the model takes {channels}")
    size = shape[-2] if shape[-2] is not None else (input_size or 224)
    if input_size and size != input_size:
        raise DataError(f"{path}: the model takes {size}x{size} frames, not --input-size {input_size}")

    def network(images):
        return signature(**{input_name: images})[output_name]

    return Backbone(f"{SAVED_MODEL_PREFIX}{path}", network, modality, kind, int(size), expected,
                    "tf", "saved_model", flow_window=flow_window if kind == "frames" and
                    modality == "flow" else None, clip_length=stride, keep_alive=loaded)


def build_backbones(backbone="resnet101", weights="imagenet", flow_backbone=None, flow_weights=None,
                    input_size=None, stride=16, flow_window=5, seed=0):
    """The (rgb, flow) `Backbone` pair for the extraction command line.

    Args:
      backbone: RGB network: one of KERAS_BACKBONES or `saved_model:PATH`.
      weights: imagenet | none | PATH for a Keras RGB network (ignored for a SavedModel).
      flow_backbone: flow network; None means the same Keras architecture as `backbone`
        (a SavedModel RGB backbone needs an explicit flow backbone).
      flow_weights: PATH of flow-network weights; None → cross-modality from the RGB weights.
      input_size: square input side; None → the backbone's default.
      stride: frames per segment (the clip length of clip networks).
      flow_window: flow fields stacked per segment for frames flow networks.
      seed: seeds Keras' random initialisation so `--weights none` is reproducible.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if backbone.startswith(SAVED_MODEL_PREFIX):
        rgb = saved_model_backbone(backbone, "rgb", input_size, stride, flow_window)
    else:
        rgb = keras_rgb_backbone(backbone, weights, input_size)
    flow_backbone = flow_backbone or backbone
    if flow_backbone.startswith(SAVED_MODEL_PREFIX):
        if flow_backbone == backbone:
            raise DataError("a SavedModel RGB backbone needs --flow-backbone (saved_model:PATH of a "
                            f"flow network, or one of {', '.join(KERAS_BACKBONES)})")
        flow = saved_model_backbone(flow_backbone, "flow", rgb.input_size, stride, flow_window)
    else:
        source = rgb if rgb.name == flow_backbone else None
        if source is None and flow_weights is None:
            source = keras_rgb_backbone(flow_backbone, weights, rgb.input_size)
        flow = keras_flow_backbone(flow_backbone, source, flow_weights, rgb.input_size, flow_window)
    if flow.input_size != rgb.input_size:
        raise DataError(f"rgb and flow networks take different sizes ({rgb.input_size} vs "
                        f"{flow.input_size})")
    return rgb, flow
