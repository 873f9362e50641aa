"""The campaign's scoring server: a local one whose data dir lives in the campaign directory, or an
attached one (``--server URL`` with an admin token). Agents always reach it through a Unix socket;
for a TCP server the campaign relays that socket to it (:class:`SocketRelay`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from aar.client import ApiError, Client, connect


class ServerError(RuntimeError):
    """The campaign's server could not be started or reached."""


class LocalServer:
    """``aar serve --uds DIR/server.sock`` on the data dir ``DIR/server``, as a child process group.

    With ``tcp=(host, port)`` it listens there instead (a Ray campaign's nodes reach it over the
    network), and with ``db_url`` its records live in that database (PostgreSQL for a cluster)
    rather than in SQLite under the data dir. A TCP server does not die with the supervisor: agents on
    the cluster keep being scored while a killed supervisor is restarted (``--resume``), which
    takes the running server over (:meth:`adopt`) instead of starting another."""

    def __init__(
        self, directory: Path, admin_token: str, db_url: str | None = None, tcp: tuple[str, int] | None = None
    ) -> None:
        """Server for campaign directory ``directory``."""
        self.dir = Path(directory)
        self.data_dir = self.dir / "server"
        self.socket = self.dir / "server.sock"
        self.token = admin_token
        self.db_url, self.tcp = db_url, tcp
        self.proc: subprocess.Popen[bytes] | None = None
        self.adopted: int | None = None  # the pid of a running server taken over from a killed supervisor
        if len(str(self.socket)) > 100:
            raise ServerError(f"campaign directory path too long for a Unix socket: {self.socket}")

    def start(self, timeout: float = 60.0) -> LocalServer:
        """Start it (removing a stale socket) and wait until it answers."""
        from aar.agents.procs import start_group

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        listen = ["--uds", str(self.socket)]
        if self.tcp:
            listen = ["--host", self.tcp[0], "--port", str(self.tcp[1])]
        argv = [
            sys.executable,
            "-m",
            "aar.cli",
            "serve",
            *listen,
            *(["--db-url", self.db_url] if self.db_url else []),
            "--data-dir",
            str(self.data_dir),
            "--budget-per-hour",
            "-1",
            "--budget-total",
            "-1",
        ]
        env = {**os.environ, "AAR_ADMIN_TOKEN": self.token}
        if self.tcp:  # its own session, outliving this process (see the class docstring)
            with open(self.data_dir / "server.log", "ab") as log:
                self.proc = proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env, close_fds=True,
                )
        else:
            self.proc = proc = start_group(argv, self.data_dir / "server.log", env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(f"server exited; see {self.data_dir / 'server.log'}")
            if self.tcp or self.socket.exists():
                try:
                    with self.admin() as c:
                        c.health()
                    if not self.tcp:
                        os.chmod(self.socket, 0o666)  # sandboxed agents run as other uids
                    return self
                except (OSError, ApiError, Exception):
                    pass
            time.sleep(0.2)
        self.stop()
        raise ServerError(f"server did not answer within {timeout:.0f}s; see {self.data_dir / 'server.log'}")

    @property
    def pid(self) -> int | None:
        """The server's process id (started here or adopted), None when it is not running."""
        return self.proc.pid if self.proc is not None else self.adopted

    def adopt(self, pid: int | None) -> LocalServer | None:
        """Take over the TCP server ``pid`` left by a killed supervisor if it still answers as this
        campaign's server (its admin token works); None otherwise (then :meth:`start` one)."""
        if not self.tcp or not pid or not _is_server_process(pid):
            return None
        try:
            with self.admin() as c:
                c.admin_leaderboard()  # an admin-only call: it is this campaign's server
        except (OSError, ApiError, Exception):
            return None
        self.adopted = pid
        return self

    @property
    def url(self) -> str:
        """Where it listens: ``http://host:port`` or ``unix:/path``."""
        return f"http://{self.tcp[0]}:{self.tcp[1]}" if self.tcp else f"unix:{self.socket}"

    def admin(self) -> Client:
        """An admin client over the socket (or TCP)."""
        return connect(self.url, self.token)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then the whole group)."""
        if self.proc is not None:
            from aar.agents.procs import kill_group

            kill_group(self.proc, grace=5.0)
            self.proc = None
        elif self.adopted is not None and _is_server_process(self.adopted):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.adopted, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _is_server_process(self.adopted):
                    time.sleep(0.2)
                os.killpg(self.adopted, signal.SIGKILL)
            self.adopted = None


def _is_server_process(pid: int) -> bool:
    """Whether ``pid`` is alive and an ``aar serve`` process (not a pid reused by something else)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and b"aar.cli" in cmd and b"serve" in cmd


def free_port(host: str) -> int:
    """A TCP port free on ``host`` now (the campaign keeps it across resumes: nodes relay to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def new_admin_token() -> str:
    """A fresh admin token for a local campaign server."""
    return "aar_admin_" + secrets.token_urlsafe(32)


class SocketRelay:
    """A Unix socket that forwards every connection to a TCP server (for sandboxed agents)."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        """Relay ``path`` to ``host:port``."""
        self.path, self.host, self.port = Path(path), host, port
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o666)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.port), timeout=30)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        """Stop accepting and remove the socket file."""
        self.sock.close()
        if self.path.exists():
            self.path.unlink()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def attached_admin(url: str, token: str) -> Client:
    """An admin client for an attached server: ``http://host:port`` or ``unix:/path/to.sock``."""
    return connect(url, token)
