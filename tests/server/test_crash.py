"""kill -9 of the server mid-stream loses no committed data; a restart continues intact."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from aar.client import Client

from .helpers import ADMIN_TOKEN, free_port, halves_of, labels_of, make_bundle, serve_process


def _port() -> int:
    return free_port()


def _start(data_dir: Path, port: int) -> subprocess.Popen:
    return serve_process(data_dir, port)


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


def test_kill_9_of_all_workers_loses_no_acknowledged_submission(tmp_path, fresh_db_url):
    """16 clients submit to two worker processes (group commit) until every server process is killed
    with SIGKILL at once; after a restart every submission that got a 201 is there, with the score the
    receipt showed and the figures its predictions earn, its audit entry and its count."""
    port = free_port()
    proc = serve_process(tmp_path, port, fresh_db_url, workers=2)
    url = f"http://127.0.0.1:{port}"
    bundle = make_bundle("crashbed", n=200, seed=11)
    labels = labels_of(bundle)
    ids = sorted(labels)
    with Client(url, ADMIN_TOKEN) as admin:
        admin.register_testbed(bundle)
        tokens = {f"crasher-{k}": admin.create_agent(f"crasher-{k}").token for k in range(8)}
    halves = halves_of(tmp_path, bundle)
    acked: dict[int, tuple[str, dict[str, float], float, bool]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(k: int) -> None:
        name = f"crasher-{k % 8}"
        rng = np.random.default_rng(k)
        with Client(url, tokens[name], timeout=30) as agent:
            try:
                sha = agent.upload_artifact(f"code {k}".encode()).sha256
                while not stop.is_set():
                    preds = {i: float(rng.random()) for i in ids}
                    r = agent.submit("crashbed", preds, sha)
                    with lock:
                        acked[r.id] = (name, preds, r.public.accuracy, r.public.improved)
            except (httpx.HTTPError, OSError):
                return

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # safety net only: the kill waits for 80 acknowledged submissions
    while len(acked) < 80 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the server and both workers, mid-stream
    proc.wait(30)
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acked) >= 80
    with lock:
        acked_now = dict(acked)

    proc = serve_process(tmp_path, port, fresh_db_url, workers=1)
    try:
        with Client(url, ADMIN_TOKEN) as admin:
            stored = {}
            for name in tokens:
                offset: int | None = 0
                while offset is not None:
                    page = admin.admin_submissions(agent=name, limit=200, offset=offset)
                    stored |= {s.id: s for s in page.items}
                    offset = page.next_offset
            assert set(acked_now) <= set(stored)
            for sid, (name, preds, released, improved) in acked_now.items():
                row = stored[sid]
                assert row.agent == name
                assert (row.released_accuracy, row.improved) == (released, improved)
                for half, acc in (("public", row.public_accuracy), ("private", row.private_accuracy)):
                    mine = [i for i in ids if halves[i] == half]
                    assert acc == pytest.approx(np.mean([(preds[i] > 0.5) == labels[i] for i in mine]))
            counts = {a.name: a.n_submissions for a in admin.agents()}
            for name in tokens:
                assert counts[name] == sum(1 for s in stored.values() if s.agent == name)
            outcomes = set()
            for name in tokens:
                page = admin.audit_log(actor=f"agent:{name}", limit=200)
                assert page.total <= 200
                outcomes |= {e.outcome for e in page.items if e.status == 201}
            assert {f"submission {sid}" for sid in stored} <= outcomes
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
