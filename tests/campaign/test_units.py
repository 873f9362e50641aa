"""Budgets, state persistence and agent-hour arithmetic."""

from aar.campaign.budgets import Budgets, agent_over, campaign_over, usage
from aar.campaign.state import AgentState, CampaignState


def test_budgets():
    b = Budgets(
        agent_seconds=60, agent_submissions=3, total_submissions=5, agent_dollars=1.0, grace_seconds=5
    )
    zero = {"tokens": 0, "dollars": 0.0}
    assert agent_over(b, 30, 0, zero) is None
    assert agent_over(b, 66, 0, zero) == "wall-clock budget"
    assert agent_over(b, 10, 0, {"tokens": 0, "dollars": 1.5}) == "dollar budget"
    assert campaign_over(b, 5, 0.0) == "campaign submission budget"
    assert campaign_over(b, 4, 0.0) is None
    timed = Budgets(agent_seconds=60, agent_submissions=3, total_seconds=100)
    assert campaign_over(timed, 0, 0.0, elapsed=99) is None
    assert campaign_over(timed, 0, 0.0, elapsed=100) == "campaign wall-clock budget"


def test_usage_file(tmp_path):
    assert usage(tmp_path) == {"tokens": 0, "dollars": 0.0}
    (tmp_path / "usage.json").write_text('{"tokens": 12, "dollars": 0.5}')
    assert usage(tmp_path) == {"tokens": 12, "dollars": 0.5}
    (tmp_path / "usage.json").write_text("garbage")
    assert usage(tmp_path)["tokens"] == 0


def test_state_roundtrip_and_agent_hours(tmp_path):
    a = AgentState("a", 0, {"name": "x"}, 0, "tok", str(tmp_path), str(tmp_path / "log"))
    a.intervals = [[100.0, 160.0], [1000.0, 1030.0]]
    b = AgentState("b", 1, {"name": "y"}, 1, "tok2", str(tmp_path), str(tmp_path / "log2"))
    b.intervals = [[100.0, 400.0]]
    st = CampaignState(str(tmp_path), "math", {}, {"mode": "local"}, [a, b])
    st.save()
    assert (tmp_path / "campaign.json").stat().st_mode & 0o777 == 0o600
    back = CampaignState.load(tmp_path)
    assert back.agents[0].intervals == a.intervals
    assert back.agent_seconds() == 60 + 30 + 300
    assert abs(back.agent_hours_at(130) - (30 + 30) / 3600) < 1e-9
    assert abs(back.agent_hours_at(1015) - (60 + 15 + 300) / 3600) < 1e-9
