"""What a run leaves behind for people: metrics.json, paper-shaped tables, attention timelines.

`metrics.json` (the public contract of DESIGN.md):
  {"classification": {"rgb", "flow", "fusion"}   top-1 accuracy in [0, 1],
   "detection": {"0.1": mAP, ..., "0.9": mAP, "average": mean over those thresholds}}
plus extra keys a reader may ignore (selection, fused mAP, average over 0.1:0.7, protocol).
"""

import glob
import os

import numpy as np

from tfwsar import files

# Zhang et al. (AAAI 2019), THUMOS14 test set, real I3D/ResNet features (Tables 1 and 3).
PAPER_THUMOS14_CLASSIFICATION = {"rgb": 0.744, "flow": 0.796, "fusion": 0.871}
PAPER_THUMOS14_DETECTION = {"0.1": 0.559, "0.2": 0.469, "0.3": 0.383, "0.4": 0.281, "0.5": 0.186,
                            "0.6": 0.110, "0.7": 0.0559, "0.8": 0.0219, "0.9": 0.0029}
PAPER_ACTIVITYNET_DETECTION = {"0.5": 0.331, "0.75": 0.187, "0.95": 0.0332, "average": 0.2178}


def paper_results(protocol):
    """(classification, detection) of the TSRNet paper on a protocol's dataset; None where it has none."""
    if protocol == "activitynet":
        return None, PAPER_ACTIVITYNET_DETECTION
    return PAPER_THUMOS14_CLASSIFICATION, PAPER_THUMOS14_DETECTION


def write_json(path, document):
    """Writes a report (metrics.json, metrics_seeds.json) atomically, keys sorted."""
    files.write_json_atomically(path, document, sort_keys=True)


def metrics_document(classification, detection, extra=None):
    """The metrics.json document from classification metrics and an evaluation.detection_map result."""
    document = {
        "classification": {key: float(classification[key]) for key in ("rgb", "flow", "fusion")},
        "detection": {**{key: float(value) for key, value in detection["mAP"].items()},
                      "average": float(detection["average"])},
    }
    document.update(extra or {})
    return document


def seeds_summary(per_seed):
    """mean ± std (population std over seeds) of every number in a list of metrics documents."""
    def walk(documents):
        first = documents[0]
        if isinstance(first, dict):
            return {key: walk([d[key] for d in documents]) for key in first
                    if all(key in d for d in documents)}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            values = np.asarray(documents, np.float64)
            return {"mean": float(values.mean()), "std": float(values.std()),
                    "values": [float(v) for v in values]}
        return None
    return {"seeds": len(per_seed), "metrics": walk(per_seed)}


def _percent(value):
    return "   -  " if value is None else f"{100 * value:6.2f}"


def classification_table(rows, paper=PAPER_THUMOS14_CLASSIFICATION):
    """Table 1 shape: rows (name, metrics) with RGB / Flow / Fusion top-1 accuracy in percent."""
    lines = ["Classification accuracy (%)  [shape of TSRNet Table 1]",
             f"{'model':<34}{'RGB':>8}{'Flow':>8}{'Fusion':>8}"]
    for name, classification in rows:
        lines.append(f"{name:<34}" + "".join(
            f"  {_percent(classification[key])}" for key in ("rgb", "flow", "fusion")))
    if paper is not None:
        lines.append(f"{'paper TSRNet (THUMOS14, real)':<34}" + "".join(
            f"  {_percent(paper[key])}" for key in ("rgb", "flow", "fusion")))
    return "\n".join(lines)


def detection_table(rows, paper=PAPER_THUMOS14_DETECTION, paper_name=None):
    """Table 3 shape: rows (name, detection dict "0.1".."0.9"/"average") as mAP in percent.

    `paper` is a row of fractions printed as `paper_name` (default: TSRNet's row on its dataset).
    """
    keys = [key for key in rows[0][1] if key != "average"] + ["average"]
    lines = ["Detection mAP (%) at tIoU  [shape of TSRNet Table 3]",
             f"{'model':<34}" + "".join(f"{key:>8}" for key in keys)]
    for name, detection in rows:
        lines.append(f"{name:<34}" + "".join(f"  {_percent(detection.get(key))}" for key in keys))
    if paper is not None:
        if paper_name is None:
            dataset = "THUMOS14" if paper is PAPER_THUMOS14_DETECTION else "ActivityNet1.3"
            paper_name = f"paper TSRNet ({dataset}, real)"
        lines.append(f"{paper_name:<34}" + "".join(
            f"  {_percent(paper.get(key))}" for key in keys))
    return "\n".join(lines)


def attention_timeline(attention_rgb, attention_flow, instances, feature_rate, width=512):
    """An RGB uint8 image [60, width, 3] of one video: RGB attention (red), flow attention (green),
    ground-truth instances (white), each a 20-pixel band over the video's time axis.

    Args:
      attention_rgb, attention_flow: [T] attention over the video's segments.
      instances: iterable of (t_start, t_end) seconds.
      feature_rate: segments per second.
    """
    length = len(attention_rgb)
    columns = np.minimum((np.arange(width) * length) // width, length - 1)
    image = np.zeros((60, width, 3), np.uint8)
    for band, (attention, channel) in enumerate(((attention_rgb, 0), (attention_flow, 1))):
        values = np.asarray(attention, np.float64)[columns]
        peak = values.max() if values.max() > 0 else 1.0
        image[band * 20:(band + 1) * 20, :, channel] = (255 * values / peak).astype(np.uint8)
    seconds = (columns + 0.5) / feature_rate
    covered = np.zeros(width, bool)
    for t_start, t_end in instances:
        covered |= (seconds >= t_start) & (seconds <= t_end)
    image[40:60, covered, :] = 255
    return image


def run_summary(rows, *, data_dir, root, contents, paper_classification=None,
                paper_detection=None, paper_name=None, chief=True):
    """What a recipe prints at its end: the two paper-shaped tables and where everything went.

    Args:
      rows: [(name, metrics document)].
      data_dir: the dataset trained on ("" for the embedded default).
      root: the run directory. contents: what it holds, for the last line.
      paper_classification, paper_detection: the paper rows to print beside ours (or None).
      paper_name: the label of the detection paper row (default: TSRNet's).
      chief: False in a non-chief worker of a multi-worker run: its tables (what it computed), and
        that the run's files are the chief's instead of where they are.
    """
    if data_dir:
        provenance = f"Data: {data_dir}"
    else:
        provenance = ("Embedded default = real annotation timelines (THUMOS14, or ActivityNet1.3 "
                      "with --preset activitynet) with generated features: compare rows with each "
                      "other, not with a paper's numbers.")
    if not chief:
        provenance = ("This worker's tables. Only the chief writes the run: its files are in "
                      "the chief's --workdir.")
    # The last lines: where to look (report.html of the run, or of each variant / seed).
    reports = [] if not chief else sorted(glob.glob(os.path.join(root, "report.html"))
                     + glob.glob(os.path.join(root, "*", "report.html")))
    return "\n\n".join([
        classification_table([(name, m["classification"]) for name, m in rows],
                             paper=paper_classification),
        detection_table([(name, m["detection"]) for name, m in rows], paper=paper_detection,
                        paper_name=paper_name),
        *[f"{name}: {note}" for name, metrics in rows for note in metrics.get("notes", [])],
        provenance + (f"\nEverything is in {os.path.abspath(root)}: {contents}" if chief else "")
        + "".join(f"\nReport: {os.path.abspath(path)}" for path in reports)])
