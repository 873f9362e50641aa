"""One experiment (a method over seeds) on a public view, in a child process: ``python -m aar.w2s.worker``.

``REQ`` is a JSON file with ``view``, ``method`` (a shipped name or a ``.py`` path), ``params``,
``seeds``, ``splits``, ``out_dir`` and optionally ``holdout`` (a share of ``train_unlabel`` held out
for diagnostics, see :func:`aar.w2s.experiment.holdout_ids`). Each seed's predictions are written to
``out_dir/s<seed>.json`` as soon as they exist; errors go to ``out_dir/error.txt``.

``python -m aar.w2s.worker --serve`` is the warm form of the same worker (:func:`serve`): it imports
once and then runs the requests whose paths arrive on its stdin, one at a time, answering each on stdout.

Why a child process: a method file is untrusted code. The child loads only the label-free public view
(inputs, the teacher's ``train_unlabel`` outputs, the strong checkpoint), so nothing in its memory
holds a label, whatever the method walks (``gc.get_objects()``, bound methods, module globals). Agents'
experiments start it inside their own sandbox (:class:`aar.agents.experiments.ExperimentRunner`);
:func:`run_isolated` starts it for the operator's tools (``aar baseline --methods file.py``, audits) in
a fresh bubblewrap sandbox that sees only the view and the method file, or, where bubblewrap is
unavailable, as a plain child process with a clean environment (no labels in memory, but files the
invoking user can read are readable: say so loudly).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

ISOLATION_UID = 64900  # the unprivileged uid of operator-side method sandboxes (below the agents' range)


def main(request_path: str) -> int:
    """Run the request; exit 0 on success, 1 on a method error."""
    _setup()
    return 0 if run_request(Path(request_path)) else 1


def _setup() -> None:
    """What every request needs, done once per process: torch on one thread, the science imported."""
    import torch

    torch.set_num_threads(1)
    import aar.w2s.experiment
    import aar.w2s.methods.registry
    import aar.w2s.view  # noqa: F401


def run_request(request_path: Path, views: dict[str, tuple[Any, Any]] | None = None) -> bool:
    """Run one request (every seed, in this process); False when the method failed (``error.txt``).

    Each seed's file carries ``run_seconds``: the wall time of the method's run itself (building its
    context, training, predicting), measured here so the agent can tell it from the worker's overhead.
    ``views`` (the warm worker's) keeps loaded views by folder, reused while the folder's files are
    unchanged; a method gets fresh lists of inputs (:meth:`aar.w2s.data.Dataset.inputs`) either way.
    """
    import time

    from aar.fileio import write_json_atomic
    from aar.w2s.experiment import run_method
    from aar.w2s.methods.registry import get_method

    req = json.loads(request_path.read_text())
    out = Path(req["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    try:
        view = _view(Path(req["view"]), views)
        method = get_method(req["method"])
        for seed in req["seeds"]:
            t0 = time.perf_counter()
            run = run_method(
                view,
                method,
                int(seed),
                req.get("params") or {},
                tuple(req["splits"]),
                holdout=float(req.get("holdout") or 0.0),
            )
            write_json_atomic(  # atomic (a reader never sees half), not fsynced: a lost run is rerun
                out / f"s{seed}.json",
                {
                    "seed": seed,
                    "params": run.params,
                    "seconds": run.seconds,
                    "run_seconds": time.perf_counter() - t0,
                    "probs": run.probs,
                    "holdout_probs": run.holdout_probs,
                },
                durable=False,
            )
    except (Exception, SystemExit) as e:  # a method's sys.exit() is its failure, not the worker's end
        (out / "error.txt").write_text(f"{type(e).__name__}: {e}\n\n{traceback.format_exc()[-3000:]}")
        return False
    return True


def _view(path: Path, views: dict[str, tuple[Any, Any]] | None) -> Any:
    """The public view at ``path``: from ``views`` while its files are unchanged, else loaded (and kept)."""
    from aar.w2s.view import load_public_view

    if views is None:
        return load_public_view(path)
    files = sorted(p for p in path.iterdir() if p.is_file())
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    held = views.get(str(path))
    if held is None or held[0] != stamp:
        held = views[str(path)] = (stamp, load_public_view(path))
    return held[1]


def serve(inp: IO[str], proto: IO[str]) -> int:
    """The warm worker: run the request whose path arrives on each line of ``inp``, one at a time.

    Imports happen once, before the first request. Each request's output (fds 1 and 2) goes to
    ``worker.log`` in its own ``out_dir``; when it is done, one JSON line ``{"done": PATH, "ok": BOOL}``
    goes to ``proto`` (with ``rss_mb``, the worker's memory then). Returns 0 when ``inp`` closes. Whoever
    started the worker kills its whole process group when a request runs past its time
    (:class:`aar.agents.experiments.ExperimentRunner`).
    """
    _setup()
    views: dict[str, tuple[Any, Any]] = {}
    proto.write(json.dumps({"ready": os.getpid()}) + "\n")
    proto.flush()
    base_out, base_err = os.dup(1), os.dup(2)
    for line in inp:
        path = Path(line.strip())
        if not line.strip():
            continue
        ok = False
        try:
            out_dir = Path(json.loads(path.read_text())["out_dir"])
            out_dir.mkdir(parents=True, exist_ok=True)
            with open(out_dir / "worker.log", "ab") as log:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                try:
                    ok = run_request(path, views)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os.dup2(base_out, 1)
                    os.dup2(base_err, 2)
        except (OSError, ValueError, KeyError, TypeError) as e:  # an unreadable request: say so, go on
            print(f"request {path}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        proto.write(json.dumps({"done": str(path), "ok": ok, "rss_mb": _rss_mb()}) + "\n")
        proto.flush()
    return 0


def _rss_mb() -> float:
    """This process's resident memory now, in MiB (0.0 where ``/proc`` does not tell)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _die_with_lifeline(fd: int) -> None:
    """Block until the pipe ``fd`` reaches end-of-file (its writer, the process that started this worker,
    is gone), then kill this worker's whole process group (it leads its own)."""
    while True:
        try:
            if not os.read(fd, 64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _serve_main(lifeline: int | None) -> int:
    """``python -m aar.w2s.worker --serve [--lifeline FD]``: the protocol stream is the original stdout;
    anything the methods print goes to stderr (the log) instead. With ``FD``, the worker dies when that
    pipe closes (see :class:`aar.agents.experiments.WarmWorker`)."""
    if lifeline is not None:
        import threading

        threading.Thread(target=_die_with_lifeline, args=(lifeline,), daemon=True).start()
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(sys.stdin, proto)


@dataclass
class IsolatedRun:
    """What :func:`run_isolated` brings back: per-seed results (``probs``, ``params``, ``seconds``)."""

    runs: list[dict[str, Any]]
    isolation: str  # "bwrap" or "process" (no bubblewrap here: a child process, no file isolation)
    error: str | None = None
    log_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def ok(self) -> bool:
        """Every seed finished and nothing failed."""
        return self.error is None


def run_isolated(
    view: Path,
    method: str,
    seeds: Sequence[int],
    params: dict[str, Any] | None = None,
    splits: Sequence[str] = ("test",),
    *,
    sandbox: bool | None = None,
    timeout_s: float = 1800.0,
    memory_mb: int = 4096,
    audit: Callable[[dict[str, Any]], None] | None = None,
) -> IsolatedRun:
    """Run ``method`` (a shipped name or a ``.py`` file) over the public ``view`` in a child process.

    With ``sandbox`` None (default) the child runs in a bubblewrap sandbox when one works here and as
    a plain child process otherwise (logged as a warning, reported as ``isolation="process"``); True
    requires the sandbox (raises :class:`aar.sandbox.SandboxUnavailable`), False never uses it. The
    sandbox sees the view (read-only), a copy of the method file and an output folder; nothing else
    of the host (no ``AAR_HOME``, no testbed cache, no network).
    """
    from aar.sandbox import (
        Limits,
        SandboxSpec,
        SandboxUnavailable,
        check_bubblewrap,
        prepare_workspace,
        read_workspace_file,
        run_sandboxed,
    )

    view = Path(view).resolve()
    uid = ISOLATION_UID if os.geteuid() == 0 else os.getuid()
    use_sandbox = sandbox
    if use_sandbox is None or use_sandbox:
        support = check_bubblewrap(uid if os.geteuid() == 0 else 65534)
        if not support.available:
            if use_sandbox:
                raise SandboxUnavailable(support.banner())
            log.warning("%s: running method %s as a plain child process", support.banner(), method)
        use_sandbox = support.available
    tmp_root = Path(tempfile.mkdtemp(prefix="aar-method-"))
    try:
        os.chmod(tmp_root, 0o755)
        ws = tmp_root / "ws"
        if use_sandbox:
            prepare_workspace(ws, uid)
        else:
            ws.mkdir()
        name = method
        if method.endswith(".py"):
            src = Path(method)
            if not src.is_file():
                return IsolatedRun([], "none", f"method file {src} does not exist")
            (ws / "method").mkdir()
            shutil.copyfile(src, ws / "method" / src.name)
            os.chmod(ws / "method", 0o755)
            os.chmod(ws / "method" / src.name, 0o644)
            name = str(ws / "method" / src.name)
        req = {
            "view": str(view),
            "method": name,
            "params": params or {},
            "seeds": [int(s) for s in seeds],
            "splits": list(splits),
            "out_dir": str(ws / "out"),
        }
        (ws / "request.json").write_text(json.dumps(req))
        os.chmod(ws / "request.json", 0o644)
        argv = [sys.executable, "-m", "aar.w2s.worker", str(ws / "request.json")]
        if use_sandbox:
            spec = SandboxSpec(
                workspace=ws,
                readonly=[view],
                env={"OMP_NUM_THREADS": "1"},
                limits=Limits(
                    memory_mb=memory_mb,
                    cpu_seconds=timeout_s,
                    wall_seconds=timeout_s,
                    disk_mb=256,
                ),
                uid=uid,
                gid=uid,
            )
            res = run_sandboxed(argv, spec, audit=audit, label=f"method/{Path(method).name}")
            code, tail = res.returncode, (res.stdout + res.stderr)[-3000:]
            killed = res.killed_reason

            def read(rel: str) -> str | None:
                try:
                    return read_workspace_file(ws, rel).decode()
                except FileNotFoundError:
                    return None

        else:
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "TMPDIR")}
            try:
                proc = subprocess.run(
                    argv, cwd=ws, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                    timeout=timeout_s,
                )
                code, tail, killed = proc.returncode, (proc.stdout + proc.stderr)[-3000:], None
            except subprocess.TimeoutExpired:
                code, tail, killed = -9, "", "wall"

            def read(rel: str) -> str | None:
                f = ws / rel
                return f.read_text() if f.is_file() and not f.is_symlink() else None

        runs = []
        for seed in seeds:
            blob = read(f"out/s{int(seed)}.json")
            if blob is None:
                break
            runs.append(json.loads(blob))
        error = None
        if killed:
            error = f"the method's process was killed (limit: {killed})"
        elif message := read("out/error.txt"):
            error = message[:3000]
        elif code != 0 or len(runs) != len(seeds):
            error = f"the method's process exited with status {code}: {tail}"
        return IsolatedRun(runs, "bwrap" if use_sandbox else "process", error, tail)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def _cli(argv: list[str]) -> int:
    """``REQ`` (one request), ``--serve`` or ``--serve --lifeline FD`` (the warm worker)."""
    if argv[:1] == ["--serve"]:
        if argv[1:] == []:
            return _serve_main(None)
        if len(argv) == 3 and argv[1] == "--lifeline" and argv[2].isdigit():
            return _serve_main(int(argv[2]))
        raise SystemExit("usage: python -m aar.w2s.worker REQ | --serve [--lifeline FD]")
    if len(argv) != 1:
        raise SystemExit("usage: python -m aar.w2s.worker REQ | --serve [--lifeline FD]")
    return main(argv[0])


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
