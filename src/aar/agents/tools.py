"""The agent tools: one definition (name, JSON schema, docstring, implementation) for every backend.

The offline researcher calls them through :func:`call_tool`; LLM loops and the MCP server expose
:func:`tool_specs` (name, description, input schema) and dispatch through the same function, so
every backend sees exactly the same tools. Each implementation takes an :class:`AgentEnv` (the
agent's server client, public testbed view, workspace and experiment runner) and JSON arguments,
and returns a JSON-ready dict; failures come back as ``{"error": ...}`` rather than exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from aar.agents import artifacts, timing
from aar.agents.diagnostics import diagnostics
from aar.agents.experiments import ExperimentRunner
from aar.agents.runs import has_request, read_request, read_seed
from aar.agents.toolkit import Tool, ToolError, ToolRegistry, run_tool, unknown_tool
from aar.client import Client
from aar.server import schemas

__all__ = ["TOOLS", "AgentEnv", "Tool", "ToolError", "call_tool", "tool_specs"]


@dataclass
class AgentEnv:
    """What a tool may act on: this agent's client, testbed view, workspace and experiment runner."""

    client: Client
    testbed_id: str
    view: Path
    workspace: Path
    runner: ExperimentRunner
    _cache: dict[str, Any] = field(default_factory=dict)

    def path_in_workspace(self, rel: str) -> Path:
        """Resolve ``rel`` inside the workspace; refuse anything that leads outside it."""
        ws = self.workspace.resolve()
        p = (ws / rel).resolve()
        if p != ws and ws not in p.parents:
            raise ToolError(f"path {rel!r} is outside your workspace")
        return p

    def view_meta(self) -> dict[str, Any]:
        """The public view's ``view.json``."""
        if "meta" not in self._cache:
            self._cache["meta"] = json.loads((self.view / "view.json").read_text())
        meta: dict[str, Any] = self._cache["meta"]
        return meta

    def split_ids(self, split: str) -> list[str]:
        """Example ids of a visible split, in order."""
        if "ids" not in self._cache:
            data = json.loads((self.view / "inputs.json").read_text())
            splits = data.get("splits", data)
            self._cache["ids"] = {s: [e["id"] for e in xs] for s, xs in splits.items()}
        ids: list[str] = self._cache["ids"][split]
        return ids

    def teacher(self, seed: int) -> dict[str, float]:
        """The teacher's outputs of ``seed`` (from the public view)."""
        key = f"teacher{seed}"
        if key not in self._cache:
            f = self.view / f"teacher-s{seed}.json"
            if not f.exists():
                raise ToolError(f"no teacher outputs for seed {seed}; seeds: {self.view_meta()['seeds']}")
            self._cache[key] = json.loads(f.read_text())["probs"]
        probs: dict[str, float] = self._cache[key]
        return probs

    def prior(self) -> dict[str, float] | None:
        """The strong model's zero-shot P(label=1) on dev and test (computed once, kept in the workspace)."""
        f = self.workspace / "prior.json"
        if f.exists():
            stored: dict[str, float] = json.loads(f.read_text())
            return stored
        res = self.runner.run("zero_shot", {}, [0], ("dev", "test"))
        if not res.ok:
            return None
        f.write_text(json.dumps(res.probs[0]))
        return res.probs[0]


RESEARCH = ToolRegistry()
TOOLS: dict[str, Tool] = RESEARCH.tools
tool = RESEARCH.tool


def tool_specs() -> list[dict[str, Any]]:
    """The tool list every backend exposes."""
    return RESEARCH.specs()


# Tools that are calls to the scoring server (their time is the agent's ``server`` time, see
# aar.agents.timing); run_experiment times its own parts (experiment, diagnostics), testbed_info is local.
SERVER_TOOLS = frozenset(
    {
        "submit",
        "my_submissions",
        "submission_info",
        "forum_list",
        "forum_search",
        "forum_read",
        "forum_post",
        "forum_reply",
        "code_upload",
        "code_download",
        "leaderboard",
    }
)


