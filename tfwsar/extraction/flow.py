"""Dense optical flow with OpenCV and flow images for the flow backbone.

Algorithm: TV-L1 (Zach et al. 2007, the two-stream/TSN/I3D standard) when the installed OpenCV has
it — it lives in the contrib module `cv2.optflow`, which `opencv-python-headless` does not ship
(`opencv-contrib-python-headless` does) — and Farnebäck (2003, in every OpenCV build) otherwise.
`auto` picks TV-L1 when present; the choice and its parameters are recorded in the output metadata,
because the two give different features.

Flow images follow the usual two-stream recipe: each displacement component (pixels/frame) is
clipped to [-bound, bound] and mapped linearly to [0, 255], so zero motion is grey (127.5 → 128):
`image = round((clip(u, -bound, bound) + bound) · 255 / (2 · bound))`.
A segment's flow input is `window` consecutive flow fields centred on the segment, stacked along
channels as [x_1, y_1, x_2, y_2, ...] (`2 · window` channels, as in TSN).
"""

import numpy as np

from tfwsar.errors import DataError
from tfwsar.extraction.video import import_video_extra

ALGORITHMS = ("auto", "tvl1", "farneback")

# OpenCV's tutorial settings for Farnebäck, used by most feature-extraction scripts.
FARNEBACK_PARAMETERS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3,
                        "poly_n": 5, "poly_sigma": 1.2, "flags": 0}


def _tvl1_factory(cv2):
    """The TV-L1 constructor of this OpenCV build, or None (contrib `optflow`, or OpenCV 3 main)."""
    optflow = getattr(cv2, "optflow", None)
    if optflow is not None and hasattr(optflow, "DualTVL1OpticalFlow_create"):
        return optflow.DualTVL1OpticalFlow_create
    return getattr(cv2, "DualTVL1OpticalFlow_create", None)


def tvl1_available():
    """True when the installed OpenCV has TV-L1 optical flow."""
    return _tvl1_factory(import_video_extra("cv2")) is not None


def resolve_algorithm(requested="auto"):
    """`tvl1` or `farneback` for `requested` in ALGORITHMS (auto → TV-L1 if available).

    Raises:
      DataError: unknown name, or `tvl1` requested on an OpenCV without it.
    """
    if requested not in ALGORITHMS:
        raise DataError(f"unknown flow algorithm {requested!r}; choose one of {', '.join(ALGORITHMS)}")
    if requested == "farneback":
        return "farneback"
    if tvl1_available():
        return "tvl1"
    if requested == "tvl1":
        cv2 = import_video_extra("cv2")
        raise DataError(
            f"TV-L1 optical flow is not in the installed OpenCV {cv2.__version__} (it is in the "
            "contrib module cv2.optflow); install opencv-contrib-python-headless of the same "
            "version instead of opencv-python-headless, or use --flow-algorithm farneback")
    return "farneback"


class OpticalFlow:
    """Dense optical flow between two frames.

    Args:
      algorithm: one of ALGORITHMS; `auto` resolves to TV-L1 when available, else Farnebäck.

    Attributes:
      algorithm: the resolved name (`tvl1` or `farneback`).
      parameters: the algorithm's settings, for the metadata.
    """

    def __init__(self, algorithm="auto"):
        self._cv2 = import_video_extra("cv2")
        self.algorithm = resolve_algorithm(algorithm)
        if self.algorithm == "tvl1":
            self._tvl1 = _tvl1_factory(self._cv2)()
            self.parameters = {name: getattr(self._tvl1, "get" + name)()
                               for name in ("Tau", "Lambda", "Theta", "ScalesNumber", "WarpingsNumber",
                                            "Epsilon") if hasattr(self._tvl1, "get" + name)}
        else:
            self.parameters = dict(FARNEBACK_PARAMETERS)

    def to_gray(self, frame):
        """uint8 `[H, W]` luminance of an RGB uint8 frame `[H, W, 3]`."""
        return self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2GRAY)

    def __call__(self, previous_frame, next_frame):
        """Flow from `previous_frame` to `next_frame` (RGB uint8 `[H, W, 3]`) → float32 `[H, W, 2]`.

        Channel 0 is the horizontal, channel 1 the vertical displacement in pixels per frame.
        """
        previous_gray, next_gray = self.to_gray(previous_frame), self.to_gray(next_frame)
        if self.algorithm == "tvl1":
            flow = self._tvl1.calc(previous_gray, next_gray, None)
        else:
            flow = self._cv2.calcOpticalFlowFarneback(previous_gray, next_gray, None,
                                                      **FARNEBACK_PARAMETERS)
        return flow.astype(np.float32, copy=False)


def flow_to_image(flow, bound=20.0):
    """Flow `[..., 2]` (pixels/frame) → uint8 `[..., 2]`: clipped to ±bound, scaled to 0..255."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.round(scaled).astype(np.uint8)


def window_indices(stride, window):
    """Frame indices (0..stride-1) whose flows a segment stacks: `window` consecutive, centred.

    The flow at index i is the flow from frame i to frame i + 1.
    """
    if not 1 <= window <= stride:
        raise DataError(f"flow window {window} must be between 1 and the stride {stride}")
    first = stride // 2 - window // 2
    return list(range(first, first + window))


def segment_flows(optical_flow, segment, next_frame, indices):
    """Flow fields `[len(indices), H, W, 2]` float32 for frames `indices` of one segment.

    The flow at the segment's last frame goes to `next_frame`; at the end of the video
    (`next_frame` None) the previous frame pair is used instead.
    """
    frames = list(segment) + ([next_frame] if next_frame is not None else [])
    flows = []
    for index in indices:
        start = min(index, len(frames) - 2)
        if start < 0:  # A one-frame segment cannot move.
            flows.append(np.zeros(segment[0].shape[:2] + (2,), np.float32))
        else:
            flows.append(optical_flow(frames[start], frames[start + 1]))
    return np.stack(flows)
