"""The embedded default datasets: real annotation timelines with generated features, no download.

Two are built on demand (`ensure_embedded_dataset(name)`), each with a trimmed source domain for
knowledge transfer:

THUMOS14 (`ensure_default_dataset`, the recipes' default). What is real: the 20 THUMOS14 detection
classes, the 200 validation and 212 test video ids, their durations (fps × frame count) and every
annotated action instance and Ambiguous region, all read from the annotation files shipped in
`tfwsar/resources/thumos14`; the UCF101 split-1 clip ids of the same 20 classes from
`tfwsar/resources/ucf101`. Features at 25 fps / 16-frame stride (1.5625 segments/s).

ActivityNet1.3 (`ensure_activitynet_dataset`, `--preset activitynet` without `--data`). What is
real: 25 of the 200 classes, 400 training + 150 validation video ids with their durations and 778
annotated instances, copied from ActivityNet1.3's annotation file into
`tfwsar/resources/activitynet/activitynet13_subset.json` (selection rule in
`tools/make_activitynet_subset.py`: every 8th class; per class 16 training + 6 validation
single-label videos, seeded). Its actions are long, as ActivityNet's are: the median instance
covers 43% of its video and a quarter cover more than 82%. Features at 25 fps / 32-frame stride
(0.78125 segments/s, 1.28 s a segment): 94 segments for the mean video (121 s), at most 187 — the
size of the usual "100 segments per video" ActivityNet features, at a fixed rate so that times
are index / rate as for every converted dataset. The trimmed domain is UCF101-like clips of all
25 classes, named as UCF101 clips (`v_<Class>_g<group>_c<clip>`, groups 8–25 training, 1–7 test,
5 clips a group), written as UCF101 split lists and converted by the UCF101 converter.

What is generated (seeded, so every machine builds the same bytes): the segment features, one
`[T, D]` array per stream, from this generative model (per stream):

  x_t = scene_v + noise_t                                   background
      + amplitude · strength_c · π_t · μ_c + actionness · μ_act   inside an instance of class c
      + context · amplitude · strength_c · μ_c              within `context_segments` of one
      + ½ (amplitude · μ_c)                                  inside an Ambiguous region (c = a label of the video)

  μ_c ~ N(0, I) class prototypes; μ_act ~ N(0, I) a class-agnostic "something happens" direction;
  scene_v ~ N(0, scene_scale² I) one offset per video; noise_t = temporally correlated Gaussian
  noise (white noise smoothed by a box filter of `noise_smoothing` segments, rescaled to unit
  variance, × noise_scale).
  + amplitude · strength_c · μ_c                          inside an unannotated "replay" burst
  π_t, the class profile of an instance: 1 on its central `core_fraction` (at least one segment)
  and `flank_class` on the flanks before and after it. THUMOS14: core_fraction = flank_class = 1
  (the whole instance is class-specific). ActivityNet: core_fraction = ½, flank_class = 0.15 —
  a long action is recognisable as its class only in its middle (a "Making a cake" video is
  mostly generic handling of things; the mixing is the cake), while its flanks look like any
  action (μ_act, the same actionness as the core) and hardly like their class. A detector that
  localises the class evidence alone finds the middle half of each instance; one that also
  follows the class-agnostic evidence around it finds the whole.
  Replays: a Poisson(`replays`) number of bursts of `replay_segments` segments per video carry the
  full evidence of one of the video's classes outside (or over) its annotations, as sports replays
  and slow-motion re-runs do in THUMOS14 (the annotators marked only the live action). None by
  default. The harder THUMOS14 variant ("thumos14_hard", `HARD_THUMOS14_SPEC`, `--set
  data.embedded=thumos14_hard`): core_fraction = ½, flank_class = 0.2 and one replay per video on
  average — only the middle of an action is class-specific, its flanks are mostly generic motion,
  and the class also shows where nothing is annotated. It separates localization methods that
  the default variant does not: covering whole actions and rejecting class evidence that is not
  an action both matter.
  RGB and flow carry different evidence: strength_c^rgb ~ U(0.4, 1.6) and
  strength_c^flow = 2 − strength_c^rgb, so a class weak in one stream is strong in the other and
  fusing the streams helps, as on the real benchmarks.

The trimmed domain ("UCF101-like", for knowledge transfer) has one clip per list entry: 4–9 s of
action signal of its class (π = 1: a trimmed clip is the action itself) with no scene offset,
under a domain shift shared by all clips, x ↦ shift_scale · x + δ (δ ~ N(0, shift_offset² I)).

The features are written as per-video `rgb/<video>.npy` + `flow/<video>.npy` files and converted
with the same converters as real data (`tfwsar.data.convert`), into a cache directory
(`$TFWSAR_CACHE`, default `~/.cache/tfwsar`; `synthetic-<key>` for THUMOS14,
`activitynet-<key>` for ActivityNet) keyed by the generator's settings and the converted format:
the first run builds it (a few seconds), later runs reuse it.
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
    core_fraction: float = 1.0  # central part of an instance carrying its full class evidence
    flank_class: float = 1.0  # class evidence on the rest of the instance, relative to the core
    replays: float = 0.0  # mean number of unannotated same-class bursts per video (Poisson)
    replay_segments: tuple = (2, 6)  # [low, high) length of a burst, segments
    seed: int = 0


ACTIVITYNET_SPEC = SyntheticSpec(feature_dim=128, feature_stride=32, context=0.0,
                                 noise_smoothing=3, core_fraction=0.5, flank_class=0.15)
"""The embedded ActivityNet default's settings (module docstring)."""

