"""Fixtures for the sandbox red-team suite: a host layout with secrets, a scoring-server stand-in.

The layout mimics a campaign host: ground truth and the server's database in places agents must
never see, two agent workspaces owned by two different uids, a public testbed directory, and a
tiny HTTP server that listens on a Unix socket (bind-mounted into sandboxes), on TCP 127.0.0.1
and on an abstract Unix socket (both of which must be unreachable from inside).
"""

from __future__ import annotations

import http.server
import shutil
import socket
import socketserver
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aar.sandbox import Limits, SandboxSpec, check_bubblewrap, prepare_workspace

HERE = Path(__file__).parent
UID_A = 61100
UID_B = 61101
UID_BOMB = 61102


def require_bwrap(uid: int = UID_A) -> None:
    support = check_bubblewrap(uid)
    if not support.available:
        pytest.skip(f"bubblewrap unavailable here: {support.reason}")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"pong"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("uds", 0)


class _TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def http_get_uds(path: str) -> bytes:
    """GET /ping over a Unix socket from the host."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@dataclass
class Host:
    """The fake campaign host."""

    base: Path
    secret: str
    gt_path: Path
    db_path: Path
    socket_path: Path
    tcp_port: int
    abstract_name: str
    testbed: Path
    ws_a: Path
    ws_b: Path
    ws_bomb: Path
    other_ws_file: Path
    home_secret: Path
    audit: list = field(default_factory=list)

    def workspace(self, uid: int) -> Path:
        return {UID_A: self.ws_a, UID_BOMB: self.ws_bomb}[uid]

    def spec(self, limits: Limits | None = None, uid: int = UID_A, env: dict | None = None) -> SandboxSpec:
        return SandboxSpec(
            workspace=self.workspace(uid), readonly=[self.testbed], server_socket=self.socket_path,
            env={"AAR_TOKEN": "agent-a-token", "AAR_SERVER_SOCKET": str(self.socket_path), **(env or {})},
            limits=limits or Limits(memory_mb=256, cpu_seconds=20, wall_seconds=30, max_processes=64,
                                    disk_mb=64),
            uid=uid, gid=uid,
        )

    def server_alive(self) -> bool:
        tcp = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5)
        tcp.close()
        return b"pong" in http_get_uds(str(self.socket_path))


@pytest.fixture(scope="session")
def host(tmp_path_factory) -> Host:
    require_bwrap()
    base = tmp_path_factory.mktemp("sbx")
    secret = f"GROUND-TRUTH-{uuid.uuid4().hex}"
    gt_dir = base / "vault"
    gt_dir.mkdir(mode=0o700)
    gt_path = gt_dir / "labels.jsonl"
    gt_path.write_text(f'{{"id": 1, "label": "{secret}"}}\n')
    gt_path.chmod(0o600)
    server_dir = base / "server"
    server_dir.mkdir(mode=0o700)
    db_path = server_dir / "aar.db"
    con = sqlite3.connect(db_path)
    con.execute("create table vault (id integer, label text)")
    con.execute("insert into vault values (1, ?)", (secret,))
    con.commit()
    con.close()
    sock_dir = base / "sock"
    sock_dir.mkdir()
    socket_path = sock_dir / "aar.sock"
    uds = _UnixHTTPServer(str(socket_path), _Handler)
    socket_path.chmod(0o666)
    tcp = _TCPServer(("127.0.0.1", 0), _Handler)
    abstract_name = f"aar-redteam-{uuid.uuid4().hex[:8]}"
    abstract = _UnixHTTPServer("\0" + abstract_name, _Handler)
    for server in (uds, tcp, abstract):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    testbed = base / "testbed"
    testbed.mkdir()
    (testbed / "unlabelled.jsonl").write_text('{"id": 1, "text": "2+2"}\n')
    agents = base / "agents"
    ws_a = prepare_workspace(agents / "a", UID_A)
    ws_b = prepare_workspace(agents / "b", UID_B)
    ws_bomb = prepare_workspace(agents / "bomb", UID_BOMB)
    other_ws_file = ws_b / "notes.txt"
    other_ws_file.write_text(secret)
    for ws in (ws_a, ws_bomb):
        shutil.copy(HERE / "hostile.py", ws / "hostile.py")
    home_secret = Path.home() / f".aar-redteam-{uuid.uuid4().hex[:8]}"
    home_secret.write_text(secret)
    home_secret.chmod(0o600)
    h = Host(base, secret, gt_path, db_path, socket_path, tcp.server_address[1], abstract_name, testbed,
             ws_a, ws_b, ws_bomb, other_ws_file, home_secret)
    yield h
    for server in (uds, tcp, abstract):
        server.shutdown()
    home_secret.unlink(missing_ok=True)
