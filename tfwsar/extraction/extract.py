"""Video files → `OUT/rgb/<video>.npy` + `OUT/flow/<video>.npy` (float32 [T, D]) + metadata.

Per video: frames are decoded at `fps` (video.py), cut into segments of `stride` frames
(T = floor(frames / stride), at least 1), and each segment gives one RGB and one flow feature:
- RGB: the RGB backbone on `rgb_samples` frames spread evenly over the segment (1 = the centre
  frame, as in TSN/TSRNet), averaged; a clip backbone (I3D) takes all `stride` frames;
- flow: `flow_window` flow images centred on the segment, stacked over channels, through the flow
  backbone; a clip flow backbone takes the flow of all `stride` frames.
The feature rate is fps / stride segments per second (25 / 16 = 1.5625 by default).

Segments stream through `tf.data` (`from_generator` → batch → prefetch), so decoding and optical
flow of the next batch overlap inference and memory stays bounded for long videos. Features are
written atomically (temporary file in the same directory, then `os.replace`); a video whose rgb
and flow files both exist is skipped, so an interrupted run resumes. A video that cannot be decoded
is reported by name and skipped; the others go on. `OUT/extraction.json` records the settings,
backbones, weights, flow algorithm, feature dims and per-video frame counts, and
`OUT/video_info.csv` (`video,duration`) feeds the converters' `--video-info`.
"""

import dataclasses
import json
import math
import os
import pathlib
import sys

import numpy as np

from tfwsar.errors import DataError
from tfwsar.extraction import backbones as backbones_lib
from tfwsar.extraction import flow as flow_lib
from tfwsar.extraction import video as video_lib
from tfwsar.progress import progress

FORMAT = "tfwsar-features-v1"
METADATA_FILE = "extraction.json"
VIDEO_INFO_FILE = "video_info.csv"

# Settings that must agree between a run and the features already in OUT for them to be mixed.
SETTINGS_KEYS = ("backbone", "flow_backbone", "weights", "flow_weights", "fps", "stride",
                 "rgb_samples", "flow_window", "flow_algorithm", "flow_bound", "input_size",
                 "short_side", "seed")


@dataclasses.dataclass
class ExtractionSummary:
    """What one run did: video stems extracted, skipped (already finished) and failed (→ message)."""
    extracted: list
    skipped: list
    failed: dict


