"""Campaigns on a real Ray cluster of two nodes (Ray's cluster utilities, on this machine) with the
scoring server on the machine's PostgreSQL: agents spread over both nodes in bubblewrap sandboxes; a
node killed mid-run loses nothing acknowledged and its agents finish elsewhere from their notes; the
options a Ray campaign cannot run with are refused with clear messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from aar.campaign.connection import CampaignServer
from aar.campaign.orchestrator import CampaignOptions, run_campaign
from aar.campaign.state import CampaignState
from aar.campaign.timeline import all_submissions
from aar.client import connect

from .conftest import small_options

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SAFETY_NET_S = 900.0  # the waits below end on events; this only stops a broken run


def _missing(message: str) -> None:
    """Skip locally, but fail in CI (CI=true), where .ci/run installs and starts what these tests need."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def cluster(aar_home: Path) -> Iterator[Any]:
    """A head node (4 CPUs) and a worker node (2 CPUs), with a small object store each."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        _missing("ray is not installed (pip install 'aar[ray]')")
    from aar.sandbox import check_bubblewrap

    if not check_bubblewrap(200_000).available:
        _missing("bubblewrap sandboxes are not available here")
    store = 200 * 2**20
    c = Cluster(initialize_head=True,
                head_node_args={"num_cpus": 4, "object_store_memory": store, "include_dashboard": False})
    c.add_node(num_cpus=2, object_store_memory=store)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            pass
    except Exception as e:
        _missing(f"PostgreSQL at 127.0.0.1:5432 unreachable: {e}")
    name = f"aar_ray_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _options(d: Path, cluster: Any, pg_url: str, submissions: int = 1, cpus: float = 1.0) -> CampaignOptions:
    # Each agent stops itself after its allowed submissions: the campaign ends on events; the
    # wall-clock budget is a safety net far above what a loaded machine needs.
    opts = small_options(d, agents=4, minutes=12.0, submissions=submissions, experiment_timeout_s=300.0)
    return CampaignOptions(**opts, ray=cluster.address, db_url=pg_url, agent_cpus=cpus)


def _submissions(state: CampaignState) -> list[dict[str, Any]]:
    """The campaign's submissions as its running server has them."""
    srv = state.server
    with connect(f"http://{srv['host']}:{srv['port']}", srv["admin_token"]) as admin:
        return all_submissions(admin, state.testbed, {a.name for a in state.agents})


def _stored_submissions(state: CampaignState) -> list[dict[str, Any]]:
    """The campaign's submissions from its database, through a server started anew on it."""
    conn = CampaignServer(state)
    try:
        with conn.connect() as admin:
            return all_submissions(admin, state.testbed, {a.name for a in state.agents})
    finally:
        conn.close()


def _live_actors(address: str, namespace: str) -> list[str]:
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        return [e["name"] for e in ray.util.list_named_actors(all_namespaces=True)
                if e["namespace"] == namespace]
    finally:
        ray.shutdown()


def _check_finished(state: CampaignState) -> None:
    assert state.finished and all(a.status == "done" for a in state.agents)
    for a in state.agents:
        log = Path(a.log).read_text()
        assert "submission budget used up" in log, log[-2000:]
        assert a.exit_code == 0, (a.name, a.stop_reason)
        assert (Path(a.workspace) / "state.json").exists()  # the notes came back from the node
        assert len(a.nodes) == len(a.intervals) and all(n and n["ip"] for n in a.nodes)
    assert _live_actors(state.options["ray"], state.options["ray_namespace"]) == []  # nothing leaks
    from aar.campaign.ray_node import node_root

    assert not list((node_root() / state.options["ray_namespace"]).glob("a*"))  # nor on the nodes


@pytest.mark.postgres
def test_campaign_spreads_over_two_nodes(cluster, pg_url, tmp_path):
    d = tmp_path / "camp"
    # 2 CPUs per agent: the head holds two agents, the worker one, and the fourth waits for room
    state = run_campaign(_options(d, cluster, pg_url, cpus=2.0), say=_quiet, audit=False)
    _check_finished(state)
    assert len({a.nodes[0]["node_id"] for a in state.agents}) == 2  # both nodes ran agents
    # the agent that waited for a node is charged from its start, not from its launch: its run
    # began only once another agent had ended and freed the room
    last = max(state.agents, key=lambda a: a.intervals[0][0])
    assert last.intervals[0][0] >= min(a.intervals[-1][1] for a in state.agents if a is not last)
    subs = _stored_submissions(state)
    assert len(subs) == 4 and all(s["private_pgr"] is not None for s in subs)
    assert sorted(s["agent"] for s in subs) == sorted(a.name for a in state.agents)
    report = (d / "report.md").read_text()
    assert "Where agents ran" in report
    assert all(f"| {a.nodes[0]['ip']} | {a.nodes[0]['node_id'][:12]} |" in report for a in state.agents)
    assert state.isolation == "bubblewrap (on Ray nodes)"
    assert not list((d / "server").glob("*.db"))  # the records are in PostgreSQL, not in SQLite


