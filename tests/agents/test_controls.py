"""Control researchers (random search, tuned baselines) against a simulated tool layer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aar.agents.controls import ControlResearcher, random_config, tuned_grid
from aar.agents.space import GRID, Config, valid


class Tools:
    """Records tool calls; every run succeeds; the Ladder improves on every third submission."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.n_sub = 0

    def __call__(self, name: str, **args) -> dict:
        self.calls.append((name, args))
        if name == "my_submissions":
            return {"total": self.n_sub, "items": []}
        if name == "run_experiment":
            return {"ok": True, "run_id": f"r{len(self.calls):04d}"}
        if name == "submit":
            self.n_sub += 1
            improved = self.n_sub % 3 == 1
            return {"submission_id": self.n_sub, "public_pgr": 0.1 * self.n_sub, "improved": improved}
        raise AssertionError(f"a control must not call {name}")


def _control(tmp_path: Path, kind: str, budget: int = 5, index: int = 0, n_agents: int = 1, seed: int = 0):
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = type("Env", (), {"workspace": tmp_path})()
    clock = iter(range(0, 100_000, 10))
    c = ControlResearcher(
        env, "c", kind, seed, deadline=100_000, max_submissions=budget, index=index, n_agents=n_agents,
        log=lambda _m: None, clock=lambda: float(next(clock)), min_step_seconds=1,
    )  # fmt: skip
    tools = Tools()
    c.tool = tools
    return c, tools


def _ran(tools: Tools) -> list[str]:
    return [Config.of(a["method"], a["params"]).key for n, a in tools.calls if n == "run_experiment"]


def test_random_configs_are_valid_varied_and_deterministic():
    a = [random_config(random.Random(f"0/{k}")) for k in range(200)]
    b = [random_config(random.Random(f"0/{k}")) for k in range(200)]
    assert a == b
    assert all(valid(c) for c in a)
    assert len({c.key for c in a}) > 100
    methods = {c.method for c in a}
    assert "recipe" in methods and "weak" not in methods and len(methods) >= 5


def test_tuned_grid_covers_each_baselines_knobs_defaults_first():
    grid = tuned_grid()
    keys = [c.key for c in grid]
    assert len(keys) == len(set(keys))
    first = [c.describe() for c in grid[:6]]
    assert first[0] == "vanilla()" and "confident(keep=0.5)" in first and "zero_shot()" in first
    assert {c.method for c in grid} == {"vanilla", "soft", "confident", "aux_conf", "self_train", "zero_shot"}
    assert len([c for c in grid if c.method == "confident"]) == len(GRID["keep"])


def test_random_control_runs_and_submits_until_its_budget_and_never_uses_the_forum(tmp_path):
    c, tools = _control(tmp_path, "random", budget=5)
    state = c.run()
    names = [n for n, _ in tools.calls]
    assert names.count("submit") == 5 == state.n_submitted
    assert names.count("run_experiment") == 5
    assert all(a["seeds"] == [0] for n, a in tools.calls if n == "run_experiment")
    assert not any(n.startswith("forum") for n in names)


def test_random_control_resumes_without_repeating_draws(tmp_path):
    c, tools = _control(tmp_path, "random", budget=3)
    c.run()
    first = _ran(tools)
    c2, tools2 = _control(tmp_path, "random", budget=6)
    tools2.n_sub = 3  # the server remembers the first three submissions
    c2.run()
    second = _ran(tools2)
    assert len(second) == 3 and not set(first) & set(second)
    fresh, tools3 = _control(tmp_path / "fresh", "random", budget=6)
    fresh.run()
    assert _ran(tools3) == first + second  # the same stream of draws as an uninterrupted run


def test_tuned_agents_split_the_grid_and_stop_when_it_is_used_up(tmp_path):
    grid = tuned_grid()
    runs = []
    for i in range(3):
        c, tools = _control(tmp_path / f"a{i}", "tuned", budget=1000, index=i, n_agents=3)
        c.run()
        runs.append(_ran(tools))
    assert sorted(k for r in runs for k in r) == sorted(c.key for c in grid)
    assert runs[1][0] == grid[1].key


def test_unknown_control_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown control"):
        _control(tmp_path, "clever")