def call_tool(env: AgentEnv, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check ``args`` against the tool's signature, run it, and turn failures into ``{"error": ...}``."""
    t = TOOLS.get(name)
    if t is None:
        return unknown_tool(name, list(TOOLS))
    if name in SERVER_TOOLS:
        with timing.span("server"):
            return run_tool(t, env, args)
    return run_tool(t, env, args)


# Argument types shared by several tools (limits and descriptions become the JSON schema).
Text = Annotated[str, Field(max_length=4000)]
Page = Annotated[int, Field(ge=1, le=100)]
Offset = Annotated[int, Field(ge=0)]
Id = Annotated[int, Field(ge=1)]
WorkspacePath = Annotated[str, Field(max_length=300)]
SubmissionIds = Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=20)]
ArtifactHashes = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=20)]
Body = Annotated[str, Field(max_length=50_000)]


# -- testbed ---------------------------------------------------------------------------------------
@tool
def testbed_info(env: AgentEnv) -> dict[str, Any]:
    """The testbed: task description, visible splits and their sizes, teacher seeds, the strong model's
    fine-tuning config, and the shipped methods with their parameters. No labels are visible anywhere."""
    from aar.w2s.methods.registry import builtin_methods

    meta = env.view_meta()
    methods = {m.name: {"description": m.description, "params": m.params} for m in builtin_methods().values()}
    return {
        "testbed_id": env.testbed_id,
        "task": meta.get("task"),
        "description": meta.get("description"),
        "sizes": meta.get("sizes"),
        "teacher_seeds": meta.get("seeds"),
        "teacher_splits": meta.get("teacher_splits", ["train_unlabel", "dev", "test"]),
        "strong_train": meta.get("strong_train"),
        "methods": methods,
        "notes": "Methods predict P(label=1). Write your own as a .py file in your workspace (NAME, "
        "DESCRIPTION, PARAMS, run(ctx, **params)) and pass its path as `method`.",
    }


# -- experiments -----------------------------------------------------------------------------------
@tool
def run_experiment(
    env: AgentEnv,
    method: Annotated[
        str,
        Field(max_length=300, description="a shipped method name, or a .py method file in your workspace"),
    ],
    # dict[Any, Any]: pydantic checks the same as for a bare dict (keys not checked)
    params: Annotated[dict[Any, Any], Field(description="method parameters (defaults otherwise)")]
    | None = None,
    seeds: Annotated[list[Offset], Field(max_length=5)] | None = None,
    splits: Annotated[list[Literal["dev", "test"]], Field(max_length=2)] | None = None,
    timeout_s: Annotated[float, Field(ge=1, le=3600)] | None = None,
    with_run: Annotated[
        str,
        Field(
            max_length=40,
            description="an earlier run of the same method whose seeds join the diagnostics "
            "(e.g. seed agreement without rerunning a seed)",
        ),
    ]
    | None = None,
) -> dict[str, Any]:
    """Run a method on your machine on the unlabelled inputs and predict dev and/or test, for each seed
    (each seed uses that seed's teacher; teacher outputs exist for train_unlabel only). A fixed 10% slice
    of train_unlabel is held out from the method and predicted too. Returns a run id (for `submit`) and
    diagnostics that need no ground truth: agreement with the teacher on that held-out slice, label
    balance, confidence histogram, agreement between seeds, agreement with the strong model's zero-shot
    prior, and run time. Hung runs are killed."""
    if method.endswith(".py"):
        method = str(env.path_in_workspace(method))
    seeds = seeds or [0]
    res = env.runner.run(method, params or {}, seeds, tuple(splits or ("dev", "test")), timeout_s)
    out = res.summary()
    if res.probs:
        probs, used = list(res.probs), list(res.seeds[: len(res.probs)])
        held = list(res.holdout_probs)
        if with_run:
            for seed, p, h in _earlier_run(env, with_run, res.splits):
                if seed not in used:
                    probs.append(p)
                    held.append(h)
                    used.append(seed)
        ids = [i for s in res.splits for i in env.split_ids(s)]
        prior = env.prior() if Path(method).stem != "zero_shot" else None
        with timing.span("diagnostics"):
            teachers = [env.teacher(s) for s in used] if all(held) else None
            out["diagnostics"] = diagnostics(probs, ids, res.seconds, prior, held, teachers)
            out["diagnostics"]["seeds"] = used
            (env.runner.runs_dir / res.run_id / "diagnostics.json").write_text(json.dumps(out["diagnostics"]))
    return out


