"""One agent process: ``python -m aar.agents.run_agent WORKSPACE/agent.json``.

The config file (written by the campaign) names the agent, its testbed and public view, its
direction, seed, deadline and submission budget, and the backend. The agent's token comes from
the ``AAR_TOKEN`` environment variable and the server from ``AAR_SERVER_SOCKET`` (a Unix socket,
the only way out of a sandbox) or ``AAR_SERVER_URL``. Output goes to stdout (the campaign's log).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass

from aar.agents.experiments import EXPERIMENT_TIMEOUT_S, ExperimentRunner
from aar.fileio import write_json_atomic

if TYPE_CHECKING:
    from aar.client import Client


CONFIG_VERSION = 1  # the format of agent.json


@dataclass(config=ConfigDict(extra="forbid"))
class AgentConfig:
    """What an agent process needs to start (no secrets: the token travels in the environment).

    Written by the campaign as ``agent.json`` in the workspace and read by the agent's process (or the
    LLM campaign's loop): a validated dataclass whose ``version`` is checked on load."""

    name: str
    testbed_id: str
    view: str
    workspace: str
    direction: dict[str, Any]
    seed: int
    deadline: float  # epoch seconds
    max_submissions: int
    experiment_timeout_s: float = EXPERIMENT_TIMEOUT_S
    backend: str = "offline"
    settings: dict[str, Any] = field(default_factory=dict)
    researcher: str = "offline"  # offline (the built-in researcher) or a control: random, tuned
    index: int = 0  # this agent's place in the campaign (controls split their grid by it)
    n_agents: int = 1
    version: int = CONFIG_VERSION

    def save(self, path: Path) -> None:
        """Write as JSON (atomically)."""
        write_json_atomic(path, asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        """Read a config written by :meth:`save`; ValueError for another version or a malformed file."""
        raw = json.loads(Path(path).read_text())
        version = raw.get("version", 1) if isinstance(raw, dict) else None
        if version != CONFIG_VERSION:
            raise ValueError(
                f"{path} has config version {version!r}; this version of aar reads {CONFIG_VERSION}"
            )
        return TypeAdapter(cls).validate_python(raw)


def _client() -> Client:
    """The agent's client (token and server from the environment)."""
    from aar.client import connect_from_env

    return connect_from_env()


def main(config_path: str) -> int:
    """Run the agent's backend until its deadline; exit 0 when it stopped normally."""
    from aar.agents import timing

    started = timing.process_start_time()
    cfg = AgentConfig.load(Path(config_path))
    ws = Path(cfg.workspace)
    timing.configure(ws, started_at=started)
    warm = cfg.settings.get("warm_experiments", True) is not False  # checked with the other settings below
    runner = ExperimentRunner(Path(cfg.view), ws, timeout_s=cfg.experiment_timeout_s, warm=warm)
    if cfg.backend == "offline":
        runner.start()  # first: the warm experiment worker imports while this process does
    with runner:
        return _run(cfg, runner, ws)


def _run(cfg: AgentConfig, runner: ExperimentRunner, ws: Path) -> int:
    """The agent's researcher (or control) on its runner, until its deadline.

    Nothing here imports torch (the methods' parameters are read from their source,
    :func:`aar.agents.space.shipped_params`): training happens in the experiment worker only."""
    from aar.agents.controls import CONTROL_KINDS, ControlResearcher
    from aar.agents.offline import OfflineResearcher, ResearcherSettings
    from aar.agents.tools import AgentEnv

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {cfg.name}: {msg}", flush=True)

    if cfg.backend != "offline":
        log(f"backend {cfg.backend!r} is not available in this build; only 'offline' is")
        return 2
    settings = ResearcherSettings(**cfg.settings)
    with _client() as client:
        env = AgentEnv(client, cfg.testbed_id, Path(cfg.view), ws, runner)
        if cfg.researcher in CONTROL_KINDS:
            log(f"starting {cfg.researcher} control, seed {cfg.seed}, {cfg.deadline - time.time():.0f}s left")
            control = ControlResearcher(
                env, cfg.name, cfg.researcher, cfg.seed, cfg.deadline, cfg.max_submissions,
                cfg.index, cfg.n_agents, log=log,
            )  # fmt: skip
            done = control.run()
            log(f"stopped after {done.draws} draws, {done.n_submitted} submissions")
            return 0
        log(
            f"starting: direction {cfg.direction['name']}, seed {cfg.seed}, "
            f"{cfg.deadline - time.time():.0f}s left, {cfg.max_submissions} submissions"
        )
        researcher = OfflineResearcher(
            env,
            cfg.name,
            cfg.direction,
            cfg.seed,
            cfg.deadline,
            cfg.max_submissions,
            settings,
            log=log,
        )
        state = researcher.run()
        log(
            f"stopped after {state.steps} steps, {state.n_submitted} submissions, "
            f"best released PGR {state.best_released}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