@pytest.mark.postgres
def test_node_loss_mid_run(cluster, pg_url, tmp_path):
    d = tmp_path / "camp"
    worker = cluster.worker_nodes and next(iter(cluster.worker_nodes))
    if not worker:
        pytest.skip("an earlier test of this module removed the worker node")
    seen: dict[str, Any] = {}

    def kill_worker_after_its_first_submission() -> None:
        deadline = time.monotonic() + SAFETY_NET_S
        while time.monotonic() < deadline:
            time.sleep(1.0)
            try:
                state = CampaignState.load(d)
                subs = _submissions(state)
            except (FileNotFoundError, ValueError, OSError):
                continue  # not set up yet
            on_worker = {a.name for a in state.agents if a.nodes and a.nodes[-1]
                         and a.nodes[-1]["node_id"] == worker.node_id}
            if any(s["agent"] in on_worker for s in subs):
                seen.update(acked=subs, on_worker=on_worker)
                cluster.remove_node(worker)
                return

    watcher = threading.Thread(target=kill_worker_after_its_first_submission, daemon=True)
    watcher.start()
    # two submissions each: the agent whose first one triggers the kill is still at work on its second
    state = run_campaign(_options(d, cluster, pg_url, submissions=2), say=_quiet, audit=False)
    watcher.join(timeout=60)
    assert seen, "the worker node was never killed: no agent there submitted"
    _check_finished(state)
    after = {s["id"] for s in _stored_submissions(state)}
    assert {s["id"] for s in seen["acked"]} <= after  # nothing acknowledged before the loss is lost
    assert len(after) == 8  # each agent ends with exactly its two allowed submissions, none repeated
    first = next(s["agent"] for s in seen["acked"] if s["agent"] in seen["on_worker"])
    for a in state.agents:
        if a.name in seen["on_worker"]:  # restarted on the head from its notes, not counted as a crash
            assert a.node_losses == 1 and a.restarts == 0, (a.name, a.stop_reason)
            assert a.nodes[0]["node_id"] == worker.node_id != a.nodes[-1]["node_id"]
            assert len(a.intervals) == 2
        else:
            assert a.node_losses == 0 and len(a.intervals) == 1
    # the agent caught between its two submissions resumed from its notes and made only the second
    assert [s["agent"] for s in seen["acked"]].count(first) == 1
    assert [s["agent"] for s in _stored_submissions(state)].count(first) == 2
    events = (d / "sandbox_events.jsonl").read_text()
    assert events.count('"ray.agent_lost"') == len(seen["on_worker"]) == 2


SUPERVISOR = """
import json, sys
from aar.campaign.orchestrator import CampaignOptions, run_campaign
run_campaign(CampaignOptions(**json.loads(sys.argv[1])), report=False, audit=False)
"""


@pytest.mark.postgres
def test_supervisor_killed_and_resumed_reattaches(cluster, pg_url, tmp_path):
    d = tmp_path / "camp"
    opts = asdict(_options(d, cluster, pg_url))
    opts["agents"] = 2
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(opts)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SAFETY_NET_S
        while time.monotonic() < deadline:  # until every agent runs on a node
            time.sleep(0.5)
            assert sup.poll() is None, "the supervisor ended before it was killed"
            try:
                before = CampaignState.load(d)
            except (FileNotFoundError, ValueError):
                continue
            if len(before.agents) == 2 and all(a.nodes and a.nodes[-1] for a in before.agents):
                break
        sup.kill()  # SIGKILL: no clean-up runs; agents, actors and the server keep going
        sup.wait()
    finally:
        if sup.poll() is None:
            sup.kill()
    state = run_campaign(resume=str(d), say=_quiet, audit=False)
    _check_finished(state)
    assert state.server["pid"] == before.server["pid"]  # the same server scored throughout
    assert not Path(f"/proc/{before.server['pid']}").exists() or "serve" not in Path(
        f"/proc/{before.server['pid']}/cmdline").read_bytes().decode(errors="replace")  # stopped at the end
    for a in state.agents:  # reattached, not relaunched: one run each, no restart of any kind
        assert len(a.intervals) == 1 and a.restarts == 0 and a.node_losses == 0, a
    events = (d / "sandbox_events.jsonl").read_text()
    assert events.count('"ray.agent_reattached"') == 2
    assert len(_stored_submissions(state)) == 2


def test_refusals(tmp_path):
    from aar.campaign.ray_launcher import RayError, check_options, connect

    base = {"dir": str(tmp_path / "c"), "ray": "auto"}
    with pytest.raises(RayError, match="PostgreSQL"):
        check_options(CampaignOptions(**base))
    with pytest.raises(RayError, match="PostgreSQL"):
        check_options(CampaignOptions(**base, db_url="sqlite:////tmp/x.db"))
    with pytest.raises(RayError, match="over TCP"):
        check_options(CampaignOptions(**base, server="unix:/tmp/s.sock"))
    with pytest.raises(RayError, match="offline researchers"):
        check_options(CampaignOptions(**base, backend="anthropic", db_url="postgresql://x/y"))
    check_options(CampaignOptions(**base, db_url="postgresql+psycopg://postgres@127.0.0.1/x"))
    try:
        import ray  # noqa: F401
    except ImportError:  # without Ray installed, --ray names the extra to install
        with pytest.raises(RayError, match=r"pip install 'aar\[ray\]'"):
            connect("127.0.0.1:1")
    else:
        with pytest.raises(RayError, match=r"no Ray cluster at 127\.0\.0\.1:1"):
            connect("127.0.0.1:1")  # nothing listens on port 1


def test_unsatisfiable_request_is_refused(cluster):
    import ray

    from aar.campaign.ray_launcher import RayError, check_resources, cluster_gpus, connect, default_gpus

    connect(cluster.address)
    try:
        assert cluster_gpus() == 0.0  # neither node declares a GPU
        assert default_gpus("hf-imported", cluster_gpus()) == 0.0
        assert default_gpus("hf-imported", 8.0) == 1.0  # a Hugging Face testbed on a GPU cluster
        assert default_gpus("math-tiny", 8.0) == 0.0  # built-in testbeds train on CPUs
        with pytest.raises(RayError, match="no node of the cluster can hold an agent with 1 CPUs and 1 GPUs"):
            check_resources(1.0, 1.0)  # no node declares a GPU
        with pytest.raises(RayError, match="64 CPUs"):
            check_resources(64.0, 0.0)
        check_resources(1.0, 0.0)
    finally:
        ray.shutdown()
