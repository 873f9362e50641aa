"""bubblewrap: the launch plan (what is mounted where), starting a plan, and whether it works here at all."""

from __future__ import annotations

import functools
import marshal
import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aar
from aar.sandbox.limits import Limits, rlimits_for
from aar.sandbox.spec import SandboxSpec, StdStream, resolve
from aar.sandbox.workspace import prepare_workspace

ENTER_SCRIPT = str(Path(__file__).with_name("_enter.py"))
# Configuration files a Python process may read; nothing else from the host's /etc is visible.
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/mime.types",
)
SANDBOX_USER = "aar-sandbox"


@dataclass(frozen=True)
class SandboxSupport:
    """Whether isolated sandboxes can run here, and if not, why not."""

    available: bool
    reason: str
    bwrap: str | None = None
    version: str | None = None
    privileged_supervisor: bool = False

    def banner(self) -> str:
        """A loud one-line message for logs and reports."""
        if self.available:
            return f"sandbox: bubblewrap {self.version} ({self.reason})"
        return f"!!! SANDBOX UNAVAILABLE: {self.reason}. Agents would run WITHOUT isolation. !!!"


def stage_root() -> str:
    """Directory on which the launcher mounts its private staging tmpfs (root only)."""
    for base in ("/run", tempfile.gettempdir()):
        path = os.path.join(base, "aar-sandbox-stage")
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
            return path
        except OSError:
            continue
    raise OSError("no directory for the sandbox staging mount")


