"""`workdir/report.html`: one offline page that shows a run (or compares several).

A recipe ends with two calls::

    run_report.save_report_data(workdir, test_outputs, predictions, ground_truth, classes, feature_rate)
    run_report.write_report(workdir)

`save_report_data` keeps what the page needs from the test split and nothing else, in
`workdir/report_data.json`: the per-class AP at tIoU 0.5, the AP of every test video, and for five
of them (the best, the upper quartile, the median, the lower quartile and the worst by AP) the
per-segment attention of each stream, the class activation of the predicted classes, the ground
truth and the detections. `write_report` (also `python tools/report.py WORKDIR...`) needs no
model: it reads that file, `metrics.json`, `config.json` and the TensorBoard event files in
`train/` and `eval/`, and writes one static HTML file with every image embedded (base64 PNG):

- the run's classification and detection tables beside the paper's (TSRNet, Zhang et al. 2019);
- per-class AP at tIoU 0.5, sorted;
- a timeline per chosen test video: ground truth, attention per stream, class activation of the
  predicted classes, detections with their scores;
- training curves: the loss terms, the learning rates, the held-out selection metric with the
  chosen step(s);
- the command that reproduces the run (`--set` for every setting that differs from the closest
  preset) and its whole config.json.

Plots are matplotlib Figures drawn by Agg outside pyplot, imported inside the functions that draw.
"""

import base64
import datetime
import glob
import html
import importlib
import io
import json
import os
import shlex

import numpy as np

from tfwsar import evaluation, files, localize, reporting

REPORT_FILE = "report.html"
DATA_FILE = "report_data.json"
REPORT_TIOU = 0.5
TIMELINE_PICKS = (("best", 1.0), ("upper quartile", 0.75), ("median", 0.5),
                  ("lower quartile", 0.25), ("worst", 0.0))
"""Which test videos get a timeline: (name, quantile of the per-video AP)."""


# ------------------------------------------------------------------------------------------------
# At the end of a recipe: what the page needs from the test split
# ------------------------------------------------------------------------------------------------


def save_report_data(workdir, outputs, predictions, ground_truth, classes, feature_rate):
    """Writes `workdir/report_data.json` from the test split's outputs (the model is not needed later).

    Args:
      workdir: the run directory (its config.json gives θ, top_k and the excluded test videos).
      outputs: the test videos' `inference.VideoOutputs`.
      predictions: the ActivityNet-format predictions written to predictions.json.
      ground_truth: `evaluation.GroundTruth` of the test subset.
      classes: class names (index order).
      feature_rate: segments per second.

    Returns:
      The document written: {"tiou", "per_class_ap": {class: AP}, "video_ap": {video: AP},
      "timelines": [{"pick", "video", "ap", "duration", "feature_rate", "labels",
      "ground_truth", "ambiguous", "attention": {"rgb", "flow"}, "activation": {class: [T]},
      "detections"}]}.
    """
    detection = _read_json(os.path.join(workdir, "config.json"))["detection"]
    theta, top_k = detection["theta"], detection.get("top_k", 2)
    excluded = evaluation.THUMOS14_BAD_TEST_VIDEOS if detection.get("drop_bad_test_videos") else ()
    truth = ground_truth.without_videos(excluded)
    per_class = evaluation.detection_map(truth, predictions, (REPORT_TIOU,),
                                         exclude_videos=excluded)["per_class"]
    key = evaluation.tiou_key(REPORT_TIOU)
    video_ap = per_video_average_precision(truth, predictions["results"])
    by_video = {output.video: output for output in outputs}
    timelines = []
    for pick, video in pick_videos(video_ap):
        if video not in by_video:
            continue
        output = by_video[video]
        fused = theta * output.probabilities["rgb"] + (1 - theta) * output.probabilities["flow"]
        activation = (theta * output.segment_probabilities["rgb"]
                      + (1 - theta) * output.segment_probabilities["flow"])
        instances = truth.instances[truth.instances["video"] == video]
        ambiguous = truth.ambiguous[truth.ambiguous["video"] == video]
        timelines.append({
            "pick": pick, "video": video, "ap": video_ap[video], "duration": output.duration,
            "feature_rate": float(feature_rate),
            "labels": [classes[index] for index in output.labels],
            "ground_truth": [[label, float(start), float(end)] for label, start, end in
                             zip(instances["label"], instances["t_start"], instances["t_end"])],
            "ambiguous": [[float(s), float(e)] for s, e in zip(ambiguous["t_start"], ambiguous["t_end"])],
            "attention": {stream: _rounded(localize.max_normalize(output.attention[stream]))
                          for stream in ("rgb", "flow")},
            "activation": {classes[c]: _rounded(activation[:, c])
                           for c in np.argsort(-fused, kind="stable")[:top_k]},
            "detections": predictions["results"].get(video, []),
        })
    document = {"tiou": key, "per_class_ap": {name: values[key] for name, values in per_class.items()},
                "video_ap": video_ap, "timelines": timelines}
    files.write_json_atomically(os.path.join(workdir, DATA_FILE), document)
    return document


