"""Red-team suite: a hostile script runs inside the sandbox and tries every escape in the issue.

Each test runs one attempt of ``hostile.py`` and asserts that (1) every probe failed, (2) the
secret never reached the agent's output, (3) the run was recorded in the audit trail (start and
exit, plus a ``sandbox.limit`` event for resource attacks), and (4) the scoring server and the
campaign keep working afterwards (the server answers, a fresh sandbox can still reach it).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from aar.sandbox import Limits, WorkspaceEscape, read_workspace_file, run_sandboxed
from aar.sandbox.bwrap import python_paths

from .conftest import UID_A, UID_BOMB, Host

# Small limits keep the resource attacks fast.
HOSTILE_LIMITS = Limits(memory_mb=64, cpu_seconds=2, wall_seconds=20, max_processes=20, disk_mb=5,
                        poll_seconds=0.05, disk_poll_seconds=0.25)


def _home_host_entries() -> list[str]:
    home = Path.home()
    keep = {Path(p).relative_to(home).parts[0] for p in python_paths() if Path(p).is_relative_to(home)}
    return sorted(set(os.listdir(home)) - keep)


def attack(host: Host, attempt: str, *, limits: Limits | None = None, uid: int = UID_A, **extra):
    """Run one hostile attempt; return (result, probe lines, audit events of that run)."""
    nonce = uuid.uuid4().hex[:8]
    cfg = {
        "secret": host.secret, "gt_path": str(host.gt_path),
        "gt_rel": os.path.relpath(host.gt_path, host.ws_a), "db_path": str(host.db_path),
        "host_pid": os.getpid(), "tcp_port": host.tcp_port, "host_addrs": _host_addrs(),
        "abstract_name": host.abstract_name, "other_ws_file": str(host.other_ws_file),
        "home_secret": str(host.home_secret), "home_host_entries": _home_host_entries(),
        "allowed_env": ["AAR_TOKEN", "AAR_SERVER_SOCKET", "PATH", "HOME", "TMPDIR", "LANG", "USER",
                        "LOGNAME", "PYTHONNOUSERSITE", "PWD"],
        "nonce": nonce, "max_processes": (limits or HOSTILE_LIMITS).max_processes,
        "max_files": (limits or HOSTILE_LIMITS).max_files, **extra,
    }
    # The configuration (with the secret, used to recognise a leak) goes in a file, not argv,
    # so that the attacker's own command line does not count as a leak.
    cfg_file = host.workspace(uid) / f"cfg-{nonce}.json"
    cfg_file.write_text(json.dumps(cfg))
    os.chown(cfg_file, uid, uid)
    events: list = []
    script = (
        "import json,runpy,sys; sys.argv=[sys.argv[1], sys.argv[2], open(sys.argv[3]).read()]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = run_sandboxed([sys.executable, "-c", script, "hostile.py", attempt, cfg_file.name],
                           host.spec(limits or HOSTILE_LIMITS, uid=uid), audit=events.append,
                           label=f"redteam:{attempt}")
    cfg_file.unlink()
    host.audit.extend(events)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, lines, events, nonce


def _host_addrs() -> list[str]:
    import socket

    addrs = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addrs.add(info[4][0])
    except OSError:
        pass
    return sorted(a for a in addrs if not a.startswith("127."))


def assert_blocked(host: Host, result, lines, events, *, expect_probes: bool = True) -> None:
    leaked = [line for line in lines if line["leaked"]]
    assert not leaked, f"attack succeeded: {leaked}"
    if expect_probes:
        assert lines, f"no probes ran: rc={result.returncode} stderr={result.stderr[-800:]}"
    assert host.secret not in result.stdout
    assert host.secret not in result.stderr
    assert result.returncode != 3
    kinds = [e["event"] for e in events]
    assert "sandbox.start" in kinds and "sandbox.exit" in kinds, kinds
    exit_event = next(e for e in reversed(events) if e["event"] == "sandbox.exit")  # the last try
    assert exit_event["run_id"] == result.run_id and "hostile.py" in exit_event["argv"]
    assert exit_event["label"].startswith("redteam:")
    assert_campaign_alive(host)


def assert_campaign_alive(host: Host) -> None:
    """The server still answers on the host, and a new sandbox still reaches it over the socket."""
    assert host.server_alive()
    code = (
        "import os,socket; s=socket.socket(socket.AF_UNIX); s.connect(os.environ['AAR_SERVER_SOCKET']); "
        "s.sendall(b'GET /ping HTTP/1.0\\r\\n\\r\\n'); d=b''\n"
        "while c := s.recv(4096): d += c\n"
        "print(d.decode().split()[-1])"
    )
    res = run_sandboxed([sys.executable, "-S", "-c", code], host.spec())
    assert res.ok and res.stdout.strip() == "pong", (res.returncode, res.stderr)


def test_read_ground_truth_by_absolute_path(host):
    assert_blocked(host, *attack(host, "read_gt_abs")[:3])


def test_read_ground_truth_by_relative_path(host):
    assert_blocked(host, *attack(host, "read_gt_rel")[:3])


def test_read_ground_truth_through_symlink(host):
    result, lines, events, _ = attack(host, "read_gt_symlink")
    assert_blocked(host, result, lines, events)
    # The links the agent planted must not fool the (root) supervisor reading its workspace either.
    supervisor_audit: list = []
    for name in ("gt_link", f"gt_dir_link/{host.gt_path.name}"):
        with pytest.raises(WorkspaceEscape):
            read_workspace_file(host.ws_a, name, audit=supervisor_audit.append)
    assert [e["event"] for e in supervisor_audit] == ["workspace.escape_refused"] * 2
    for name in ("gt_link", "gt_dir_link"):
        (host.ws_a / name).unlink()


def test_read_through_proc_of_other_processes(host, monkeypatch):
    monkeypatch.setenv("AAR_VAULT_KEY", host.secret)  # the supervisor's own environment holds a secret
    result, lines, events, _ = attack(host, "read_proc")
    assert_blocked(host, result, lines, events)
    detail = next(line for line in lines if line["target"] == "proc_scan_environ_cmdline")["detail"]
    visible = json.loads(detail.split("]")[0] + "]")
    assert len(visible) <= 4, f"sandbox sees host processes: {visible}"  # bwrap init, python, its children


def test_read_server_database_file(host):
    assert_blocked(host, *attack(host, "read_db")[:3])


def test_read_environment_for_secrets(host, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", host.secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", host.secret)
    monkeypatch.setenv("AAR_ADMIN_TOKEN", host.secret)
    result, lines, events, _ = attack(host, "read_env")
    assert_blocked(host, result, lines, events)
    start = next(e for e in events if e["event"] == "sandbox.start")
    assert start["env_keys"] == ["AAR_SERVER_SOCKET", "AAR_TOKEN"]


def test_connect_tcp_to_localhost(host):
    assert host.server_alive()  # the server really listens on 127.0.0.1:port
    assert_blocked(host, *attack(host, "tcp_local")[:3])


def test_connect_to_another_address(host):
    assert_blocked(host, *attack(host, "tcp_remote")[:3])


def test_read_another_agents_workspace(host):
    assert_blocked(host, *attack(host, "other_workspace")[:3])


def test_read_users_home(host):
    assert_blocked(host, *attack(host, "home")[:3])


def test_write_outside_workspace(host):
    targets = [str(host.testbed), sys.prefix, "/usr/lib", "/etc", str(host.ws_b), str(host.gt_path.parent),
               "/", str(host.ws_a.parent), "/tmp", str(Path.home())]
    result, lines, events, nonce = attack(host, "write_outside", write_targets=targets)
    assert_blocked(host, result, lines, events)
    for target in targets:
        assert not (Path(target) / f"escape-{nonce}").exists(), f"write reached the host: {target}"


def test_escalate_privileges(host):
    assert_blocked(host, *attack(host, "escalate")[:3])


def _live_tasks_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _no_new_tasks(uid: int, before: set[int], timeout: float = 3.0) -> bool:
    """True once every task of ``uid`` not present before has gone (zombies included)."""
    deadline = time.monotonic() + timeout
    while set(_live_tasks_of(uid)) - before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_fork_bomb(host):
    before = set(_live_tasks_of(UID_BOMB))
    result, lines, events, _ = attack(host, "fork_bomb", uid=UID_BOMB)
    assert_blocked(host, result, lines, events, expect_probes=False)
    assert result.killed_reason == "processes", (result.killed_reason, result.stderr[-500:])
    assert result.peak_tasks <= HOSTILE_LIMITS.max_processes
    assert any(e["event"] == "sandbox.limit" and e["reason"] == "processes" for e in events)
    assert _no_new_tasks(UID_BOMB, before), "fork bomb (or a zombie of it) survived the kill"
    assert result.tool_error() and "processes" in result.tool_error()


def test_allocate_all_memory(host):
    result, lines, events, _ = attack(host, "memory")
    assert_blocked(host, result, lines, events)
    assert any(line["target"] == "alloc_64GiB" for line in lines)
    assert result.killed_reason == "memory", (result.killed_reason, result.stdout, result.stderr[-500:])
    assert result.peak_memory_mb <= HOSTILE_LIMITS.effective_address_space_mb()
    assert any(e["event"] == "sandbox.limit" and e["reason"] == "memory" for e in events)


def test_fill_the_disk(host):
    result, lines, events, _ = attack(host, "disk")
    try:
        assert_blocked(host, result, lines, events)
        targets = {line["target"] for line in lines}
        assert {"single_100MiB_file", "fill_/tmp", "fill_/dev/shm"} <= targets
        assert result.killed_reason == "disk", (result.killed_reason, result.stderr[-500:])
        assert any(e["event"] == "sandbox.limit" and e["reason"] == "disk" for e in events)
        # Detection is by polling: the overshoot is bounded by write speed x poll period.
        assert result.disk_growth_mb < 1024, result.disk_growth_mb
    finally:
        import shutil

        shutil.rmtree(host.ws_a / "fill", ignore_errors=True)


def test_create_many_empty_files(host):
    """Empty files take no blocks: the workspace is capped in files, the private tmpfs in inodes."""
    limits = Limits(memory_mb=64, cpu_seconds=20, wall_seconds=30, max_processes=20, disk_mb=5, max_files=500,
                    poll_seconds=0.05, disk_poll_seconds=0.25)
    result, lines, events, _ = attack(host, "inodes", limits=limits)
    try:
        if os.geteuid() == 0:  # the launcher mounts /tmp and /dev/shm itself, with nr_inodes=
            assert_blocked(host, result, lines, events)
            assert {"inodes_/tmp", "inodes_/dev/shm"} <= {line["target"] for line in lines}
        assert result.killed_reason == "files", (result.killed_reason, result.stdout, result.stderr[-500:])
        assert any(e["event"] == "sandbox.limit" and e["reason"] == "files" for e in events)
        assert result.file_growth > limits.max_files
        assert next(e for e in events if e["event"] == "sandbox.exit")["file_growth"] == result.file_growth
        assert result.tool_error() and "files" in result.tool_error()
    finally:
        import shutil

        shutil.rmtree(host.ws_a / "many", ignore_errors=True)


def test_spin_cpu_past_limit(host):
    before = set(_live_tasks_of(UID_A))
    result, lines, events, _ = attack(host, "cpu")
    assert_blocked(host, result, lines, events, expect_probes=False)
    assert result.killed_reason == "cpu"
    assert HOSTILE_LIMITS.cpu_seconds <= result.cpu_seconds < HOSTILE_LIMITS.cpu_seconds + 2
    assert any(e["event"] == "sandbox.limit" and e["reason"] == "cpu" for e in events)
    assert _no_new_tasks(UID_A, before), "spinning processes (or zombies) survived the kill"