HARD_THUMOS14_SPEC = SyntheticSpec(core_fraction=0.5, flank_class=0.2, replays=1.0)
"""The harder THUMOS14-shaped variant ("thumos14_hard"): partial evidence and unannotated replays."""

EMBEDDED_DATASETS = ("thumos14", "thumos14_hard", "activitynet")
ACTIVITYNET_SUBSET = "activitynet13_subset.json"


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


def class_profile(length, core_fraction, flank_class):
    """π over an instance of `length` segments: 1 on the central `core_fraction` of it (at least
    one segment, centred; an odd remainder puts the extra flank segment after the core),
    `flank_class` on the flanks. `[length]` float32."""
    profile = np.full(length, flank_class, np.float32)
    if length:
        core = min(length, max(1, int(round(core_fraction * length))))
        start = (length - core) // 2
        profile[start:start + core] = 1.0
    return profile


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
        replays = self.replays(rng, num_segments, list(video_labels))
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
                actionness = spec.actionness * self.streams[stream]["actionness"]
                if spec.core_fraction >= 1.0:
                    x[first:last] += signal + actionness
                else:
                    profile = class_profile(last - first, spec.core_fraction, spec.flank_class)
                    x[first:last] += profile[:, None] * signal + actionness
            for t_start, t_end in ambiguous:
                first, last = _segment_range(t_start, t_end, rate, num_segments)
                for label in video_labels:
                    x[first:last] += 0.5 * self._class_signal(stream, label)
            for label, first, last in replays:
                x[first:last] += self._class_signal(stream, label)
            features[stream] = x.astype(np.float32)
        return features

    def replays(self, rng, num_segments, video_labels):
        """Unannotated same-class bursts of one video: [(label, first, last)] (none by default)."""
        spec = self.spec
        if not spec.replays or not len(video_labels):
            return []
        bursts = []
        for _ in range(rng.poisson(spec.replays)):
            length = int(rng.integers(*spec.replay_segments))
            if num_segments <= length:
                continue
            first = int(rng.integers(0, num_segments - length))
            bursts.append((video_labels[int(rng.integers(len(video_labels)))], first, first + length))
        return bursts

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


def _feature_directory(staging, name):
    directory = staging / name
    for stream in ("rgb", "flow"):
        (directory / stream).mkdir(parents=True)
    return directory


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


