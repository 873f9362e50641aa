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


# -- the warm worker ------------------------------------------------------------------------------
def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 60  # a safety net: the loop waits for the process to go
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def test_warm_worker_runs_requests_in_one_process_and_survives_a_failing_method(view, tmp_path):
    with ExperimentRunner(view, tmp_path / "ws") as runner:
        first = runner.run("probe", {}, [0, 1])
        assert first.ok, first.error
        assert runner._worker is not None
        pid = runner._worker.proc.pid
        bad = runner.run("probe", {"no_such_knob": 1}, [0])  # the method refuses: an error, not a crash
        assert not bad.ok and not bad.timed_out and "no_such_knob" in bad.error
        again = runner.run("probe", {}, [0], splits=("test",))
        assert again.ok, again.error
        assert runner._worker is not None and runner._worker.proc.pid == pid  # the same warm process
        assert again.probs[0] == {i: p for i, p in first.probs[0].items() if i in again.probs[0]}
        for run in (first, again):
            blob = (tmp_path / "ws" / "runs" / run.run_id / "s0.json").read_text()
            assert '"run_seconds"' in blob
    assert _wait_gone(pid), "closing the runner left its warm worker running"


def test_warm_worker_is_replaced_after_a_timeout_kill_and_after_agent_code(view, tmp_path):
    method = tmp_path / "hang.py"
    method.write_text(HANG)
    with ExperimentRunner(view, tmp_path / "ws", timeout_s=60) as runner:
        runner.start()
        assert runner._worker is not None
        old = runner._worker.proc.pid
        res = runner.run(str(method), {}, [0], timeout_s=8)
        assert res.timed_out and "killed" in res.error
        assert _wait_gone(old) and _wait_gone(int((tmp_path / "child.pid").read_text()))
        assert runner._worker is not None and runner._worker.proc.pid != old  # a fresh one, started at once
        fresh = runner._worker.proc.pid
        ok = tmp_path / "ok.py"
        ok.write_text("NAME = 'ok'\nPARAMS = {}\ndef run(ctx):\n    return [0.5] * len(ctx.predict_inputs)\n")
        res = runner.run(str(ok), {}, [0])
        assert res.ok, res.error
        # agent code ran in that worker: it is retired, and the next run gets another fresh process
        assert _wait_gone(fresh) and runner._worker is not None and runner._worker.proc.pid != fresh
        assert runner.run("probe", {}, [0]).ok


def test_a_worker_that_dies_mid_run_is_an_error_and_is_replaced(view, tmp_path):
    die = tmp_path / "die.py"
    die.write_text("import os\nNAME = 'die'\nPARAMS = {}\ndef run(ctx):\n    print('going'); os._exit(7)\n")
    with ExperimentRunner(view, tmp_path / "ws") as runner:
        res = runner.run(str(die), {}, [0])
        assert not res.ok and not res.timed_out and "status 7" in res.error and "going" in res.error
        assert runner.run("probe", {}, [0]).ok


def test_per_run_workers_still_work(view, tmp_path):
    runner = ExperimentRunner(view, tmp_path / "ws", warm=False)
    res = runner.run("probe", {}, [0])
    assert res.ok, res.error
    assert runner._worker is None


def test_the_warm_worker_keeps_a_view_until_its_files_change(view, tmp_path):
    import shutil

    from aar.w2s.worker import _view

    copy = tmp_path / "view"
    shutil.copytree(view, copy)
    views: dict = {}
    first = _view(copy, views)
    assert _view(copy, views) is first  # reused: no reload per run
    meta = copy / "view.json"
    meta.write_text(meta.read_text() + "\n")  # the folder changed: loaded again
    assert _view(copy, views) is not first
    assert _view(copy, None) is not _view(copy, None)  # without a cache (a per-run worker): always loaded


def test_warm_worker_outlives_the_thread_that_started_it(view, tmp_path):
    """``aar mcp`` runs tools on pool threads that come and go: the worker must not die with one."""
    import threading

    with ExperimentRunner(view, tmp_path / "ws") as runner:
        starter = threading.Thread(target=runner.start)
        starter.start()
        starter.join()
        assert runner._worker is not None
        pid = runner._worker.proc.pid
        res = runner.run("probe", {}, [0])
        assert res.ok, res.error
        assert runner._worker.proc.pid == pid


def test_warm_worker_dies_when_its_starter_is_gone(tmp_path):
    """The lifeline: when its write end closes (the agent died, however), the worker kills its group."""
    import signal
    import subprocess
    import sys

    from aar.agents.experiments import WarmWorker

    worker = WarmWorker(sys.executable, tmp_path / "worker.log", None, tmp_path)
    os.close(worker._lifeline)  # what the kernel does when this process ends
    worker._lifeline = -1
    try:
        code = worker.proc.wait(timeout=300)  # a safety net: the wait ends when the worker does
    except subprocess.TimeoutExpired:
        worker.close()
        raise
    assert code == -signal.SIGKILL


def test_warm_worker_predictions_equal_a_fresh_process(view, tmp_path):
    """A warm worker's run gives exactly what a fresh process gives, whatever ran before it in that
    worker: the audit's reproduction check re-runs an entry in fresh processes and compares."""
    with ExperimentRunner(view, tmp_path / "warm") as warm:
        assert warm.run("aux_conf", {}, [1]).ok  # other training first, in the same process
        assert warm.run("zero_shot", {}, [0]).ok
        warm_first = warm.run("vanilla", {}, [0])
        warm_again = warm.run("vanilla", {}, [0])
    cold = ExperimentRunner(view, tmp_path / "cold", warm=False).run("vanilla", {}, [0])
    assert warm_first.ok and warm_again.ok and cold.ok, (warm_first.error, warm_again.error, cold.error)
    assert warm_first.probs[0] == cold.probs[0]
    assert warm_again.probs[0] == cold.probs[0]
    assert warm_first.holdout_probs[0] == cold.holdout_probs[0]
