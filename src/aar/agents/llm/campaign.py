"""LLM researchers in a campaign: the model loop runs in the supervising (campaign) process, the tools in
each agent's sandbox.

For ``--backend anthropic|openai`` the campaign's launcher is wrapped by :class:`LLMLauncher`. For each
agent it starts the tool executor (:mod:`aar.agents.llm.executor`) through the campaign's own launcher,
so in the same bubblewrap sandbox (or plain process, with the unsafe flag) an offline agent would get,
talking JSON lines over its stdin/stdout, and runs the agent's :class:`~aar.agents.llm.loop.Researcher`
in a thread of the campaign process. The API key is read from the environment here and lives only in
this process: the sandbox's environment is built from scratch and never contains it.

Accounting: one campaign :class:`~aar.agents.llm.pricing.Ledger` (``--max-dollars``) is the parent of
every agent's (``--max-tokens-per-agent``, ``--max-dollars-per-agent``), so calls in flight of all agents
count against the campaign budget. Each agent's usage is written to ``agents/<name>/usage.json``, outside
its workspace (the agent cannot edit it), where the campaign's budgets and report read it. The price
table used is saved as ``prices.json`` in the campaign directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aar.agents.llm.pricing import Ledger, PriceTable

if TYPE_CHECKING:
    from aar.agents.llm.backend import Backend
    from aar.agents.llm.executor import ExecutorTools
    from aar.agents.llm.loop import Researcher, RunSummary
    from aar.campaign.launcher import AgentHandle, AgentLaunch, Launcher
    from aar.campaign.state import CampaignState

LLM_BACKENDS = ("anthropic", "openai")
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def check_options(
    backend: str,
    model: str | None,
    base_url: str | None,
    agent_dollars: float | None,
    total_dollars: float | None,
    llm: dict[str, Any] | None = None,
) -> str:
    """Validate LLM options before a campaign starts; returns the API key (raises ValueError)."""
    llm = llm or {}
    if backend not in LLM_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: offline, {', '.join(LLM_BACKENDS)}")
    if not model:
        raise ValueError(f"--backend {backend} needs --model")
    key = os.environ.get(KEY_ENV[backend], "")
    if backend == "anthropic" and not key:
        raise ValueError("--backend anthropic needs ANTHROPIC_API_KEY in the environment")
    if backend == "openai" and not key and not base_url:
        raise ValueError("--backend openai needs OPENAI_API_KEY, or --base-url of a local server")
    table = PriceTable.load(llm.get("prices_file"))
    if table.price(model) is None and (agent_dollars is not None or total_dollars is not None):
        raise ValueError(
            f"no price for model {model!r} in price table {table.version} ({table.source}); dollar budgets "
            "need one: pass a price file (llm.prices_file) or use token budgets"
        )
    return key


def make_backend(
    backend: str, model: str, api_key: str | None, base_url: str | None, llm: dict[str, Any] | None = None
) -> Backend:
    """The backend object for ``backend``."""
    llm = llm or {}
    if backend == "anthropic":
        from aar.agents.llm.anthropic_backend import AnthropicBackend

        return AnthropicBackend(
            model,
            api_key=api_key,
            base_url=base_url,
            timeout=llm.get("timeout_s", 600.0),
            cache=llm.get("prompt_cache", True),
        )
    if backend == "openai":
        from aar.agents.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(
            model,
            api_key=api_key,
            base_url=base_url,
            timeout=llm.get("timeout_s", 600.0),
            max_tokens_param=llm.get("max_tokens_param", "max_tokens"),
        )
    raise ValueError(f"unknown backend {backend!r}")


def _agent_usage(agent_dir: Path) -> tuple[int, float]:
    from aar.sandbox.safe_read import read_json_safely

    try:
        raw = read_json_safely("usage.json", 1 << 20, root=agent_dir)
        return int(raw.get("tokens", 0)), float(raw.get("dollars", 0.0))
    except (OSError, ValueError, TypeError, AttributeError, OverflowError):
        return 0, 0.0


class LLMHandle:
    """A running LLM agent: its model loop (a thread here) and its sandboxed tool executor."""

    def __init__(self, inner: AgentHandle, researcher: Researcher, tools: ExecutorTools) -> None:
        """Run ``researcher``'s loop in a thread beside its executor ``inner``."""
        self.inner, self.researcher, self.tools = inner, researcher, tools
        self.pid = inner.pid
        self.code: int | None = None
        self.summary: RunSummary | None = None
        self.thread = threading.Thread(target=self._run, name=f"llm-{researcher.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            summary = self.summary = self.researcher.run()
            self.code = 0 if summary.ok else 1
        except Exception as e:  # a bug in the loop ends this agent, not the campaign
            self.researcher.log(f"loop crashed: {type(e).__name__}: {e}")
            self.code = 1
        finally:
            self.tools.close()
            deadline = time.monotonic() + 10
            while self.inner.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.inner.poll() is None:
                self.inner.kill()

    def poll(self) -> int | None:
        """The loop's exit code once it and the executor have ended."""
        if self.thread.is_alive():
            return None
        return self.code

    def kill(self) -> None:
        """Stop the loop (a call in flight may finish and is accounted) and kill the sandbox."""
        self.researcher.stop_event.set()
        self.inner.kill()
        # a model call in flight is not waited for long: its reservation stays in usage.json ("in_flight")
        # and its real usage is recorded if it returns while this process lives
        self.thread.join(timeout=5)


class LLMLauncher:
    """Wraps the campaign's launcher: executor in the sandbox, model loop here."""

    def __init__(
        self,
        base: Launcher,
        opts: Any,  # aar.campaign.orchestrator.CampaignOptions
        state: CampaignState,
        backend_factory: Callable[[], Backend] | None = None,
    ) -> None:
        """``opts``: the campaign's options; ``backend_factory()`` overrides the backend (tests)."""
        self.base, self.opts, self.state = base, opts, state
        self.name = f"{base.name}; {opts.backend} model loop in the campaign process"
        self.llm = dict(opts.llm or {})
        self.factory = backend_factory
        self.prices = PriceTable.load(self.llm.get("prices_file"))
        self.price = self.prices.price(opts.model or "")
        self._key: str | None = None
        self.ledger = Ledger(max_dollars=opts.total_dollars, name="campaign")
        for a in state.agents:  # a resumed campaign has spent already
            tok, usd = _agent_usage(Path(a.log).parent)
            self.ledger.add(tok, usd)
        d = Path(state.dir)
        if not (d / "prices.json").exists():
            (d / "prices.json").write_text(json.dumps(self.prices.to_dict(), indent=1))

    def _backend(self) -> Backend:
        if self.factory is not None:
            return self.factory()
        if self._key is None:
            self._key = check_options(
                self.opts.backend,
                self.opts.model,
                self.opts.base_url,
                self.opts.agent_dollars,
                self.opts.total_dollars,
                self.llm,
            )
        return make_backend(
            self.opts.backend, self.opts.model, self._key or None, self.opts.base_url, self.llm
        )

    def start(self, launch: AgentLaunch) -> LLMHandle:
        """Start the agent's executor through the campaign's launcher and its loop in a thread."""
        from aar.agents.llm.executor import ExecutorTools
        from aar.agents.llm.loop import KICKOFF, AgentSpec, LoopSettings, Researcher, system_prompt_for
        from aar.agents.run_agent import AgentConfig

        backend = self._backend()  # before anything starts: a missing key fails here
        cfg = AgentConfig.load(launch.config)
        agent_dir = Path(launch.log).parent
        inner = self.base.start(
            dataclasses.replace(
                launch, argv=[sys.executable, "-m", "aar.agents.llm.executor", str(launch.config)], pipes=True
            )
        )
        stdin, stdout = getattr(inner, "stdin", None), getattr(inner, "stdout", None)
        if stdin is None or stdout is None:
            raise RuntimeError(f"launcher {self.base.name} started the tool executor without pipes")
        tools = ExecutorTools(stdin, stdout)
        o = self.opts
        ledger = Ledger(
            max_tokens=o.agent_tokens,
            max_dollars=o.agent_dollars,
            parent=self.ledger,
            name=f"agent {cfg.name}",
        )
        spec = AgentSpec(
            cfg.name,
            cfg.testbed_id,
            Path(cfg.view),
            Path(cfg.workspace),
            cfg.direction,
            cfg.deadline,
            cfg.max_submissions,
            o.agent_tokens,
            o.agent_dollars,
        )
        log_path = Path(launch.log)

        def log(msg: str) -> None:
            with open(log_path, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {cfg.name}: {msg}\n")

        settings = LoopSettings(
            **{k: v for k, v in self.llm.get("loop", {}).items() if k in LoopSettings.__dataclass_fields__}
        )
        researcher = Researcher(
            backend,
            tools,
            system=system_prompt_for(spec, tools.specs(), self.llm.get("system_prompt")),
            kickoff=KICKOFF,
            deadline=cfg.deadline,
            ledger=ledger,
            price=self.price,
            store=agent_dir / "llm",
            usage_path=agent_dir / "usage.json",
            usage_meta={
                "prices_version": self.prices.version,
                "price_entry": self.prices.entry_for(o.model or ""),
                "priced": self.price is not None,
            },
            settings=settings,
            name=cfg.name,
            log=log,
        )
        log(
            f"starting: direction {cfg.direction['name']}, {o.backend} model {o.model}, "
            f"{cfg.deadline - time.time():.0f}s left, {cfg.max_submissions} submissions"
        )
        return LLMHandle(inner, researcher, tools)
