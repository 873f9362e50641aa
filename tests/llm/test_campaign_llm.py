"""Acceptance: a scripted Anthropic-protocol researcher runs a short campaign end to end. It writes a
method file, runs it, submits, posts a finding; its tokens and dollars appear in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aar.campaign.orchestrator import CampaignOptions, run_campaign

from .fakes import ScriptedServer, a_msg, a_text, a_tool, a_usage

METHOD = """
import numpy as np
from aar.w2s.methods.common import predict, train_student

NAME = "conf_weighted"
DESCRIPTION = "Hard weak labels, each example weighted by the teacher's confidence."
PARAMS = {"power": 1.0}

def run(ctx, power):
    p = ctx.teacher.of(ctx.unlabelled)
    weights = np.abs(2 * p - 1) ** power
    model = train_student(ctx, ctx.unlabelled, (p > 0.5).astype(float), weights=weights)
    return predict(model, ctx)
"""


def _last_result(req: dict, name: str) -> dict:
    """The newest tool_result for a call of ``name`` in an Anthropic request."""
    ids = {}
    for m in req["messages"]:
        for b in m["content"] if isinstance(m["content"], list) else []:
            if b.get("type") == "tool_use":
                ids[b["id"]] = b["name"]
            if b.get("type") == "tool_result" and ids.get(b["tool_use_id"]) == name:
                found = b["content"]
    return json.loads(found if isinstance(found, str) else found[0]["text"])


def script() -> list:
    usage = a_usage(inp=1200, out=300, cache_read=4000, cache_write=2000)
    return [
        a_msg(
            a_text("Plan: a confidence-weighted method; I note it first."),
            a_tool(
                "write_file", {"path": "notebook.md", "content": "# Notebook\n- idea: confidence weights\n"}
            ),
            a_tool("write_file", {"path": "conf_weighted.py", "content": METHOD}),
            usage=usage,
        ),
        a_msg(a_tool("run_experiment", {"method": "conf_weighted.py", "seeds": [0]}), usage=usage),
        lambda req: a_msg(
            a_tool(
                "submit",
                {
                    "run_id": _last_result(req, "run_experiment")["run_id"],
                    "description": "confidence-weighted hard labels, seed 0",
                    "method_label": "conf_weighted",
                },
            ),
            usage=usage,
        ),
        lambda req: a_msg(
            a_tool(
                "forum_post",
                {
                    "title": "Confidence-weighted weak labels",
                    "body": f"Public PGR {_last_result(req, 'submit')['public_pgr']}; see conf_weighted.py.",
                    "tags": ["finding"],
                    "submission_ids": [_last_result(req, "submit")["submission_id"]],
                },
            ),
            usage=usage,
        ),
        a_msg(a_text("Done for now."), usage=a_usage(inp=500, out=20, cache_read=6000)),
    ]


def test_scripted_anthropic_researcher_runs_a_campaign(aar_home, tmp_path, monkeypatch):
    from aar.sandbox import check_bubblewrap

    sandboxed = check_bubblewrap(200_000).available
    d = tmp_path / "camp"
    with ScriptedServer("/v1/messages", script(), default=a_msg(a_text("Nothing more to do."))) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret-key")
        opts = CampaignOptions(
            testbed="math-tiny",
            agents=1,
            minutes=1.5,
            dir=str(d),
            baselines=["vanilla"],
            teacher_seeds=1,
            submissions=4,
            experiment_timeout_s=60.0,
            grace_seconds=5.0,
            backend="anthropic",
            model="claude-haiku-4-5-20251001",
            base_url=fake.url,
            agent_dollars=5.0,
            total_dollars=10.0,
            unsafe_no_sandbox=not sandboxed,
            llm={"loop": {"idle_turns": 2}},
        )
        state = run_campaign(opts, say=lambda _m: None)
        requests = fake.requests
    assert state.finished
    a = state.agents[0]
    ws, agent_dir = Path(a.workspace), Path(a.log).parent
    log = Path(a.log).read_text()
    assert (ws / "conf_weighted.py").exists() and (ws / "notebook.md").exists(), log[-3000:]
    # the model saw every tool and its results; tool errors would show here
    results = [
        b
        for r in requests
        for m in r["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert not any(b.get("is_error") for b in results), [b for b in results if b.get("is_error")]
    assert {"run_experiment", "submit", "forum_post", "write_file"} <= {
        t["name"] for t in requests[0]["tools"]
    }
    assert requests[0]["system"][0]["cache_control"] == {"type": "ephemeral"}
    # report: the submission, and tokens/dollars/cost per agent-hour
    r = json.loads((d / "report.json").read_text())
    assert r["submissions"] == 1 and r["agents"][0]["method"] == "conf_weighted"
    u = json.loads((agent_dir / "usage.json").read_text())
    assert u["calls"] == len(requests) >= 5
    # claude-haiku-4-5: $1 in, $5 out, $0.10 cache read, $1.25 cache write per million tokens
    expect = 4 * (1200 * 1 + 300 * 5 + 4000 * 0.1 + 2000 * 1.25) / 1e6 + (500 * 1 + 20 * 5 + 6000 * 0.1) / 1e6
    expect += (len(requests) - 5) * (1000 * 1 + 100 * 5) / 1e6
    assert r["agents"][0]["cost_usd"] == pytest.approx(expect, abs=2e-6)
    assert r["cost_usd"] == pytest.approx(expect, abs=1e-4) and r["tokens"] == u["tokens"] > 0
    assert r["usd_per_agent_hour"] > 0 and r["agents"][0]["token_detail"]["cache_read"] >= 4 * 4000
    assert r["prices"]["version"] and (d / "prices.json").exists()
    md = (d / "report.md").read_text()
    assert "USD per agent-hour" in md
    # the finding is on the forum, linked to the submission
    assert "forum_post" in log and "error" not in log.split("forum_post")[1].split("\n")[0]
    # the key never reached the agent: not in its config, workspace or the executor's environment
    for p in [*ws.rglob("*"), Path(a.log)]:
        if p.is_file():
            assert b"sk-test-secret-key" not in p.read_bytes(), p
    print(
        json.dumps(
            {
                "cost_usd": r["cost_usd"],
                "tokens": r["tokens"],
                "agent_hours": r["agent_hours"],
                "usd_per_agent_hour": r["usd_per_agent_hour"],
                "calls": u["calls"],
                "sandboxed": sandboxed,
            }
        )
    )
