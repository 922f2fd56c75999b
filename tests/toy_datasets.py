"""Converted toy datasets of any size for end-to-end tests (a class is a direction in feature space).

`make_dataset(out, train_videos=12, test_videos=6)` writes a converted dataset (THUMOS14 layout:
train on "validation", test on "test") whose videos hold one or two instances of one class on top
of noise. `train_labels` / `test_labels` give each video's class explicitly, so a test can leave a
class out of the test subset or give it a single training video.
"""

import numpy as np
import pandas as pd

from tfwsar.data import annotations as annotation_readers
from tfwsar.data import features as feature_sources
from tfwsar.data import records

CLASSES = ("Jump", "Run", "Throw", "Swim")
FEATURE_RATE = 1.5625


def make_dataset(out, *, train_videos=12, test_videos=6, feature_dim=8, lengths=(24, 41),
                 train_labels=None, test_labels=None, classes=CLASSES, seed=7):
    """Writes the dataset to `out`; returns `out`.

    Args:
      train_videos, test_videos: counts (ignored where the labels are given).
      feature_dim: D of both streams.
      lengths: [low, high) of the number of segments per video.
      train_labels, test_labels: optional class index per video; default cycles through classes.
      classes: the dataset's class list (the manifest's, whether or not a subset uses them all).
    """
    random = np.random.default_rng(seed)
    prototypes = {stream: random.normal(size=(len(classes), feature_dim)) for stream in ("rgb", "flow")}
    labels = {
        "validation": train_labels if train_labels is not None else [
            index % len(classes) for index in range(train_videos)],
        "test": test_labels if test_labels is not None else [
            index % len(classes) for index in range(test_videos)]}
    videos, instances, stored = [], [], {}
    for subset, subset_labels in labels.items():
        for index, label in enumerate(subset_labels):
            video = f"video_{subset}_{index:04d}"
            length = int(random.integers(*lengths))
            features = {stream: random.normal(scale=0.6, size=(length, feature_dim))
                        for stream in ("rgb", "flow")}
            starts = [int(random.integers(2, length // 2 - 6))]
            if index % 2:
                starts.append(int(random.integers(length // 2, length - 8)))
            for start in starts:
                stop = start + int(random.integers(4, 8))
                for stream in ("rgb", "flow"):
                    features[stream][start:stop] += 1.5 * prototypes[stream][label]
                instances.append((video, subset, classes[label], start / FEATURE_RATE,
                                  stop / FEATURE_RATE))
            videos.append((video, subset, length / FEATURE_RATE, (classes[label],)))
            stored[video] = (features["rgb"].astype(np.float32), features["flow"].astype(np.float32))
    video_table = pd.DataFrame(videos, columns=list(annotation_readers.VIDEO_COLUMNS))
    instance_table = pd.DataFrame(instances, columns=list(annotation_readers.INSTANCE_COLUMNS))
    toy = annotation_readers.Annotations(list(classes), video_table, instance_table,
                                         instance_table.iloc[:0], "toy")
    records.write_converted_dataset(out, name="toy", annotations=toy,
                                    features=feature_sources.InMemoryFeatures(stored))
    return out
