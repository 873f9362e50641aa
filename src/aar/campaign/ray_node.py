"""The node side of a Ray campaign: one actor per agent, on whichever node Ray placed it.

A :class:`NodeAgent` (made a Ray actor by :mod:`aar.campaign.ray_launcher`) prepares everything the
agent needs in a node-local folder and runs the agent with the ordinary launchers of
:mod:`aar.campaign.launcher`, so the sandbox is the same bubblewrap sandbox as on one machine:

* the public view arrives once per node through Ray's object store and is cached under
  ``<node dir>/views/<digest>/`` (read-only inside the sandbox);
* the agent's workspace (its notes, as last synced by the supervisor) arrives with the actor and is
  written to ``<node dir>/<namespace>/a<index>/ws``, the same path on every node;
* a node-local Unix socket relays to the scoring server's TCP address
  (:class:`aar.campaign.server.SocketRelay`): the agent still sees only a socket, so the sandbox's
  network rules do not change;
* :meth:`NodeAgent.poll` answers the supervisor with the exit status and what changed since the last
  poll (workspace files, new log bytes, sandbox audit events), which the supervisor writes into the
  campaign folder. Nothing is written to a shared path.

An actor whose supervisor stopped calling (killed and never resumed) ends itself ``ORPHAN_SECONDS``
after its agent exited, so a lost supervisor leaks nothing for long. This module does not import Ray
at load time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aar.campaign.launcher import (
    AgentHandle,
    AgentLaunch,
    Launcher,
    ProcessLauncher,
    SandboxLauncher,
    close_launcher,
)
from aar.campaign.server import SocketRelay
from aar.campaign.tree import scan, write_tree

NODE_DIR_ENV = "AAR_RAY_DIR"  # where a node keeps views and agent folders (default <tmp>/aar-ray)
ORPHAN_SECONDS = 1800.0
MAX_LOG_CHUNK = 4 * 2**20  # log bytes per poll


def node_root() -> Path:
    """This node's folder for Ray campaigns (``$AAR_RAY_DIR`` or ``<tmp>/aar-ray``)."""
    return Path(os.environ.get(NODE_DIR_ENV) or Path(tempfile.gettempdir()) / "aar-ray")


@dataclass
class NodeLaunch:
    """What the supervisor sends to start one agent on a node (the view travels separately)."""

    name: str
    index: int
    namespace: str
    config: dict[str, Any]  # the agent's AgentConfig as a dict (view and workspace are set on the node)
    workspace: dict[str, bytes]  # the agent's workspace as last synced (its notes)
    token: str
    server: tuple[str, int]  # the scoring server's TCP address
    wall_seconds: float
    view_digest: str
    view_name: str
    argv: list[str] = field(default_factory=list)
    unsafe_no_sandbox: bool = False
    memory_mb: int = 4096


