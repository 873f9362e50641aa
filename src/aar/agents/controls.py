"""Control researchers: what a campaign's best entry must beat to show that the research adds anything.

Two controls spend the same budget (agents, minutes, submissions) through the same tools as the
offline researcher, but without its decision rule:

- ``random``: random search over the same method space (shipped methods with random knob values, and
  random ``recipe`` configurations within the researcher's cost cap). Each draw is run once on seed 0
  and submitted; the Ladder keeps each agent's best public figure, exactly as for the researcher.
- ``tuned``: the shipped baselines tuned on the public figure, the analogue of the study's human-tuned
  baseline. Each shipped method's own knobs are walked over the researcher's grid, defaults first and
  then outwards, the methods interleaved; agent ``i`` of ``n`` takes every ``n``-th configuration, so
  the agents together cover the grid once before anything repeats.

Neither reads or writes the forum: a control must not borrow the researchers' ideas. Both keep their
state in ``state.json`` in the workspace (resume after a kill without repeating a submission).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from pydantic.dataclasses import dataclass

from aar.agents import timing
from aar.agents.notes import NOTES_VERSION, validate_notes
from aar.agents.space import GRID, RECIPE_DEFAULTS, Config, shipped_params, valid
from aar.agents.tools import AgentEnv, call_tool
from aar.fileio import write_json_atomic

CONTROL_KINDS = ("random", "tuned")
# shipped methods a control may use: the harness's own references (weak) and pure probes are left out
_BASELINES = ("vanilla", "soft", "confident", "aux_conf", "self_train", "zero_shot")


def _params_of(method: str) -> dict[str, Any]:
    if method == "recipe":
        return dict(RECIPE_DEFAULTS)
    return dict(shipped_params().get(method, {}))


def random_config(rng: random.Random, max_cost: int = 2, tries: int = 200) -> Config:
    """A uniformly random configuration of the method space (valid within ``max_cost``)."""
    for _ in range(tries):
        if rng.random() < 0.7:
            knobs = [k for k in GRID if k in RECIPE_DEFAULTS]
            params = {k: rng.choice(GRID[k]) for k in knobs if rng.random() < 0.5}
            cfg = Config.of("recipe", params)
        else:
            method = rng.choice(_BASELINES)
            own = [k for k in GRID if k in _params_of(method)]
            cfg = Config.of(method, {k: rng.choice(GRID[k]) for k in own})
        if valid(cfg, max_cost):
            return cfg
    return Config.of("vanilla")


def tuned_grid(max_cost: int = 2) -> list[Config]:
    """Every shipped baseline's knob grid, defaults first then by distance from them, interleaved."""
    per_method: list[list[Config]] = []
    for method in _BASELINES:
        defaults = _params_of(method)
        own = [k for k in GRID if k in defaults]
        combos = []
        for values in itertools.product(*(GRID[k] for k in own)):
            params = dict(zip(own, values, strict=True))
            dist = sum(abs(GRID[k].index(v) - _nearest(GRID[k], defaults[k])) for k, v in params.items())
            combos.append((dist, json.dumps(params, sort_keys=True), Config.of(method, params)))
        per_method.append([c for _, _, c in sorted(combos, key=lambda t: t[:2]) if valid(c, max_cost)])
    out: list[Config] = []
    for group in itertools.zip_longest(*per_method):
        out.extend(c for c in group if c is not None)
    return out


def _nearest(values: list[bool | int | float], default: object) -> int:
    if default in values:
        return values.index(default)
    return min(range(len(values)), key=lambda j: abs(float(values[j]) - float(default)))  # type: ignore[arg-type]


@dataclass
class ControlState:
    """What a control researcher needs to resume."""

    kind: str
    seed: int
    draws: int = 0  # configurations drawn so far (the random stream is replayed to this point)
    n_submitted: int = 0
    tried: list[dict[str, Any]] = field(default_factory=list)
    best_released: float | None = None
    version: int = NOTES_VERSION


