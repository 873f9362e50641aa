"""The researcher loop against local servers speaking the Anthropic Messages and OpenAI chat-completions
protocols, replaying scripted turns: tool use, several tools in one turn, malformed arguments, an unknown
tool, 429 with Retry-After, 529/503 overload, truncated responses, a budget exhausted mid-run, context
compaction and resuming."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aar.agents.experiments import ExperimentRunner
from aar.agents.llm.loop import LoopSettings, Researcher
from aar.agents.llm.pricing import Ledger, PriceTable
from aar.agents.llm.workspace_tools import Toolbox
from aar.agents.tools import AgentEnv

from . import fakes as f


class Anthropic:
    name, path = "anthropic", "/v1/messages"

    @staticmethod
    def backend(url):
        from aar.agents.llm.anthropic_backend import AnthropicBackend

        return AnthropicBackend("claude-haiku-4-5", api_key="test", base_url=url)

    @staticmethod
    def calls(*calls, text="", stop=None, usage=(1000, 100)):
        blocks = ([f.a_text(text)] if text else []) + [f.a_tool(n, a) for n, a in calls]
        return f.a_msg(*blocks, stop=stop, usage=f.a_usage(*usage))

    @staticmethod
    def text(t, usage=(1000, 100)):
        return f.a_msg(f.a_text(t), usage=f.a_usage(*usage))

    @staticmethod
    def raw_args(name, raw):  # a call whose arguments are not an object
        return f.a_msg(f.a_tool(name, raw))

    rate_limited = staticmethod(lambda s: f.a_error(429, "rate_limit_error", headers={"retry-after": str(s)}))
    overloaded = staticmethod(lambda: f.a_error(529, "overloaded_error"))
    server_error = staticmethod(lambda: f.a_error(500, "api_error"))
    bad_request = staticmethod(lambda: f.a_error(400, "invalid_request_error", "prompt is too long"))

    @staticmethod
    def results(req):
        out = []
        for m in req["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else []:
                if b.get("type") == "tool_result":
                    out.append((json.loads(b["content"]), bool(b.get("is_error"))))
        return out


class OpenAI:
    name, path = "openai", "/v1/chat/completions"

    @staticmethod
    def backend(url):
        from aar.agents.llm.openai_backend import OpenAIBackend

        return OpenAIBackend("gpt-4o-mini", base_url=url + "/v1")

    @staticmethod
    def calls(*calls, text="", stop=None, usage=(1000, 100)):
        finish = {"max_tokens": "length"}.get(stop, stop)
        return f.o_msg(text or None, [f.o_call(n, a) for n, a in calls], finish, f.o_usage(*usage))

    @staticmethod
    def text(t, usage=(1000, 100)):
        return f.o_msg(t, usage=f.o_usage(*usage))

    @staticmethod
    def raw_args(name, raw):
        return f.o_msg(None, [f.o_call(name, raw if isinstance(raw, str) else json.dumps(raw))])

    rate_limited = staticmethod(lambda s: f.o_error(429, "rate limited", headers={"retry-after": str(s)}))
    overloaded = staticmethod(lambda: f.o_error(503, "overloaded"))
    server_error = staticmethod(lambda: f.o_error(502, "bad gateway"))
    bad_request = staticmethod(lambda: f.o_error(400, "context length exceeded"))

    @staticmethod
    def results(req):
        return [
            (json.loads(m["content"]), "error" in json.loads(m["content"]))
            for m in req["messages"]
            if m["role"] == "tool"
        ]


PROTOCOLS = [Anthropic, OpenAI]


@pytest.fixture(params=PROTOCOLS, ids=lambda p: p.name)
def proto(request):
    return request.param


def _box(tmp_path: Path) -> Toolbox:
    ws = tmp_path / "ws"
    ws.mkdir(parents=True)
    env = AgentEnv(None, "x", tmp_path, ws, ExperimentRunner(tmp_path, ws))  # type: ignore[arg-type]
    return Toolbox(env, deadline=time.time() + 600)


def _researcher(proto, url, box, tmp_path, ledger=None, **settings) -> Researcher:
    prices = PriceTable.load()
    model = proto.backend(url).model
    kw = {"backoff_base_s": 0.01, "idle_turns": 1, **settings}
    return Researcher(
        proto.backend(url),
        box,
        system="You are a test researcher.",
        kickoff="Begin.",
        deadline=time.time() + 120,
        ledger=ledger,
        price=prices.price(model),
        store=tmp_path / "llm",
        usage_path=tmp_path / "usage.json",
        settings=LoopSettings(**kw),
        log=lambda _m: None,
    )


def test_tool_use_several_tools_malformed_and_unknown(proto, tmp_path):
    box = _box(tmp_path)
    steps = [
        proto.calls(
            ("write_file", {"path": "notes/a.txt", "content": "hello"}),
            ("read_file", {"path": "notes/a.txt"}),
            ("list_files", {}),
            text="three tools",
        ),
        proto.calls(("write_file", {"path": 7, "content": "x"})),  # wrong type
        proto.raw_args("read_file", "{not json" if proto is OpenAI else "just a string"),
        proto.calls(("rm_rf", {"path": "/"})),  # unknown tool
        proto.calls(("edit_file", {"path": "notes/a.txt", "old": "hello", "new": "bye"})),
        proto.text("I am done."),
    ]
    with f.ScriptedServer(proto.path, steps) as srv:
        summary = _researcher(proto, srv.url, box, tmp_path).run()
        reqs = srv.requests
    assert summary.ok and summary.stop_reason.startswith("the agent ended its work"), summary
    assert (box.env.workspace / "notes/a.txt").read_text() == "bye"
    res = proto.results(reqs[-1])
    assert [e for _, e in res] == [False, False, False, True, True, True, False]
    assert res[1][0]["content"] == "hello" and res[2][0]["entries"][0]["path"] == "notes/"
    assert "must be a string" in res[3][0]["error"]
    assert "malformed call" in res[4][0]["error"]
    assert "unknown tool 'rm_rf'" in res[5][0]["error"]
    assert summary.tool_calls == 7 and summary.tool_errors == 3 and summary.calls == 6
    # every tool is offered on every call, in the protocol's own shape
    names = {t["name"] if proto is Anthropic else t["function"]["name"] for t in reqs[0]["tools"]}
    assert {"run_experiment", "submit", "forum_post", "run_command", "write_file", "edit_file"} <= names
    usage = json.loads((tmp_path / "usage.json").read_text())
    assert usage["calls"] == 6 and usage["tokens"] == 6 * 1100 and usage["dollars"] > 0


def test_retries_rate_limit_overload_truncation(proto, tmp_path):
    box = _box(tmp_path)
    steps = [
        proto.rate_limited(1),
        proto.overloaded(),
        proto.server_error(),
        {"truncate": True, **proto.calls(("list_files", {}))},  # the body is cut mid-way
        proto.calls(("list_files", {})),
        proto.text("done"),
    ]
    with f.ScriptedServer(proto.path, steps) as srv:
        researcher = _researcher(proto, srv.url, box, tmp_path)
        delays: list = []  # (Retry-After, chosen delay) of every retry, recorded as it is decided
        decide = researcher._delay

        def spy(attempt, after):
            delays.append((after, decide(attempt, after)))
            return delays[-1][1]

        researcher._delay = spy
        t0 = time.monotonic()
        summary = researcher.run()
        took = time.monotonic() - t0
    assert summary.ok and summary.retries == 4 and summary.calls == 2, summary
    assert len(delays) == 4 and delays[0][0] == 1.0 and 1.0 <= delays[0][1] <= 1.1  # Retry-After: 1 honoured
    assert all(after is None and delay < 0.1 for after, delay in delays[1:])  # backoff otherwise short
    assert took >= 1.0  # the wait really happened
    calls = [json.loads(x) for x in (tmp_path / "llm" / "calls.jsonl").read_text().splitlines()]
    assert calls[0]["attempts"] == 5 and calls[0]["ok"]


def test_fatal_error_and_retries_exhausted_end_the_run_cleanly(proto, tmp_path):
    with f.ScriptedServer(proto.path, [proto.bad_request()]) as srv:
        s = _researcher(proto, srv.url, _box(tmp_path), tmp_path).run()
    assert not s.ok and s.stop_reason.startswith("model API error") and s.calls == 0
    with f.ScriptedServer(proto.path, [], default=proto.overloaded()) as srv:
        s = _researcher(proto, srv.url, _box(tmp_path / "b"), tmp_path / "b", max_retries=3).run()
    assert not s.ok and "after retries" in s.stop_reason and s.retries == 4


def test_output_cut_off_mid_call_gets_a_tool_error(proto, tmp_path):
    box = _box(tmp_path)
    steps = [
        proto.calls(("write_file", {"path": "big.py", "content": "x = 1"}), stop="max_tokens"),
        proto.text("ok"),
    ]
    with f.ScriptedServer(proto.path, steps) as srv:
        s = _researcher(proto, srv.url, box, tmp_path).run()
        res = proto.results(srv.requests[-1])
    assert s.ok and not (box.env.workspace / "big.py").exists()
    assert res[0][1] and "cut off at the output token limit" in res[0][0]["error"]


def test_budget_exhausted_mid_run(proto, tmp_path):
    """A token budget that fits a few calls: the loop stops before the call that would not fit."""
    box = _box(tmp_path)
    steps = [proto.calls(("list_files", {}), usage=(3000, 500))] * 20
    campaign = Ledger(name="campaign")
    ledger = Ledger(max_tokens=14_000, parent=campaign, name="agent")
    with f.ScriptedServer(proto.path, steps) as srv:
        s = _researcher(proto, srv.url, box, tmp_path, ledger=ledger, max_output_tokens=1000).run()
        n = len(srv.requests)
    assert s.ok and "token budget" in s.stop_reason, s
    assert s.calls == n and 2 <= n <= 3 and s.usage.total == n * 3500 <= 14_000
    assert campaign.tokens == n * 3500 and campaign.in_flight() == (0, 0.0)
    # a dollar budget on the campaign (shared with other agents) stops it too
    campaign = Ledger(max_dollars=0.01, name="campaign")
    ledger = Ledger(parent=campaign, name="agent")
    with f.ScriptedServer(proto.path, [proto.calls(("list_files", {}), usage=(3000, 500))] * 20) as srv:
        s = _researcher(proto, srv.url, _box(tmp_path / "b"), tmp_path / "b", ledger=ledger).run()
    assert "campaign: dollar budget" in s.stop_reason and campaign.dollars <= 0.01


def test_context_is_compacted_and_the_notebook_kept(proto, tmp_path):
    box = _box(tmp_path)
    (box.env.workspace / "notebook.md").write_text("# Notebook\n- vanilla: released PGR 0.31\n")
    big = "y" * 3000
    turns = [
        proto.calls(("write_file", {"path": f"f{i}.txt", "content": big}), usage=(2000, 100))
        for i in range(8)
    ]

    def summary_or_turn(req):
        if not req.get("tools"):  # the summary call has no tools
            return proto.text("SUMMARY: wrote f0..f7.", usage=(500, 50))
        return turns.pop(0) if turns else proto.text("done")

    with f.ScriptedServer(proto.path, [], default=summary_or_turn) as srv:
        s = _researcher(proto, srv.url, box, tmp_path, context_tokens=4000, keep_recent=4).run()
        reqs = srv.requests
    assert s.ok and s.compactions >= 1
    last = json.dumps(reqs[-1]["messages"])
    assert "SUMMARY: wrote f0..f7." in last and "vanilla: released PGR 0.31" in last
    assert len(reqs[-1]["messages"]) < len(reqs[-3]["messages"]) or s.compactions > 1
    calls = [json.loads(x) for x in (tmp_path / "llm" / "calls.jsonl").read_text().splitlines()]
    assert any(c["purpose"] == "summary" for c in calls)  # the summary call is accounted like any other


def test_resume_continues_the_conversation_and_the_usage(tmp_path):
    proto = Anthropic
    box = _box(tmp_path)
    with f.ScriptedServer(proto.path, [proto.calls(("list_files", {}))] * 2 + [proto.text("bye")]) as srv:
        s1 = _researcher(proto, srv.url, box, tmp_path, max_steps=2).run()
    assert s1.stop_reason == "step limit"
    state = json.loads((tmp_path / "llm" / "state.json").read_text())
    # simulate a kill in the middle of a tool call: the last call has no result
    state["history"].append(
        {
            "role": "assistant",
            "content": "",
            "calls": [{"id": "toolu_x", "name": "list_files", "args": {}, "error": None, "raw": None}],
        }
    )
    (tmp_path / "llm" / "state.json").write_text(json.dumps(state))
    ledger = Ledger(max_tokens=10_000)
    with f.ScriptedServer(proto.path, [proto.text("back"), proto.text("bye")]) as srv:
        r = _researcher(proto, srv.url, box, tmp_path, ledger=ledger, idle_turns=2).run()
        msgs = srv.requests[0]["messages"]
    assert r.ok and ledger.tokens == 4 * 1100  # earlier spending counts against the budget
    assert "interrupted" in json.dumps(msgs) and "restarted" in json.dumps(msgs[-1])
    assert json.loads((tmp_path / "usage.json").read_text())["calls"] == 4
