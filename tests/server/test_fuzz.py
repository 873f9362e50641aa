"""No request produces a 500: junk methods, paths, queries, headers and bodies on every endpoint."""

from __future__ import annotations

import random
import socket

import httpx

JUNK_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"x"',
    b"1e999",
    b'{"a": NaN}',
    b"\xff\xfe\x00",
    b'{"title": 5}',
    b'{"title": "\\ud800", "body": "x"}',
    b'{"name": "' + b"a" * 5000 + b'"}',
    b'{"testbed_id": "x", "example_ids": [1], "probabilities": [null]}',
    b"[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]",
]
PATHS = [
    "/v1/submissions",
    "/v1/submissions/1",
    "/v1/submissions/abc",
    "/v1/submissions/-1",
    "/v1/forum/posts",
    "/v1/forum/posts/1/replies",
    "/v1/forum/posts/0",
    "/v1/artifacts",
    "/v1/artifacts/" + "a" * 64,
    "/v1/artifacts/zz/content",
    "/v1/admin/agents",
    "/v1/admin/agents/x/revoke",
    "/v1/admin/testbeds",
    "/v1/admin/leaderboard",
    "/v1/admin/submissions",
    "/v1/admin/audit",
    "/v1/leaderboard",
    "/v1/testbeds",
    "/v1/testbeds/%00",
    "/v1/me",
    "/nope",
    "/openapi.json",
]
QUERIES = [
    "",
    "?limit=0",
    "?limit=99999999999999999999",
    "?offset=-5",
    "?q=%25%5F",
    "?testbed_id=%00",
    "?tag=" + "x" * 500,
    "?author=%F0%9F%98%80",
    "?limit=abc",
    "?sha256=nothex",
]


def test_no_500_anywhere(harness):
    agent, _ = harness.agent()
    rng = random.Random(0)
    tokens = [agent.token, harness.srv.settings.admin_token, "junk", ""]
    with httpx.Client(base_url=harness.srv.base_url, timeout=10) as http:
        for path in PATHS:
            for method in ("GET", "POST", "PUT", "DELETE"):
                for _ in range(3):
                    token = rng.choice(tokens)
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    headers["content-type"] = rng.choice(
                        ["application/json", "text/plain", "application/x-www-form-urlencoded"]
                    )
                    r = http.request(
                        method, path + rng.choice(QUERIES), content=rng.choice(JUNK_BODIES), headers=headers
                    )
                    assert r.status_code < 500, (method, path, r.status_code, r.text[:200])
                    assert r.headers["content-type"].startswith("application/json") or r.status_code < 300
    raw = (
        b"POST /v1/admin/agents HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n"
        b"Authorization: Bearer " + harness.srv.settings.admin_token.encode() + b"\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", harness.srv.port), timeout=5) as sock:
        sock.sendall(raw)
        status = int(sock.recv(4096).split(b" ", 2)[1])
    assert 400 <= status < 500
