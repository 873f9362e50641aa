"""The connection to a campaign's server shared by the campaign, aar report and aar audit."""

from __future__ import annotations

from aar.campaign.connection import CampaignServer
from aar.campaign.state import CampaignState


def _attached(d, url: str) -> CampaignState:
    server = {"mode": "attach", "url": url, "socket": str(d / "server.sock"), "admin_token": "x" * 20}
    return CampaignState(dir=str(d), testbed="t", options={}, server=server, agents=[])


def test_only_the_running_campaign_relays_the_agents_socket(tmp_path):
    state = _attached(tmp_path, "http://127.0.0.1:9")
    report = CampaignServer(state)  # aar report / aar audit
    with report.connect():
        pass
    assert report.relay is None and not (tmp_path / "server.sock").exists()
    report.close()

    campaign = CampaignServer(state, relay_for_agents=True)
    with campaign.connect():
        assert campaign.relay is not None and (tmp_path / "server.sock").is_socket()
    campaign.close_relay()  # the agents are gone: the socket goes, and later clients do not bring it back
    assert not (tmp_path / "server.sock").exists()
    with campaign.connect():
        assert campaign.relay is None
    campaign.close()


def test_a_unix_url_is_used_as_the_agents_socket(tmp_path):
    state = _attached(tmp_path, f"unix:{tmp_path / 'other.sock'}")
    conn = CampaignServer(state, relay_for_agents=True)
    with conn.connect():
        assert conn.relay is None and state.server["socket"] == str(tmp_path / "other.sock")
    conn.close()
