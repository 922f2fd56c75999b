"""The embedded default dataset: THUMOS14's real timeline with generated features, no download.

What is real: the 20 THUMOS14 detection classes, the 200 validation and 212 test video ids, their
durations (fps × frame count) and every annotated action instance and Ambiguous region, all read
from the annotation files shipped in `tfwsar/resources/thumos14`; the UCF101 split-1 clip ids of the
same 20 classes from `tfwsar/resources/ucf101`.

What is generated (seeded, so every machine builds the same bytes): the segment features, one
`[T, D]` array per stream at 25 fps / 16-frame stride, from this generative model (per stream):

  x_t = scene_v + noise_t                                   background
      + amplitude · strength_c · μ_c + actionness · μ_act   inside an instance of class c
      + context · amplitude · strength_c · μ_c              within `context_segments` of one
      + ½ (amplitude · μ_c)                                  inside an Ambiguous region (c = a label of the video)

  μ_c ~ N(0, I) class prototypes; μ_act ~ N(0, I) a class-agnostic "something happens" direction;
  scene_v ~ N(0, scene_scale² I) one offset per video; noise_t = temporally correlated Gaussian
  noise (white noise smoothed by a box filter of `noise_smoothing` segments, rescaled to unit
  variance, × noise_scale).
  RGB and flow carry different evidence: strength_c^rgb ~ U(0.4, 1.6) and
  strength_c^flow = 2 − strength_c^rgb, so a class weak in one stream is strong in the other and
  fusing the streams helps, as on the real benchmark.

The trimmed domain ("UCF101-like", for knowledge transfer) has one clip per UCF101 split-1 list
entry of the 20 classes: 4–9 s of action signal of its class with no scene offset, under a domain
shift shared by all clips, x ↦ shift_scale · x + δ (δ ~ N(0, shift_offset² I)).

The features are written as per-video `rgb/<video>.npy` + `flow/<video>.npy` files and converted
with the same converters as real data (`tfwsar.data.convert`), into a cache directory
(`$TFWSAR_CACHE`, default `~/.cache/tfwsar`) keyed by the generator's settings: the first run
builds it (a few seconds), later runs reuse it.
"""

import dataclasses
import hashlib
import importlib.resources
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pandas as pd

GENERATOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Settings of the generative model (see the module docstring for the equations)."""

    feature_dim: int = 32
    feature_fps: float = 25.0
    feature_stride: int = 16
    amplitude: float = 0.45
    actionness: float = 0.35
    context: float = 0.25
    context_segments: int = 6
    scene_scale: float = 0.6
    noise_scale: float = 1.0
    noise_smoothing: int = 5
    shift_scale: float = 1.3
    shift_offset: float = 0.8
    seed: int = 0


def resources_dir():
    """The package's shipped annotation files (tfwsar/resources)."""
    return pathlib.Path(str(importlib.resources.files("tfwsar") / "resources"))


def cache_dir():
    return pathlib.Path(os.environ.get("TFWSAR_CACHE", pathlib.Path.home() / ".cache" / "tfwsar"))


def _correlated_noise(rng, num_segments, dim, smoothing):
    """Gaussian noise with unit variance whose neighbours correlate over `smoothing` segments."""
    white = rng.standard_normal((num_segments + smoothing - 1, dim)).astype(np.float32)
    cumulative = np.concatenate([np.zeros((1, dim), np.float32), np.cumsum(white, axis=0)])
    smoothed = (cumulative[smoothing:] - cumulative[:-smoothing]) / np.sqrt(smoothing)
    return smoothed[:num_segments]


def _segment_range(t_start, t_end, rate, num_segments):
    """Segment indices [first, last) covering [t_start, t_end] seconds, clipped to the video."""
    first = int(np.clip(np.floor(t_start * rate), 0, num_segments))
    last = int(np.clip(np.ceil(t_end * rate), first, num_segments))
    return first, last


class _Generator:
    """Holds the per-class prototypes of both streams and draws features for videos and clips."""

    def __init__(self, spec, classes):
        self.spec = spec
        self.class_index = {name: index for index, name in enumerate(classes)}
        rng = np.random.default_rng(spec.seed)
        dim, count = spec.feature_dim, len(classes)
        rgb_strength = rng.uniform(0.4, 1.6, size=count)
        self.streams = {}
        for stream, strength in (("rgb", rgb_strength), ("flow", 2.0 - rgb_strength)):
            self.streams[stream] = {
                "prototypes": rng.standard_normal((count, dim)).astype(np.float32),
                "actionness": rng.standard_normal(dim).astype(np.float32),
                "strength": strength.astype(np.float32),
                "shift": (spec.shift_offset * rng.standard_normal(dim)).astype(np.float32),
            }

    def _class_signal(self, stream, label):
        parameters = self.streams[stream]
        index = self.class_index[label]
        return self.spec.amplitude * parameters["strength"][index] * parameters["prototypes"][index]

    def untrimmed(self, rng, num_segments, instances, ambiguous, video_labels):
        """Both streams of one untrimmed video: {"rgb": [T, D], "flow": [T, D]}."""
        spec = self.spec
        rate = spec.feature_fps / spec.feature_stride
        features = {}
        for stream in ("rgb", "flow"):
            scene = spec.scene_scale * rng.standard_normal(spec.feature_dim).astype(np.float32)
            x = scene + spec.noise_scale * _correlated_noise(
                rng, num_segments, spec.feature_dim, spec.noise_smoothing)
            for label, t_start, t_end in instances:
                first, last = _segment_range(t_start, t_end, rate, num_segments)
                signal = self._class_signal(stream, label)
                before = max(0, first - spec.context_segments)
                after = min(num_segments, last + spec.context_segments)
                x[before:first] += spec.context * signal
                x[last:after] += spec.context * signal
                x[first:last] += signal + spec.actionness * self.streams[stream]["actionness"]
            for t_start, t_end in ambiguous:
                first, last = _segment_range(t_start, t_end, rate, num_segments)
                for label in video_labels:
                    x[first:last] += 0.5 * self._class_signal(stream, label)
            features[stream] = x.astype(np.float32)
        return features

    def trimmed(self, rng, num_segments, label):
        """Both streams of one trimmed clip, under the trimmed domain's shift."""
        spec = self.spec
        features = {}
        for stream in ("rgb", "flow"):
            parameters = self.streams[stream]
            x = spec.noise_scale * _correlated_noise(
                rng, num_segments, spec.feature_dim, spec.noise_smoothing)
            x += self._class_signal(stream, label) + spec.actionness * parameters["actionness"]
            features[stream] = (spec.shift_scale * x + parameters["shift"]).astype(np.float32)
        return features


