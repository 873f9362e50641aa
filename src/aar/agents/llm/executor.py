"""The tool executor: runs an LLM researcher's tool calls inside its sandbox.

``python -m aar.agents.llm.executor WORKSPACE/agent.json`` is what the campaign starts in the agent's
sandbox for LLM backends (where the offline backend starts ``run_agent``). It speaks JSON lines on
stdin/stdout with the supervising process, which runs the model loop and holds the API key outside
the sandbox:

    -> {"id": 1, "op": "call", "name": "run_experiment", "args": {...}}
    <- {"id": 1, "result": {...}}
    -> {"id": 2, "op": "notebook"}
    <- {"id": 2, "result": "...notebook text..."}

Stray prints (from libraries) go to stderr, the agent's log; only replies go to the protocol stream.
:class:`ExecutorTools` is the supervisor's side.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aar.agents.llm.workspace_tools import Toolbox
    from aar.client import Client


def _client() -> Client:
    """The agent's client (token and server from the environment)."""
    from aar.client import connect_from_env

    return connect_from_env()


def serve(box: Toolbox, inp: IO[str], out: IO[str]) -> None:
    """Answer requests from ``inp`` on ``out`` until EOF."""
    for line in inp:
        if not line.strip():
            continue
        rid = None
        try:
            req = json.loads(line)
            rid = req.get("id")
            result: dict[str, Any] | str
            op = req.get("op")
            if op == "call":
                result = box.call(str(req.get("name")), req.get("args"))
            elif op == "notebook":
                result = box.read_notebook(int(req.get("limit", 12_000)))
            elif op == "ping":
                result = "pong"
            else:
                result = {"error": f"unknown op {op!r}"}
        except Exception as e:  # a tool bug must not end the agent: it becomes a tool error
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            result = {"error": f"internal error in the tool: {type(e).__name__}: {e}"}
        out.write(json.dumps({"id": rid, "result": result}, default=str) + "\n")
        out.flush()


def main(config_path: str) -> int:
    """Serve tool calls for the agent described by ``config_path`` until stdin closes."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed from now on goes to the log, not the protocol stream
    sys.stdout = sys.stderr
    from aar.agents import timing
    from aar.agents.experiments import ExperimentRunner
    from aar.agents.llm.workspace_tools import Toolbox
    from aar.agents.run_agent import AgentConfig
    from aar.agents.tools import AgentEnv

    cfg = AgentConfig.load(Path(config_path))
    ws = Path(cfg.workspace)
    timing.configure(ws, started_at=timing.process_start_time())
    runner = ExperimentRunner(Path(cfg.view), ws, timeout_s=cfg.experiment_timeout_s)
    print(f"{time.strftime('%H:%M:%S')} {cfg.name}: tool executor ready in {ws}", file=sys.stderr, flush=True)
    with runner, _client() as client:
        env = AgentEnv(client, cfg.testbed_id, Path(cfg.view), ws, runner)
        serve(Toolbox(env, deadline=cfg.deadline), sys.stdin, proto)
    return 0


class ExecutorGone(RuntimeError):
    """The sandboxed executor exited (killed, crashed or out of budget)."""


class ExecutorTools:
    """The supervisor's side: calls tools in the sandboxed executor over its stdin/stdout pipes."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        """Talk over ``stdin`` (the executor's, writable) and ``stdout`` (readable), both binary."""
        self._w, self._r = stdin, stdout
        self._n = 0
        self._lock = threading.Lock()

    @staticmethod
    def specs() -> list[dict[str, Any]]:
        """The same list the executor's toolbox has."""
        from aar.agents.llm.workspace_tools import Toolbox

        return Toolbox.specs()

    def _ask(self, req: dict[str, Any]) -> Any:
        with self._lock:
            self._n += 1
            req["id"] = self._n
            try:
                self._w.write((json.dumps(req) + "\n").encode())
                self._w.flush()
                while True:
                    line = self._r.readline()
                    if not line:
                        raise ExecutorGone("the tool executor exited")
                    msg = json.loads(line)
                    if msg.get("id") == self._n:
                        return msg.get("result")
            except (BrokenPipeError, OSError, ValueError) as e:
                raise ExecutorGone(f"the tool executor is gone: {e}") from e

    def call(self, name: str, args: Any) -> dict[str, Any]:
        """Run tool ``name`` in the sandbox."""
        res = self._ask({"op": "call", "name": name, "args": args})
        return res if isinstance(res, dict) else {"result": res}

    def read_notebook(self, limit: int = 12_000) -> str:
        """The agent's notebook, read inside the sandbox."""
        res = self._ask({"op": "notebook", "limit": limit})
        return res if isinstance(res, str) else ""

    def close(self) -> None:
        """Close stdin: the executor exits."""
        with contextlib.suppress(OSError):
            self._w.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