def per_video_average_precision(ground_truth, results, tiou=REPORT_TIOU):
    """{video: AP at `tiou`} of every video with ground-truth instances.

    A video's AP is the mean, over the classes of its ground truth, of the AP of its own
    detections of that class (the ActivityNet definition restricted to one video); detections of
    classes the video does not contain have no AP to lower and are left out.
    """
    import pandas as pd  # pylint: disable=import-outside-toplevel

    aps = {}
    instances, ambiguous = ground_truth.instances, ground_truth.ambiguous
    for video, video_instances in instances.groupby("video", sort=False):
        labels = set(video_instances["label"])
        rows = [(video, entry["label"], entry["segment"][0], entry["segment"][1], entry["score"])
                for entry in results.get(video, []) if entry["label"] in labels]
        frame = pd.DataFrame(rows, columns=list(evaluation.PREDICTION_COLUMNS))
        truth = evaluation.GroundTruth(video_instances.reset_index(drop=True),
                                       ambiguous[ambiguous["video"] == video].reset_index(drop=True),
                                       (video,), ground_truth.subset, ground_truth.source)
        aps[video] = float(evaluation.detection_map(truth, frame, (tiou,))["average"])
    return aps


def pick_videos(video_ap):
    """[(pick name, video)] for TIMELINE_PICKS: the videos at those quantiles of the AP, distinct."""
    ranked = sorted(video_ap, key=lambda video: (video_ap[video], video))
    picked, seen = [], set()
    for name, quantile in TIMELINE_PICKS:
        if not ranked:
            break
        video = ranked[int(round(quantile * (len(ranked) - 1)))]
        if video not in seen:
            seen.add(video)
            picked.append((name, video))
    return picked


def _rounded(values):
    return [round(float(value), 4) for value in values]


# ------------------------------------------------------------------------------------------------
# Reading a workdir
# ------------------------------------------------------------------------------------------------


def _read_json(path, default=None):
    if not os.path.exists(path):
        if default is not None:
            return default
        raise FileNotFoundError(f"{path}: not found; is this a finished tfwsar run directory?")
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def method_of(config):
    """The recipe a config.json belongs to: "convex_clustering" or "tsrnet"."""
    return "convex_clustering" if "clustering" in config else "tsrnet"


def read_scalars(directory):
    """{tag: (steps [N] int, values [N] float)} of every scalar summary in `directory`'s event files.

    A step written twice (a resumed run) keeps its last value; a truncated file (a killed run)
    gives what was written before the cut.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    series = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        number = value.simple_value
                    elif (value.HasField("tensor") and not value.tensor.tensor_shape.dim
                          and value.tensor.dtype in (tf.float32.as_datatype_enum,
                                                     tf.float64.as_datatype_enum)):
                        number = float(tf.make_ndarray(value.tensor))
                    else:
                        continue
                    series.setdefault(value.tag, {})[int(event.step)] = number
        except tf.errors.DataLossError:
            continue
    return {tag: (np.asarray(sorted(points), np.int64),
                  np.asarray([points[step] for step in sorted(points)], np.float64))
            for tag, points in series.items()}


def chosen_steps(metrics):
    """The steps whose weights the run kept: metrics["selection"], or each round's (convex)."""
    records = [metrics.get("selection")] + [entry.get("selection") for entry in metrics.get("rounds", [])]
    return sorted({int(record["step"]) for record in records if record})


