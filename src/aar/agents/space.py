"""The offline researcher's method space: configurations of the method library, their grid of values,
one-step mutations, and the composition of two ideas into one ``recipe``."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@functools.cache
def shipped_params() -> dict[str, dict[str, Any]]:
    """Each shipped method's parameter defaults (``NAME`` -> ``PARAMS``), read from the literals in the
    method modules' source without importing them.

    The researcher needs the methods' parameters, not their code: importing that would import torch
    into every agent process, seconds of each agent's start. A module counts as a method as for
    :func:`aar.w2s.methods.registry.builtin_methods` (not private, defines ``NAME`` and ``run``); should
    any method's ``NAME`` or ``PARAMS`` not be a literal, the registry itself answers.
    """
    spec = importlib.util.find_spec("aar.w2s.methods")
    folders = list(spec.submodule_search_locations or []) if spec else []
    found: dict[str, dict[str, Any]] = {}
    try:
        for path in sorted(p for folder in folders for p in Path(folder).glob("*.py")):
            if path.stem.startswith("_") or path.stem in ("base", "registry", "common"):
                continue
            literals: dict[str, Any] = {}
            has_run = False
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                has_run = has_run or (isinstance(node, ast.FunctionDef) and node.name == "run")
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target, value = node.targets[0], node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    target, value = node.target, node.value
                else:
                    continue
                if isinstance(target, ast.Name) and target.id in ("NAME", "PARAMS"):
                    literals[target.id] = ast.literal_eval(value)
            if has_run and isinstance(literals.get("NAME"), str):
                params = literals.get("PARAMS", {})
                if not isinstance(params, dict):
                    raise ValueError(f"{path}: PARAMS is not a dict")
                found[literals["NAME"]] = params
    except (OSError, SyntaxError, ValueError):  # not literals after all: ask the registry (imports the code)
        from aar.w2s.methods.registry import builtin_methods

        return {m.name: dict(m.params) for m in builtin_methods().values()}
    return dict(sorted(found.items()))


# Ordered values of each knob; a mutation moves one knob one step along its list.
GRID: dict[str, list[bool | int | float]] = {
    "soft": [False, True],
    "temperature": [0.5, 1.0, 2.0, 4.0],
    "prior_weight": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0],
    "post_prior": [0.0, 0.25, 0.5, 1.0, 2.0],
    "prior_gate": [0.0, 0.25, 0.5, 0.75],
    "keep": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "weight_power": [0.0, 0.5, 1.0, 2.0],
    "aux_alpha": [0.0, 0.25, 0.5, 0.75],
    "curriculum": [False, True],
    "rounds": [0, 1],
    "self_keep": [0.5, 0.6, 0.8],
    "ensemble": [1, 2],
    "l2": [0.1, 1.0, 10.0, 100.0],
    "alpha": [0.25, 0.5, 0.75, 1.0],
    "warmup": [0.1, 0.2, 0.5],
}
RECIPE_DEFAULTS = dict(shipped_params()["recipe"])  # the recipe method owns its parameters and defaults


@dataclass(frozen=True)
class Config:
    """A method and its non-default parameters."""

    method: str
    params: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, method: str, params: dict[str, Any] | None = None) -> Config:
        """Canonical config (sorted parameters; recipe defaults dropped)."""
        p = dict(params or {})
        if method == "recipe":
            p = {k: v for k, v in p.items() if RECIPE_DEFAULTS.get(k, object()) != v}
        return cls(method, tuple(sorted(p.items())))

    @property
    def kwargs(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return dict(self.params)

    @property
    def key(self) -> str:
        """Stable text key (also how the config appears in posts)."""
        return json.dumps({"method": self.method, "params": self.kwargs}, sort_keys=True)

    def describe(self) -> str:
        """Short human-readable form, e.g. ``recipe(prior_weight=1.0, soft=True)``."""
        return f"{self.method}({', '.join(f'{k}={v}' for k, v in self.params)})"

    def cost(self) -> int:
        """Trainings per run (ensemble members times self-training rounds)."""
        p = self.kwargs
        if self.method == "self_train":
            return 1 + int(p.get("rounds", 1))
        return int(p.get("ensemble", 1)) * (1 + int(p.get("rounds", 0)))


def to_recipe(cfg: Config) -> Config | None:
    """The same idea written as a ``recipe`` (None when it has no recipe form, e.g. a probe)."""
    p = cfg.kwargs
    table: dict[str, Callable[[], dict[str, Any]]] = {
        "recipe": lambda: p,
        "vanilla": lambda: {},
        "soft": lambda: {"soft": True, "temperature": p.get("temperature", 1.0)},
        "confident": lambda: {"keep": p.get("keep", 0.5)},
        "aux_conf": lambda: {"aux_alpha": p.get("alpha", 0.75)},
        "self_train": lambda: {"rounds": p.get("rounds", 1), "self_keep": p.get("keep", 0.6)},
        "zero_shot": lambda: {"prior_weight": 2.0},
    }
    if cfg.method not in table:
        return None
    return Config.of("recipe", table[cfg.method]())


def valid(cfg: Config, max_cost: int = 2) -> bool:
    """Within the recipe's limits and the researcher's cost cap. (A gated recipe gates a trained
    student, so its student knobs combine with ``prior_gate`` like any others.)"""
    p = cfg.kwargs
    if cfg.method == "recipe" and any(k not in RECIPE_DEFAULTS for k in p):
        return False
    return cfg.cost() <= max_cost


def mutate(
    cfg: Config, knobs: list[str], rng: random.Random, max_cost: int = 2, steps: int = 1
) -> Config | None:
    """Move ``steps`` knobs one grid step each: knobs of ``knobs`` the method has (else any of its knobs).

    A shipped method with a recipe form is rewritten as a recipe first when it has fewer than two
    knobs, or half of the time, so its neighbourhood includes the other ingredients.
    """
    as_recipe = to_recipe(cfg)
    if as_recipe is not None and cfg.method != "recipe":
        few = sum(k in GRID for k in _method_params(cfg.method)) < 2
        if few or rng.random() < 0.5:
            cfg = as_recipe
    for _ in range(steps - 1):
        cfg = mutate(cfg, knobs, rng, max_cost) or cfg
    own = [k for k in GRID if k in _method_params(cfg.method)]
    choices = [k for k in knobs if k in own] or own
    if not choices:
        return None
    for _ in range(10):
        knob = rng.choice(choices)
        values = GRID[knob]
        current = cfg.kwargs.get(knob, _method_params(cfg.method)[knob])
        i = (
            values.index(current)
            if current in values
            else min(range(len(values)), key=lambda j: abs(float(values[j]) - float(current)))
        )
        j = min(len(values) - 1, max(0, i + rng.choice((-1, 1))))
        if j == i:
            j = i - 1 if i > 0 else i + 1
        new = Config.of(cfg.method, {**cfg.kwargs, knob: values[j]})
        if new != cfg and valid(new, max_cost):
            return new
    return None


def combine(a: Config, b: Config, max_cost: int = 2) -> Config | None:
    """Both ideas in one recipe: ``a``'s settings plus every non-default setting of ``b``."""
    ra, rb = to_recipe(a), to_recipe(b)
    if ra is None or rb is None:
        return None
    new = Config.of("recipe", {**ra.kwargs, **rb.kwargs})
    return new if valid(new, max_cost) and new not in (ra, rb) else None


def _method_params(method: str) -> dict[str, Any]:
    if method == "recipe":
        return RECIPE_DEFAULTS
    return dict(shipped_params().get(method, {}))
