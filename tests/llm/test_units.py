"""Units: price table, ledgers (calls in flight, shared campaign budget), workspace tools, the executor
protocol, prompt rendering and context splitting."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

from aar.agents.experiments import ExperimentRunner
from aar.agents.llm.context import compacted, repair, split
from aar.agents.llm.executor import serve
from aar.agents.llm.loop import AgentSpec, retry_after_seconds, system_prompt_for
from aar.agents.llm.pricing import BudgetExhausted, Ledger, PriceTable, Usage
from aar.agents.llm.workspace_tools import Toolbox
from aar.agents.tools import AgentEnv


def test_price_table_is_versioned_and_matches_snapshots_only():
    t = PriceTable.load()
    assert t.version and t.to_dict()["models"]["claude-haiku-4-5"]["output"] == 5.0
    assert t.entry_for("claude-haiku-4-5-20251001") == "claude-haiku-4-5"
    assert t.entry_for("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert t.entry_for("claude-sonnet-4-5@20250929") == "claude-sonnet-4-5"
    assert t.entry_for("claude-opus-4-7") is None  # a newer model is never priced as an older one
    assert t.entry_for("local/qwen2.5-7b") == "local/"
    p = t.price("claude-haiku-4-5")
    u = Usage(input=1_000_000, output=1_000_000, cache_read=1_000_000, cache_write=1_000_000)
    assert p.cost(u) == pytest.approx(1 + 5 + 0.1 + 1.25)
    assert p.worst_case(1000, 100) == pytest.approx((1000 * 1.25 + 100 * 5) / 1e6)


def test_ledger_counts_calls_in_flight_across_agents():
    campaign = Ledger(max_dollars=1.0, name="campaign")
    a = Ledger(max_tokens=1000, parent=campaign, name="a")
    b = Ledger(parent=campaign, name="b")
    r1 = a.reserve(600, 0.5)
    with pytest.raises(BudgetExhausted, match="a: token budget"):
        a.reserve(500, 0.1)
    with pytest.raises(BudgetExhausted, match="campaign: dollar budget"):
        b.reserve(10, 0.6)  # a's call in flight counts against the campaign
    r2 = b.reserve(10, 0.4)
    assert campaign.in_flight() == (610, pytest.approx(0.9))
    a.settle(r1, 550, 0.2)
    b.settle(r2, 10, 0.1)
    assert campaign.in_flight() == (0, 0.0) and campaign.dollars == pytest.approx(0.3)
    assert a.tokens == 550 and campaign.tokens == 560 and a.limiting("tokens") == "a"
    # many threads reserving at once never overspend
    shared = Ledger(max_tokens=10_000)
    got = []

    def worker():
        for _ in range(50):
            try:
                r = shared.reserve(300, 0)
            except BudgetExhausted:
                continue
            got.append(1)
            time.sleep(0.001)
            shared.settle(r, 0, 0)

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert shared.reserved_tokens == 0 and got


def test_retry_after_headers():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None


@pytest.fixture
def box(tmp_path) -> Toolbox:
    ws = tmp_path / "ws"
    ws.mkdir()
    env = AgentEnv(None, "x", tmp_path, ws, ExperimentRunner(tmp_path, ws))  # type: ignore[arg-type]
    return Toolbox(env, deadline=time.time() + 60)


def test_file_tools_stay_in_the_workspace(box, tmp_path):
    (tmp_path / "secret.txt").write_text("labels")
    os.symlink(tmp_path / "secret.txt", box.env.workspace / "link.txt")
    assert "outside your workspace" in box.call("read_file", {"path": "../secret.txt"})["error"]
    assert "outside your workspace" in box.call("read_file", {"path": "link.txt"})["error"]
    assert "outside your workspace" in box.call("write_file", {"path": "/tmp/x", "content": "1"})["error"]
    assert box.call("write_file", {"path": "a/b.py", "content": "x = 1\nx = 1\n"})["size"] == 12
    assert "occurs 2 times" in box.call("edit_file", {"path": "a/b.py", "old": "x = 1", "new": "y"})["error"]
    assert box.call("edit_file", {"path": "a/b.py", "old": "x = 1", "new": "y", "replace_all": True})
    assert box.call("read_file", {"path": "a/b.py", "offset": 1, "limit": 1})["content"] == "\n"
    assert box.call("write_file", {"path": "a/b.py", "content": "z", "append": True})["size"] == 5
    assert "must be a string" in box.call("write_file", {"path": 3, "content": ""})["error"]
    assert "arguments must be" in box.call("list_files", "not an object")["error"]


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_command_past_its_timeout_is_killed_with_its_whole_group(box):
    t0 = time.monotonic()
    res = box.call(
        "run_command", {"command": "sleep 300 & echo $! > bg.pid; echo started; sleep 300", "timeout_s": 1.5}
    )
    # Returning before the 300 s sleep ends is the event: the timeout fired and killed the group.
    assert res["timed_out"] and "killed" in res["error"] and time.monotonic() - t0 < 300
    assert res["output"].strip() == "started"
    pid = int((box.env.workspace / "bg.pid").read_text())
    deadline = time.monotonic() + 60  # a safety net: the loop waits for the process to go
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)
    ok = box.call("run_command", {"command": "python -c 'print(6*7)'; exit 3"})
    assert ok["exit_code"] == 3 and ok["output"].strip() == "42" and not ok["timed_out"]


def test_executor_protocol(box):
    (box.env.workspace / "notebook.md").write_text("# my notes")
    reqs = [
        {"id": 1, "op": "call", "name": "write_file", "args": {"path": "m.py", "content": "NAME='m'"}},
        {"id": 2, "op": "notebook"},
        {"id": 3, "op": "call", "name": "nope", "args": {}},
        {"id": 4, "op": "what"},
    ]
    out = io.StringIO()
    serve(box, io.StringIO("\n".join(json.dumps(r) for r in reqs) + "\nnot json\n"), out)
    replies = [json.loads(x) for x in out.getvalue().splitlines()]
    assert replies[0] == {"id": 1, "result": {"path": "m.py", "size": 8}}
    assert replies[1]["result"] == "# my notes"
    assert "unknown tool" in replies[2]["result"]["error"] and "unknown op" in replies[3]["result"]["error"]
    assert "internal error" in replies[4]["result"]["error"]  # a bad line is answered, not fatal


def test_system_prompt_names_direction_tools_budgets(tmp_path):
    (tmp_path / "view.json").write_text(json.dumps({"description": "is a+b right?", "sizes": {"dev": 10}}))
    spec = AgentSpec(
        "a1",
        "math",
        tmp_path,
        tmp_path / "ws",
        {"name": "probes", "text": "Look inside."},
        time.time() + 3600,
        12,
        max_tokens=2_000_000,
        max_dollars=25.0,
    )
    text = system_prompt_for(spec, Toolbox.specs())
    for s in (
        "a1",
        "is a+b right?",
        "## Your starting direction: probes",
        "Look inside.",
        "`run_command`",
        "`submit`",
        "12 submissions",
        "2,000,000",
        "$25.00",
        "notebook.md",
        "Never try to obtain labels",
    ):
        assert s in text, s
    assert "${" not in text


def test_context_split_keeps_calls_with_their_results():
    h = [{"role": "user", "content": "kick"}]
    for i in range(6):
        h.append({"role": "assistant", "content": "", "calls": [{"id": f"c{i}", "name": "t", "args": {}}]})
        h.append(
            {"role": "tool", "results": [{"id": f"c{i}", "name": "t", "content": "{}", "is_error": False}]}
        )
    old, recent = split(h, 5)
    assert recent[0]["role"] == "assistant" and len(old) + len(recent) == len(h) - 1
    new = compacted("kick", "summary", "notes", recent, len(old))
    assert new[0]["role"] == "user" and "summary" in new[0]["content"] and "notes" in new[0]["content"]
    assert repair([*h, h[1]])[-1]["results"][0]["is_error"]


def test_campaign_cli_checks_llm_options_before_starting(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from aar.cli import app

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run = lambda *a: CliRunner().invoke(app, ["campaign", "--dir", str(tmp_path / "c"), *a])  # noqa: E731
    r = run("--backend", "anthropic", "--model", "claude-haiku-4-5")
    assert r.exit_code == 2 and "ANTHROPIC_API_KEY" in r.output
    r = run("--backend", "openai", "--model", "m")
    assert r.exit_code == 2 and "--base-url" in r.output
    r = run(
        "--backend", "openai", "--model", "my-local-model", "--base-url", "http://x/v1", "--max-dollars", "5"
    )
    assert r.exit_code == 2 and "no price for model" in r.output
    r = run("--backend", "gemini", "--model", "m")
    assert r.exit_code == 2 and "unknown backend" in r.output
    assert not (tmp_path / "c").exists()  # nothing was created