def _generate_untrimmed(generator, annotations, features_dir):
    """Writes per-video npy features for every video of `annotations` (a timeline)."""
    spec = generator.spec
    rate = spec.feature_fps / spec.feature_stride
    instances = {video: group for video, group in annotations.instances.groupby("video")}
    ambiguous = {video: group for video, group in annotations.ambiguous.groupby("video")}
    empty = annotations.instances.iloc[:0]
    for order, video in enumerate(annotations.videos.itertuples(index=False)):
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


def _generate_trimmed(generator, splits, features_dir):
    """Writes per-clip npy features for the clips of UCF101-format `splits` (split 1) whose class
    is one of the generator's (names matched as the UCF101 converter matches them)."""
    from tfwsar.data import annotations as annotation_readers  # pylint: disable=import-outside-toplevel

    spec = generator.spec
    clips = annotation_readers.read_ucf101_splits(splits, split=1)
    to_class = {ucf_name: name for name, ucf_name in annotation_readers.ucf101_classes_overlapping(
        list(generator.class_index), clips.classes).items()}
    rate = spec.feature_fps / spec.feature_stride
    for order, clip in enumerate(clips.videos.itertuples(index=False)):
        label = to_class.get(clip.labels[0])
        if label is None:
            continue
        rng = np.random.default_rng([spec.seed, 2, order])
        num_segments = max(2, int(rng.uniform(4.0, 9.0) * rate))
        _save_features(features_dir, clip.video, generator.trimmed(rng, num_segments, label))


def _ucf101_like_splits(classes, directory, groups=(range(8, 26), range(1, 8)), clips_per_group=5):
    """UCF101-format split-1 lists of made-up clips of `classes`: classInd.txt, trainlist01.txt
    (groups 8–25) and testlist01.txt (groups 1–7), `clips_per_group` clips a group, class folder
    names in UCF101 spelling ("Making a cake" → MakingACake). Returns `directory`."""
    directory.mkdir(parents=True)
    folders = ["".join(word[:1].upper() + word[1:] for word in name.split()) for name in classes]
    (directory / "classInd.txt").write_text(
        "".join(f"{index} {folder}\n" for index, folder in enumerate(folders, start=1)))
    for list_name, group_range, with_index in (("trainlist01.txt", groups[0], True),
                                               ("testlist01.txt", groups[1], False)):
        lines = [f"{folder}/v_{folder}_g{group:02d}_c{clip:02d}.avi" + (f" {index}" if with_index else "")
                 for index, folder in enumerate(folders, start=1)
                 for group in group_range for clip in range(1, clips_per_group + 1)]
        (directory / list_name).write_text("".join(line + "\n" for line in lines))
    return directory


def _build_thumos14(spec, staging, untrimmed_dir, trimmed_dir, show_progress):
    from tfwsar.data import annotations as annotation_readers  # pylint: disable=import-outside-toplevel
    from tfwsar.data import convert  # pylint: disable=import-outside-toplevel

    video_info = _thumos14_video_info(staging)
    thumos = annotation_readers.read_thumos14_txt(resources_dir() / "thumos14", video_info=video_info)
    generator = _Generator(spec, thumos.classes)
    features_dir = _feature_directory(staging, "thumos14_features")
    _generate_untrimmed(generator, thumos, features_dir)
    trimmed_features_dir = _feature_directory(staging, "ucf101_features")
    _generate_trimmed(generator, resources_dir() / "ucf101", trimmed_features_dir)
    if not (untrimmed_dir / "manifest.json").exists():
        convert.convert_thumos14(
            annotations=resources_dir() / "thumos14", features=features_dir, out=untrimmed_dir,
            video_info=video_info, fps=spec.feature_fps, stride=spec.feature_stride,
            show_progress=show_progress)
    return resources_dir() / "ucf101", trimmed_features_dir