def _earlier_run(
    env: AgentEnv, run_id: str, splits: list[str]
) -> list[tuple[int, dict[str, float], dict[str, float]]]:
    run_dir = env.runner.runs_dir / run_id
    if "/" in run_id or not has_request(run_dir):
        raise ToolError(f"unknown run '{run_id}'")
    req = read_request(run_dir)
    if req.splits != list(splits):
        raise ToolError(f"run {run_id} predicted {req.splits}, not {list(splits)}")
    blobs = [(seed, read_seed(run_dir, seed)) for seed in req.seeds]
    return [(seed, b.probs, b.holdout_probs or {}) for seed, b in blobs if b is not None]


# -- submissions -----------------------------------------------------------------------------------
@tool
def submit(
    env: AgentEnv,
    *,
    run_id: Annotated[str, Field(max_length=40, description="a run_experiment run that predicted test")],
    seed: Annotated[
        int, Field(ge=0, description="which seed's predictions (default: the run's first seed)")
    ]
    | None = None,
    description: Text,
    method_label: Annotated[str, Field(max_length=64, description="short name shown on the leaderboard")]
    | None = None,
    code_path: Annotated[
        str,
        Field(
            max_length=300,
            description="file or folder in your workspace with the code (default: the run's code)",
        ),
    ]
    | None = None,
) -> dict[str, Any]:
    """Submit one run's test predictions to the scoring server, with the code that produced them (stored
    in the code store). Returns the server's public response: the Ladder-released public PGR (it only
    moves when you beat your best by a margin), whether you improved, and your remaining budget."""
    run_dir = env.runner.runs_dir / run_id
    if "/" in run_id or not has_request(run_dir):
        raise ToolError(f"unknown run '{run_id}'")
    req = read_request(run_dir)
    seed = req.seeds[0] if seed is None else seed
    blob = read_seed(run_dir, seed) if "test" in req.splits else None
    if blob is None:
        raise ToolError(f"run {run_id} has no test predictions for seed {seed}")
    preds = {i: blob.probs[i] for i in env.split_ids("test")}
    if code_path:
        data, name = artifacts.pack_path(env.path_in_workspace(code_path))
    else:
        meta = {
            "testbed": env.testbed_id,
            "method": Path(req.method).name,
            "params": blob.params,
            "seed": seed,
            "splits": req.splits,
        }
        data, name = artifacts.experiment_bundle(meta, req.method), f"{run_id}.tar.gz"
    art = env.client.upload_artifact(data, name=name)
    label = method_label or Path(req.method).stem
    label = "".join(c if c.isalnum() or c in "_.-" else "-" for c in label)[:64] or "method"
    r = env.client.submit(env.testbed_id, preds, art.sha256, description[:2000], method=label, seed=seed)
    return {
        "submission_id": r.id,
        "artifact_sha256": art.sha256,
        "public_pgr": r.public.pgr,
        "public_accuracy": r.public.accuracy,
        "improved": r.public.improved,
        "margin": r.public.margin,
        "budget": r.budget.model_dump(),
    }


@tool
def my_submissions(env: AgentEnv, limit: Page = 50) -> dict[str, Any]:
    """Your own submissions, newest first, with the released public figures."""
    page = env.client.submissions(env.testbed_id, limit=limit)
    return {"total": page.total, "items": [s.model_dump() for s in page.items]}


@tool
def submission_info(env: AgentEnv, submission_id: Id) -> dict[str, Any]:
    """Any agent's submission as the server shows it: method, description, code hash, released public PGR."""
    return env.client.submission(submission_id).model_dump()


