"""Fixtures for campaign tests: a shared AAR_HOME with math-tiny built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def aar_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.getbasetemp() / "aar_home_agents"
    home.mkdir(exist_ok=True)
    os.environ["AAR_HOME"] = str(home)
    from aar.w2s.testbeds.registry import load_testbed

    load_testbed("math-tiny", home)
    return home


def small_options(directory: Path, **kw) -> dict:
    """Options of a small, fast campaign on math-tiny."""
    opts = {
        "testbed": "math-tiny",
        "agents": 2,
        "minutes": 0.6,
        "dir": str(directory),
        "baselines": ["vanilla"],
        "teacher_seeds": 2,
        "submissions": 6,
        "experiment_timeout_s": 60.0,
        "grace_seconds": 5.0,
        "researcher": {"min_step_seconds": 8.0},
    }
    opts.update(kw)
    return opts
