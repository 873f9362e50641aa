"""Workspace tools for LLM researchers (file list/read/write/edit and a shell command) and the
:class:`Toolbox` that puts them beside the shared research tools of :mod:`aar.agents.tools`.

They act on the agent's workspace only (paths are resolved by :meth:`AgentEnv.path_in_workspace`).
A command runs like an experiment does (:mod:`aar.agents.procs`): its own process group, output to a
log file in the workspace, and the whole group killed when its timeout runs out. In a campaign the
toolbox itself runs inside the agent's sandbox (:mod:`aar.agents.llm.executor`), so files and
commands see exactly what the sandbox shows: the workspace, the public view and the server socket.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from aar.agents.procs import start_group, wait_or_kill
from aar.agents.toolkit import Tool, ToolError, ToolRegistry, run_tool, unknown_tool
from aar.agents.tools import TOOLS, AgentEnv, call_tool
from aar.fileio import write_text_atomic

NOTEBOOK = "notebook.md"
MAX_READ_CHARS = 20_000
MAX_FILE_BYTES = 2_000_000
COMMAND_OUTPUT_CHARS = 8_000
COMMANDS_DIR = ".commands"

WORKSPACE = ToolRegistry()
WORKSPACE_TOOLS: dict[str, Tool] = WORKSPACE.tools

WorkspacePath = Annotated[str, Field(max_length=300, description="path relative to your workspace")]
LongText = Annotated[str, Field(max_length=100_000)]


@WORKSPACE.tool
def list_files(
    box: Toolbox, path: WorkspacePath = ".", depth: Annotated[int, Field(ge=1, le=5)] = 2
) -> dict[str, Any]:
    """List files and folders in your workspace (sizes in bytes), to a depth (default 2)."""
    root = box.env.path_in_workspace(path)
    if not root.is_dir():
        raise ToolError(f"{path} is not a folder")
    ws = box.env.workspace.resolve()
    out: list[dict[str, Any]] = []

    def walk(d: Path, level: int) -> None:
        for p in sorted(d.iterdir(), key=lambda q: q.name):
            if len(out) >= 500:
                return
            rel = str(p.relative_to(ws))
            if p.is_symlink():
                out.append({"path": rel, "type": "link"})
            elif p.is_dir():
                out.append({"path": rel + "/", "type": "dir"})
                if level < depth:
                    walk(p, level + 1)
            else:
                out.append({"path": rel, "type": "file", "size": p.stat().st_size})

    walk(root, 1)
    return {"entries": out, "truncated": len(out) >= 500}


@WORKSPACE.tool
def read_file(
    box: Toolbox,
    path: WorkspacePath,
    offset: Annotated[int, Field(ge=0, description="first character to read")] = 0,
    limit: Annotated[int, Field(ge=1, le=MAX_READ_CHARS)] = MAX_READ_CHARS,
) -> dict[str, Any]:
    """Read a text file from your workspace (up to 20,000 characters from `offset`)."""
    p = box.env.path_in_workspace(path)
    if not p.is_file():
        raise ToolError(f"{path} is not a file")
    text = p.read_text(errors="replace")
    chunk = text[offset : offset + limit]
    end = offset + len(chunk)
    return {
        "path": path,
        "content": chunk,
        "total_chars": len(text),
        "next_offset": end if end < len(text) else None,
    }


@WORKSPACE.tool
def write_file(
    box: Toolbox,
    path: WorkspacePath,
    content: Annotated[str, Field(max_length=MAX_FILE_BYTES)],
    append: Annotated[bool, Field(description="append instead of replacing")] = False,
) -> dict[str, Any]:
    """Create or overwrite (or append to) a text file in your workspace; folders are created as needed."""
    p = box.env.path_in_workspace(path)
    if p.is_dir():
        raise ToolError(f"{path} is a folder")
    p.parent.mkdir(parents=True, exist_ok=True)
    if append:
        with open(p, "a") as f:
            f.write(content)
    else:
        write_text_atomic(p, content)
    return {"path": path, "size": p.stat().st_size}


@WORKSPACE.tool
def edit_file(
    box: Toolbox,
    path: WorkspacePath,
    old: Annotated[str, Field(max_length=100_000, description="exact text to replace")],
    new: LongText,
    replace_all: Annotated[
        bool, Field(description="replace every occurrence (default: exactly one)")
    ] = False,
) -> dict[str, Any]:
    """Replace exact text in a workspace file: `old` must occur exactly once unless `replace_all`."""
    p = box.env.path_in_workspace(path)
    if not p.is_file():
        raise ToolError(f"{path} is not a file")
    text = p.read_text()
    n = text.count(old) if old else 0
    if n == 0:
        raise ToolError(f"the text to replace was not found in {path}")
    if n > 1 and not replace_all:
        raise ToolError(f"the text to replace occurs {n} times in {path}; add context or set replace_all")
    p.write_text(text.replace(old, new) if replace_all else text.replace(old, new, 1))
    return {"path": path, "replacements": n if replace_all else 1}


@WORKSPACE.tool
def run_command(
    box: Toolbox,
    command: Annotated[str, Field(max_length=10_000, description="a bash command line")],
    timeout_s: Annotated[float, Field(ge=1, le=3600, description="default 120")] = 120.0,
) -> dict[str, Any]:
    """Run a bash command in your workspace (your sandbox: no network, no labels), e.g. `python check.py`.
    Returns the exit code and the output's tail; the whole process group is killed at the timeout."""
    limit = min(timeout_s, box.command_timeout_s, max(1.0, box.time_left()))
    logs = box.env.path_in_workspace(COMMANDS_DIR)
    logs.mkdir(exist_ok=True)
    box.n_commands += 1
    log = logs / f"c{int(time.time())}-{box.n_commands:04d}.log"
    t0 = time.monotonic()
    proc = start_group(["/bin/bash", "-c", command], log, env=box.command_env(), cwd=box.env.workspace)
    code, timed_out = wait_or_kill(proc, limit)
    text = log.read_text(errors="replace") if log.exists() else ""
    out = (
        text
        if len(text) <= COMMAND_OUTPUT_CHARS
        else (
            text[:1500]
            + f"\n... [{len(text) - COMMAND_OUTPUT_CHARS} characters cut] ...\n"
            + text[-(COMMAND_OUTPUT_CHARS - 1500) :]
        )
    )
    res = {
        "exit_code": code,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - t0, 2),
        "output": out,
        "log": str(log.relative_to(box.env.workspace.resolve())),
    }
    if timed_out:
        res["error"] = f"timed out after {limit:.0f}s; the command's process group was killed"
    return res


