"""Writes the ActivityNet1.3 subset shipped for the embedded ActivityNet default.

  python tools/make_activitynet_subset.py \
      --annotations ../shared/data/activitynet/anet_anno_action.json \
      --video-info ../shared/data/activitynet/video_info_new.csv \
      --out tfwsar/resources/activitynet/activitynet13_subset.json

The selection is deterministic (no randomness beyond a fixed seed):
- classes: every 8th of the 200 class names in sorted order (25 classes, from "Applying
  sunscreen" to "Washing face"): a spread over the taxonomy, whose instances cover as much of
  their videos as ActivityNet's do (median 37% of the video; all 200 classes: 33%);
- videos: per class, among the training / validation videos whose only label is that class,
  sorted by id and permuted with `numpy.random.default_rng(SEED)`, the first 16 training and
  the first 6 validation ones (400 + 150 videos).
Every kept entry is copied as it is in the source (segments, labels, `duration_second`); the file
is in the official ActivityNet layout (`{"version", "taxonomy", "database": {id: {"subset",
"duration", "annotations"}}}`, ids without the `v_` prefix), one video per line.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tfwsar.data import annotations as annotation_io  # noqa: E402  pylint: disable=wrong-import-position

CLASS_STEP = 8
VIDEOS_PER_CLASS = {"training": 16, "validation": 6}
SEED = 0
VERSION = "ActivityNet1.3 subset (tfwsar embedded default: 25 classes, 400 training + 150 validation)"


def select(annotations_path, video_info_path):
    """The kept videos: {video id: {"subset", "duration", "annotations"}}, and the classes."""
    activitynet = annotation_io.read_activitynet_json(annotations_path, video_info=video_info_path)
    classes = activitynet.classes[::CLASS_STEP]
    source = json.loads(pathlib.Path(annotations_path).read_text(encoding="utf-8"))
    videos = activitynet.videos
    database = {}
    for label in classes:
        for subset, count in VIDEOS_PER_CLASS.items():
            candidates = sorted(videos.loc[(videos["subset"] == subset)
                                           & (videos["labels"] == (label,)), "video"])
            order = np.random.default_rng([SEED, classes.index(label)]).permutation(len(candidates))
            for index in order[:count]:
                video = candidates[index]
                record = source[f"v_{video}"]
                database[video] = {"subset": subset, "duration": record["duration_second"],
                                   "annotations": record["annotations"]}
    return dict(sorted(database.items())), classes


def write(path, database, classes):
    """One video per line, so that the shipped file diffs and greps well."""
    lines = [f"{json.dumps(video)}: {json.dumps(record)}" for video, record in database.items()]
    text = ('{"version": ' + json.dumps(VERSION) + ',\n "taxonomy": '
            + json.dumps([{"nodeName": name} for name in classes]) + ',\n "database": {\n'
            + ",\n".join(lines) + "\n}}\n")
    json.loads(text)  # a malformed file is never written
    pathlib.Path(path).write_text(text, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True, help="BSN's anet_anno_action.json")
    parser.add_argument("--video-info", required=True, help="BSN's video_info_new.csv (subsets)")
    parser.add_argument("--out", required=True, help="the subset JSON to write")
    args = parser.parse_args(argv)
    database, classes = select(args.annotations, args.video_info)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write(args.out, database, classes)
    subsets = [record["subset"] for record in database.values()]
    print(f"wrote {args.out}: {len(classes)} classes, {subsets.count('training')} training + "
          f"{subsets.count('validation')} validation videos, "
          f"{sum(len(r['annotations']) for r in database.values())} instances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
