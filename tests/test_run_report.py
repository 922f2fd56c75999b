"""What a person sees of a run: a quiet terminal that ends with the tables and report.html, and a
report.html that renders in a browser with its tables, per-class chart and timelines."""

import html.parser
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfwsar import console, run_report

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--steps", "4", "--set", "train.batch_size=4", "--set", "train.steps_per_execution=2",
        "--set", "train.log_every=2", "--set", "train.eval_every=2",
        "--set", "train.checkpoint_every=2", "--set", "data.num_segments=32",
        "--set", "data.trimmed_num_segments=8", "--set", "model.fc1_units=16",
        "--set", "model.fc2_units=16", "--set", "model.attention_units=8",
        "--set", "model.mmd_segments_per_video=4"]
TENSORFLOW_LOG_LINE = re.compile(r"^(E |W |I\d|E\d|W\d|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )")


def _user_environment():
    """The environment of a user who set nothing: no TF log level, no verbose request."""
    environment = dict(os.environ)
    for name in ("TF_CPP_MIN_LOG_LEVEL", console.VERBOSE_VARIABLE):
        environment.pop(name, None)
    return environment


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """`python -m tfwsar.recipes.tsrnet` (tiny steps) with stdout and stderr captured in one file."""
    workdir = tmp_path_factory.mktemp("run") / "tsrnet"
    log = workdir.parent / "terminal.txt"
    with open(log, "w", encoding="utf-8") as output:
        completed = subprocess.run(
            [sys.executable, "-m", "tfwsar.recipes.tsrnet", "--workdir", str(workdir)] + TINY,
            stdout=output, stderr=subprocess.STDOUT, env=_user_environment(), check=False,
            timeout=600)
    text = log.read_text(encoding="utf-8")
    assert completed.returncode == 0, text[-3000:]
    return workdir, text


@pytest.mark.slow
def test_the_default_recipe_prints_no_tensorflow_noise_and_ends_with_tables_and_report(default_run):
    workdir, text = default_run
    noise = [line for line in text.splitlines() if TENSORFLOW_LOG_LINE.match(line)]
    assert not noise, noise
    for message in ("Sharding callback duration", "Assets written to", "fingerprint",
                    "Unable to register"):
        assert message not in text
    lines = text.rstrip().splitlines()
    assert lines[-1] == f"Report: {workdir / 'report.html'}"
    tail = "\n".join(lines[-14:])
    assert "Classification accuracy (%)" in tail and "Detection mAP (%) at tIoU" in tail
    assert (workdir / "report.html").is_file()


@pytest.mark.slow
def test_the_per_class_aps_of_the_report_average_to_the_runs_map_at_05(default_run):
    workdir, _ = default_run
    data = json.loads((workdir / run_report.DATA_FILE).read_text())
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert np.mean(list(data["per_class_ap"].values())) == pytest.approx(metrics["detection"]["0.5"])
    picks = [timeline["pick"] for timeline in data["timelines"]]
    assert picks[0] == "best" and picks[-1] == "worst" and len(picks) >= 3
    aps = [timeline["ap"] for timeline in data["timelines"]]
    assert aps == sorted(aps, reverse=True) and aps[0] == max(data["video_ap"].values())


class _Page(html.parser.HTMLParser):
    """The parts of a rendered page the test looks for."""

    def __init__(self):
        super().__init__()
        self.body, self.ids, self.image_classes = {}, set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.image_classes.append(attrs.get("class"))