class Toolbox:
    """Every tool an LLM researcher has: the shared research tools plus the workspace tools."""

    def __init__(
        self, env: AgentEnv, deadline: float | None = None, command_timeout_s: float = 600.0
    ) -> None:
        """Tools acting on ``env``; commands never run past ``deadline`` (epoch seconds)."""
        self.env, self.deadline, self.command_timeout_s = env, deadline, command_timeout_s
        self.n_commands = 0

    def time_left(self) -> float:
        """Seconds to the deadline (inf without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def command_env(self) -> dict[str, str]:
        """A small environment for commands: no secrets of the calling process, only the agent's own."""
        keep = (
            "PATH",
            "LANG",
            "TMPDIR",
            "USER",
            "LOGNAME",
            "AAR_TOKEN",
            "AAR_SERVER_SOCKET",
            "AAR_SERVER_URL",
            "AAR_HOME",
        )
        env = {k: os.environ[k] for k in keep if k in os.environ}
        py = str(Path(sys.executable).parent)
        env["PATH"] = f"{py}:{env.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        env.update(
            {
                "HOME": str(self.env.workspace),
                "PYTHONNOUSERSITE": "1",
                "AAR_VIEW": str(self.env.view),
                "AAR_TESTBED": self.env.testbed_id,
            }
        )
        return env

    @staticmethod
    def specs() -> list[dict[str, Any]]:
        """``{name, description, input_schema}`` of every tool, research tools first."""
        return [t.spec() for t in TOOLS.values()] + WORKSPACE.specs()

    def call(self, name: str, args: dict[str, Any] | None) -> dict[str, Any]:
        """Run a tool; every failure comes back as ``{"error": ...}``."""
        if name in WORKSPACE_TOOLS:
            return run_tool(WORKSPACE_TOOLS[name], self, args)
        if name in TOOLS:
            return call_tool(self.env, name, args)
        return unknown_tool(name, [*TOOLS, *WORKSPACE_TOOLS])

    def read_notebook(self, limit: int = 12_000) -> str:
        """The notebook's text (its tail when long), or '' when there is none."""
        p = self.env.workspace / NOTEBOOK
        try:
            text = p.read_text(errors="replace") if p.is_file() and not p.is_symlink() else ""
        except OSError:
            return ""
        return text if len(text) <= limit else "[... start cut ...]\n" + text[-limit:]
