"""Launching sandboxed commands, watching them, killing runaways, and auditing every run.

Audit events (plain dicts handed to the ``audit`` callback, all with ``event``, ``run_id``,
``label`` and ``ts``):

* ``sandbox.start``  argv, uid, workspace, readonly paths, socket, limits, unsafe flag;
* ``sandbox.unsafe`` the run has NO isolation (explicit unsafe flag);
* ``sandbox.limit``  a budget was exceeded: reason, measured value, limit; the tree is killed;
* ``sandbox.exit``   returncode, killed_reason, wall/CPU time, peaks, disk and file growth, stderr tail.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import IO, Any

from aar.sandbox import bwrap as bw
from aar.sandbox.limits import Limits, rlimits_for
from aar.sandbox.proctree import TreeSample, kill_tree, sample_tree, tree_pss_mb
from aar.sandbox.spec import SandboxResult, SandboxSpec, SandboxUnavailable, StdStream, resolve
from aar.sandbox.workspace import disk_usage

log = logging.getLogger("aar.sandbox")
AuditFn = Callable[[dict[str, Any]], None]
SIGXCPU_EXIT = 128 + 24


def _emit(audit: AuditFn | None, record: dict[str, Any]) -> None:
    record.setdefault("ts", time.time())
    if audit is None:
        log.info("audit %s", record)
        return
    try:
        audit(record)
    except Exception:  # an audit sink failing must not leave a sandbox unsupervised
        log.exception("sandbox audit callback failed for %s", record.get("event"))


def _nproc_of_uid(uid: int) -> int:
    """Tasks currently owned by ``uid`` (only needed when sandboxes share the user's uid)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                count += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            continue
    return count


class SandboxProcess:
    """Handle on a running sandbox: poll, wait, kill (whole tree), final result.

    A watchdog thread samples the tree every ``limits.poll_seconds`` and kills it when a budget
    is exceeded. Create it with :func:`popen_sandboxed`. Note: bubblewrap's ``--die-with-parent``
    ties the sandbox to the *thread* that launched it; launch long-lived agents from a thread
    that outlives them (e.g. the main thread).
    """

    def __init__(self, popen: subprocess.Popen[bytes], spec: SandboxSpec, argv: Sequence[str], run_id: str,
                 label: str, audit: AuditFn | None, unsafe: bool) -> None:
        self.popen = popen
        self.spec = spec
        self.argv = tuple(argv)
        self.run_id = run_id
        self.label = label
        self.unsafe = unsafe
        self._audit = audit
        self._started = time.monotonic()
        self._ended: float | None = None
        self._lock = threading.Lock()
        self.killed_reason: str | None = None
        self.cpu_seconds = 0.0
        self.peak_memory_mb = 0.0
        self.peak_tasks = 0
        self._workspace = resolve(spec.workspace)
        self._disk_start, self._files_start = disk_usage(self._workspace)
        self.disk_growth_bytes = 0
        self.file_growth = 0
        self._pidfd = os.pidfd_open(popen.pid)
        self._watchdog = threading.Thread(target=self._watch, name=f"sandbox-{run_id}", daemon=True)
        self._watchdog.start()

    # -- public API ---------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        """Host pid of the outer launcher (killing it kills the whole sandbox)."""
        return self.popen.pid

    @property
    def stdin(self) -> IO[bytes] | None:
        """Pipe to the sandbox's stdin (when launched with ``stdin=PIPE``)."""
        return self.popen.stdin

    @property
    def stdout(self) -> IO[bytes] | None:
        """Pipe from the sandbox's stdout (when launched with ``stdout=PIPE``); drain it."""
        return self.popen.stdout

    @property
    def stderr(self) -> IO[bytes] | None:
        """Pipe from the sandbox's stderr (when launched with ``stderr=PIPE``); drain it."""
        return self.popen.stderr

    def poll(self) -> int | None:
        """Return code if finished, else ``None``."""
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end (the watchdog enforces the wall clock); return the return code."""
        code = self.popen.wait(timeout)
        self._watchdog.join()
        return code

    def kill(self, reason: str = "killed") -> None:
        """Kill the whole sandbox tree now; ``reason`` becomes ``killed_reason``."""
        with self._lock:
            if self.killed_reason is None and self.popen.poll() is None:
                self.killed_reason = reason
        kill_tree(self.popen.pid)

    @property
    def wall_seconds(self) -> float:
        """Seconds since launch (until the end, once finished)."""
        end = self._ended if self._ended is not None else time.monotonic()
        return end - self._started

    # -- watchdog -----------------------------------------------------------------------------
    def _breach(self, reason: str, value: float, limit: float, sample: TreeSample | None) -> None:
        with self._lock:
            if self.killed_reason is not None:
                return
            self.killed_reason = reason
        kill_tree(self.popen.pid, sample.pids if sample else None)
        _emit(self._audit, {"event": "sandbox.limit", "run_id": self.run_id, "label": self.label,
                            "reason": reason, "value": round(value, 3), "limit": limit,
                            "argv": list(self.argv)})

    def _watch(self) -> None:
        limits: Limits = self.spec.limits
        disk_limit = limits.disk_mb * 2**20
        last_scan = time.monotonic()
        written_at_scan = 0
        sample = TreeSample([], 0.0, 0.0, 0, 0)
        while self.popen.poll() is None:
            sample = sample_tree(self.popen.pid)
            memory = sample.rss_mb
            if memory > limits.memory_mb:  # RSS over-counts shared pages: confirm with PSS
                memory = tree_pss_mb(sample.pids)
            self.cpu_seconds = max(self.cpu_seconds, sample.cpu_seconds)
            self.peak_memory_mb = max(self.peak_memory_mb, memory)
            self.peak_tasks = max(self.peak_tasks, sample.tasks)
            now = time.monotonic()
            if now - self._started > limits.wall_seconds:
                self._breach("wall", now - self._started, limits.wall_seconds, sample)
            elif sample.cpu_seconds > limits.cpu_seconds:
                self._breach("cpu", sample.cpu_seconds, limits.cpu_seconds, sample)
            elif memory > limits.memory_mb:
                self._breach("memory", memory, limits.memory_mb, sample)
            elif sample.tasks >= limits.max_processes:
                self._breach("processes", sample.tasks, limits.max_processes, sample)
            else:
                # Full scans are periodic, or immediate once the bytes written since the last
                # scan could have taken the workspace past its budget.
                maybe_over = self.disk_growth_bytes + (sample.written_bytes - written_at_scan) > disk_limit
                if maybe_over or now - last_scan >= limits.disk_poll_seconds:
                    growth, files = self._scan_workspace()
                    last_scan, written_at_scan = time.monotonic(), sample.written_bytes
                    if growth > disk_limit:
                        self._breach("disk", growth / 2**20, limits.disk_mb, sample)
                    elif files > limits.max_files:
                        self._breach("files", files, limits.max_files, sample)
            if self.killed_reason is not None:
                break
            # Sleep until the next sample, or until the process exits (no exit latency).
            select.select([self._pidfd], [], [], limits.poll_seconds)
        try:
            self.popen.wait()
        finally:
            self._ended = time.monotonic()
            os.close(self._pidfd)
        self._scan_workspace()
        if self.killed_reason is None and self.popen.returncode == SIGXCPU_EXIT:
            self.killed_reason = "cpu"  # the per-process RLIMIT_CPU backstop fired first

    def _scan_workspace(self) -> tuple[int, int]:
        """Growth of the workspace since launch: (bytes on disk, files); records the peaks."""
        size, entries = disk_usage(self._workspace)
        growth, files = size - self._disk_start, entries - self._files_start
        self.disk_growth_bytes = max(self.disk_growth_bytes, growth)
        self.file_growth = max(self.file_growth, files)
        return growth, files

    def result(self, stdout: bytes = b"", stderr: bytes = b"", *, stdout_truncated: bool = False,
               stderr_truncated: bool = False) -> SandboxResult:
        """Build the final :class:`SandboxResult` (after :meth:`wait`) and emit ``sandbox.exit``."""
        self.wait()
        res = SandboxResult(
            run_id=self.run_id, argv=self.argv, returncode=self.popen.returncode,
            stdout=stdout.decode("utf-8", "replace"), stderr=stderr.decode("utf-8", "replace"),
            killed_reason=self.killed_reason, wall_seconds=self.wall_seconds, cpu_seconds=self.cpu_seconds,
            peak_memory_mb=self.peak_memory_mb, peak_tasks=self.peak_tasks,
            disk_growth_mb=self.disk_growth_bytes / 2**20, file_growth=self.file_growth, unsafe=self.unsafe,
            stdout_truncated=stdout_truncated, stderr_truncated=stderr_truncated,
        )
        _emit(self._audit, {
            "event": "sandbox.exit", "run_id": self.run_id, "label": self.label, "argv": list(self.argv),
            "returncode": res.returncode, "killed_reason": res.killed_reason,
            "wall_seconds": round(res.wall_seconds, 3), "cpu_seconds": round(res.cpu_seconds, 3),
            "peak_memory_mb": round(res.peak_memory_mb, 1), "peak_tasks": res.peak_tasks,
            "disk_growth_mb": round(res.disk_growth_mb, 3), "file_growth": res.file_growth,
            "unsafe": res.unsafe,
            "stdout_tail": res.stdout[-2000:], "stderr_tail": res.stderr[-2000:],
        })
        return res


def popen_sandboxed(
    cmd: Sequence[str],
    spec: SandboxSpec,
    *,
    stdin: StdStream = subprocess.DEVNULL,
    stdout: StdStream = subprocess.PIPE,
    stderr: StdStream = subprocess.PIPE,
    audit: AuditFn | None = None,
    label: str = "",
    allow_unsafe: bool = False,
) -> SandboxProcess:
    """Start ``cmd`` in a sandbox and return a handle the caller can poll, wait on or kill.

    ``stdin``/``stdout``/``stderr`` are as for :class:`subprocess.Popen`. Raises
    :class:`SandboxUnavailable` when bubblewrap cannot run here, unless ``allow_unsafe`` is set,
    in which case the command runs WITHOUT isolation (only rlimits, a clean environment and the
    watchdog), a warning is logged and a ``sandbox.unsafe`` audit event is emitted.
    """
    if not cmd:
        raise ValueError("empty command")
    support = bw.check_bubblewrap(spec.uid)
    run_id = uuid.uuid4().hex[:12]
    unsafe = not support.available
    if unsafe and not allow_unsafe:
        raise SandboxUnavailable(support.banner() + " Pass the explicit unsafe flag to run anyway.")
    common = {"run_id": run_id, "label": label, "argv": list(cmd)}
    _emit(audit, {"event": "sandbox.start", **common, "uid": spec.uid, "workspace": resolve(spec.workspace),
                  "readonly": [resolve(p) for p in spec.readonly],
                  "server_socket": resolve(spec.server_socket) if spec.server_socket else None,
                  "env_keys": sorted(spec.env), "limits": spec.limits.as_dict(), "unsafe": unsafe})
    privileged = os.geteuid() == 0
    nproc_base = 0 if privileged else _nproc_of_uid(os.getuid())
    if unsafe:
        message = f"{support.banner()} Running {list(cmd)!r} without isolation (unsafe flag)."
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        _emit(audit, {"event": "sandbox.unsafe", **common, "reason": support.reason})
        plan = {"mode": "unsafe", "command": list(cmd), "cwd": resolve(spec.workspace),
                "env": bw.sandbox_path_env(spec), "rlimits": rlimits_for(spec.limits, nproc_base=nproc_base)}
    else:
        plan = bw.build_plan(list(cmd), spec, bwrap=support.bwrap or "bwrap", privileged=privileged,
                             nproc_base=nproc_base)
    popen = bw.launch(plan, stdin=stdin, stdout=stdout, stderr=stderr)
    return SandboxProcess(popen, spec, cmd, run_id, label, audit, unsafe)


def _drain(stream: IO[bytes], keep: int, out: list[Any]) -> None:
    """Read ``stream`` to EOF, keeping the first ``keep`` bytes; out = [bytes, truncated]."""
    chunks, size, truncated = [], 0, False
    while True:
        chunk = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
        if not chunk:
            break
        if size < keep:
            chunks.append(chunk[: keep - size])
        truncated = truncated or size + len(chunk) > keep
        size += len(chunk)
    out.extend([b"".join(chunks), truncated])


def run_sandboxed(
    cmd: Sequence[str],
    spec: SandboxSpec,
    *,
    stdin: bytes | None = None,
    audit: AuditFn | None = None,
    label: str = "",
    allow_unsafe: bool = False,
) -> SandboxResult:
    """Run ``cmd`` in a sandbox to completion (or until a limit kills it) and return the result.

    Output is captured up to ``spec.limits.output_kb`` per stream (the rest is drained and
    dropped, marked ``*_truncated``). Never raises for what the command does; raises
    :class:`SandboxUnavailable` as :func:`popen_sandboxed` does. A sandbox that could not even
    be created because the kernel said EAGAIN (the uid's processes of a just-killed sandbox are
    still being reaped) is retried a few times with backoff before its failure is returned.
    """
    for attempt in range(_START_RETRIES + 1):
        result = _run_once(cmd, spec, stdin, audit, label, allow_unsafe)
        if attempt == _START_RETRIES or not _start_failed_eagain(result):
            return result
        time.sleep(0.2 * 2**attempt)
    return result


_START_RETRIES = 6


def _start_failed_eagain(result: SandboxResult) -> bool:
    """Whether bwrap itself failed with EAGAIN before running anything.

    Two forms are seen: ``Creating new namespace failed`` and ``Can't fork for pid 1``; both say
    that the sandbox uid's task count (``RLIMIT_NPROC``) or the namespace count is momentarily
    full because the tasks of a just-killed sandbox have not all been reaped yet.
    """
    failed_start = result.returncode != 0 and not result.stdout
    return failed_start and any(
        line.startswith("bwrap:") and "Resource temporarily unavailable" in line
        for line in result.stderr.splitlines()
    )


def _run_once(
    cmd: Sequence[str],
    spec: SandboxSpec,
    stdin: bytes | None,
    audit: AuditFn | None,
    label: str,
    allow_unsafe: bool,
) -> SandboxResult:
    """One attempt of :func:`run_sandboxed`."""
    proc = popen_sandboxed(cmd, spec, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                           audit=audit, label=label, allow_unsafe=allow_unsafe)
    keep = spec.limits.output_kb * 1024
    outs: list[Any] = []  # [bytes, truncated], filled by _drain
    errs: list[Any] = []
    readers = [threading.Thread(target=_drain, args=(proc.stdout, keep, outs), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, keep, errs), daemon=True)]
    for reader in readers:
        reader.start()
    if stdin is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin)
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()
    proc.wait()
    for reader in readers:
        reader.join(timeout=5)  # a pipe held open by an escaped process must not hang us
    out, out_trunc = outs if len(outs) == 2 else (b"", True)
    err, err_trunc = errs if len(errs) == 2 else (b"", True)
    return proc.result(out, err, stdout_truncated=out_trunc, stderr_truncated=err_trunc)
