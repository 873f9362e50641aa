"""The backend-agnostic researcher loop: model turn, tool calls, results, until a budget ends.

The loop runs in the supervising process (it holds the API key); tools run wherever the toolbox it is
given runs them: in the agent's sandbox (:class:`aar.agents.llm.executor.ExecutorTools`) in a
campaign, or in-process (:class:`aar.agents.llm.workspace_tools.Toolbox`) in tests and the MCP server.

Every model call is accounted (:mod:`aar.agents.llm.pricing`): its worst case is reserved on the
agent's ledger (and the campaign's) before it is made and settled with the real usage after, so a call
that would not fit a token or dollar budget, counting the calls of other agents still in flight, is never
made. Transient failures (429 rate limits, 529 overload, 5xx, timeouts, dropped connections) are retried
with exponential backoff and jitter, honouring ``Retry-After``. A malformed tool call (bad JSON, wrong
arguments, unknown tool, a call cut off by the output limit) gets a tool error back, never a crash.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from aar.agents.llm.backend import Backend, FatalError, Tools, TransientError, Turn
from aar.agents.llm.backend import retry_after_seconds as retry_after_seconds
from aar.agents.llm.context import SUMMARY_INSTRUCTIONS, compacted, digest, estimate_tokens, repair, split
from aar.agents.llm.pricing import BudgetExhausted, Ledger, Price, Usage
from aar.agents.timing import TIMING_FILE, Timing
from aar.fileio import write_text_atomic

PROMPTS = Path(__file__).with_name("prompts")


# -- settings and results ---------------------------------------------------------------------------
@dataclass
class LoopSettings:
    """Knobs of the loop."""

    max_output_tokens: int = 4096
    min_output_tokens: int = 256  # a call that cannot get this many output tokens is not made
    context_tokens: int = 100_000  # compact the conversation when the prompt grows past this
    keep_recent: int = 16  # messages kept verbatim on compaction
    summarise: bool = True  # ask the model for the summary (else a mechanical digest)
    max_tool_result_chars: int = 16_000
    max_retries: int = 8
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 120.0
    idle_turns: int = 3  # consecutive turns without a tool call before the agent is taken to be done
    max_steps: int | None = None
    min_seconds_left: float = 5.0
    prompt_safety: float = 1.25  # reservation factor on the estimated prompt size


@dataclass
class RunSummary:
    """How a run ended."""

    stop_reason: str
    steps: int
    calls: int
    usage: Usage
    dollars: float
    tool_calls: int
    tool_errors: int
    retries: int
    compactions: int
    ok: bool = True


class Stopped(RuntimeError):
    """The loop was asked to stop."""


def _fmt_secs(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render_system_prompt(values: dict[str, Any], template: str | Path | None = None) -> str:
    """Fill the system prompt template (``prompts/system.md`` unless ``template``) with ``values``."""
    text = Path(template).read_text() if template else (PROMPTS / "system.md").read_text()
    return Template(text).safe_substitute(values)


def tool_list(specs: list[dict[str, Any]]) -> str:
    """A Markdown list of the tools: name and the first sentence of the description."""
    out = []
    for s in specs:
        first = s["description"].split(". ")[0].rstrip(".")
        out.append(f"- `{s['name']}`: {first}.")
    return "\n".join(out)


# -- the loop --------------------------------------------------------------------------------------
class Researcher:
    """One LLM researcher: :meth:`run` until its deadline, budget, or stop signal."""

    def __init__(
        self,
        backend: Backend,
        tools: Tools,
        *,
        system: str,
        kickoff: str,
        deadline: float,
        ledger: Ledger | None = None,
        price: Price | None = None,
        store: Path | None = None,
        usage_path: Path | None = None,
        usage_meta: dict[str, Any] | None = None,
        settings: LoopSettings | None = None,
        name: str = "agent",
        log: Callable[[str], None] = print,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``store``: folder for the conversation state, transcript and call log (resumes from it);
        ``usage_path``: where the agent's usage is written for the campaign (its budgets and report)."""
        self.backend, self.tools, self.system, self.kickoff = backend, tools, system, kickoff
        self.deadline, self.price, self.name, self.log = deadline, price, name, log
        self.ledger = ledger or Ledger(name=name)
        self.settings = settings or LoopSettings()
        self.store, self.usage_path, self.usage_meta = store, usage_path, usage_meta or {}
        self.stop_event = stop or threading.Event()
        self.rng = rng or random.Random()
        self.usage, self.dollars, self.n_calls = Usage(), 0.0, 0
        self.steps = self.tool_calls = self.tool_errors = self.retries = self.compactions = 0
        self.history: list[dict[str, Any]] = []
        self.last_prompt_tokens = 0
        self._specs: list[dict[str, Any]] | None = None
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        # model calls are timed here, in the supervisor (the tools' spans are the executor's: workspace)
        self.timing = Timing(store / TIMING_FILE if store is not None else None)
        self._load()

    # -- persistence -------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.usage_path is not None and self.usage_path.exists():
            try:
                raw = json.loads(self.usage_path.read_text())
                self.usage, self.dollars = Usage.of(raw.get("detail")), float(raw.get("dollars", 0.0))
                self.n_calls = int(raw.get("calls", 0))
                self.ledger.add(self.usage.total, self.dollars, propagate=False)
            except (OSError, ValueError, TypeError):
                pass
        f = self.store / "state.json" if self.store else None
        if f is not None and f.exists():
            try:
                st = json.loads(f.read_text())
                self.history = repair(st["history"])
                self.kickoff = st.get("kickoff", self.kickoff)
                self.steps = int(st.get("steps", 0))
                self.compactions = int(st.get("compactions", 0))
                self.last_prompt_tokens = int(st.get("last_prompt_tokens", 0))
            except (OSError, ValueError, KeyError, TypeError):
                self.history = []

    def _save(self, stop_reason: str | None = None) -> None:
        if self.store is None:
            return
        st = {
            "kickoff": self.kickoff,
            "history": self.history,
            "steps": self.steps,
            "compactions": self.compactions,
            "last_prompt_tokens": self.last_prompt_tokens,
            "stop_reason": stop_reason,
            "saved": time.time(),
        }
        write_text_atomic(self.store / "state.json", json.dumps(st))

    def _transcript(self, msg: dict[str, Any]) -> None:
        if self.store is not None:
            with open(self.store / "transcript.jsonl", "a") as f:
                f.write(json.dumps({"t": round(time.time(), 3), **msg}, default=str) + "\n")

    def _append(self, msg: dict[str, Any]) -> None:
        self.history.append(msg)
        self._transcript(msg)

    def _write_usage(self) -> None:
        if self.usage_path is None:
            return
        tok, usd = self.ledger.in_flight()
        data = {
            "tokens": self.usage.total,
            "dollars": round(self.dollars, 6),
            "detail": self.usage.to_dict(),
            "calls": self.n_calls,
            "in_flight": {"tokens": tok, "dollars": round(usd, 6)},
            "backend": getattr(self.backend, "name", "?"),
            "model": getattr(self.backend, "model", "?"),
            **self.usage_meta,
            "updated": time.time(),
        }
        write_text_atomic(self.usage_path, json.dumps(data, indent=1))

    # -- model calls -------------------------------------------------------------------------------
    def specs(self) -> list[dict[str, Any]]:
        if self._specs is None:
            self._specs = self.tools.specs()
        return self._specs

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        s = self.settings
        if retry_after is not None:
            return min(s.backoff_cap_s, retry_after) * (1 + 0.1 * self.rng.random())
        exp: float = min(s.backoff_cap_s, s.backoff_base_s * 2 ** (attempt - 1))
        return exp * (0.5 + 0.5 * self.rng.random())  # exponential backoff, jittered

    def call_model(
        self,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
        purpose: str = "turn",
    ) -> Turn:
        """One accounted call with retries; raises BudgetExhausted, FatalError, TransientError, Stopped."""
        s = self.settings
        prompt = (
            int(estimate_tokens(system) + estimate_tokens(messages) + estimate_tokens(tools))
            if tools
            else int(estimate_tokens(system) + estimate_tokens(messages))
        )
        prompt = int(prompt * s.prompt_safety)
        max_out, binding = max_tokens, None
        tok_left, usd_left = self.ledger.headroom()
        if tok_left != float("inf") and int(tok_left - prompt) < max_out:
            max_out, binding = int(tok_left - prompt), "tokens"
        if self.price is not None and usd_left != float("inf") and self.price.output > 0:
            fit = int((usd_left - self.price.worst_case(prompt, 0)) * 1e6 / self.price.output)
            if fit < max_out:
                max_out, binding = fit, "dollars"
        if max_out < min(s.min_output_tokens, max_tokens):
            kind = "token" if binding == "tokens" else "dollar"
            raise BudgetExhausted(
                f"{self.ledger.limiting(binding or 'tokens')}: {kind} budget too low for another call "
                f"(prompt ~{prompt} tokens; {tok_left:.0f} tokens and ${usd_left:.4f} free, counting calls "
                "in flight)"
            )
        worst = self.price.worst_case(prompt, max_out) if self.price is not None else 0.0
        res = self.ledger.reserve(prompt + max_out, worst)
        self._write_usage()
        used, attempt, t0, turn = Usage(), 0, time.monotonic(), None
        try:
            while True:
                if self.stop_event.is_set():
                    raise Stopped("stop requested")
                try:
                    with self.timing.span("model"):
                        turn = self.backend.complete(system, messages, tools, max_out)
                    used = turn.usage
                    return turn
                except TransientError as e:
                    attempt += 1
                    self.retries += 1
                    left = self.deadline - time.time()
                    if attempt > s.max_retries:
                        raise
                    delay = self._delay(attempt, e.retry_after)
                    if delay > left:
                        raise
                    self.log(f"model call failed ({e}); retry {attempt}/{s.max_retries} in {delay:.1f}s")
                    if self.stop_event.wait(delay):
                        raise Stopped("stop requested") from e
        finally:
            dollars = self.price.cost(used) if self.price is not None else 0.0
            self.ledger.settle(res, used.total, dollars)
            self.usage, self.dollars = self.usage + used, self.dollars + dollars
            if turn is not None:
                self.n_calls += 1
                self.last_prompt_tokens = used.prompt if purpose == "turn" else self.last_prompt_tokens
            self._write_usage()
            if self.store is not None:
                with open(self.store / "calls.jsonl", "a") as f:
                    f.write(
                        json.dumps(
                            {
                                "t": round(time.time(), 3),
                                "purpose": purpose,
                                "ok": turn is not None,
                                "seconds": round(time.monotonic() - t0, 3),
                                "attempts": attempt + 1,
                                "max_tokens": max_out,
                                "reserved": {"tokens": res.tokens, "dollars": round(res.dollars, 6)},
                                "usage": used.to_dict(),
                                "dollars": round(dollars, 6),
                                "stop": turn.stop if turn else None,
                            }
                        )
                        + "\n"
                    )

    # -- context -----------------------------------------------------------------------------------
    def _maybe_compact(self) -> None:
        s = self.settings
        size = max(self.last_prompt_tokens, estimate_tokens(self.history) + estimate_tokens(self.system))
        if size < s.context_tokens:
            return
        parts = split(self.history, s.keep_recent)
        if parts is None:
            return
        old, recent = parts
        text = digest(old)
        summary = ""
        if s.summarise:
            try:
                turn = self.call_model(
                    "You summarise a research session for the researcher who ran it.",
                    [{"role": "user", "content": f"{SUMMARY_INSTRUCTIONS}\n\n{text[-60_000:]}"}],
                    [],
                    1500,
                    purpose="summary",
                )
                summary = turn.text
            except (TransientError, FatalError, BudgetExhausted) as e:
                self.log(f"summary call failed ({e}); using a digest")
        if not summary.strip():
            summary = "(digest of the dropped messages)\n" + text[-8000:]
        notebook = self._notebook()
        self.history = compacted(self.kickoff, summary, notebook, recent, len(old))
        self._transcript({"role": "context", "compacted": len(old), "summary": summary})
        self.compactions += 1
        self.last_prompt_tokens = 0
        self.log(f"context compacted: {len(old)} messages summarised, {len(recent)} kept")

    def _notebook(self) -> str:
        try:
            return self.tools.read_notebook()
        except Exception:  # the notebook is a help, never a reason to stop
            return ""

    # -- turns -------------------------------------------------------------------------------------
    def _status(self) -> str:
        tok_lim = self.ledger.max_tokens
        usd_lim = self.ledger.max_dollars
        parts = [f"{_fmt_secs(self.deadline - time.time())} left"]
        parts.append(f"tokens used {self.usage.total}" + (f" of {tok_lim}" if tok_lim else ""))
        parts.append(f"${self.dollars:.2f}" + (f" of ${usd_lim:.2f}" if usd_lim else ""))
        return "[status] " + ", ".join(parts)

    def _result_text(self, result: dict[str, Any]) -> str:
        text = json.dumps(result, default=str)
        n = self.settings.max_tool_result_chars
        if len(text) > n:
            text = text[: n - 200] + f" ... [result cut: {len(text)} characters; read files for the rest]"
        return text

    def _run_calls(self, turn: Turn) -> dict[str, Any]:
        results = []
        for c in turn.calls:
            self.tool_calls += 1
            if turn.stop == "max_tokens":
                out = {
                    "error": "not run: your reply was cut off at the output token limit, so this call may be "
                    "incomplete. Send shorter calls (write long files in several parts)."
                }
            elif c.error:
                out = {"error": f"malformed call to {c.name!r}: {c.error}"}
            else:
                t0 = time.monotonic()
                out = self.tools.call(c.name, c.args)
                err = out.get("error") if isinstance(out, dict) else None
                self.log(
                    f"tool {c.name} ({time.monotonic() - t0:.1f}s)"
                    + (f" error: {str(err)[:200]}" if err else "")
                )
            is_error = isinstance(out, dict) and bool(out.get("error"))
            self.tool_errors += is_error
            results.append(
                {"id": c.id, "name": c.name, "content": self._result_text(out), "is_error": is_error}
            )
        return {"role": "tool", "results": results, "note": self._status()}

    def run(self) -> RunSummary:
        """Run turns until the deadline, a budget, the agent's own end, or :attr:`stop_event`."""
        s = self.settings
        if not self.history:
            self._append({"role": "user", "content": self.kickoff})
        else:
            self._append(
                {
                    "role": "user",
                    "content": (
                        f"[The session was restarted. {_fmt_secs(self.deadline - time.time())} left.] "
                        "Your notebook:\n\n"
                        f"{self._notebook() or '(empty)'}\n\nContinue your research."
                    ),
                }
            )
            self.history = _merge_users(self.history)
        idle, reason, ok = 0, "", True
        try:
            while True:
                if self.stop_event.is_set():
                    reason = "stopped by the campaign"
                    break
                if self.deadline - time.time() < s.min_seconds_left:
                    reason = "wall-clock budget"
                    break
                if s.max_steps is not None and self.steps >= s.max_steps:
                    reason = "step limit"
                    break
                spent = self.ledger.exhausted()
                if spent:
                    reason = spent
                    break
                self._maybe_compact()
                turn = self.call_model(self.system, self.history, self.specs(), s.max_output_tokens)
                self.steps += 1
                self._append(
                    {
                        "role": "assistant",
                        "content": turn.text,
                        "calls": [c.to_dict() for c in turn.calls],
                        "stop": turn.stop,
                    }
                )
                if turn.calls:
                    idle = 0
                    self._append(self._run_calls(turn))
                else:
                    idle += 1
                    if idle >= s.idle_turns:
                        reason = f"the agent ended its work ({idle} turns without a tool call)"
                        self._save(reason)
                        break
                    if turn.stop == "max_tokens":
                        nudge = "Your reply was cut off at the output token limit. Continue, more briefly."
                    else:
                        nudge = (
                            "Continue your research with your tools. "
                            + self._status()
                            + ". If you are truly finished, say so and end your turn without a tool call."
                        )
                    self._append({"role": "user", "content": nudge})
                self._save()
        except BudgetExhausted as e:
            reason = str(e)
        except Stopped:
            reason = "stopped by the campaign"
        except FatalError as e:
            reason, ok = f"model API error: {e}", False
        except TransientError as e:
            reason, ok = f"model API unavailable after retries: {e}", False
        except Exception as e:
            from aar.agents.llm.executor import ExecutorGone

            if not isinstance(e, ExecutorGone):
                raise
            reason, ok = f"tool executor gone: {e}", False
        self._save(reason)
        self._write_usage()
        self.log(
            f"stopped: {reason}; {self.steps} turns, {self.n_calls} calls, {self.usage.total} tokens, "
            f"${self.dollars:.4f}"
        )
        return RunSummary(
            reason,
            self.steps,
            self.n_calls,
            self.usage,
            self.dollars,
            self.tool_calls,
            self.tool_errors,
            self.retries,
            self.compactions,
            ok,
        )


