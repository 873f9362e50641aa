"""Agents on a Ray cluster (``aar campaign --ray auto|ADDRESS``): the supervisor's side.

:class:`RayLauncher` implements the campaign's launcher interface. ``start`` creates one detached,
named Ray actor per agent (:class:`aar.campaign.ray_node.NodeAgent`, in the campaign's namespace,
requesting ``--agent-cpus`` CPUs and ``--experiment-gpus`` GPUs, never restarted by Ray: the
campaign re-places an agent itself); the actor runs the agent in the usual bubblewrap sandbox on its
node. :class:`RayHandle` polls the actor without blocking and writes what it returns (workspace
files, log, sandbox audit events) into the campaign folder, which only the supervisor writes.

When an actor's node dies, :meth:`RayHandle.poll` reports a non-zero status with ``lost`` set, and
the campaign restarts the agent on another node from its last synced notes. A restarted supervisor
(``--resume``) reattaches to the actors still alive (:meth:`RayLauncher.reattach`). Ray is imported
only here and in :mod:`aar.campaign.ray_node`, and only when ``--ray`` is used.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from aar.campaign.launcher import NO_SANDBOX, AgentLaunch, AuditFn
from aar.campaign.tree import TreeError, digest, read_folder, write_tree

if TYPE_CHECKING:
    from aar.campaign.orchestrator import CampaignOptions
    from aar.campaign.state import CampaignState

NODE_LOST = 70  # the exit status a campaign records for an agent whose node died (EX_SOFTWARE-like)
SYNC_SECONDS = 2.0  # how often a running agent's workspace is pulled to the supervisor
INSTALL_HINT = "pip install 'aar[ray]'"


class RayError(ValueError):
    """Ray is missing, no cluster answers, or the cluster cannot hold one agent."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`RayError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def default_gpus(testbed: str, cluster_gpus: float) -> float:
    """GPUs per agent when ``--experiment-gpus`` is not given: one for a Hugging Face (imported)
    testbed when the cluster has a GPU, so its experiments do not fall back to CPUs unnoticed; none
    for the built-in testbeds, whose tiny models train on CPUs."""
    from aar.w2s.testbeds.registry import TESTBEDS

    return 1.0 if testbed not in TESTBEDS and cluster_gpus >= 1 else 0.0


def cluster_gpus() -> float:
    """The GPUs the connected cluster declares, over all its nodes."""
    return float(import_ray().cluster_resources().get("GPU", 0.0))


def check_options(opts: CampaignOptions) -> None:
    """Refuse option sets a Ray campaign cannot run with (clear messages, before anything starts)."""
    if opts.backend != "offline":
        raise RayError("--ray runs offline researchers (--backend offline); LLM backends run on one machine")
    if opts.agent_cpus <= 0 or (opts.experiment_gpus or 0.0) < 0:
        raise RayError("--agent-cpus must be positive and --experiment-gpus at least 0")
    if opts.server:
        if not opts.server.startswith(("http://", "https://")):
            raise RayError(f"--ray needs a server every node can reach over TCP, not {opts.server}")
        return
    url = (opts.db_url or "").lower()
    if not url.startswith("postgresql"):
        got = f"--db-url {opts.db_url}" if opts.db_url else "a SQLite database in the campaign folder"
        raise RayError(
            f"--ray needs its scoring server on PostgreSQL (--db-url postgresql://USER@HOST/DB), not {got}: "
            "SQLite is one machine's file and the campaign's records must outlive any node"
        )


def connect(address: str) -> str:
    """Connect this process to the Ray cluster at ``address`` (``auto``: the local one); returns this
    machine's address as the cluster sees it (where the scoring server listens for the nodes)."""
    ray = import_ray()
    if not ray.is_initialized():
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RayError(f"no Ray cluster at {address}: {e} (start one with `ray start --head`)") from None
    return str(ray.util.get_node_ip_address())


