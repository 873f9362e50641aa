"""Fixtures: a built tiny testbed, its public view, and a real scoring server with the testbed registered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aar.campaign.server import LocalServer, new_admin_token


def shared_home(tmp_path_factory) -> Path:
    """One AAR_HOME for the agents and campaign tests of a session (tiny testbeds build once)."""
    home = tmp_path_factory.getbasetemp() / "aar_home_agents"
    home.mkdir(exist_ok=True)
    return home


@pytest.fixture(scope="session")
def aar_home(tmp_path_factory) -> Path:
    home = shared_home(tmp_path_factory)
    os.environ["AAR_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def math_tiny(aar_home):
    from aar.w2s.testbeds.registry import load_testbed

    return load_testbed("math-tiny", aar_home)


@pytest.fixture(scope="session")
def view(math_tiny, tmp_path_factory) -> Path:
    from aar.w2s.public import export_public_view

    return export_public_view(math_tiny, tmp_path_factory.mktemp("view") / "math-tiny", [0, 1])


@pytest.fixture(scope="session")
def server(math_tiny, tmp_path_factory) -> Iterator[LocalServer]:
    """A real server (``aar serve --uds``) with math-tiny registered (vanilla as the shipped baseline)."""
    from aar.w2s.public import build_vault_bundle

    srv = LocalServer(tmp_path_factory.mktemp("srv"), new_admin_token()).start()
    with srv.admin() as admin:
        admin.register_testbed(build_vault_bundle(math_tiny, [0, 1], ["vanilla"]))
    yield srv
    srv.stop()