def _merge_users(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive user messages (a restart note after a nudge)."""
    out: list[dict[str, Any]] = []
    for m in history:
        if out and m["role"] == "user" and out[-1]["role"] == "user":
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n\n" + m["content"]}
        else:
            out.append(m)
    return out


@dataclass
class AgentSpec:
    """What the loop needs to know about an agent to write its prompt."""

    name: str
    testbed_id: str
    view: Path
    workspace: Path
    direction: dict[str, Any]
    deadline: float
    max_submissions: int
    max_tokens: int | None = None
    max_dollars: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def system_prompt_for(
    spec: AgentSpec, specs: list[dict[str, Any]], template: str | Path | None = None
) -> str:
    """The system prompt of an agent (testbed facts from its public view's ``view.json``)."""
    try:
        meta = json.loads((Path(spec.view) / "view.json").read_text())
    except (OSError, ValueError):
        meta = {}
    values = {
        "agent_name": spec.name,
        "testbed_id": spec.testbed_id,
        "task_description": meta.get("description") or meta.get("task") or "(see testbed_info)",
        "sizes": json.dumps(meta.get("sizes", {})),
        "teacher_seeds": json.dumps(meta.get("seeds", [])),
        "direction_name": spec.direction.get("name", "open"),
        "direction_text": spec.direction.get("text", "Any direction you find promising."),
        "tool_list": tool_list(specs),
        "workspace": str(spec.workspace),
        "time_budget": _fmt_secs(spec.deadline - time.time()),
        "submissions": spec.max_submissions,
        "token_budget": f"{spec.max_tokens:,}" if spec.max_tokens else "no limit on",
        "dollar_budget": f"${spec.max_dollars:.2f}" if spec.max_dollars else "no dollar limit",
    }
    return render_system_prompt(values, template)


KICKOFF = (
    "Begin. Your direction is above; your budgets are in the system prompt. Start by looking at the testbed, "
    "your notebook (if any) and the forum, then run cheap experiments before expensive ones."
)
