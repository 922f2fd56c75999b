"""Video decoding with PyAV: find files, resample to a fixed frame rate, resize, crop, segment.

tensorflow-io's FFmpeg ops need FFmpeg <= 4.2 and do not load against the FFmpeg this platform
ships (5.1), so decoding uses PyAV, whose wheels bring their own FFmpeg.

Frames come out as uint8 RGB arrays `[crop_size, crop_size, 3]`: the shorter side is resized to
`short_side` (aspect kept, area interpolation), then the centre square is cropped. The frame rate
is resampled to `fps` by presentation time: output frame k (at k / fps seconds) is the source frame
on screen at that moment, so frames are repeated or dropped as a player would.
"""

import importlib
import math
import pathlib

from tfwsar.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")


def import_video_extra(module_name):
    """Imports `av` or `cv2`, or raises ImportError saying how to install the video extra."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        package = {"av": "PyAV (av)", "cv2": "OpenCV (opencv-python-headless)"}.get(
            module_name, module_name)
        raise ImportError(
            f"feature extraction needs {package}, which is not installed ({error}); "
            "install the video extra: pip install -e '.[video]'") from error


def find_videos(directory):
    """Every video file (mp4, avi, mkv, webm; any case) under `directory`, recursively, sorted.

    Raises:
      DataError: `directory` is not a directory, or two videos share a file stem (their features
        would be written to the same `<stem>.npy`).
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    videos = sorted(path for path in directory.rglob("*")
                    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS)
    by_stem = {}
    for path in videos:
        if path.stem in by_stem:
            raise DataError(f"two videos share the name {path.stem!r}: {by_stem[path.stem]} and "
                            f"{path}; their features would overwrite each other")
        by_stem[path.stem] = path
    return videos


def resized_shape(height, width, short_side):
    """(height, width) after scaling the shorter side to `short_side`, aspect ratio kept."""
    scale = short_side / min(height, width)
    return max(short_side, round(height * scale)), max(short_side, round(width * scale))


def centre_crop(image, crop_size):
    """The central `crop_size` x `crop_size` square of `image` `[H, W, ...]`."""
    height, width = image.shape[:2]
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    return image[top:top + crop_size, left:left + crop_size]


class VideoReader:
    """Decodes one video file into frames at a fixed rate, resized and centre-cropped.

    Use as a context manager; iterate `frames()` once. After iteration `num_frames` holds the
    number of frames produced at the target rate.

    Args:
      path: the video file.
      fps: target frame rate (frames per second of the output).
      short_side: the shorter side is resized to this many pixels before cropping.
      crop_size: side of the square centre crop (the backbone's input size), <= short_side.

    Raises:
      DataError: the file cannot be opened, has no video stream.
    """

    def __init__(self, path, fps=25.0, short_side=256, crop_size=224):
        if fps <= 0:
            raise DataError(f"fps must be positive, got {fps}")
        if crop_size > short_side:
            raise DataError(f"crop size {crop_size} is larger than the resized short side {short_side}")
        av = import_video_extra("av")
        self.path = pathlib.Path(path)
        self.fps = float(fps)
        self.short_side = int(short_side)
        self.crop_size = int(crop_size)
        self.num_frames = 0
        try:
            self._container = av.open(str(self.path))
        except Exception as error:  # PyAV raises several FFmpegError subclasses and OSError.
            raise DataError(f"{self.path}: cannot open video ({error})") from error
        if not self._container.streams.video:
            self._container.close()
            raise DataError(f"{self.path}: no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.source_fps = float(rate) if rate else float("nan")
        self.duration = self._probe_duration()

    def _probe_duration(self):
        """Seconds, from the stream or container header; NaN if neither says."""
        stream = self._stream
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if self._container.duration is not None:
            return self._container.duration / 1_000_000  # av.time_base: microseconds.
        if stream.frames and self.source_fps == self.source_fps:
            return stream.frames / self.source_fps
        return float("nan")

    @property
    def estimated_frames(self):
        """Output frames expected from the header duration (None if the header has none)."""
        if math.isnan(self.duration):
            return None
        return max(1, round(self.duration * self.fps))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._container.close()

    def _to_array(self, frame):
        height, width = resized_shape(frame.height, frame.width, self.short_side)
        image = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
        return centre_crop(image, self.crop_size)

    def frames(self):
        """Yields uint8 `[crop_size, crop_size, 3]` RGB frames at `fps` frames per second."""
        source_period = 1.0 / self.source_fps if self.source_fps > 0 else 1.0 / self.fps
        start_time = None
        previous_frame, previous_time, previous_array = None, 0.0, None
        next_output = 0  # Output frame k is shown at k / fps seconds.
        # Timestamps are rounded to the stream's time base (1 ms in Matroska): times closer than
        # that count as equal, so rounding neither adds nor drops a frame.
        tolerance = max(1e-6, float(self._stream.time_base or 0))
        for index, frame in enumerate(self._container.decode(self._stream)):
            time = frame.time if frame.time is not None else index * source_period
            if start_time is None:
                start_time = time
            time = max(time - start_time, previous_time)  # Guard against non-monotonic stamps.
            if previous_frame is not None:
                while next_output / self.fps < time - tolerance:
                    if previous_array is None:
                        previous_array = self._to_array(previous_frame)
                    yield previous_array
                    next_output += 1
            previous_frame, previous_time, previous_array = frame, time, None
        if previous_frame is None:
            raise DataError(f"{self.path}: no decodable video frames")
        # The last source frame stays on screen for one source frame period.
        end_time = previous_time + source_period
        while next_output / self.fps < end_time - tolerance or next_output == 0:
            if previous_array is None:
                previous_array = self._to_array(previous_frame)
            yield previous_array
            next_output += 1
        self.num_frames = next_output


def split_segments(frames, stride):
    """Groups frames into segments of `stride` consecutive frames.

    Yields `(segment, next_frame)`: `segment` a list of `stride` frames, `next_frame` the frame
    after the segment (None at the end of the video), which optical flow of the segment's last
    frame needs. Frames after the last full segment are dropped (T = floor(frames / stride)),
    except that a video shorter than one segment gives one segment padded by repeating its last
    frame, so every readable video has at least one feature.
    """
    buffer = []
    produced = 0
    for frame in frames:
        buffer.append(frame)
        if len(buffer) == stride + 1:
            yield buffer[:stride], buffer[stride]
            produced += 1
            buffer = buffer[stride:]
    if len(buffer) == stride:
        yield buffer, None
    elif produced == 0 and buffer:
        yield buffer + [buffer[-1]] * (stride - len(buffer)), None
