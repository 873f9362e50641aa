"""Experiments run in their own process group under a timeout: a hung one is killed, tree and all."""

from __future__ import annotations

import os
import time

from aar.agents.experiments import ExperimentRunner

HANG = """
import os, signal, subprocess, sys, time
NAME = "hang"
PARAMS = {}
def run(ctx):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    open(os.path.join(os.path.dirname(__file__), "child.pid"), "w").write(str(child.pid))
    while True:
        time.sleep(1)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_hung_experiment_is_killed_with_its_whole_group(view, tmp_path):
    method = tmp_path / "hang.py"
    method.write_text(HANG)
    runner = ExperimentRunner(view, tmp_path / "ws", timeout_s=60)
    res = runner.run(str(method), {}, [0], timeout_s=8)
    assert res.timed_out and not res.ok and "killed" in res.error
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 60  # a safety net: the loop waits for the process to go
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the experiment's grandchild survived"


def test_failing_method_reports_its_error(view, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("NAME = 'bad'\nPARAMS = {}\ndef run(ctx):\n    raise RuntimeError('boom')\n")
    res = ExperimentRunner(view, tmp_path / "ws").run(str(bad), {}, [0])
    assert not res.ok and not res.timed_out and "boom" in res.error
    assert os.path.exists(tmp_path / "ws" / "runs" / res.run_id / "result.json")
