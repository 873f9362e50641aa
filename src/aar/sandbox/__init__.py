"""Isolated sandboxes for agents and the experiments they run (bubblewrap + rlimits + watchdog).

Typical use by the campaign::

    support = require_sandbox(allow_unsafe=args.unsafe)      # refuses unless bwrap works
    ws = prepare_workspace(root / "agents" / name, uid_for_agent(i))
    spec = SandboxSpec(workspace=ws, readonly=[testbed_public, checkpoints],
                       server_socket=sock, env={"AAR_TOKEN": token, "AAR_SERVER_SOCKET": str(sock)},
                       uid=uid_for_agent(i), gid=uid_for_agent(i))
    result = run_sandboxed(["python", "exp.py"], spec, audit=audit_log.append)
    if not result.ok: tell_agent(result.tool_error())

See the README section "Sandboxes" for what is visible inside and how each limit holds.
"""

from aar.sandbox.bwrap import SandboxSupport, check_bubblewrap
from aar.sandbox.limits import Limits
from aar.sandbox.process import SandboxProcess, popen_sandboxed, run_sandboxed
from aar.sandbox.spec import SandboxError, SandboxResult, SandboxSpec, SandboxUnavailable
from aar.sandbox.workspace import (
    WorkspaceEscape,
    disk_usage_bytes,
    prepare_workspace,
    read_workspace_file,
    uid_for_agent,
)


def require_sandbox(*, allow_unsafe: bool = False, uid: int = 65534) -> SandboxSupport:
    """Check that isolated sandboxes work; raise :class:`SandboxUnavailable` unless they do.

    With ``allow_unsafe=True`` the (unavailable) support is returned instead, and the caller
    must put ``support.banner()`` prominently in its report.
    """
    support = check_bubblewrap(uid)
    if not support.available and not allow_unsafe:
        raise SandboxUnavailable(support.banner() + " Pass the explicit unsafe flag to run anyway.")
    return support


__all__ = [
    "Limits",
    "SandboxError",
    "SandboxProcess",
    "SandboxResult",
    "SandboxSpec",
    "SandboxSupport",
    "SandboxUnavailable",
    "WorkspaceEscape",
    "check_bubblewrap",
    "disk_usage_bytes",
    "popen_sandboxed",
    "prepare_workspace",
    "read_workspace_file",
    "require_sandbox",
    "run_sandboxed",
    "uid_for_agent",
]