class NodeAgent:
    """One agent on this node: set up and started at construction, then polled and stopped."""

    def __init__(self, launch: NodeLaunch, view: list[Any]) -> None:
        """Prepare the view, workspace and socket relay, and start the agent (``view``: the object
        reference of the view's files, in a list so that Ray hands it over unresolved)."""
        import ray

        from aar.agents.run_agent import AgentConfig

        self.events: list[dict[str, Any]] = []
        self.seen: dict[str, tuple[int, int]] = {}
        self.log_offset, self.last_contact = 0, time.time()
        self.final: dict[str, Any] | None = None  # the last answer, once the agent exited
        self.dir = node_root() / launch.namespace / f"a{launch.index}"
        if self.dir.exists():  # an earlier run of this agent on this node: its state is the supervisor's now
            shutil.rmtree(self.dir)
        ws = self.dir / "ws"
        view_dir = _cached_view(node_root() / "views" / launch.view_digest, launch.view_name, view[0])
        write_tree(ws, launch.workspace)
        # the deadline counts from the start here, on this node's clock: time spent waiting for a
        # node with room (Ray queues the actor) is not the agent's
        cfg = AgentConfig(**{**launch.config, "view": str(view_dir), "workspace": str(ws),
                             "deadline": time.time() + launch.wall_seconds})
        cfg.save(ws / "agent.json")
        for name in launch.workspace:  # the supervisor has these already: only changes go back
            st = os.lstat(ws / name)
            self.seen[name] = (st.st_size, st.st_mtime_ns)
        sock = self.dir / "server.sock"
        self.relay = SocketRelay(sock, *launch.server)
        env = {"AAR_TOKEN": launch.token, "AAR_SERVER_SOCKET": str(sock)}
        gpus = [int(g) for g in ray.get_gpu_ids()]
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        self.log = self.dir / "agent.log"
        launcher: Launcher
        if launch.unsafe_no_sandbox:
            launcher = ProcessLauncher(audit=self.events.append)
        else:
            launcher = SandboxLauncher(memory_mb=launch.memory_mb, audit=self.events.append,
                                       devices=gpu_devices(gpus))
        self.launcher = launcher
        self.handle: AgentHandle = launcher.start(AgentLaunch(
            name=launch.name, index=launch.index, workspace=ws, config=ws / "agent.json", log=self.log,
            readonly=[view_dir], socket=sock, env=env, wall_seconds=launch.wall_seconds, argv=launch.argv,
        ))
        ctx = ray.get_runtime_context()
        self.node = {"node_id": ctx.get_node_id(), "ip": str(ray.util.get_node_ip_address())}  # type: ignore[no-untyped-call]
        threading.Thread(target=self._orphan_watch, daemon=True).start()

    def poll(self) -> dict[str, Any]:
        """The agent's exit status (None while it runs) and everything new since the last poll."""
        self.last_contact = time.time()
        if self.final is not None:  # answered already; its folder is gone (never report it deleted)
            return {**self.final, "files": {}, "deleted": [], "skipped": [], "log": b"", "events": []}
        code = self.handle.poll()
        delta = scan(self.dir / "ws", self.seen, exclude=frozenset({"agent.json"}))
        log = b""
        with contextlib.suppress(OSError), open(self.log, "rb") as f:
            f.seek(self.log_offset)
            log = f.read(MAX_LOG_CHUNK)
        self.log_offset += len(log)
        events, self.events[:] = list(self.events), []
        done = code is not None and len(log) < MAX_LOG_CHUNK
        out = {"code": code if done else None, "files": delta.files, "deleted": delta.deleted,
               "skipped": delta.skipped, "log": log, "events": events, "node": self.node}
        if done:  # everything the agent left is in this answer: the node keeps nothing of it
            self._finish(out)
        return out

    def _finish(self, out: dict[str, Any]) -> None:
        """Keep ``out`` as the agent's last answer and drop everything of it on this node."""
        self.relay.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.final = out

    def stop(self) -> dict[str, Any]:
        """Kill the agent's whole process group, then report as :meth:`poll` does (its last state)."""
        self.handle.kill()
        close_launcher(self.launcher)  # the sandbox launcher's block of uids
        out = self.poll()
        if self.final is None:  # a log too long for one answer: the rest is dropped with the folder
            out["code"] = self.handle.poll()
            self._finish(out)
        return out

    def resync(self) -> dict[str, str]:
        """Send every workspace file again at the next poll (a restarted supervisor reattaching)."""
        self.seen.clear()
        self.last_contact = time.time()
        return self.node

    def _orphan_watch(self) -> None:
        while True:
            time.sleep(30)
            if self.handle.poll() is not None and time.time() - self.last_contact > ORPHAN_SECONDS:
                shutil.rmtree(self.dir, ignore_errors=True)
                os._exit(0)  # the supervisor is gone and the agent ended: free the node's resources


def gpu_devices(gpu_ids: list[int]) -> list[Path]:
    """The device nodes a sandbox needs for the GPUs Ray gave this actor (none without GPUs)."""
    if not gpu_ids:
        return []
    names = [f"nvidia{i}" for i in gpu_ids] + ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"]
    return [Path("/dev") / n for n in names if (Path("/dev") / n).exists()]


def _cached_view(folder: Path, name: str, ref: Any) -> Path:
    """The view unpacked under ``folder/name``, fetched from the object store the first time."""
    import ray

    from aar.w2s.cache import make_readable

    view = folder / name
    if view.is_dir():
        return view
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        write_tree(tmp / name, ray.get(ref))
        make_readable(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:  # another actor on this node unpacked it first
            if not view.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    make_readable(folder)
    return view
