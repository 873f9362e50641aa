"""Fixtures for audit tests: a shared AAR_HOME with math-tiny built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def aar_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.getbasetemp() / "aar_home_audit"
    home.mkdir(exist_ok=True)
    os.environ["AAR_HOME"] = str(home)
    from aar.w2s.testbeds.build import build_testbed
    from aar.w2s.testbeds.registry import get_spec

    # a fixed draw: the verdicts of a tiny testbed's honest entry depend on which test problems it has
    build_testbed(get_spec("math-tiny"), home, salt=bytes(range(32)))
    return home