def _check_reachable(address: str) -> None:
    """A quick TCP check of ``HOST:PORT`` (Ray itself retries for minutes before it gives up)."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayError(f"--ray takes auto or HOST:PORT (the head's GCS address), not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise RayError(f"no Ray cluster at {address}: {e} (start one with `ray start --head`)") from None


def check_resources(cpus: float, gpus: float) -> None:
    """:class:`RayError` unless some live node has ``cpus`` CPUs and ``gpus`` GPUs for one agent."""
    ray = import_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    have = [(n.get("NodeManagerAddress"), n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0))
            for n in nodes]
    if not any(c >= cpus and g >= gpus for _, c, g in have):
        listed = ", ".join(f"{ip}: {c:g} CPU {g:g} GPU" for ip, c, g in have) or "no live node"
        raise RayError(
            f"no node of the cluster can hold an agent with {cpus:g} CPUs and {gpus:g} GPUs ({listed}); "
            "lower --agent-cpus / --experiment-gpus or add nodes"
        )


class RayHandle:
    """A running agent on a Ray node, as the campaign sees it (``pid`` 0: not a local process)."""

    pid = 0

    def __init__(self, launcher: RayLauncher, actor: Any, name: str, workspace: Path, log: Path) -> None:
        """Follow ``actor`` (agent ``name``), syncing into ``workspace`` and ``log`` on the supervisor."""
        self.launcher, self.actor, self.name = launcher, actor, name
        self.workspace, self.log = workspace, log
        self.code: int | None = None
        self.lost: str | None = None  # why the agent is gone without its own doing (its node died)
        self.node: dict[str, str] | None = None
        self.pending: Any = actor.poll.remote()
        self.next_at = 0.0

    @property
    def waiting(self) -> bool:
        """True while the agent has not started: its actor waits for a node with room (the campaign
        does not count that time against the agent's wall clock)."""
        return self.node is None and self.code is None

    def poll(self) -> int | None:
        """The agent's exit status, or None while it runs; applies what the node sent meanwhile."""
        ray = self.launcher.ray
        if self.code is not None:
            return self.code
        if self.pending is None:
            if time.monotonic() < self.next_at:
                return None
            self.pending = self.actor.poll.remote()
        ready, _ = ray.wait([self.pending], timeout=0)
        if not ready:
            return None
        out = self._get(self.pending)
        self.pending, self.next_at = None, time.monotonic() + SYNC_SECONDS
        if out is not None and out["code"] is not None:
            self.code = int(out["code"])
            self.launcher.kill_actor(self.actor)  # the agent ended: its node's CPUs and GPUs are free again
        return self.code

    def _get(self, ref: Any, timeout: float | None = None) -> dict[str, Any] | None:
        """The result of an actor call, applied; on a dead actor, ``code``/``lost`` are set."""
        ray = self.launcher.ray
        try:
            out: dict[str, Any] = ray.get(ref, timeout=timeout)
        except ray.exceptions.ActorUnavailableError:
            return None  # transient (the actor's node is unreachable for now): ask again later
        except ray.exceptions.RayActorError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.lost = f"node lost ({type(e).__name__}: {first})"
            self.code = NODE_LOST
            self.launcher.event({"event": "ray.agent_lost", "label": self.name, "reason": self.lost,
                                 "node": self.node})
            return None
        except ray.exceptions.RayTaskError as e:  # the node could not set the agent up
            self.code = 1
            self.launcher.event({"event": "ray.agent_failed", "label": self.name, "error": str(e)[-2000:]})
            with open(self.log, "a") as f:
                f.write(f"\n[aar] the agent could not start on its Ray node:\n{e}\n")
            return None
        except ray.exceptions.GetTimeoutError:
            return None
        self._apply(out)
        return out

    def _apply(self, out: dict[str, Any]) -> None:
        self.node = out.get("node") or self.node
        try:
            write_tree(self.workspace, out["files"], out["deleted"])
        except TreeError as e:
            self.launcher.event({"event": "ray.sync_refused", "label": self.name, "reason": str(e)})
        if out["log"]:
            with open(self.log, "ab") as f:
                f.write(out["log"])
        if out["skipped"]:
            self.launcher.event({"event": "ray.sync_skipped", "label": self.name, "files": out["skipped"]})
        for record in out["events"]:
            self.launcher.event({**record, "node": (self.node or {}).get("ip")})

    def kill(self) -> None:
        """Stop the agent's process group on its node (syncing its last state), then end the actor."""
        if self.code is None and self.node is not None:  # else it never started (e.g. no room yet)
            if self.pending is not None:
                self._get(self.pending, timeout=30)
                self.pending = None
            if self.code is None:
                out = self._get(self.actor.stop.remote(), timeout=60)
                if out is not None and self.code is None:
                    self.code = int(out["code"]) if out["code"] is not None else -9
        self.launcher.kill_actor(self.actor)
        if self.code is None:
            self.code = -9


class RayLauncher:
    """Places each agent on a node of the Ray cluster named by the campaign's ``--ray`` option."""

    name = "Ray cluster"

    def __init__(self, state: CampaignState, audit: AuditFn | None = None) -> None:
        """Connect to the campaign's cluster and check that one agent fits on some node."""
        opts = state.options
        self.ray = import_ray()
        self.audit = audit
        self.namespace: str = opts["ray_namespace"]
        self.cpus, self.gpus = float(opts["agent_cpus"]), float(opts["experiment_gpus"])
        self.unsafe = bool(opts.get("unsafe_no_sandbox"))
        self.isolation = NO_SANDBOX if self.unsafe else "bubblewrap (on Ray nodes)"
        self.view = Path(opts["view"])
        srv = state.server
        if srv.get("port"):
            self.server: tuple[str, int] = (srv["host"], int(srv["port"]))
        else:
            u = urlparse(srv["url"])
            self.server = (u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80))
        connect(opts["ray"])
        check_resources(self.cpus, self.gpus)
        self._view_ref: Any = None
        self._view_digest = ""
        self._actor_cls: Any = None

    def event(self, record: dict[str, Any]) -> None:
        """Add ``record`` to the campaign's audit trail."""
        if self.audit is not None:
            self.audit(record)

    def _cls(self) -> Any:
        if self._actor_cls is None:
            from aar.campaign.ray_node import NodeAgent

            self._actor_cls = self.ray.remote(NodeAgent)
        return self._actor_cls

    def _view(self) -> tuple[Any, str]:
        if self._view_ref is None:  # put once; each node fetches it once and caches it by digest
            files = read_folder(self.view)
            self._view_digest = digest(files)
            self._view_ref = self.ray.put(files)
        return self._view_ref, self._view_digest

    def start(self, launch: AgentLaunch) -> RayHandle:
        """Create the agent's actor (on any node with the resources) and follow it."""
        from aar.campaign.ray_node import NodeLaunch

        ref, view_digest = self._view()
        self._kill_named(launch.name)  # a leftover of an earlier run of this agent
        node_launch = NodeLaunch(
            name=launch.name, index=launch.index, namespace=self.namespace,
            config=json.loads(launch.config.read_text()),
            workspace=read_folder(launch.workspace), token=launch.env["AAR_TOKEN"], server=self.server,
            wall_seconds=launch.wall_seconds, view_digest=view_digest, view_name=self.view.name,
            argv=launch.argv, unsafe_no_sandbox=self.unsafe,
        )
        actor = self._cls().options(
            name=launch.name, namespace=self.namespace, lifetime="detached", num_cpus=self.cpus,
            num_gpus=self.gpus, max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD",
        ).remote(node_launch, [ref])
        self.event({"event": "ray.agent_placed", "label": launch.name, "namespace": self.namespace,
                    "cpus": self.cpus, "gpus": self.gpus})
        return RayHandle(self, actor, launch.name, launch.workspace, launch.log)

    def reattach(self, name: str, workspace: Path, log: Path) -> RayHandle | None:
        """The live actor of agent ``name`` left by an earlier supervisor, or None if it is gone."""
        try:
            actor = self.ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return None
        try:
            node = self.ray.get(actor.resync.remote(), timeout=60)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
            self.kill_actor(actor)
            return None
        h = RayHandle(self, actor, name, workspace, log)
        h.node = node
        self.event({"event": "ray.agent_reattached", "label": name, "node": node})
        return h

    def kill_actor(self, actor: Any) -> None:
        """End ``actor`` (and, with it, anything of its agent still running on its node)."""
        with contextlib.suppress(ValueError, self.ray.exceptions.RayError):
            self.ray.kill(actor, no_restart=True)

    def _kill_named(self, name: str) -> None:
        try:
            actor = self.ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return
        self.kill_actor(actor)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the name is free once the actor is dead
            try:
                self.ray.get_actor(name, namespace=self.namespace)
            except ValueError:
                return
            time.sleep(0.2)

    def close(self) -> None:
        """End every actor of the campaign's namespace (none outlives the campaign) and disconnect."""
        if not self.ray.is_initialized():
            return
        for entry in self.ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") == self.namespace:
                self._kill_named(entry["name"])
        self.ray.shutdown()

