"""Fixtures for the LLM researcher tests: a shared AAR_HOME (tiny testbeds build once per session)."""

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


@pytest.fixture(scope="session")
def view(aar_home, tmp_path_factory) -> Path:
    from aar.w2s.public import export_public_view
    from aar.w2s.testbeds.registry import load_testbed

    return export_public_view(
        load_testbed("math-tiny", aar_home), tmp_path_factory.mktemp("view") / "math-tiny", [0, 1]
    )


@pytest.fixture(scope="session")
def server(aar_home, tmp_path_factory):
    """A real scoring server (``aar serve --uds``) with math-tiny registered."""
    from aar.campaign.server import LocalServer, new_admin_token
    from aar.w2s.public import build_vault_bundle
    from aar.w2s.testbeds.registry import load_testbed

    srv = LocalServer(tmp_path_factory.mktemp("srv"), new_admin_token()).start()
    with srv.admin() as admin:
        admin.register_testbed(build_vault_bundle(load_testbed("math-tiny", aar_home), [0, 1], ["vanilla"]))
    yield srv
    srv.stop()
