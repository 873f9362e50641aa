"""Typed records on disk: campaign state, agent config, researcher notes, runs folder, report data.

Each round-trips, reads files written before it had a version as version 1, and refuses another
version or a malformed file with an error that names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aar.agents.notes import NotesError, validate_notes
from aar.agents.offline import State
from aar.agents.run_agent import AgentConfig
from aar.agents.runs import RunRequest, read_request, read_seed, seed_file
from aar.campaign.report_data import ReportError, read_report
from aar.campaign.state import STATE_FILE, AgentState, CampaignState, StateError


def _state(d: Path) -> CampaignState:
    agent = AgentState(
        name="a0", index=0, direction={"name": "probes"}, seed=3, token="t", workspace="w", log="l"
    )
    return CampaignState(
        dir=str(d), testbed="math-tiny", options={"view": "v"}, server={"mode": "local"}, agents=[agent]
    )


def test_campaign_state_round_trips_and_refuses_other_versions(tmp_path):
    st = _state(tmp_path)
    st.agents[0].intervals.append([10.0, 25.0])
    st.save()
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600
    back = CampaignState.load(tmp_path)
    assert back == st and back.agents[0].seconds() == 15.0
    raw = json.loads((tmp_path / STATE_FILE).read_text())
    (tmp_path / STATE_FILE).write_text(json.dumps({**raw, "version": 2}))
    with pytest.raises(StateError, match="state version 2"):
        CampaignState.load(tmp_path)
    raw["agents"][0]["seed"] = "three"
    (tmp_path / STATE_FILE).write_text(json.dumps(raw))
    with pytest.raises(StateError, match=r"(?s)not a valid campaign state.*agents\.0\.seed"):
        CampaignState.load(tmp_path)


def test_agent_config_checks_keys_and_version(tmp_path):
    cfg = AgentConfig(
        name="a0",
        testbed_id="t",
        view="v",
        workspace="w",
        direction={"name": "probes"},
        seed=1,
        deadline=100.0,
        max_submissions=2,
        settings={"batch": 2},
    )
    cfg.save(tmp_path / "agent.json")
    assert AgentConfig.load(tmp_path / "agent.json") == cfg
    raw = json.loads((tmp_path / "agent.json").read_text())
    del raw["version"]  # written before the field existed
    (tmp_path / "agent.json").write_text(json.dumps(raw))
    assert AgentConfig.load(tmp_path / "agent.json") == cfg
    (tmp_path / "agent.json").write_text(json.dumps({**raw, "version": 7}))
    with pytest.raises(ValueError, match="config version 7"):
        AgentConfig.load(tmp_path / "agent.json")
    (tmp_path / "agent.json").write_text(json.dumps({**raw, "unknown_key": 1}))
    with pytest.raises(ValueError, match="unknown_key"):
        AgentConfig.load(tmp_path / "agent.json")


def test_researcher_notes_are_versioned():
    old = {"seed": 4, "records": {}, "done": False}  # notes of an older researcher: no version, a dropped key
    assert validate_notes(old, State, Path("state.json")).seed == 4
    with pytest.raises(NotesError, match="notes version 2"):
        validate_notes({**old, "version": 2}, State, Path("state.json"))
    with pytest.raises(NotesError, match=r"state\.json is not valid researcher notes"):
        validate_notes({"records": {}}, State, Path("state.json"))


def test_runs_folder_files(tmp_path):
    req = RunRequest(
        view="v", method="vanilla", seeds=[0, 1], splits=["test"], out_dir=str(tmp_path), holdout=0.1
    )
    req.write(tmp_path)
    assert read_request(tmp_path) == req
    assert read_seed(tmp_path, 0) is None  # not finished yet
    seed_file(tmp_path, 0).write_text(
        json.dumps(
            {"seed": 0, "params": {"lr": 0.1}, "seconds": 2.5, "probs": {"e1": 0.25}, "holdout_probs": None}
        )
    )
    out = read_seed(tmp_path, 0)
    assert out is not None and out.probs == {"e1": 0.25} and out.params == {"lr": 0.1}


def test_report_data_is_read_with_its_version(tmp_path):
    with pytest.raises(ReportError, match=r"no report\.json"):
        read_report(tmp_path)
    agent = {
        "name": "a0",
        "direction": "probes",
        "agent_hours": 0.5,
        "submissions": 1,
        "status": "done",
        "stop_reason": None,
        "released_pgr": 0.2,
        "entry_submission_id": 1,
        "method": "vanilla",
        "artifact_sha256": "ab" * 32,
        "public_pgr": None,
        "private_pgr": None,
        "tokens": 0,
        "cost_usd": 0.0,
        "usd_per_agent_hour": 0.0,
    }
    report = {
        "dir": str(tmp_path),
        "testbed": "math-tiny",
        "options": {},
        "same_direction": None,
        "n_agents": 1,
        "weak_private_acc": 0.6,
        "ceiling_private_acc": 0.9,
        "n_private": 100,
        "best_private_pgr": 0.3,
        "best_private_pgr_ci": None,
        "best_agent": "a0",
        "best_method": "vanilla",
        "best_public_selected_private_pgr": 0.3,
        "best_baseline": None,
        "best_baseline_private_pgr": None,
        "best_baseline_private_pgr_ci": None,
        "beats_best_baseline": False,
        "baselines": {},
        "agent_hours": 0.5,
        "submissions": 1,
        "cost_usd": 0.0,
        "tokens": 0,
        "agents": [agent],
        "ranking": "r",
        "ci": "c",
        "audit": None,
        "headline": {"submission_id": 1},
    }
    (tmp_path / "report.json").write_text(json.dumps(report))  # a report from before the version field
    r = read_report(tmp_path)
    assert r.version == 1 and r.agents[0].name == "a0" and r.headline == {"submission_id": 1}
    assert r.to_json()["agents"][0]["method"] == "vanilla"
    (tmp_path / "report.json").write_text(json.dumps({**report, "version": 3}))
    with pytest.raises(ReportError, match="report version 3"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({**report, "n_agents": "one"}))
    with pytest.raises(ReportError, match="n_agents"):
        read_report(tmp_path)
