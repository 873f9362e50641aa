"""The tool layer: one schema per tool, argument checking, and every tool against a real server."""

from __future__ import annotations

import json

import pytest

from aar.agents.experiments import ExperimentRunner
from aar.agents.tools import AgentEnv, call_tool, tool_specs
from aar.client import Client

EXPECTED = {
    "testbed_info",
    "run_experiment",
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


def test_every_tool_has_one_schema_and_a_description():
    specs = tool_specs()
    assert {s["name"] for s in specs} == EXPECTED
    for s in specs:
        assert len(s["description"]) > 20, s["name"]
        sch = s["input_schema"]
        assert sch["type"] == "object" and sch["additionalProperties"] is False
        assert set(sch["required"]) <= set(sch["properties"])
        json.dumps(s)  # plain JSON for every backend


def test_arguments_are_checked_against_the_schema(tmp_path):
    env = AgentEnv(None, "x", tmp_path, tmp_path, ExperimentRunner(tmp_path, tmp_path))  # type: ignore[arg-type]
    assert "unknown property" in call_tool(env, "forum_read", {"post_id": 1, "x": 2})["error"]
    assert "must be a integer" in call_tool(env, "forum_read", {"post_id": "1"})["error"]
    assert "missing required" in call_tool(env, "submit", {"run_id": "r1"})["error"]
    assert "unknown tool" in call_tool(env, "rm_rf", {})["error"]
    assert "outside your workspace" in call_tool(env, "code_upload", {"path": "../../etc/passwd"})["error"]


@pytest.fixture(scope="module")
def env(server, view, tmp_path_factory):
    with server.admin() as admin:
        token = admin.create_agent("tool-tester", budget_total=5).token
    ws = tmp_path_factory.mktemp("ws")
    client = Client.over_unix_socket(server.socket, token)
    yield AgentEnv(client, "math-tiny", view, ws, ExperimentRunner(view, ws, timeout_s=120))
    client.close()


def test_tools_end_to_end(env):
    info = call_tool(env, "testbed_info")
    assert info["sizes"]["test"] == 300 and "recipe" in info["methods"] and info["teacher_seeds"] == [0, 1]
    assert "train_label" not in info["sizes"]

    run = call_tool(env, "run_experiment", {"method": "vanilla", "seeds": [0, 1]})
    assert run["ok"], run
    d = run["diagnostics"]
    assert d["n_examples"] == 400 and d["n_seeds"] == 2
    assert d["n_holdout"] == round(0.1 * info["sizes"]["train_unlabel"])
    for k in ("agreement_with_teacher", "teacher_label_balance", "label_balance", "seed_agreement",
              "agreement_with_prior"):
        assert 0.0 <= d[k] <= 1.0
    share = d["confidence_histogram"]["share"]
    # each share is rounded to 4 decimals on its own, so their sum is 1 within half a unit per bin
    assert len(share) == 10 and all(0 <= s <= 1 for s in share) and len(d["seconds"]) == 2
    assert abs(sum(share) - 1) <= len(share) * 0.5e-4 + 1e-12, share

    more = call_tool(env, "run_experiment", {"method": "vanilla", "seeds": [1], "with_run": run["run_id"]})
    assert more["diagnostics"]["seeds"] == [1, 0] and more["diagnostics"]["seed_agreement"] is not None

    sub = call_tool(env, "submit", {"run_id": run["run_id"], "description": "vanilla (run x)"})
    assert sub["improved"] is True and sub["budget"]["used_total"] == 1 and len(sub["artifact_sha256"]) == 64
    again = call_tool(env, "submission_info", {"submission_id": sub["submission_id"]})
    assert again["released_pgr"] == sub["public_pgr"] and "private_pgr" not in again
    assert call_tool(env, "my_submissions")["total"] == 1
    assert call_tool(env, "leaderboard")["rows"][0]["agent"] == "tool-tester"
    assert "unknown run" in call_tool(env, "submit", {"run_id": "../x", "description": "x"})["error"]

    post = call_tool(
        env,
        "forum_post",
        {
            "title": "vanilla works",
            "body": "```json\n{}\n```",
            "tags": ["finding"],
            "submission_ids": [sub["submission_id"]],
        },
    )
    call_tool(env, "forum_reply", {"post_id": post["post_id"], "body": "and a reply"})
    assert call_tool(env, "forum_list", {"tag": "finding"})["items"][0]["id"] == post["post_id"]
    assert call_tool(env, "forum_search", {"q": "vanilla"})["total"] >= 1
    thread = call_tool(env, "forum_read", {"post_id": post["post_id"]})
    assert thread["replies"][0]["body"] == "and a reply"

    (env.workspace / "idea").mkdir()
    (env.workspace / "idea" / "method.py").write_text("NAME = 'x'\n")
    up = call_tool(env, "code_upload", {"path": "idea"})
    down = call_tool(env, "code_download", {"sha256": up["sha256"]})
    assert down["files"] == ["method.py"]
    assert (env.workspace / down["path"] / "method.py").read_text() == "NAME = 'x'\n"
    assert call_tool(env, "code_upload", {"path": "idea"})["sha256"] == up["sha256"]  # deterministic


def test_user_method_file_runs(env):
    (env.workspace / "mine.py").write_text(
        "import numpy as np\nNAME = 'mine'\nDESCRIPTION = 'constant'\nPARAMS = {}\n"
        "def run(ctx):\n    return np.full(len(ctx.predict_inputs), 0.7)\n"
    )
    run = call_tool(env, "run_experiment", {"method": "mine.py", "splits": ["test"]})
    assert run["ok"] and run["diagnostics"]["label_balance"] == 1.0
    # agreement with the teacher: measured on the held-out train_unlabel slice
    d = run["diagnostics"]
    assert d["agreement_with_teacher"] == d["teacher_label_balance"]


def test_teacher_outputs_exist_for_train_unlabel_only(env):
    (env.workspace / "copy.py").write_text(
        "NAME = 'copy'\nDESCRIPTION = 'teacher'\nPARAMS = {}\n"
        "def run(ctx):\n    return ctx.teacher.of(ctx.predict_inputs)\n"
    )
    run = call_tool(env, "run_experiment", {"method": "copy.py", "splits": ["test"]})
    assert not run["ok"] and "train_unlabel inputs only" in run["error"]
    assert call_tool(env, "testbed_info")["teacher_splits"] == ["train_unlabel"]