def sample_indices(stride, samples):
    """`samples` frame indices spread evenly over a segment of `stride` frames (1 → the centre)."""
    if not 1 <= samples <= stride:
        raise DataError(f"rgb samples {samples} must be between 1 and the stride {stride}")
    return [(2 * k + 1) * stride // (2 * samples) for k in range(samples)]


def _stack_flow_images(images):
    """[L, H, W, 2] → [H, W, 2L] with channels x_1, y_1, x_2, y_2, ... (TSN order)."""
    window, height, width, _ = images.shape
    return images.transpose(1, 2, 0, 3).reshape(height, width, 2 * window)


def extract_video(path, rgb_backbone, flow_backbone, optical_flow, fps=25.0, stride=16,
                  rgb_samples=1, flow_bound=20.0, short_side=None, batch_size=16, on_batch=None):
    """Features of one video.

    Args:
      path: the video file.
      rgb_backbone, flow_backbone: `backbones.Backbone`s (same input size).
      optical_flow: a `flow.OpticalFlow`.
      fps, stride: frame rate and frames per segment.
      rgb_samples: frames per segment for a frames RGB backbone.
      flow_bound: flow images clip displacements to ±flow_bound pixels.
      short_side: resize the shorter side to this before the centre crop (default input·256/224).
      batch_size: segments per inference batch.
      on_batch: optional callable(segments_done, segments_expected or None) for progress.

    Returns:
      (rgb [T, D_rgb] float32, flow [T, D_flow] float32, info dict with num_frames, num_segments,
      duration, source_fps, flow_magnitude (mean pixels/frame)).

    Raises:
      DataError: the video cannot be decoded, or the features are not finite.
    """
    import tensorflow as tf

    input_size = rgb_backbone.input_size
    short_side = short_side or round(input_size * 256 / 224)
    rgb_indices = (sample_indices(stride, rgb_samples) if rgb_backbone.kind == "frames"
                   else list(range(stride)))
    flow_indices = (flow_lib.window_indices(stride, flow_backbone.flow_window)
                    if flow_backbone.kind == "frames" else list(range(stride)))
    rgb_shape = (len(rgb_indices), input_size, input_size, 3)
    flow_shape = ((1, input_size, input_size, flow_backbone.channels) if flow_backbone.kind == "frames"
                  else (stride, input_size, input_size, 2))
    with video_lib.VideoReader(path, fps, short_side, input_size) as reader:
        generator_error = []

        def segments():
            try:
                for segment, next_frame in video_lib.split_segments(reader.frames(), stride):
                    flows = flow_lib.segment_flows(optical_flow, segment, next_frame, flow_indices)
                    images = flow_lib.flow_to_image(flows, flow_bound)
                    if flow_backbone.kind == "frames":
                        images = _stack_flow_images(images)[np.newaxis]
                    yield {"rgb": np.stack([segment[index] for index in rgb_indices]),
                           "flow": images,
                           "flow_magnitude": np.float32(np.linalg.norm(flows, axis=-1).mean())}
            except Exception as error:  # Kept to re-raise with its own type and message below.
                generator_error.append(error)
                raise

        signature = {"rgb": tf.TensorSpec(rgb_shape, tf.uint8),
                     "flow": tf.TensorSpec(flow_shape, tf.uint8),
                     "flow_magnitude": tf.TensorSpec((), tf.float32)}
        dataset = (tf.data.Dataset.from_generator(segments, output_signature=signature)
                   .batch(batch_size).prefetch(2))
        expected = reader.estimated_frames
        expected_segments = None if expected is None else max(1, expected // stride)
        rgb_parts, flow_parts, magnitudes = [], [], []
        batches = iter(dataset)
        try:
            for batch in batches:
                rgb_parts.append(rgb_backbone(batch["rgb"]))
                flow_parts.append(flow_backbone(batch["flow"]))
                magnitudes.append(batch["flow_magnitude"].numpy())
                if on_batch is not None:
                    on_batch(sum(len(part) for part in rgb_parts), expected_segments)
        except tf.errors.OpError:
            if generator_error:  # The generator's own exception, not tf.data's rewrapping of it.
                raise generator_error[0] from None
            raise
        finally:
            del batches  # Stops the prefetching generator before the reader closes the file.
        rgb_features = np.concatenate(rgb_parts).astype(np.float32)
        flow_features = np.concatenate(flow_parts).astype(np.float32)
        for name, features in (("rgb", rgb_features), ("flow", flow_features)):
            if not np.isfinite(features).all():
                raise DataError(f"{path}: the {name} features are not finite")
        duration = reader.duration if not math.isnan(reader.duration) else reader.num_frames / fps
        info = {"num_frames": reader.num_frames, "num_segments": int(len(rgb_features)),
                "duration": round(float(duration), 6),
                "source_fps": None if math.isnan(reader.source_fps) else round(reader.source_fps, 6),
                "flow_magnitude": round(float(np.concatenate(magnitudes).mean()), 6)}
    return rgb_features, flow_features, info


def _write_json_atomically(path, value):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _write_features_atomically(out_dir, stem, rgb_features, flow_features):
    """Writes both files to temporary names first, then renames flow, then rgb."""
    targets = {"flow": (out_dir / "flow" / f"{stem}.npy", flow_features),
               "rgb": (out_dir / "rgb" / f"{stem}.npy", rgb_features)}
    temporaries = {}
    try:
        for name, (target, features) in targets.items():
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            temporaries[name] = temporary
            with open(temporary, "wb") as handle:
                np.save(handle, features)
        for name, (target, _) in targets.items():
            os.replace(temporaries[name], target)
    finally:
        for temporary in temporaries.values():
            if temporary.exists():
                temporary.unlink()


def is_finished(out_dir, stem):
    """True when both `rgb/<stem>.npy` and `flow/<stem>.npy` exist in `out_dir`."""
    out_dir = pathlib.Path(out_dir)
    return (out_dir / "rgb" / f"{stem}.npy").is_file() and (out_dir / "flow" / f"{stem}.npy").is_file()


def _versions():
    import keras
    import tensorflow as tf
    av = video_lib.import_video_extra("av")
    cv2 = video_lib.import_video_extra("cv2")
    return {"pyav": av.__version__, "opencv": cv2.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__}


def _load_metadata(out_dir, settings):
    """The existing metadata (settings checked against `settings`), or None for a fresh OUT."""
    path = out_dir / METADATA_FILE
    if not path.is_file():
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error
    differing = [key for key in SETTINGS_KEYS if metadata.get(key) != settings[key]]
    if differing:
        details = ", ".join(f"{key}: {metadata.get(key)!r} there, {settings[key]!r} now"
                            for key in differing)
        raise DataError(f"{path}: {out_dir} holds features extracted with other settings "
                        f"({details}); use another --out")
    return metadata


def extract_features(videos_dir, out_dir, backbone="resnet101", weights="imagenet",
                     flow_backbone=None, flow_weights=None, fps=25.0, stride=16, rgb_samples=1,
                     flow_window=5, flow_algorithm="auto", flow_bound=20.0, input_size=None,
                     short_side=None, batch_size=16, seed=0, show_progress=None):
    """Extracts features for every video file under `videos_dir` into `out_dir`.

    Args: as `extract_video` and `backbones.build_backbones`; `show_progress` forces the progress
    bar on or off (None: only on a terminal).

    Returns:
      An `ExtractionSummary`. Failed videos are also printed to stderr by name as they happen.

    Raises:
      DataError: no videos, a settings mismatch with `out_dir/extraction.json`, missing weights.
      ImportError: the video extra (PyAV, OpenCV) is not installed.
    """
    import tqdm

    video_lib.import_video_extra("av")
    videos_dir, out_dir = pathlib.Path(videos_dir), pathlib.Path(out_dir)
    videos = video_lib.find_videos(videos_dir)
    if not videos:
        raise DataError(f"{videos_dir}: no video files ({', '.join(video_lib.VIDEO_EXTENSIONS)})")
    if stride < 1:
        raise DataError(f"stride must be at least 1, got {stride}")
    optical_flow = flow_lib.OpticalFlow(flow_algorithm)
    input_size = input_size or backbones_lib.default_input_size(backbone)
    short_side = short_side or round(input_size * 256 / 224)
    settings = {"backbone": backbone, "flow_backbone": flow_backbone or backbone,
                "weights": weights if not backbone.startswith(backbones_lib.SAVED_MODEL_PREFIX)
                else "saved_model", "flow_weights": flow_weights, "fps": float(fps),
                "stride": int(stride), "rgb_samples": int(rgb_samples),
                "flow_window": int(flow_window), "flow_algorithm": optical_flow.algorithm,
                "flow_bound": float(flow_bound), "input_size": int(input_size),
                "short_side": int(short_side), "seed": int(seed)}
    metadata = _load_metadata(out_dir, settings)
    sample_indices(stride, rgb_samples)  # Validates before the (slow) backbone build.
    flow_lib.window_indices(stride, flow_window)
    rgb_backbone, flow_backbone_net = backbones_lib.build_backbones(
        backbone, weights, flow_backbone, flow_weights, input_size, stride, flow_window, seed)
    (out_dir / "rgb").mkdir(parents=True, exist_ok=True)  # Only now: a setup error leaves no OUT.
    (out_dir / "flow").mkdir(exist_ok=True)
    metadata = {
        **settings,
        "format": FORMAT,
        "feature_rate": fps / stride,
        "feature_dims": {"rgb": rgb_backbone.feature_dim, "flow": flow_backbone_net.feature_dim},
        "backbones": {"rgb": rgb_backbone.describe(), "flow": flow_backbone_net.describe()},
        "flow_parameters": optical_flow.parameters,
        "versions": _versions(),
        "videos": (metadata or {}).get("videos", {}),
        "failed": {},
    }
    summary = ExtractionSummary(extracted=[], skipped=[], failed={})
    bar = progress(videos, total=len(videos), desc="extracting", enabled=show_progress)
    for path in bar:
        stem = path.stem
        if is_finished(out_dir, stem):
            summary.skipped.append(stem)
            continue

        def on_batch(done, expected, stem=stem):
            bar.set_postfix_str(f"{stem} {done}/{expected or '?'} segments", refresh=False)

        try:
            rgb_features, flow_features, info = extract_video(
                path, rgb_backbone, flow_backbone_net, optical_flow, fps, stride, rgb_samples,
                flow_bound, short_side, batch_size, on_batch)
        except Exception as error:  # One bad video must not stop the batch: report and go on.
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            summary.failed[stem] = message
            metadata["failed"][stem] = message
            tqdm.tqdm.write(f"failed: {stem}: {message}", file=sys.stderr)
            continue
        _write_features_atomically(out_dir, stem, rgb_features, flow_features)
        metadata["videos"][stem] = {"source": str(path.relative_to(videos_dir)), **info}
        _write_json_atomically(out_dir / METADATA_FILE, metadata)
        summary.extracted.append(stem)
    _write_json_atomically(out_dir / METADATA_FILE, metadata)
    rows = ["video,duration"] + [f"{stem},{entry['duration']}"
                                 for stem, entry in sorted(metadata["videos"].items())]
    temporary = out_dir / f".{VIDEO_INFO_FILE}.{os.getpid()}.tmp"
    temporary.write_text("\n".join(rows) + "\n", encoding="utf-8")
    os.replace(temporary, out_dir / VIDEO_INFO_FILE)
    return summary