def _save_features(directory, video, features):
    for stream, values in features.items():
        np.save(directory / stream / f"{video}.npy", values)


def _thumos14_video_info(staging):
    """One `video,duration` CSV from the shipped val/test AFSD-style info files."""
    tables = [pd.read_csv(resources_dir() / "thumos14" / name)
              for name in ("val_video_info.csv", "test_video_info.csv")]
    info = pd.concat(tables, ignore_index=True)
    info = pd.DataFrame({"video": info["video"], "duration": info["count"] / info["fps"]})
    path = staging / "video_info.csv"
    info.to_csv(path, index=False)
    return path


def _generate_untrimmed(spec, staging):
    """Writes per-video npy features for every annotated THUMOS14 video; returns (dir, info csv)."""
    from tfwsar.data import annotations as annotation_readers  # pylint: disable=import-outside-toplevel

    video_info = _thumos14_video_info(staging)
    thumos = annotation_readers.read_thumos14_txt(resources_dir() / "thumos14", video_info=video_info)
    generator = _Generator(spec, thumos.classes)
    features_dir = staging / "thumos14_features"
    for stream in ("rgb", "flow"):
        (features_dir / stream).mkdir(parents=True)
    rate = spec.feature_fps / spec.feature_stride
    instances = {video: group for video, group in thumos.instances.groupby("video")}
    ambiguous = {video: group for video, group in thumos.ambiguous.groupby("video")}
    empty = thumos.instances.iloc[:0]
    for order, video in enumerate(thumos.videos.itertuples(index=False)):
        rng = np.random.default_rng([spec.seed, 1, order])
        num_segments = max(1, int(video.duration * rate))
        video_instances = instances.get(video.video, empty)
        video_ambiguous = ambiguous.get(video.video, empty)
        features = generator.untrimmed(
            rng, num_segments,
            list(zip(video_instances["label"], video_instances["t_start"], video_instances["t_end"])),
            list(zip(video_ambiguous["t_start"], video_ambiguous["t_end"])),
            video.labels)
        _save_features(features_dir, video.video, features)
    return features_dir, video_info, generator


def _generate_trimmed(spec, staging, generator):
    """Writes per-clip npy features for the UCF101 split-1 clips of the 20 classes."""
    from tfwsar.data import annotations as annotation_readers  # pylint: disable=import-outside-toplevel

    ucf101 = annotation_readers.read_ucf101_splits(resources_dir() / "ucf101", split=1)
    features_dir = staging / "ucf101_features"
    for stream in ("rgb", "flow"):
        (features_dir / stream).mkdir(parents=True)
    rate = spec.feature_fps / spec.feature_stride
    for order, clip in enumerate(ucf101.videos.itertuples(index=False)):
        label = clip.labels[0]
        if label not in generator.class_index:
            continue
        rng = np.random.default_rng([spec.seed, 2, order])
        num_segments = max(2, int(rng.uniform(4.0, 9.0) * rate))
        _save_features(features_dir, clip.video, generator.trimmed(rng, num_segments, label))
    return features_dir


def _key(spec):
    text = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(spec)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_default_dataset(spec=SyntheticSpec(), root=None, show_progress=None):
    """Builds (once) and returns the embedded default dataset.

    Returns:
      (untrimmed_dir, trimmed_dir): converted dataset directories (manifest.json, ground_truth.json,
      TFRecord shards) for THUMOS14-with-generated-features and the trimmed UCF101-like domain.
    """
    from tfwsar.data import convert  # pylint: disable=import-outside-toplevel

    root = pathlib.Path(root) if root is not None else cache_dir() / f"synthetic-{_key(spec)}"
    untrimmed_dir, trimmed_dir = root / "thumos14", root / "ucf101"
    if (untrimmed_dir / "manifest.json").exists() and (trimmed_dir / "manifest.json").exists():
        return untrimmed_dir, trimmed_dir
    root.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="staging-", dir=root))
    try:
        features_dir, video_info, generator = _generate_untrimmed(spec, staging)
        trimmed_features_dir = _generate_trimmed(spec, staging, generator)
        if not (untrimmed_dir / "manifest.json").exists():
            convert.convert_thumos14(
                annotations=resources_dir() / "thumos14", features=features_dir, out=untrimmed_dir,
                video_info=video_info, fps=spec.feature_fps, stride=spec.feature_stride,
                show_progress=show_progress)
        if not (trimmed_dir / "manifest.json").exists():
            convert.convert_ucf101(
                splits=resources_dir() / "ucf101", features=trimmed_features_dir, out=trimmed_dir,
                classes_of=untrimmed_dir, split=1, fps=spec.feature_fps,
                stride=spec.feature_stride, show_progress=show_progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return untrimmed_dir, trimmed_dir
