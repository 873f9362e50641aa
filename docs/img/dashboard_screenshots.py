"""Regenerate the dashboard screenshots of the README (``docs/img/dashboard_*.png``).

A synthetic campaign (not a measurement): a 400-example testbed with shipped baselines, nine agents
with the built-in directions submitting through the real scorer over ten simulated hours (accuracy
rising with noise), one audit verdict and a few forum posts; then Debian's chromium (Playwright)
logs in as the admin and captures the leaderboard and the chart.

    python docs/img/dashboard_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))

from fastapi.testclient import TestClient  # noqa: E402

from aar.agents.artifacts import pack  # noqa: E402
from aar.agents.directions import builtin_directions  # noqa: E402
from aar.campaign.state import AgentState, CampaignState  # noqa: E402
from aar.server.app import create_app  # noqa: E402
from aar.server.config import Settings  # noqa: E402
from bench_dashboard import ADMIN, make_bundle, serve  # noqa: E402


def main() -> None:
    """Seed, serve, capture."""
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "campaigns" / "20261201-101500"
        (d / "server").mkdir(parents=True)
        server = {"mode": "local", "socket": "", "url": None, "admin_token": ADMIN}
        CampaignState(dir=str(d), testbed="math", options={}, server=server, agents=[]).save()
        app = create_app(
            Settings(data_dir=d / "server", admin_token=ADMIN, budget_per_hour=None, budget_total=None)
        )
        client = TestClient(app)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        bundle = make_bundle(400).model_copy(update={"testbed_id": "math"})
        client.post("/v1/admin/testbeds", content=bundle.model_dump_json(), headers=admin)
        labels = np.array([bundle.labels[i] for i in sorted(bundle.labels)])
        ids = sorted(bundle.labels)
        t0 = time.time() - 10 * 3600
        agents, subs = [], []
        for i, direction in enumerate(builtin_directions()):
            name = f"c1-a{i}-{direction.name}"[:64]
            token = client.post("/v1/admin/agents", json={"name": name}, headers=admin).json()["token"]
            who = {"Authorization": f"Bearer {token}"}
            ceiling = 0.72 + 0.06 * rng.random()
            for k in range(14):
                code = pack({"experiment.json": f'{{"direction": "{direction.name}", "step": {k}}}'.encode()})
                sha = client.post("/v1/artifacts?name=code.tar.gz", content=code, headers=who).json()[
                    "sha256"
                ]
                acc = 0.66 + (ceiling - 0.66) * (1 - np.exp(-k / 5)) + rng.normal(0, 0.012)
                right = rng.random(labels.size) < acc
                probs = np.where(right == (labels == 1), 0.8, 0.2)
                body = {
                    "testbed_id": "math",
                    "example_ids": ids,
                    "probabilities": probs.tolist(),
                    "artifact_sha256": sha,
                    "method": direction.name.replace("-", "_")[:30],
                    "description": f"step {k}",
                }
                subs.append(client.post("/v1/submissions", json=body, headers=who).json()["id"])
            agents.append(
                AgentState(
                    name=name,
                    index=i,
                    direction=direction.to_dict(),
                    seed=i,
                    token=token,
                    workspace=str(d / "agents" / name / "ws"),
                    log="",
                    intervals=[[t0, None]],
                    status="running",
                )
            )
        # spread the submissions over the simulated hours (the scorer stamps them now)
        with app.state.ctx.db.write_conn() as conn:
            for n, sid in enumerate(subs):
                agent, step = divmod(n, 14)
                at = t0 + (step + 1) * 2400 + agent * 97
                conn.exec_driver_sql("UPDATE submissions SET created_at = ? WHERE id = ?", (at, sid))
        CampaignState(
            dir=str(d),
            testbed="math",
            options={"minutes": 660.0, "submissions": 24},
            server=server,
            agents=agents,
            isolation="bubblewrap",
        ).save()
        entries = client.get("/v1/admin/leaderboard", headers=admin).json()[0]["agents"]
        verdicts = [
            ("ok", "reproduced at hidden seeds"),
            ("flagged", "teacher-independent: ablation keeps PGR"),
        ]
        for entry, (verdict, reason) in zip(entries, verdicts, strict=False):
            client.post(
                "/v1/admin/audits",
                headers=admin,
                json={
                    "submission_id": entry["submission_id"],
                    "verdict": verdict,
                    "reasons": [reason],
                    "figures": {  # illustrative audited figures (the audit re-runs at hidden seeds)
                        key: {"mean": m, "ci_low": m - 0.09, "ci_high": m + 0.08}
                        for key, m in (
                            ("audited_private_pgr", entry["private_pgr"]["mean"] - 0.03),
                            ("audited_final_pgr", entry["private_pgr"]["mean"] - 0.05),
                        )
                    },
                },
            )
        srv, base = serve(app)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
            page.goto(base + "/dashboard/login")
            page.fill("#token", ADMIN)
            page.click("#login-button")
            page.wait_for_load_state()
            page.screenshot(path=str(HERE / "dashboard_leaderboard.png"), full_page=False)
            page.goto(base + "/dashboard/chart?metric=private")
            page.wait_for_function(
                "n => document.querySelector('#chart').dataset.points === String(n)", arg=len(subs)
            )
            box = page.locator("#chart .u-over").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.72, box["y"] + box["height"] * 0.12)
            page.screenshot(path=str(HERE / "dashboard_chart.png"), full_page=False)
            browser.close()
        srv.should_exit = True
    print("wrote", HERE / "dashboard_leaderboard.png", HERE / "dashboard_chart.png")


if __name__ == "__main__":
    main()
