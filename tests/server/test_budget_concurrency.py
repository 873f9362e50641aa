"""Budgets are exact under concurrency: 16 clients racing against budgets of N get exactly N accepted
per agent (group commit shares transactions between submissions; the count must still hold), every
answer is audited, and the counters agree with the rows."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import httpx
import numpy as np
import pytest

from aar.client import BudgetExhausted, Client

from .helpers import ADMIN_TOKEN, free_port, labels_of, make_bundle, serve_process

CLIENTS = 16


def _race(harness, bundle, agents: list, sha: dict, tries: int) -> tuple[Counter[str], Counter[str]]:
    """``CLIENTS`` threads spread over ``agents``, each submitting ``tries`` times; accepted and refused
    counts per agent name."""
    preds = {k: float(v) for k, v in labels_of(bundle).items()}
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []

    def client(k: int) -> None:
        agent, name = agents[k % len(agents)]
        try:
            with harness.srv.client(agent.token) as c:
                start.wait(60)
                for i in range(tries):
                    try:
                        c.submit(bundle.testbed_id, preds, sha[name], f"race {k}/{i}")
                        with lock:
                            accepted[name] += 1
                    except BudgetExhausted:
                        with lock:
                            refused[name] += 1
        except BaseException as e:  # reported below: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    return accepted, refused


@pytest.mark.parametrize("kind", ["total", "per_hour"])
def test_sixteen_clients_exact_budget(harness, kind):
    bundle = harness.testbed(n=100)
    budget = 7
    agents, sha = [], {}
    for _ in range(4):  # four agents, four clients each
        kwargs = {"budget_total": budget} if kind == "total" else {"budget_per_hour": budget}
        agent, name = harness.agent(**kwargs)
        agents.append((agent, name))
        sha[name] = harness.code(agent, f"def method(): return {name!r}")
    accepted, refused = _race(harness, bundle, agents, sha, tries=4)  # 16 tries per agent, budget 7
    for agent, name in agents:
        assert accepted[name] == budget, (kind, name, accepted, refused)
        assert refused[name] == 16 - budget
        me = agent.me().budget
        assert me.used_total == budget and me.used_last_hour == budget
        assert agent.submissions().total == budget
        log = harness.admin.audit_log(actor=f"agent:{name}", limit=200).items
        posts = [e for e in log if e.method == "POST" and e.path == "/v1/submissions"]
        assert sorted(e.status for e in posts) == [201] * budget + [429] * (16 - budget)
        stored = {e.outcome for e in posts if e.status == 201}
        ids = {s.id for s in harness.admin.admin_submissions(agent=name, limit=200).items}
        assert stored == {f"submission {i}" for i in ids}


def test_concurrent_scores_match_a_serial_scoring(harness):
    """Many agents' submissions committed together are each scored on their own predictions."""
    bundle = harness.testbed(n=100)
    labels = labels_of(bundle)
    ids = sorted(labels)
    rng = np.random.default_rng(3)
    agents, results = [], {}
    for k in range(CLIENTS):
        agent, name = harness.agent()
        agents.append((agent, name, harness.code(agent, f"def m(): return {k}")))
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(agent, name: str, sha: str, acc: float) -> None:
        preds = {i: float(labels[i]) if rng_draw < acc else 1.0 - labels[i] for i, rng_draw in draws[name]}
        with harness.srv.client(agent.token) as c:
            start.wait(60)
            r = c.submit(bundle.testbed_id, preds, sha)
        with lock:
            results[name] = (r, float(np.mean([(preds[i] > 0.5) == labels[i] for i in ids])))

    draws = {name: list(zip(ids, rng.random(len(ids)), strict=True)) for _, name, _ in agents}
    accs = np.linspace(0.55, 0.95, CLIENTS)
    threads = [
        threading.Thread(target=client, args=(a, n, s, float(acc)))
        for (a, n, s), acc in zip(agents, accs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == CLIENTS
    for _, name, _ in agents:
        receipt, overall = results[name]
        row = harness.admin.admin_submissions(agent=name).items[0]
        assert row.id == receipt.id and receipt.public.improved  # a first submission is always released
        n_pub = len(ids) // 2
        mixed = (row.public_accuracy * n_pub + row.private_accuracy * (len(ids) - n_pub)) / len(ids)
        assert mixed == pytest.approx(overall)


def test_exact_budget_across_worker_processes(tmp_path, fresh_db_url):
    """The same race against ``aar serve --workers 2``: the two processes' group-commit writers compete
    for the same agents' rows (SQLite: the write lock; PostgreSQL: the agent row lock)."""
    port = free_port()
    proc = serve_process(tmp_path, port, fresh_db_url, workers=2, budget_total=5)
    url = f"http://127.0.0.1:{port}"
    try:
        bundle = make_bundle("racebed", n=100, seed=5)
        preds = {k: float(v) for k, v in labels_of(bundle).items()}
        with Client(url, ADMIN_TOKEN) as admin:
            admin.register_testbed(bundle)
            tokens = [admin.create_agent(f"racer-{k}").token for k in range(2)]
        accepted: Counter[int] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)

        def client(k: int) -> None:
            with Client(url, tokens[k % 2], timeout=60) as c:  # a connection of its own: either worker
                sha = c.upload_artifact(b"race code").sha256
                start.wait(60)
                for i in range(3):
                    try:
                        c.submit("racebed", preds, sha, f"race {k}/{i}")
                        with lock:
                            accepted[k % 2] += 1
                    except BudgetExhausted:
                        pass

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert accepted == {0: 5, 1: 5}  # 24 tries per agent against a total budget of 5
        with Client(url, ADMIN_TOKEN) as admin:
            assert sorted(a.n_submissions for a in admin.agents()) == [5, 5]
            assert admin.admin_submissions(testbed_id="racebed").total == 10
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def test_concurrent_identical_uploads_across_workers(tmp_path, fresh_db_url):
    """16 clients upload the same new blob at once to two worker processes: one 201 (the first owner
    kept), fifteen 200, never a 409 from the two processes inserting the same row."""
    port = free_port()
    proc = serve_process(tmp_path, port, fresh_db_url, workers=2)
    url = f"http://127.0.0.1:{port}"
    try:
        with Client(url, ADMIN_TOKEN) as admin:
            tokens = [admin.create_agent(f"uploader-{k}").token for k in range(CLIENTS)]
        statuses: list[int] = []
        start = threading.Barrier(CLIENTS)

        def upload(token: str) -> None:
            with httpx.Client(base_url=url, timeout=120) as http:  # a connection of its own: either worker
                start.wait(120)
                r = http.post(
                    "/v1/artifacts", content=b"shared code", headers={"Authorization": f"Bearer {token}"}
                )
                statuses.append(r.status_code)  # list.append is atomic

        threads = [threading.Thread(target=upload, args=(t,)) for t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert sorted(statuses) == [200] * (CLIENTS - 1) + [201]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
