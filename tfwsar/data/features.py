"""Feature sources: where the per-segment RGB and optical-flow features of each video come from.

Every source has the same two methods and nothing else is asked of it:

  source.videos() -> list[str]                       the video ids it holds, sorted
  source.read(video) -> (rgb [T, D_rgb], flow [T, D_flow])   float32 numpy arrays

Layouts (DESIGN.md, "Feature layouts read by the converters"):

  PerVideoNpyFeatures   FEATURES/rgb/<video>.npy and FEATURES/flow/<video>.npy, [T, D] each
                        (what tools/extract_features.py writes).
  WtalcFeatures         W-TALC's one pickled object array of [T, D_rgb + D_flow] (the two I3D
                        streams concatenated), aligned with its `*-Annotations/videoname.npy`.
  Hdf5Features          one HDF5 file, a group or dataset per video (ActivityNet C3D style),
                        read through tensorflow-io.
  InMemoryFeatures      a dict video -> (rgb, flow), for generated data and tests.

`open_features(path)` picks the source from what is on disk.

Every `read` validates what it returns, the same way for every layout, and raises
`tfwsar.errors.DataError` naming the video and the file:
  - an array that is not 2-D [T, D], or that has no segments (T = 0);
  - a NaN or infinite value (the message gives the stream and the first bad segment);
  - RGB and flow lengths that differ by more than one segment (the message gives both lengths).
RGB and flow lengths that differ by exactly one segment are trimmed to the shorter: two-stream
extractors routinely produce one flow segment fewer than RGB (flow needs frame pairs), and the
extra segment sits at the very end of the video.
"""

import os
import pathlib

import numpy as np

from tfwsar.errors import DataError

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def validate_streams(video, location, rgb, flow):
    """Checks and aligns one video's two streams; returns (rgb, flow) as float32 [T, D] arrays.

    Args:
      video: the video id (for messages).
      location: the file(s) the arrays came from (for messages).
      rgb: array-like [T_rgb, D_rgb].
      flow: array-like [T_flow, D_flow].

    Raises:
      DataError: wrong rank, T = 0, NaN/inf, or |T_rgb − T_flow| > 1.
    """
    streams = {}
    for stream, values in (("rgb", rgb), ("flow", flow)):
        try:
            values = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise DataError(f"video {video} ({location}): {stream} features are not numeric: "
                            f"{error}") from error
        if values.ndim != 2:
            raise DataError(f"video {video} ({location}): {stream} features have shape "
                            f"{values.shape}; expected [T, D] (2-D)")
        if values.shape[0] == 0:
            raise DataError(f"video {video} ({location}): {stream} features are empty (T = 0)")
        if values.shape[1] == 0:
            raise DataError(f"video {video} ({location}): {stream} features have D = 0")
        finite = np.isfinite(values)
        if not finite.all():
            bad_segment = int(np.argwhere(~finite)[0, 0])
            raise DataError(f"video {video} ({location}): {stream} features contain NaN or inf "
                            f"(first at segment {bad_segment} of {values.shape[0]})")
        streams[stream] = values
    rgb, flow = streams["rgb"], streams["flow"]
    if abs(rgb.shape[0] - flow.shape[0]) > 1:
        raise DataError(f"video {video} ({location}): RGB has {rgb.shape[0]} segments but flow has "
                        f"{flow.shape[0]}; they may differ by at most one segment")
    length = min(rgb.shape[0], flow.shape[0])
    return rgb[:length], flow[:length]


class FeatureSource:
    """The interface every layout implements: `videos()` and a validated `read(video)`."""

    def videos(self):
        """The video ids this source holds, sorted."""
        raise NotImplementedError

    def read(self, video):
        """Returns (rgb [T, D_rgb], flow [T, D_flow]) float32 for `video`, validated."""
        rgb, flow, location = self._read_raw(video)
        return validate_streams(video, location, rgb, flow)

    def _read_raw(self, video):
        """Returns (rgb, flow, location) as stored; `read` validates them."""
        raise NotImplementedError


