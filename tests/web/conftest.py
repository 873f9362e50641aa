"""Fixtures: a campaign directory whose real scoring server (uvicorn on loopback, SQLite) holds a tiny
testbed, two agents with code, submissions, an audit verdict and forum posts; and Debian's chromium
driven by Playwright (one browser per module)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from aar.agents.artifacts import pack
from aar.campaign.state import AgentState, CampaignState
from aar.client import Client
from aar.server.config import Settings
from server.helpers import ADMIN_TOKEN, ServerThread, make_bundle, noisy_predictions

CHROMIUM = Path(os.environ.get("AAR_CHROMIUM", "/usr/bin/chromium"))
EVIL_BODY = (
    "Look at this <script>window.alert('xss-script')</script> and "
    "[click me](javascript:alert('xss-link')) or <javascript:alert('xss-autolink')> "
    "<img src=x onerror=\"alert('xss-img')\"> [fine](https://example.org/paper)"
)
BOB_BUDGET = 777  # distinctive: an agent's pages must never show another agent's budget


def settings_for(data_dir: Path, db_url: str | None = None) -> Settings:
    """Server settings for the seeded campaign (small limits, generous default budgets)."""
    return Settings(
        data_dir=data_dir,
        db_url=db_url,
        admin_token=ADMIN_TOKEN,
        budget_per_hour=10_000,
        budget_total=100_000,
        max_json_bytes=1_000_000,
        max_artifact_bytes=64_000,
    )


def code_v(version: int, extra: str = "") -> bytes:
    """A method's code artifact (experiment.json + a source file), differing by version."""
    src = f"def method(x):\n    # version {version}\n    return x * {version}{extra}\n"
    meta = {"method": "soft_labels", "lr": 0.01 * version, "epochs": 3 + version}
    return pack({"experiment.json": json.dumps(meta).encode(), "src/method.py": src.encode()})


@dataclass
class Site:
    """The seeded campaign and its running server."""

    dir: Path
    srv: ServerThread
    admin: Client
    bundle: object
    tokens: dict[str, str]
    clients: dict[str, Client]
    codes: dict[str, list[str]] = field(default_factory=dict)
    subs: list[int] = field(default_factory=list)
    posts: dict[str, int] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def url(self, path: str = "/") -> str:
        """A dashboard URL on the live server."""
        return f"{self.srv.base_url}/dashboard{path}"

    def submit(self, agent: str, code: str, acc: float, method: str) -> int:
        """Score a prediction set of about ``acc`` accuracy for ``agent``; returns its id."""
        labels = np.array([self.bundle.labels[i] for i in sorted(self.bundle.labels)])
        probs = noisy_predictions(labels, acc, self.rng)
        preds = dict(zip(sorted(self.bundle.labels), probs.tolist(), strict=True))
        receipt = self.clients[agent].submit(
            self.bundle.testbed_id, preds, code, description=f"{method} by {agent}", method=method
        )
        self.subs.append(receipt.id)
        return receipt.id


def _state(d: Path, testbed: str, agents: list[AgentState]) -> CampaignState:
    return CampaignState(
        dir=str(d),
        testbed=testbed,
        options={"minutes": 60.0, "submissions": 24, "agent_tokens": None, "agent_dollars": 5.0},
        server={"mode": "local", "socket": str(d / "server.sock"), "url": None, "admin_token": ADMIN_TOKEN},
        agents=agents,
        isolation="bubblewrap",
    )


def build_site(root: Path, db_url: str | None = None) -> Site:
    """Seed a campaign directory and start its server (the dashboard is mounted in it); SQLite in the
    data dir unless ``db_url`` names another database."""
    d = root / "campaign"
    (d / "server").mkdir(parents=True)
    _state(d, "pending", []).save()  # the server finds its campaign at start-up
    srv = ServerThread(settings_for(d / "server", db_url)).start()
    admin = srv.client()
    bundle = make_bundle(n=200, seed=7)
    admin.register_testbed(bundle)
    tokens, clients, agents = {}, {}, []
    now = time.time()
    for i, (name, total) in enumerate((("alice", 500), ("bob", BOB_BUDGET))):
        created = admin.create_agent(name, budget_per_hour=100, budget_total=total)
        tokens[name], clients[name] = created.token, srv.client(created.token)
        ws = d / "agents" / name / "ws"
        ws.mkdir(parents=True)
        (ws.parent / "usage.json").write_text(
            json.dumps({"tokens": 1000 * (i + 1), "dollars": 0.25 * (i + 1)})
        )
        agents.append(
            AgentState(
                name=name,
                index=i,
                direction={"name": f"direction-{i}", "text": "try things"},
                seed=i,
                token=created.token,
                workspace=str(ws),
                log=str(ws.parent / "agent.log"),
                intervals=[[now - 3600.0, None]],
                status="running",
                restarts=i,
            )
        )
    _state(d, bundle.testbed_id, agents).save()
    events = [
        {"ts": now - 60, "event": "sandbox.start", "label": "alice", "uid": 61000},
        {"ts": now - 30, "event": "sandbox.limit", "label": "bob", "limit": "memory"},
    ]
    (d / "sandbox_events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    site = Site(d, srv, admin, bundle, tokens, clients)
    for name, versions in (("alice", (1, 2)), ("bob", (3,))):
        site.codes[name] = [
            clients[name].upload_artifact(code_v(v), name="code.tar.gz").sha256 for v in versions
        ]
    site.submit("alice", site.codes["alice"][0], 0.72, "vanilla")
    site.submit("bob", site.codes["bob"][0], 0.80, "confident")
    site.submit("alice", site.codes["alice"][1], 0.78, "soft_labels")
    site.submit("bob", site.codes["bob"][0], 0.76, "confident")
    final = {"mean": 0.4321, "ci_low": 0.3111, "ci_high": 0.5222}  # distinctive: admin-only figures
    admin.record_audit(
        site.subs[1],
        "disqualified",
        reasons=["planted: reads the private half"],
        figures={"audited_final_pgr": final, "audited_private_pgr": {**final, "mean": 0.4123}},
    )
    site.posts["evil"] = (
        clients["bob"].post("Results <b>bold</b>", EVIL_BODY, tags=["xss"], submission_ids=[site.subs[1]]).id
    )
    site.posts["plain"] = (
        clients["alice"]
        .post(
            "Soft labels help",
            "**Soft** labels beat hard ones; see `method.py`.",
            tags=["soft-labels"],
            submission_ids=[site.subs[2]],
            artifact_hashes=[site.codes["alice"][1]],
        )
        .id
    )
    clients["bob"].reply(site.posts["plain"], "Confirmed on my side, *mostly*.")
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    """A seeded campaign served on loopback for the whole module."""
    s = build_site(tmp_path_factory.mktemp("web"))
    yield s
    for c in s.clients.values():
        c.close()
    s.admin.close()
    s.srv.stop()


def _missing(message: str) -> None:
    """Skip locally, but fail in CI (CI=true), where .ci/run installs everything the tests need."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def chromium_or_skip() -> Path:
    """Debian's chromium (and the Playwright package that drives it)."""
    found = CHROMIUM if CHROMIUM.is_file() else None
    if found is None and shutil.which("chromium"):
        found = Path(shutil.which("chromium"))
    if found is None:
        _missing(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is missing (pip install -e '.[dev]')")
    return found


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module."""
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(path), headless=True, args=["--no-sandbox"])
        yield b
        b.close()
