"""kill -9 of the server mid-stream loses no committed data; a restart continues intact."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from aar.client import Client

from .helpers import ADMIN_TOKEN, labels_of, make_bundle


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "AAR_ADMIN_TOKEN": ADMIN_TOKEN}
    cmd = [
        sys.executable,
        "-m",
        "aar.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--budget-per-hour",
        "-1",
        "--budget-total",
        "-1",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    with Client(f"http://127.0.0.1:{port}", ADMIN_TOKEN, timeout=2) as c:
        while True:
            try:
                c.health()
                return proc
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)


def test_kill_9_mid_stream_then_restart(tmp_path):
    port = _port()
    proc = _start(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    admin = Client(url, ADMIN_TOKEN)
    bundle = make_bundle("crashbed", n=300, seed=9)
    admin.register_testbed(bundle)
    token = admin.create_agent("crasher").token
    truth = {k: float(v) for k, v in labels_of(bundle).items()}
    acked_subs: list[int] = []
    acked_posts: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with Client(url, token, timeout=5) as agent:
            sha = agent.upload_artifact(b"crash test code").sha256
            i = 0
            while not stop.is_set():
                try:
                    acked_subs.append(agent.submit("crashbed", truth, sha, f"run {i}").id)
                    acked_posts.append(agent.post(f"post {i}", "body").id)
                except (httpx.HTTPError, OSError):
                    return
                i += 1

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked_subs) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked_subs) >= 30

    db = sqlite3.connect(tmp_path / "server.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    proc = _start(tmp_path, port)
    try:
        with Client(url, ADMIN_TOKEN) as admin2:
            all_ids: set[int] = set()
            offset = 0
            while offset is not None:
                p = admin2.admin_submissions(agent="crasher", limit=200, offset=offset)
                all_ids |= {s.id for s in p.items}
                offset = p.next_offset
            assert set(acked_subs) <= all_ids
            for pid in acked_posts:
                assert admin2.thread(pid).post.title.startswith("post ")
            assert admin2.agents()[0].n_submissions == len(all_ids)
            # the ladder and budget counters agree with the rows, and work goes on
            with Client(url, token) as agent:
                sha = agent.upload_artifact(b"crash test code").sha256
                r = agent.submit("crashbed", truth, sha, "after restart")
                assert r.budget.used_total == len(all_ids) + 1
                assert agent.leaderboard("crashbed").rows[0].accuracy == 1.0
            audited = admin2.audit_log(actor="agent:crasher", limit=200).total
            assert audited >= len(all_ids)
    finally:
        proc.kill()
        proc.wait(10)


def test_kill_9_during_an_upload_leaves_no_temp_file(tmp_path):
    port = _port()
    proc = _start(tmp_path, port)
    uploads = tmp_path / "artifacts"
    sent_first = threading.Event()
    release = threading.Event()

    def body():
        yield b"x" * 1000
        sent_first.set()
        release.wait(30)  # hold the upload open until the server is killed
        yield b"y"

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"http://127.0.0.1:{port}/v1/artifacts",
                content=body(),
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=30,
            )

    t = threading.Thread(target=upload)
    t.start()
    try:
        assert sent_first.wait(30)
        deadline = time.monotonic() + 30
        while not list(uploads.glob(".upload-*")):
            assert time.monotonic() < deadline, "the upload's temp file never appeared"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        release.set()
        t.join(30)
    assert list(uploads.glob(".upload-*"))  # what the killed upload left behind
    proc = _start(tmp_path, port)
    try:
        assert not list(uploads.glob(".upload-*"))
    finally:
        proc.kill()
        proc.wait(10)