class ControlResearcher:
    """Random search (``random``) or baseline tuning (``tuned``) on the public figure, same tools."""

    def __init__(
        self,
        env: AgentEnv,
        name: str,
        kind: str,
        seed: int,
        deadline: float,
        max_submissions: int,
        index: int = 0,
        n_agents: int = 1,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.time,
        min_step_seconds: float = 20.0,
    ) -> None:
        """Control ``kind`` for agent ``index`` of ``n_agents``, until the epoch time ``deadline``."""
        if kind not in CONTROL_KINDS:
            raise ValueError(f"unknown control researcher {kind!r}; choose one of {', '.join(CONTROL_KINDS)}")
        self.env, self.name, self.kind = env, name, kind
        self.deadline, self.max_submissions = deadline, max_submissions
        self.index, self.n_agents = index, max(1, n_agents)
        self.log, self.clock, self.min_step = log, clock, min_step_seconds
        self.path = Path(env.workspace) / "state.json"
        self.state = self._load(seed)
        self.grid = tuned_grid() if kind == "tuned" else []

    def _load(self, seed: int) -> ControlState:
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if isinstance(data, dict) and data.get("kind") == self.kind:
                return validate_notes(data, ControlState, self.path)
        return ControlState(kind=self.kind, seed=seed)

    def save(self) -> None:
        """Write the state atomically."""
        with timing.span("notes"):
            write_json_atomic(self.path, asdict(self.state), indent=1, durable=False)  # as the researcher's

    def tool(self, name: str, **args: object) -> dict[str, Any]:
        """Call one agent tool (the same layer every researcher uses)."""
        return call_tool(self.env, name, args)

    def next_config(self) -> Config | None:
        """The next configuration to try (None when a tuned agent's share of the grid is used up)."""
        k = self.state.draws
        self.state.draws += 1
        if self.kind == "tuned":
            i = self.index + k * self.n_agents
            return self.grid[i] if i < len(self.grid) else None
        rng = random.Random(f"{self.state.seed}/{k}")  # one stream per draw: resumes replay nothing
        return random_config(rng)

    def run(self) -> ControlState:
        """Draw, run on seed 0, submit; until the deadline, the budget or the grid ends."""
        done = self.tool("my_submissions", limit=100)
        self.state.n_submitted = max(self.state.n_submitted, int(done.get("total", 0)))
        while self.deadline - self.clock() > self.min_step and self.state.n_submitted < self.max_submissions:
            cfg = self.next_config()
            if cfg is None:
                self.log("the tuning grid is used up")
                break
            self.step(cfg)
            self.save()
        self.save()
        return self.state

    def step(self, cfg: Config) -> None:
        """Run ``cfg`` once and submit its test predictions."""
        timeout = max(5.0, self.deadline - self.clock() - 5)
        out = self.tool("run_experiment", method=cfg.method, params=cfg.kwargs, seeds=[0], timeout_s=timeout)
        entry: dict[str, Any] = {
            "config": cfg.describe(), "run_id": out.get("run_id"), "ok": bool(out.get("ok"))
        }
        if out.get("ok"):
            sub = self.tool(
                "submit",
                run_id=out["run_id"],
                description=f"{self.kind} control: {cfg.describe()}",
                method_label=cfg.method,
            )
            if "submission_id" in sub:
                self.state.n_submitted += 1
                entry.update(submission_id=sub["submission_id"], released_pgr=sub["public_pgr"])
                if sub.get("improved") or self.state.best_released is None:
                    self.state.best_released = sub["public_pgr"]
                self.log(f"{cfg.describe()}: public PGR {sub['public_pgr']:.3f} improved={sub['improved']}")
            else:
                entry["error"] = str(sub.get("error"))[:300]
                if sub.get("status") == 429:
                    self.state.n_submitted = self.max_submissions
        else:
            entry["error"] = str(out.get("error"))[:300]
            self.log(f"{cfg.describe()}: failed ({entry['error'][:120]})")
        self.state.tried.append(entry)