def reproduce_command(workdir, config):
    """The recipe command that recreates `config`: the closest preset plus `--set` for each difference."""
    method = method_of(config)
    recipe = importlib.import_module(f"tfwsar.recipes.{method}")
    from tfwsar import config as config_lib  # pylint: disable=import-outside-toplevel

    candidates = []
    data_dir = config.get("data", {}).get("data_dir", "")
    for preset in getattr(recipe, "PRESETS", ("default", "paper", "activitynet")):
        try:  # presets may depend on whether the data is real (tsrnet's get_config(preset, data_dir))
            base = recipe.get_config(preset, data_dir=data_dir)
        except TypeError:
            try:
                base = recipe.get_config() if preset == "default" else recipe.get_config(preset)
            except (TypeError, ValueError):
                continue
        except ValueError:
            continue
        candidates.append((preset, _differences(config_lib.to_dict(base), config)))
    preset, differences = min(candidates, key=lambda candidate: len(candidate[1]))
    words = ["python", "-m", f"tfwsar.recipes.{method}", "--workdir", workdir]
    if preset != "default":
        words += ["--preset", preset]
    for key, value in differences:
        words += ["--variant", value] if key == "variant" else ["--set", f"{key}={value}"]
    return " ".join(shlex.quote(str(word)) for word in words)


def _differences(base, config, prefix=""):
    """[(dotted key, value as --set text)] where `config` differs from `base` (keys of both)."""
    found = []
    for key, value in config.items():
        if key not in base:
            continue
        if isinstance(value, dict):
            found += _differences(base[key], value, f"{prefix}{key}.")
        elif _as_set_text(value) != _as_set_text(base[key]):
            found.append((f"{prefix}{key}", _as_set_text(value)))
    return found


def _as_set_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_as_set_text(item) for item in value)
    return str(value)


def _load_run(workdir, name):
    config = _read_json(os.path.join(workdir, "config.json"))
    metrics = _read_json(os.path.join(workdir, "metrics.json"))
    return {"name": name, "workdir": os.path.abspath(workdir), "config": config, "metrics": metrics,
            "data": _read_json(os.path.join(workdir, DATA_FILE), {}),
            "train": read_scalars(os.path.join(workdir, "train")),
            "eval": read_scalars(os.path.join(workdir, "eval")),
            "command": reproduce_command(workdir, config)}


def _run_names(workdirs):
    """Short distinct names: the variant / method for one run, paths below their common root else."""
    if len(workdirs) == 1:
        config = _read_json(os.path.join(workdirs[0], "config.json"))
        return [config.get("variant", method_of(config).replace("_", " "))]
    absolute = [os.path.abspath(path) for path in workdirs]
    root = os.path.commonpath(absolute)
    names = [os.path.relpath(path, root) if path != root else os.path.basename(path) for path in absolute]
    return names if len(set(names)) == len(names) else absolute


# ------------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg)
# ------------------------------------------------------------------------------------------------


def _figure(**kwargs):
    """A matplotlib Figure drawn by Agg, outside pyplot: no global backend or figure state, so a
    report drawn inside a notebook leaves its plotting alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _png(figure):
    """The figure as a base64 PNG data URI (and the figure closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)  # fixed margins: a tight bbox costs a redraw
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _class_colors(names):
    """A colour per class name of one figure (tab10 over the sorted names)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    palette = matplotlib.colormaps["tab10"].colors
    return {name: palette[index % len(palette)] for index, name in enumerate(sorted(set(names)))}


def per_class_figure(runs):
    """Horizontal bars of AP at tIoU 0.5 per class, sorted by the first run's AP (one bar per run)."""
    series = [(run["name"], run["data"]["per_class_ap"]) for run in runs]
    first = series[0][1]
    classes = sorted(set().union(*(aps for _, aps in series)),
                     key=lambda name: (-first.get(name, 0.0), name))
    height = 0.8 / len(series)
    figure = _figure(figsize=(8.5, 0.9 + 0.3 * len(classes) * max(1, len(series) / 2)))
    axis = figure.subplots()
    positions = np.arange(len(classes))
    for index, (name, aps) in enumerate(series):
        values = [100 * aps.get(label, 0.0) for label in classes]
        axis.barh(positions + (index - (len(series) - 1) / 2) * height, values, height,
                  label=f"{name} (mean {np.mean(list(aps.values())) * 100:.2f})")
    axis.set_yticks(positions, classes)
    axis.set_xlim(0, max(1.0, 1.08 * max(100 * max(aps.values(), default=0) for _, aps in series)))
    # best first, and no empty rows: the default 5 % margins are 10 blank rows at 200 classes
    axis.set_ylim(len(classes) - 0.5, -0.5)
    axis.set_xlabel("AP (%) at tIoU 0.5")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.subplots_adjust(left=0.26, right=0.97, top=0.98, bottom=0.6 / figure.get_figheight())
    return figure


