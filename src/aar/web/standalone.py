"""The dashboard on its own, read-only, over a campaign's server data: ``aar dashboard DIR`` for a
finished campaign, and the live view that ``aar campaign`` starts next to its running server.

The campaign's SQLite database is opened with ``mode=ro`` and ``PRAGMA query_only``: nothing this
process does can change it (it also writes no audit-log rows; the scoring server's own process keeps
auditing the API). The campaign's own server listens only on a Unix socket for sandboxed agents;
this process gives the browser a TCP port on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, cast

from fastapi import FastAPI
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from aar import __version__
from aar.campaign.state import STATE_FILE, CampaignState
from aar.server.app import AppContext
from aar.server.config import Settings
from aar.server.errors import ApiError
from aar.server.vault import VaultCache
from aar.web.routes import mount
from aar.web.security import SECURITY_HEADERS

DEFAULT_PORT = 8780


class ReadOnlyDatabase:
    """The part of :class:`aar.server.db.Database` the dashboard uses, over a SQLite file opened
    read-only; any write raises."""

    is_sqlite = True

    def __init__(self, path: Path) -> None:
        """Open ``path`` (which must exist) read-only."""
        path = Path(path).absolute()
        if not path.is_file():
            raise FileNotFoundError(f"no server database at {path}")
        self.url = f"sqlite:///file:{path}?mode=ro&uri=true"
        self.engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})
        self.write_engine = None

        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn: Connection) -> None:  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    def _refuse(self, *_a: object, **_k: object) -> NoReturn:
        raise ApiError(405, "read_only", "this dashboard is read-only")

    write = write_conn = write_lock = _refuse

    def sql(self, statement: str) -> str:
        """SQLite takes ``:name`` parameters as written."""
        return statement

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def dashboard_app(campaign_dir: str | Path) -> FastAPI:
    """A FastAPI app serving only the dashboard, read-only, over the local server of a campaign."""
    d = Path(campaign_dir).absolute()
    state = CampaignState.load(d)
    if state.server.get("mode") != "local":
        raise ValueError(
            f"{d} ran against the server {state.server.get('url')}: open that server's /dashboard/ page"
        )
    data_dir = d / "server"
    db = ReadOnlyDatabase(data_dir / "server.db")
    settings = Settings(
        data_dir=data_dir,
        admin_token=state.server["admin_token"],
        budget_per_hour=None,  # the campaign's server runs with unlimited defaults (per-agent budgets)
        budget_total=None,
        auto_migrate=False,
    )
    app = FastAPI(title="aar dashboard", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = AppContext(settings, db, VaultCache(db, data_dir))  # type: ignore[arg-type]
    mount(app, d)
    return app


def free_port(host: str, preferred: int) -> int:
    """``preferred`` when it is free on ``host``, else a port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return cast(int, s.getsockname()[1])
    raise OSError(f"no free TCP port on {host}")


def login_hint(campaign_dir: str | Path) -> str:
    """Where the admin token of a campaign is (it is not printed: terminals get logged)."""
    return (
        f"log in with the admin token: field server.admin_token of {Path(campaign_dir) / 'campaign.json'} "
        "(or an agent's token, agents[i].token, to see what that agent sees)"
    )


class PendingDashboard:
    """ASGI app for a campaign still being set up: a page that reloads itself (a meta refresh, no
    script) until ``campaign.json`` exists, then the read-only dashboard."""

    def __init__(self, campaign_dir: str | Path) -> None:
        """Wait for the campaign in ``campaign_dir``."""
        self.dir = Path(campaign_dir).absolute()
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the dashboard once the campaign exists, the waiting page before."""
        if self.app is None and (self.dir / STATE_FILE).is_file():
            with contextlib.suppress(OSError, ValueError):
                self.app = dashboard_app(self.dir)
        if self.app is not None:
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body = (
            b"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='3'>"
            b"<title>aar dashboard</title></head><body><p>The campaign is being set up (testbed, baselines, "
            b"server); this page reloads until it starts.</p></body></html>"
        )
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        headers.append((b"cache-control", b"no-store"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class LiveDashboard:
    """``aar dashboard DIR --wait`` as a child process of a running campaign (stopped with it)."""

    def __init__(self, proc: subprocess.Popen[bytes] | None, url: str | None) -> None:
        """A started dashboard (or none, when it could not start)."""
        self.proc, self.url = proc, url

    def stop(self) -> None:
        """End the dashboard process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def start_live(
    campaign_dir: str | Path, server_url: str | None = None, say: Callable[[str], None] = print
) -> LiveDashboard:
    """Start the dashboard of a campaign (new or resumed) and say its URL; never fails the campaign.

    It serves as soon as it starts (a waiting page while the campaign is set up). A campaign attached
    to an ``http`` server points to that server's own ``/dashboard/`` instead.
    """
    d = Path(campaign_dir).absolute()
    if server_url is None and (d / STATE_FILE).is_file():  # a resumed campaign: where its server is
        with contextlib.suppress(OSError, ValueError, TypeError):
            srv = CampaignState.load(d).server
            server_url = srv.get("url") if srv.get("mode") != "local" else None
    if server_url:
        if server_url.startswith("http"):
            say(f"dashboard: {server_url.rstrip('/')}/dashboard/ (log in with the server's admin token)")
        return LiveDashboard(None, None)
    host = "127.0.0.1"
    try:
        port = free_port(host, int(os.environ.get("AAR_DASHBOARD_PORT", DEFAULT_PORT)))
        d.mkdir(parents=True, exist_ok=True)
        out = open(d / "dashboard.log", "ab")  # noqa: SIM115 - handed to the child, closed below
    except (OSError, ValueError) as e:
        say(f"dashboard not started: {e}")
        return LiveDashboard(None, None)
    argv = [
        sys.executable,
        "-m",
        "aar.cli",
        "dashboard",
        str(d),
        "--host",
        host,
        "--port",
        str(port),
        "--wait",
        "--quiet",
    ]
    with out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://{host}:{port}/dashboard/"
    say(f"dashboard: {url} ({login_hint(d)})")
    return LiveDashboard(proc, url)