def _build_activitynet(spec, staging, untrimmed_dir, trimmed_dir, show_progress):
    from tfwsar.data import annotations as annotation_readers  # pylint: disable=import-outside-toplevel
    from tfwsar.data import convert  # pylint: disable=import-outside-toplevel

    subset_file = resources_dir() / "activitynet" / ACTIVITYNET_SUBSET
    activitynet = annotation_readers.read_activitynet_json(subset_file)
    generator = _Generator(spec, activitynet.classes)
    features_dir = _feature_directory(staging, "activitynet_features")
    _generate_untrimmed(generator, activitynet, features_dir)
    splits = _ucf101_like_splits(activitynet.classes, staging / "ucf101_like_splits")
    trimmed_features_dir = _feature_directory(staging, "ucf101_like_features")
    _generate_trimmed(generator, splits, trimmed_features_dir)
    if not (untrimmed_dir / "manifest.json").exists():
        convert.convert_activitynet(
            annotations=subset_file, features=features_dir, out=untrimmed_dir,
            fps=spec.feature_fps, stride=spec.feature_stride, show_progress=show_progress)
    return splits, trimmed_features_dir


def _key(spec):
    from tfwsar.data import records  # pylint: disable=import-outside-toplevel

    text = json.dumps({"version": GENERATOR_VERSION, "format": records.FORMAT,
                       **dataclasses.asdict(spec)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _ensure(build, spec, root, names, show_progress):
    """Builds (once) the converted (untrimmed, trimmed) pair `root/names[0]`, `root/names[1]`:
    `build(spec, staging, untrimmed_dir, trimmed_dir, show_progress)` generates the features into
    a staging folder, converts the untrimmed dataset and returns (split lists, trimmed features)
    for the UCF101 converter."""
    from tfwsar.data import convert  # pylint: disable=import-outside-toplevel

    untrimmed_dir, trimmed_dir = root / names[0], root / names[1]
    if (untrimmed_dir / "manifest.json").exists() and (trimmed_dir / "manifest.json").exists():
        return untrimmed_dir, trimmed_dir
    root.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="staging-", dir=root))
    try:
        splits, trimmed_features_dir = build(spec, staging, untrimmed_dir, trimmed_dir,
                                             show_progress)
        if not (trimmed_dir / "manifest.json").exists():
            convert.convert_ucf101(
                splits=splits, features=trimmed_features_dir, out=trimmed_dir,
                classes_of=untrimmed_dir, split=1, fps=spec.feature_fps,
                stride=spec.feature_stride, show_progress=show_progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return untrimmed_dir, trimmed_dir


def ensure_default_dataset(spec=SyntheticSpec(), root=None, show_progress=None):
    """Builds (once) and returns the embedded THUMOS14 default dataset.

    Returns:
      (untrimmed_dir, trimmed_dir): converted dataset directories (manifest.json, ground_truth.json,
      TFRecords) for THUMOS14-with-generated-features and the trimmed UCF101-like domain.
    """
    root = pathlib.Path(root) if root is not None else cache_dir() / f"synthetic-{_key(spec)}"
    return _ensure(_build_thumos14, spec, root, ("thumos14", "ucf101"), show_progress)


def ensure_activitynet_dataset(spec=ACTIVITYNET_SPEC, root=None, show_progress=None):
    """Builds (once) and returns the embedded ActivityNet1.3 default dataset.

    Returns:
      (untrimmed_dir, trimmed_dir): ActivityNet1.3's real timelines of 25 classes (training +
      validation) with generated features, and UCF101-like trimmed clips of the same classes.
    """
    root = pathlib.Path(root) if root is not None else cache_dir() / f"activitynet-{_key(spec)}"
    return _ensure(_build_activitynet, spec, root, ("activitynet", "ucf101_like"), show_progress)


def ensure_embedded_dataset(name="thumos14", show_progress=None):
    """The embedded default `name` ("thumos14" | "activitynet") with its default settings."""
    if name == "thumos14":
        return ensure_default_dataset(show_progress=show_progress)
    if name == "thumos14_hard":
        return ensure_default_dataset(HARD_THUMOS14_SPEC, show_progress=show_progress)
    if name == "activitynet":
        return ensure_activitynet_dataset(show_progress=show_progress)
    raise ValueError(f"embedded dataset {name!r}: expected one of {EMBEDDED_DATASETS}")
