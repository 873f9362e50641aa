"""The connection to a campaign's scoring server, shared by everything that acts on a campaign
directory: the running campaign, ``aar report DIR`` and ``aar audit DIR``.

A local campaign server (``state.server["mode"] == "local"``) is started on first use if none was
handed in; an attached one is reached by URL with the campaign's admin token. Only the running
campaign asks for the socket relay that sandboxed agents need to reach an attached TCP server: a
report or an audit must not re-bind the socket a running campaign's agents are using.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from aar.campaign.server import LocalServer, SocketRelay, attached_admin
from aar.campaign.state import CampaignState
from aar.client import Client


class CampaignServer:
    """Admin clients for one campaign's server; :meth:`close` stops what this object started."""

    def __init__(
        self, state: CampaignState, server: LocalServer | None = None, relay_for_agents: bool = False
    ) -> None:
        """Connect to ``state``'s server; ``server`` is an already started local one (else one is
        started on first :meth:`connect`); ``relay_for_agents`` also relays the campaign's Unix socket
        to an attached TCP server."""
        self.state = state
        self.server = server
        self.relay_for_agents = relay_for_agents
        self.relay: SocketRelay | None = None

    def connect(self) -> Client:
        """A new admin client (use it as a context manager)."""
        srv = self.state.server
        if srv["mode"] == "local":
            if self.server is None:
                tcp = (srv["host"], int(srv["port"])) if srv.get("port") else None  # Ray: nodes reach it
                server = LocalServer(
                    Path(self.state.dir), srv["admin_token"], db_url=srv.get("db_url"), tcp=tcp
                )
                self.server = server.adopt(int(srv.get("pid") or 0)) or server.start()
                if tcp:  # a TCP server outlives a killed supervisor; the next one adopts it by pid
                    srv["pid"] = str(self.server.pid)
            return self.server.admin()
        url = srv["url"]
        if url.startswith("unix:"):
            srv["socket"] = url[len("unix:") :]
        elif self.relay_for_agents and self.relay is None:
            u = urlparse(url)
            self.relay = SocketRelay(Path(srv["socket"]), u.hostname or "127.0.0.1", u.port or 80)
        return attached_admin(url, srv["admin_token"])

    def close_relay(self) -> None:
        """Stop relaying the agents' socket (the agents are gone; later clients are the admin's own)."""
        self.relay_for_agents = False
        if self.relay is not None:
            self.relay.close()
            self.relay = None

    def close(self) -> None:
        """Stop the relay and the local server this object started or was handed."""
        self.close_relay()
        if self.server is not None:
            self.server.stop()
            self.server = None

