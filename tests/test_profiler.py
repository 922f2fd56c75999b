"""The training steps on a terminal and in TensorBoard: a progress bar on a tty, and a profiler
trace that TensorBoard's profile plugin (the `profile` extra) serves."""

import fcntl
import gzip
import importlib.util
import json
import os
import pathlib
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_TRAINING = REPO / "tests" / "tiny_training.py"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":  # the profile plugin gzips
            body = gzip.decompress(body)
        return json.loads(body.decode("utf-8"))


@pytest.mark.slow
def test_tensorboard_serves_the_profiler_trace_of_profile_steps(tmp_path):
    if importlib.util.find_spec("tensorboard_plugin_profile") is None:
        pytest.skip("tensorboard-plugin-profile is not installed: pip install -e '.[profile]'")
    completed = subprocess.run([sys.executable, str(TINY_TRAINING), str(tmp_path), "--profile", "2,4"],
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]

    port = _free_port()
    # README's command, on a free localhost port.
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), "--host", "127.0.0.1",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/data/plugin/profile"
    try:
        runs, deadline = [], time.monotonic() + 120
        while not runs and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:
                runs = _get_json(f"{base}/runs")
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            if not runs:
                time.sleep(1)
        assert len(runs) == 1 and runs[0].startswith("train/"), runs
        run = urllib.parse.quote(runs[0])
        assert "trace_viewer@^" in _get_json(f"{base}/run_tools?run={run}")
        hosts = _get_json(f"{base}/hosts?run={run}&tag=trace_viewer%40%5E")
        trace = _get_json(f"{base}/data?run={run}&tag=trace_viewer%40%5E&host={hosts[0]}")
        assert trace["traceEvents"], "the trace has no events"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)


@pytest.mark.slow
def test_training_shows_a_progress_bar_on_a_terminal_and_plain_lines_elsewhere(tmp_path):
    # Elsewhere (a pipe): the log lines, no carriage return.
    piped = subprocess.run([sys.executable, str(TINY_TRAINING), str(tmp_path / "piped")],
                           capture_output=True, text=True, timeout=300, check=True)
    assert "[train_lib] step 6/6" in piped.stderr and "\r" not in piped.stderr

    # A terminal: the same lines, and a bar redrawn with carriage returns.
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen([sys.executable, str(TINY_TRAINING), str(tmp_path / "tty")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    output, deadline = b"", time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")[-3000:]
    text = output.decode(errors="replace")
    assert "[train_lib] step 6/6" in text
    assert "[train_lib] steps:" in text and "6/6 [" in text  # tqdm: "desc: 100%|...| 6/6 [00:01<..."