def timeline_figure(timeline):
    """One test video: ground truth, attention per stream, class activation, detections."""
    from matplotlib.patches import Rectangle  # pylint: disable=import-outside-toplevel

    names = ([label for label, _, _ in timeline["ground_truth"]] + list(timeline["activation"])
             + [entry["label"] for entry in timeline["detections"]])
    colors = _class_colors(names)
    duration, rate = timeline["duration"], timeline["feature_rate"]
    figure = _figure(figsize=(11, 4.6))
    axes = figure.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [0.6, 1, 1, 1.1]})
    ground, attention, activation, detections = axes
    for label, start, end in timeline["ground_truth"]:
        ground.axvspan(start, end, color=colors[label], alpha=0.9)
    for start, end in timeline["ambiguous"]:
        ground.axvspan(start, end, color="0.6", alpha=0.5, hatch="//")
    ground.set_yticks([])
    ground.set_ylabel("ground\ntruth", rotation=0, ha="right", va="center")

    for stream, color in (("rgb", "tab:red"), ("flow", "tab:green")):
        values = timeline["attention"][stream]
        attention.plot((np.arange(len(values)) + 0.5) / rate, values, color=color, lw=1, label=stream)
    attention.set_ylim(0, 1.05)
    attention.set_ylabel("attention\n(÷ max)", rotation=0, ha="right", va="center")
    attention.legend(loc="upper right", fontsize=7, ncol=2)

    for label, values in timeline["activation"].items():
        activation.plot((np.arange(len(values)) + 0.5) / rate, values, color=colors[label], lw=1,
                        label=label)
    activation.set_ylim(0, 1.1 * max([max(v, default=0) for v in timeline["activation"].values()],
                                     default=1.0) or 1.0)
    activation.set_ylabel("class\nactivation", rotation=0, ha="right", va="center")
    activation.legend(loc="upper right", fontsize=7, ncol=2)

    entries = sorted(timeline["detections"], key=lambda entry: -entry["score"])
    rows = sorted({entry["label"] for entry in entries})
    # Opacity by rank of score in this video: scores of some rules are not in [0, 1].
    low = min([entry["score"] for entry in entries], default=0.0)
    peak = max([entry["score"] for entry in entries], default=1.0)
    span = (peak - low) or 1.0
    labelled = {row: [] for row in range(len(rows))}  # x of the scores written, per row
    for rank, entry in enumerate(entries):
        start, end = entry["segment"]
        row, middle = rows.index(entry["label"]), (entry["segment"][0] + entry["segment"][1]) / 2
        detections.barh(row, end - start, left=start, height=0.8, color=colors[entry["label"]],
                        alpha=0.25 + 0.75 * (entry["score"] - low) / span, edgecolor="black",
                        lw=0.3)
        # The scores of the best dozen, where they do not run into one already written.
        if rank < 12 and all(abs(middle - x) > duration / 35 for x in labelled[row]):
            labelled[row].append(middle)
            detections.text(middle, row, f"{entry['score']:.2f}", ha="center", va="center",
                            fontsize=6)
    detections.set_yticks([])  # one row per class, coloured as in the legend
    if not entries:
        detections.text(0.5, 0.5, "no detections", ha="center", va="center", color="0.5",
                        transform=detections.transAxes)
    detections.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    detections.invert_yaxis()
    detections.set_ylabel("detections", rotation=0, ha="right", va="center")
    detections.set_xlim(0, duration)
    detections.set_xlabel("seconds")

    legend = [Rectangle((0, 0), 1, 1, color=colors[name]) for name in sorted(colors)]
    figure.legend(legend, sorted(colors), loc="upper right", bbox_to_anchor=(0.99, 1.0),
                  ncol=min(len(colors), 4), fontsize=7, frameon=False)
    figure.suptitle(f"{timeline['video']}  ({timeline['pick']}: AP@{REPORT_TIOU} "
                    f"{100 * timeline['ap']:.1f}%)   labels: {', '.join(timeline['labels']) or '-'}",
                    fontsize=9, x=0.01, y=0.985, ha="left")
    figure.subplots_adjust(left=0.1, right=0.99, top=0.87, bottom=0.1, hspace=0.12)
    return figure