_IMAGE_CHECK = """<script>window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.setAttribute("data-images", images.length);
  document.body.setAttribute("data-broken",
      images.filter(image => !(image.complete && image.naturalWidth > 0)).length);
});</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs "
                "it where it can)")
    return None


def _headless(browser, *arguments):
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", *arguments], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.slow
def test_report_renders_in_headless_chromium_with_tables_chart_timelines_and_no_broken_image(
        default_run, tmp_path):
    browser = _chromium()
    workdir, _ = default_run
    page = (workdir / "report.html").read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"  # the report plus a script that counts broken images
    checked.write_text(page.replace("</body>", _IMAGE_CHECK + "</body>"), encoding="utf-8")
    dumped = _headless(browser, "--virtual-time-budget=10000", "--dump-dom", checked.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    rendered = _Page()
    rendered.feed(dumped.stdout)
    assert {"classification", "detection", "per-class"} <= rendered.ids
    assert rendered.image_classes.count("chart") == 1
    assert rendered.image_classes.count("timeline") >= 3
    assert rendered.image_classes.count("curves") == 1
    assert int(rendered.body["data-images"]) == len(rendered.image_classes)
    assert rendered.body["data-broken"] == "0"

    screenshot = tmp_path / "report.png"
    shot = _headless(browser, "--window-size=1200,2400", f"--screenshot={screenshot}",
                     (workdir / "report.html").as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


@pytest.mark.slow
def test_tools_report_puts_several_runs_on_one_page(default_run, tmp_path):
    workdir, _ = default_run
    other = tmp_path / "srnet_copy"
    shutil.copytree(workdir, other)
    out = tmp_path / "compare.html"
    completed = subprocess.run(
        [sys.executable, str(REPO / "tools" / "report.py"), str(workdir), str(other), "--out",
         str(out)], capture_output=True, text=True, env=_user_environment(), check=False,
        timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == str(out) and not completed.stderr.strip()
    page = out.read_text(encoding="utf-8")
    assert "2 runs compared" in page and page.count("<section class='run'>") == 2
    assert page.count("class='timeline'") >= 6


def test_the_command_reproduces_the_config_from_the_default_preset(tmp_path):
    from tfwsar import config as config_lib
    from tfwsar.recipes import tsrnet

    config = config_lib.override(tsrnet.get_config(), ["train.steps=7", "variant=srnet",
                                                       "detection.thresholds=0.2,0.4"])
    command = run_report.reproduce_command(str(tmp_path), config_lib.to_dict(config))
    assert command.startswith(f"python -m tfwsar.recipes.tsrnet --workdir {tmp_path} ")
    words = command.split()
    assignments = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert sorted(assignments) == ["detection.thresholds=0.2,0.4", "train.steps=7"]
    assert words[words.index("--variant") + 1] == "srnet"
    rebuilt = config_lib.override(tsrnet.get_config(), assignments + ["variant=srnet"])
    assert config_lib.to_dict(rebuilt) == config_lib.to_dict(config)


def test_best_quartiles_median_and_worst_videos_are_picked_once_each():
    aps = {f"v{index}": index / 10 for index in range(11)}
    assert run_report.pick_videos(aps) == [("best", "v10"), ("upper quartile", "v8"),
                                           ("median", "v5"), ("lower quartile", "v2"),
                                           ("worst", "v0")]
    assert [video for _, video in run_report.pick_videos({"a": 0.0, "b": 0.0})] == ["b", "a"]


@pytest.mark.slow
def test_tensorflow_logs_are_off_by_default_and_back_with_tfwsar_verbose():
    script = "from tfwsar import console; console.quiet_terminal(); import tensorflow as tf; tf.zeros(1)"
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=_user_environment(), check=True, timeout=300)
    verbose = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env={**_user_environment(), console.VERBOSE_VARIABLE: "1"},
                             check=True, timeout=300)
    assert not [line for line in quiet.stderr.splitlines() if TENSORFLOW_LOG_LINE.match(line)]
    assert [line for line in verbose.stderr.splitlines() if TENSORFLOW_LOG_LINE.match(line)]


def test_progress_writes_plain_lines_when_stderr_is_not_a_terminal(capsys):
    from tfwsar.progress import progress

    assert list(progress(range(5), desc="converting")) == list(range(5))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("converting: 5/5 (100%)")
    assert "\r" not in lines[0]


def test_the_per_class_chart_has_one_row_per_class_and_no_empty_rows():
    aps = {f"class_{index:03d}": index / 400 for index in range(200)}
    figure = run_report.per_class_figure([{"name": "run", "data": {"per_class_ap": aps}}])
    axis = figure.axes[0]
    labels = [label.get_text() for label in axis.get_yticklabels()]
    assert labels[0] == "class_199" and labels[-1] == "class_000" and len(labels) == 200
    # the rows fill the axes: half a row of margin above the best and below the worst
    assert axis.get_ylim() == (199.5, -0.5)