# -- forum -----------------------------------------------------------------------------------------
def _posts(page: schemas.Page[schemas.PostView]) -> dict[str, Any]:
    return {
        "total": page.total,
        "items": [{k: v for k, v in p.model_dump().items() if k != "body_html"} for p in page.items],
    }


@tool
def forum_list(
    env: AgentEnv,
    limit: Page = 20,
    offset: Offset = 0,
    tag: Annotated[str, Field(max_length=40)] | None = None,
    author: Annotated[str, Field(max_length=64)] | None = None,
) -> dict[str, Any]:
    """List forum posts (newest first), optionally by tag or author."""
    return _posts(env.client.posts(tag=tag, author=author, limit=limit, offset=offset))


@tool
def forum_search(env: AgentEnv, q: Annotated[str, Field(max_length=200)], limit: Page = 20) -> dict[str, Any]:
    """Search forum posts by text."""
    return _posts(env.client.posts(q=q, limit=limit))


@tool
def forum_read(env: AgentEnv, post_id: Id) -> dict[str, Any]:
    """Read a post with its replies."""
    t = env.client.thread(post_id)
    strip: Callable[[schemas.PostView], dict[str, Any]]
    strip = lambda p: {k: v for k, v in p.model_dump().items() if k != "body_html"}  # noqa: E731
    return {"post": strip(t.post), "replies": [strip(r) for r in t.replies]}


@tool
def forum_post(
    env: AgentEnv,
    title: Annotated[str, Field(max_length=200)],
    body: Body,
    tags: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=10)] | None = None,
    submission_ids: SubmissionIds | None = None,
    artifact_hashes: ArtifactHashes | None = None,
) -> dict[str, Any]:
    """Post a finding (Markdown), linking the submissions and code it is about."""
    p = env.client.post(title, body, tags, submission_ids, artifact_hashes)
    return {"post_id": p.id}


@tool
def forum_reply(
    env: AgentEnv,
    post_id: Id,
    body: Body,
    submission_ids: SubmissionIds | None = None,
    artifact_hashes: ArtifactHashes | None = None,
) -> dict[str, Any]:
    """Reply to a forum post (Markdown), optionally linking submissions and code."""
    return {"post_id": env.client.reply(post_id, body, submission_ids, artifact_hashes).id}


# -- code store ------------------------------------------------------------------------------------
@tool
def code_upload(env: AgentEnv, path: WorkspacePath) -> dict[str, Any]:
    """Upload a file, or a folder (as a tarball), from your workspace to the code store; returns its hash."""
    p = env.path_in_workspace(path)
    if not p.exists():
        raise ToolError(f"{path} does not exist")
    data, name = artifacts.pack_path(p)
    info = env.client.upload_artifact(data, name=name)
    return {"sha256": info.sha256, "name": info.name, "size": info.size}


@tool
def code_download(env: AgentEnv, sha256: Annotated[str, Field(max_length=64)]) -> dict[str, Any]:
    """Download code by hash into downloads/<sha256>/ in your workspace (tarballs are unpacked)."""
    if not all(c in "0123456789abcdef" for c in sha256) or len(sha256) != 64:
        raise ToolError("sha256 must be 64 lowercase hex digits")
    info = env.client.artifact(sha256)
    data = env.client.download(sha256)
    dest = env.path_in_workspace(f"downloads/{sha256}")
    name = Path(info.name).name or "artifact.bin"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        files = artifacts.unpack(data, dest)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
        files = [name]
    return {"path": str(dest.relative_to(env.workspace.resolve())), "files": files, "owner": info.owner}


# -- leaderboard -----------------------------------------------------------------------------------
@tool
def leaderboard(env: AgentEnv) -> dict[str, Any]:
    """The public leaderboard: each agent's Ladder-released public PGR, method and code hash."""
    return {"rows": [r.model_dump() for r in env.client.leaderboard(env.testbed_id).rows]}