def python_paths() -> list[str]:
    """Host paths of the running Python installation and of the installed ``aar`` package."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    candidates.update(site.getsitepackages())
    candidates.add(str(Path(aar.__file__).resolve().parent.parent))  # editable install: src/
    candidates.add(str(Path(resolve(sys.executable)).parent))
    return _outermost(resolve(p) for p in candidates if os.path.exists(p))


def _outermost(paths: Iterable[str]) -> list[str]:
    """Drop paths contained in another path of the list; keep order stable (sorted)."""
    out: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == p or path.startswith(p.rstrip("/") + "/") for p in out):
            out.append(path)
    return out


def _system_args() -> list[str]:
    """Read-only system directories (``/usr`` and the usr-merge symlinks or real dirs)."""
    args: list[str] = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = f"/{name}"
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    for path in ETC_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def sandbox_path_env(spec: SandboxSpec) -> dict[str, str]:
    """The environment inside the sandbox: a fixed base plus ``spec.env``, nothing inherited."""
    python_bin = str(Path(resolve(sys.executable)).parent)
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": resolve(spec.workspace),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "USER": SANDBOX_USER,
        "LOGNAME": SANDBOX_USER,
        "PYTHONNOUSERSITE": "1",
    }
    env.update(spec.env)
    return env


def build_plan(
    cmd: list[str], spec: SandboxSpec, *, bwrap: str, privileged: bool, nproc_base: int = 0
) -> dict[str, Any]:
    """The plan ``_enter.py`` executes: bind sources, bwrap options, uid, rlimits.

    Bind sources are given by index (``[i]``) so that the launcher can substitute their staged
    location. Order matters to bubblewrap: mounts are applied in sequence, so the private
    ``/tmp`` comes before any bind that lives below ``/tmp`` on the host.

    The private ``/tmp`` and ``/dev/shm`` are capped in size and, when the supervisor is root, in
    inodes too: the launcher mounts them itself (``plan["tmpfs"]``, options with ``nr_inodes=``)
    in its private staging namespace and bubblewrap binds them (``["tmpfs", i]`` in ``args``).
    Unprivileged, bubblewrap mounts them with ``--size`` only: it has no option for inodes.
    """
    limits = spec.limits
    size = str(limits.disk_mb * 1024 * 1024)
    binds: list[str] = []

    def bind(flag: str, src: str, dest: str | None = None) -> list[Any]:
        binds.append(src)
        return [flag, [len(binds) - 1], dest or src]

    args: list[Any] = [  # strings, and [index] / ["tmpfs", index] placeholders the launcher fills in
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--uid", str(spec.uid), "--gid", str(spec.gid), "--hostname", "sandbox",
        "--clearenv",
    ]
    for key, value in sandbox_path_env(spec).items():
        args += ["--setenv", key, str(value)]
    args += _system_args()
    args += ["--proc", "/proc", "--dev", "/dev"]
    tmpfs: list[str] = []
    if privileged:
        options = f"mode=0755,uid={spec.uid},gid={spec.gid},size={size},nr_inodes={limits.max_files}"
        tmpfs = [options, options]
        args += ["--bind", ["tmpfs", 0], "/dev/shm", "--bind", ["tmpfs", 1], "/tmp"]
    else:
        args += ["--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs", "/tmp"]
    for device in spec.devices:
        args += ["--dev-bind", resolve(device), resolve(device)]
    mounts: list[tuple[str, str, str]] = [("--ro-bind", p, p) for p in python_paths()]
    mounts += [("--ro-bind", resolve(p), resolve(p)) for p in spec.readonly]
    workspace = resolve(spec.workspace)
    mounts.append(("--bind", workspace, workspace))
    if spec.server_socket is not None:
        sock = resolve(spec.server_socket)
        mounts.append(("--bind", sock, sock))
    # Parents before children, so that no mount hides another.
    for flag, src, dest in sorted(mounts, key=lambda m: (m[2].count("/"), m[2])):
        args += bind(flag, src, dest)
    args += ["--remount-ro", "/", "--chdir", workspace]
    return {
        "mode": "bwrap",
        "bwrap": bwrap,
        "stage_root": stage_root() if privileged else None,
        "binds": binds,
        "tmpfs": tmpfs,
        "args": args,
        "command": list(cmd),
        "drop": privileged,
        "uid": spec.uid,
        "gid": spec.gid,
        "rlimits": rlimits_for(limits, nproc_base=nproc_base),
    }


def launch(
    plan: dict[str, Any], *, stdin: StdStream, stdout: StdStream, stderr: StdStream
) -> subprocess.Popen[bytes]:
    """Start ``_enter.py`` with the plan (marshal) on an inherited memfd, in a new session, no env."""
    plan_fd = os.memfd_create("aar-sandbox-plan", os.MFD_CLOEXEC)  # pass_fds opens it for the child only
    try:
        os.write(plan_fd, marshal.dumps(plan))
        os.lseek(plan_fd, 0, os.SEEK_SET)
        return subprocess.Popen(
            [resolve(sys.executable), "-I", "-S", ENTER_SCRIPT, str(plan_fd)],
            stdin=stdin, stdout=stdout, stderr=stderr, env={}, pass_fds=(plan_fd,),
            start_new_session=True, close_fds=True, cwd="/",
        )
    finally:
        os.close(plan_fd)


def probe(bwrap_path: str, uid: int) -> tuple[bool, str]:
    """Run the trivial Python program in a throwaway sandbox through the real launcher."""
    with tempfile.TemporaryDirectory(prefix="aar-sandbox-probe-") as tmp:
        workspace = prepare_workspace(os.path.join(tmp, "ws"), uid)
        spec = SandboxSpec(workspace=workspace, uid=uid, gid=uid,
                           limits=Limits(wall_seconds=30, cpu_seconds=10, memory_mb=256))
        try:
            plan = build_plan([resolve(sys.executable), "-S", "-c", "import os; print(os.getuid())"], spec,
                                 bwrap=bwrap_path, privileged=os.geteuid() == 0)
            popen = launch(plan, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = popen.communicate(timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return False, str(exc)
        if popen.returncode != 0:
            return False, (err.decode(errors="replace").strip() or f"exit status {popen.returncode}")[-500:]
        return True, out.decode().strip()


def find_bwrap() -> str | None:
    """Path of the ``bwrap`` binary, or ``None``."""
    fallback = (p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.path.exists(p))
    return shutil.which("bwrap") or next(fallback, None)


@functools.lru_cache(maxsize=8)
def check_bubblewrap(uid: int = 65534) -> SandboxSupport:
    """Can a fully isolated sandbox run here (as ``uid`` when the supervisor is root)? Why not?

    Runs a real probe through the same launcher the sandboxes use: private staging mounts,
    privilege drop, unprivileged user namespace, pid/net/ipc/uts namespaces, the Python
    interpreter. The answer is cached per uid for the life of the process.
    """
    exe = find_bwrap()
    if exe is None:
        return SandboxSupport(False, "bubblewrap is not installed (Debian package 'bubblewrap')")
    try:
        run = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        version = run.stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return SandboxSupport(False, f"bwrap --version failed: {exc}", exe)
    ok, detail = probe(exe, uid)
    privileged = os.geteuid() == 0
    if not ok:
        return SandboxSupport(False, f"bubblewrap probe failed: {detail}", exe, version, privileged)
    mode = "root supervisor, sandbox as unprivileged uid" if privileged else "sandbox as the invoking user"
    return SandboxSupport(True, mode, exe, version.removeprefix("bubblewrap ").strip(), privileged)