class PerVideoNpyFeatures(FeatureSource):
    """`DIRECTORY/rgb/<video>.npy` and `DIRECTORY/flow/<video>.npy`, each float [T, D].

    A video is listed when either file exists; reading one whose other stream is missing raises
    DataError naming the missing file.
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        for stream in ("rgb", "flow"):
            if not (self.directory / stream).is_dir():
                raise DataError(f"{self.directory}: per-video features need the folders rgb/ and "
                                f"flow/; {self.directory / stream} is missing")

    def _stems(self, stream):
        with os.scandir(self.directory / stream) as entries:
            return {entry.name[:-4] for entry in entries if entry.name.endswith(".npy")}

    def videos(self):
        return sorted(self._stems("rgb") | self._stems("flow"))

    def _load(self, video, stream):
        path = self.directory / stream / f"{video}.npy"
        if not path.is_file():
            raise DataError(f"video {video}: {path} is missing")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"video {video}: cannot read {path}: {error}") from error

    def _read_raw(self, video):
        location = (f"{self.directory / 'rgb' / video}.npy, "
                    f"{self.directory / 'flow' / video}.npy")
        return self._load(video, "rgb"), self._load(video, "flow"), location


def _decode_names(names, path):
    decoded = []
    for name in np.asarray(names).reshape(-1):
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        if not isinstance(name, str):
            raise DataError(f"{path}: video names must be strings, found {type(name).__name__}")
        decoded.append(name.strip())
    return decoded


class WtalcFeatures(FeatureSource):
    """W-TALC's joint features: one pickled object array of [T, D_rgb + D_flow] arrays.

    Element i belongs to the video named by element i of `ANNOTATIONS/videoname.npy`. Each element
    is split at the stream boundary: columns [0, rgb_dim) are RGB, [rgb_dim, D) are flow. The
    default boundary is half of D (I3D: 1024 + 1024).

    Args:
      npy_path: the features file, e.g. `Thumos14reduced-I3D-JOINTFeatures.npy`.
      annotations_dir: the W-TALC annotation folder holding `videoname.npy`.
      rgb_dim: width of the RGB part; None = D / 2.
    """

    def __init__(self, npy_path, annotations_dir, rgb_dim=None):
        self.npy_path = pathlib.Path(npy_path)
        self.annotations_dir = pathlib.Path(annotations_dir)
        self.rgb_dim = rgb_dim
        self._arrays = None
        self._index = None

    def _load(self):
        if self._index is not None:
            return
        names_path = self.annotations_dir / "videoname.npy"
        try:
            names = np.load(names_path, allow_pickle=True)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"cannot read W-TALC video names {names_path}: {error}") from error
        names = _decode_names(names, names_path)
        try:
            # W-TALC's files are Python-2 pickles; encoding="bytes" is how W-TALC loads them.
            arrays = np.load(self.npy_path, allow_pickle=True, encoding="bytes")
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"cannot read W-TALC features {self.npy_path}: {error}") from error
        if len(arrays) != len(names):
            raise DataError(f"{self.npy_path} holds {len(arrays)} videos but {names_path} names "
                            f"{len(names)}; they must be aligned element by element")
        index = {}
        for position, name in enumerate(names):
            if name in index:
                raise DataError(f"{names_path}: video {name} is listed twice "
                                f"(elements {index[name]} and {position})")
            index[name] = position
        self._arrays, self._index = arrays, index

    def videos(self):
        self._load()
        return sorted(self._index)

    def _read_raw(self, video):
        self._load()
        if video not in self._index:
            raise DataError(f"video {video}: not in {self.annotations_dir / 'videoname.npy'}")
        position = self._index[video]
        location = f"{self.npy_path} element {position}"
        try:
            joint = np.asarray(self._arrays[position], dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise DataError(f"video {video} ({location}): features are not numeric: {error}") from error
        if joint.ndim != 2:
            raise DataError(f"video {video} ({location}): joint features have shape {joint.shape}; "
                            f"expected [T, D_rgb + D_flow]")
        width = joint.shape[1]
        rgb_dim = self.rgb_dim if self.rgb_dim is not None else width // 2
        if self.rgb_dim is None and width % 2:
            raise DataError(f"video {video} ({location}): joint features have odd width {width}; "
                            f"pass rgb_dim to say where RGB ends")
        if not 0 < rgb_dim < width:
            raise DataError(f"video {video} ({location}): rgb_dim {rgb_dim} does not split "
                            f"features of width {width} into two streams")
        return joint[:, :rgb_dim], joint[:, rgb_dim:], location


class Hdf5Features(FeatureSource):
    """One HDF5 file with a group or a dataset per video, read through tensorflow-io.

    Layouts, decided per video:
      - `/<video>/<rgb_key>` and `/<video>/<flow_key>`: two streams;
      - `/<video>/<any name>` (one dataset in the group, e.g. ActivityNet's
        `v_xxx/c3d_features`) or `/<video>` (a dataset at the top level): one stream, which
        `single_dataset` turns into two:
          "duplicate" (default): flow = rgb = the whole array. Safe for a genuinely single-stream
            feature such as ActivityNet's 500-d C3D, where splitting would cut one feature vector
            into two meaningless halves;
          "split": the first half of the columns is RGB, the second half flow — for files that
            store two concatenated streams (I3D RGB ‖ flow) in one dataset.
    Any other group content (several datasets but not both keys) raises DataError.

    tensorflow-io opens the file lazily, on the first `videos()` or `read()`, and lists every
    dataset once (about 3 ms per dataset; ActivityNet's ~20k videos take about a minute).

    Args:
      path: the .h5 file.
      rgb_key, flow_key: dataset names of the two streams inside a video's group.
      single_dataset: "duplicate" or "split", see above.
    """

    def __init__(self, path, rgb_key="rgb", flow_key="flow", single_dataset="duplicate"):
        if single_dataset not in ("duplicate", "split"):
            raise ValueError(f"single_dataset must be 'duplicate' or 'split', not {single_dataset!r}")
        self.path = pathlib.Path(path)
        self.rgb_key = rgb_key
        self.flow_key = flow_key
        self.single_dataset = single_dataset
        self._layout = None  # video -> {dataset name: IOTensor element}

    def _open(self):
        if self._layout is not None:
            return
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        import tensorflow_io as tfio  # pylint: disable=import-outside-toplevel

        if not self.path.is_file():
            raise DataError(f"HDF5 features {self.path} do not exist")
        try:
            collection = tfio.IOTensor.from_hdf5(str(self.path))
            keys = [key.numpy().decode("utf-8") for key in collection.keys]
        except (tf.errors.OpError, ValueError) as error:
            raise DataError(f"cannot read HDF5 features {self.path}: {error}") from error
        # `collection(key)` finds a key by comparing it with every key as an eager tensor: O(N)
        # per lookup, 0.1 s each at 1,000 videos. The elements are stored in key order, so one
        # zip gives constant-time lookup; fall back to the public call if that ever changes.
        elements = getattr(collection, "_values", None)
        if elements is None or len(elements) != len(keys):
            elements = [collection(key) for key in collection.keys]
        layout = {}
        for key, element in zip(keys, elements):
            parts = key.strip("/").split("/")
            if len(parts) == 1:
                video, dataset = parts[0], None
            else:
                video, dataset = "/".join(parts[:-1]), parts[-1]
            layout.setdefault(video, {})[dataset] = element
        self._layout = layout

    def videos(self):
        self._open()
        return sorted(self._layout)

    def _tensor(self, video, dataset, element):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        name = f"/{video}" if dataset is None else f"/{video}/{dataset}"
        try:
            return element.to_tensor().numpy()
        except (tf.errors.OpError, ValueError) as error:
            raise DataError(f"video {video}: cannot read dataset {name} of {self.path}: "
                            f"{error}") from error

    def _read_raw(self, video):
        self._open()
        if video not in self._layout:
            raise DataError(f"video {video}: no group or dataset /{video} in {self.path}")
        datasets = self._layout[video]
        if self.rgb_key in datasets and self.flow_key in datasets:
            location = f"{self.path}:/{video}/{{{self.rgb_key},{self.flow_key}}}"
            return (self._tensor(video, self.rgb_key, datasets[self.rgb_key]),
                    self._tensor(video, self.flow_key, datasets[self.flow_key]), location)
        if len(datasets) != 1:
            names = sorted(str(name) for name in datasets)
            names = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
            raise DataError(f"video {video}: group /{video} of {self.path} holds datasets "
                            f"[{names}]; expected one dataset, or '{self.rgb_key}' and "
                            f"'{self.flow_key}'")
        (dataset, element), = datasets.items()
        location = f"{self.path}:/{video}" + ("" if dataset is None else f"/{dataset}")
        values = self._tensor(video, dataset, element)
        if self.single_dataset == "duplicate" or values.ndim != 2:
            return values, values, location
        width = values.shape[1]
        if width % 2:
            raise DataError(f"video {video} ({location}): cannot split {width} columns into two "
                            f"equal streams; use single_dataset='duplicate'")
        return values[:, :width // 2], values[:, width // 2:], location


class InMemoryFeatures(FeatureSource):
    """Features held in a dict `video -> (rgb [T, D_rgb], flow [T, D_flow])`."""

    def __init__(self, features):
        self.features = dict(features)

    def videos(self):
        return sorted(self.features)

    def _read_raw(self, video):
        if video not in self.features:
            raise DataError(f"video {video}: no features in memory")
        rgb, flow = self.features[video]
        return rgb, flow, "in-memory features"


class RenamedFeatures(FeatureSource):
    """Another source seen under different video ids: `names` maps new id -> the source's id.

    Used to align feature ids with annotation ids when they differ by a convention (ActivityNet
    C3D files say `v_<youtube id>`, the official annotation JSON says `<youtube id>`).
    """

    def __init__(self, source, names):
        self.source = source
        self.names = dict(names)
        if len(set(self.names.values())) != len(self.names):
            raise ValueError("two new ids map to the same source id")

    def videos(self):
        return sorted(self.names)

    def read(self, video):
        if video not in self.names:
            raise DataError(f"video {video}: no features")
        return self.source.read(self.names[video])


def _find_wtalc_annotations(npy_path, search):
    """The folder with W-TALC's `videoname.npy` for `npy_path`: in `search`, else beside it."""
    candidates = []
    if search is not None:
        search = pathlib.Path(search)
        if (search / "videoname.npy").is_file():
            return search
        if search.is_dir():
            candidates.extend(sorted(path.parent for path in search.rglob("videoname.npy")))
    siblings = sorted(path.parent for path in npy_path.parent.glob("*/videoname.npy"))
    # Thumos14reduced-I3D-JOINTFeatures.npy goes with Thumos14reduced-Annotations/.
    prefix = npy_path.name.split("-")[0]
    siblings.sort(key=lambda path: not path.name.startswith(prefix + "-"))
    candidates.extend(siblings)
    if not candidates:
        raise DataError(f"{npy_path} looks like W-TALC joint features, but no W-TALC annotation "
                        f"folder (with videoname.npy) was found in "
                        f"{search if search is not None else npy_path.parent} or beside the file")
    return candidates[0]


def open_features(path, *, wtalc_annotations=None, rgb_dim=None, single_dataset="duplicate",
                  rgb_key="rgb", flow_key="flow"):
    """The feature source stored at `path`, chosen by layout.

    - a directory with rgb/ and flow/ folders → PerVideoNpyFeatures;
    - a file ending .h5/.hdf5/.hdf → Hdf5Features(rgb_key, flow_key, single_dataset);
    - a file ending .npy → WtalcFeatures, with the video names from `wtalc_annotations` (a W-TALC
      annotation folder, or a folder searched recursively for `videoname.npy`), else from a
      `*-Annotations/` folder beside the file.

    Raises:
      DataError: `path` does not exist or matches no layout.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(f"features {path} do not exist")
    if path.is_dir():
        if (path / "rgb").is_dir() or (path / "flow").is_dir():
            return PerVideoNpyFeatures(path)
        raise DataError(f"features directory {path} has no rgb/ and flow/ folders of per-video "
                        f".npy files (pass an .h5 file or a W-TALC .npy file instead)")
    if path.suffix.lower() in HDF5_SUFFIXES:
        return Hdf5Features(path, rgb_key=rgb_key, flow_key=flow_key, single_dataset=single_dataset)
    if path.suffix.lower() == ".npy":
        return WtalcFeatures(path, _find_wtalc_annotations(path, wtalc_annotations), rgb_dim=rgb_dim)
    raise DataError(f"features {path}: expected a directory with rgb/ and flow/, an HDF5 file "
                    f"({', '.join(HDF5_SUFFIXES)}) or a W-TALC .npy file")