def curves_figure(train, evaluation_scalars, chosen):
    """Loss terms per stream, learning rates, held-out selection metrics with the chosen step(s)."""
    groups = {}
    for tag in sorted(train):
        prefix = tag.split("/")[0] if "/" in tag else None
        if prefix and prefix != "learning_rate":
            groups.setdefault(prefix, []).append(tag)
    panels = [(f"{prefix} losses", tags, False) for prefix, tags in groups.items()]
    panels.append(("learning rates", [t for t in sorted(train) if t.startswith("learning_rate/")], True))
    panels.append(("held-out selection (training videos)", sorted(evaluation_scalars), False))
    columns = 2
    rows = -(-len(panels) // columns)
    figure = _figure(figsize=(11, 3.0 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, (title, tags, log) in zip(axes.flat, panels):
        source = evaluation_scalars if title.startswith("held-out") else train
        for tag in tags:
            steps, values = source[tag]
            style = {"lw": 1.8} if tag.endswith("/total") or tag.endswith("fusion_map") else {"lw": 1}
            axis.plot(steps, values, marker="o" if len(steps) < 12 else None, ms=3,
                      label=tag.split("/", 1)[-1], **style)
        if log and tags:
            axis.set_yscale("log")
        if title.startswith("held-out"):
            for index, step in enumerate(chosen):
                axis.axvline(step, color="black", ls="--", lw=1,
                             label="chosen step" if index == 0 else None)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        if tags:
            axis.legend(fontsize=7)
        else:
            axis.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=axis.transAxes)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.subplots_adjust(left=0.07, right=0.98, top=1 - 0.35 / figure.get_figheight(),
                           bottom=0.5 / figure.get_figheight(), hspace=0.45, wspace=0.18)
    return figure


# ------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------


def _result_rows(run):
    """(row name, metrics document) of a run; convex clustering adds its baseline and no-selection rows."""
    metrics, name = run["metrics"], run["name"]
    rows = []
    if "baseline" in metrics:
        rows.append((f"{name}: baseline (round 0)", metrics["baseline"]))
    if "final_without_selection" in metrics:
        rows.append((f"{name}: no test-time selection", metrics["final_without_selection"]))
    return rows + [(name, metrics)]


def _paper(runs):
    """The paper rows to show: TSRNet's, on the protocol of the first TSRNet run (else none)."""
    for run in runs:
        if method_of(run["config"]) == "tsrnet":
            return reporting.paper_results(run["config"]["detection"].get("protocol", "thumos14"))
    return None, None


def _percent_cell(value):
    return "<td>-</td>" if value is None else f"<td>{100 * value:.2f}</td>"


def _table(element_id, caption, keys, rows, paper):
    head = "".join(f"<th>{html.escape(key)}</th>" for key in keys)
    body = "".join(f"<tr><th>{html.escape(name)}</th>" + "".join(
        _percent_cell(values.get(key)) for key in keys) + "</tr>" for name, values in rows)
    if paper is not None:
        body += ("<tr class='paper'><th>paper TSRNet (real features)</th>"
                 + "".join(_percent_cell(paper.get(key)) for key in keys) + "</tr>")
    return (f"<table id='{element_id}'><caption>{caption}</caption>"
            f"<tr><th>model</th>{head}</tr>{body}</table>")


def _tables(runs):
    rows = [row for run in runs for row in _result_rows(run)]
    paper_classification, paper_detection = _paper(runs)
    detection_keys = sorted({key for _, m in rows for key in m["detection"] if key != "average"},
                            key=float) + ["average"]
    return (_table("classification", "Classification accuracy (%), RGB / flow / fusion "
                   "[TSRNet Table 1]", ["rgb", "flow", "fusion"],
                   [(name, m["classification"]) for name, m in rows], paper_classification)
            + _table("detection", "Detection mAP (%) at tIoU [TSRNet Table 3]", detection_keys,
                     [(name, m["detection"]) for name, m in rows], paper_detection))


def _image(uri, element_class, alt):
    return f"<img class='{element_class}' alt='{html.escape(alt)}' src='{uri}'>"


def _run_section(run):
    parts = [f"<section class='run'><h2>{html.escape(run['name'])}</h2>",
             f"<p class='path'>{html.escape(run['workdir'])}</p>"]
    timelines = run["data"].get("timelines", [])
    parts.append("<h3>Test videos: best, quartiles and worst by AP at tIoU 0.5</h3>")
    if not timelines:
        parts.append(f"<p class='note'>No {DATA_FILE} in this run (it predates the report): run the "
                     "recipe's command below again on this workdir; it resumes from its checkpoints "
                     "and writes the timelines.</p>")
    for timeline in timelines:
        parts.append("<figure class='timeline'>" + _image(
            _png(timeline_figure(timeline)), "timeline", f"timeline of {timeline['video']}")
            + f"<figcaption>{html.escape(timeline['video'])} ({html.escape(timeline['pick'])}, "
              f"AP {100 * timeline['ap']:.1f}%)</figcaption></figure>")
    parts.append("<h3>Training</h3>" + _image(
        _png(curves_figure(run["train"], run["eval"], chosen_steps(run["metrics"]))), "curves",
        "training curves"))
    selection = run["metrics"].get("selection")
    if selection:
        parts.append(f"<p>Chosen step {selection['step']}: {html.escape(selection['metric'])} "
                     f"{selection['score']:.4f} on the held-out training videos.</p>")
    parts.append("<h3>Reproduce</h3><p>The same <code>--workdir</code> resumes this run; another one "
                 f"trains it again from scratch.</p><pre class='command'>{html.escape(run['command'])}"
                 "</pre><details><summary>config.json</summary><pre>"
                 + html.escape(json.dumps(run["config"], indent=2, sort_keys=True))
                 + "</pre></details></section>")
    return "".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0 1.4em; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
tr th:first-child { text-align: left; font-weight: normal; }
tr.paper { color: #777; font-style: italic; }
img { max-width: 100%; display: block; }
figure { margin: 0.6em 0 1.2em; } figcaption { font-size: 0.8em; color: #555; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
pre.command { white-space: pre-wrap; word-break: break-all; }
.note, .path { color: #666; font-size: 0.85em; }
section.run { border-top: 2px solid #ccc; margin-top: 2em; }
"""


def render(runs):
    """The HTML page of `runs` (as loaded by `_load_run`)."""
    title = "tfwsar run report" if len(runs) == 1 else f"tfwsar: {len(runs)} runs compared"
    embedded = any(not run["config"]["data"].get("data_dir") for run in runs)
    note = ("<p class='note'>Embedded default dataset: real annotations and timelines, generated "
            "features. Compare rows with each other, not with the paper's numbers.</p>"
            if embedded else "")
    with_data = [run for run in runs if run["data"].get("per_class_ap")]
    chart = (_image(_png(per_class_figure(with_data)), "chart", "per-class AP at tIoU 0.5")
             if with_data else "<p class='note'>No per-class AP: no run has report data.</p>")
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"<p class='note'>Written {generated} by tfwsar.run_report.</p>"
            f"<section id='tables'><h2>Results beside the paper</h2>{note}{_tables(runs)}</section>"
            f"<section id='per-class'><h2>Per-class AP at tIoU 0.5 (test split)</h2>{chart}</section>"
            + "".join(_run_section(run) for run in runs) + "</body></html>\n")


def write_report(workdirs, out=None):
    """Writes the report of one run (`workdir/report.html`) or a comparison page of several.

    Args:
      workdirs: a run directory, or a list of them.
      out: the HTML file; default `workdir/report.html` for one run (required for several).

    Returns:
      The path written.
    """
    workdirs = [workdirs] if isinstance(workdirs, (str, os.PathLike)) else list(workdirs)
    workdirs = [os.fspath(path) for path in workdirs]
    if out is None:
        if len(workdirs) != 1:
            raise ValueError("several workdirs: say where the comparison page goes (out=)")
        out = os.path.join(workdirs[0], REPORT_FILE)
    runs = [_load_run(path, name) for path, name in zip(workdirs, _run_names(workdirs))]
    page = render(runs)
    out = os.path.abspath(out)
    temporary = f"{out}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(page)
    os.replace(temporary, out)
    return out
