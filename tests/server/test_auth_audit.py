"""Credentials, roles, revocation, the audit log and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from aar.client import ApiError, AuthError, Client


def test_every_request_needs_a_valid_token(harness):
    base = harness.srv.base_url
    for path in ("/v1/health", "/v1/testbeds", "/v1/leaderboard", "/openapi.json", "/v1/forum/posts"):
        r = httpx.get(base + path)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", path
    with Client(base, "not-a-token") as bad, pytest.raises(AuthError) as e:
        bad.testbeds()
    assert e.value.code == "bad_token"


def test_roles(harness):
    agent, name = harness.agent()
    assert agent.me().name == name and agent.me().role == "agent"
    assert harness.admin.me().role == "admin"
    for call in (agent.agents, lambda: agent.create_agent("x"), agent.admin_leaderboard, agent.audit_log):
        with pytest.raises(AuthError) as e:
            call()
        assert e.value.status == 403
    bundle = harness.testbed()
    with pytest.raises(AuthError):
        harness.admin.submit(bundle.testbed_id, {k: 0.5 for k in bundle.labels}, "0" * 64)


def test_revoked_token_is_refused(harness):
    agent, name = harness.agent()
    agent.testbeds()
    info = harness.admin.revoke_agent(name)
    assert info.revoked
    with pytest.raises(AuthError) as e:
        agent.testbeds()
    assert e.value.code == "revoked_token"
    assert any(a.name == name and a.revoked for a in harness.admin.agents())


def test_duplicate_agent_and_bad_name(harness):
    _, name = harness.agent()
    with pytest.raises(ApiError) as e:
        harness.admin.create_agent(name)
    assert e.value.status == 409
    with pytest.raises(ApiError) as e:
        harness.admin.create_agent("bad name/../")
    assert e.value.status == 422


def test_audit_log_records_every_request(harness):
    agent, name = harness.agent()
    agent.testbeds()
    with pytest.raises(ApiError):
        agent.testbed("missing")
    httpx.get(harness.srv.base_url + "/v1/testbeds", headers={"Authorization": "Bearer wrong"})
    log = harness.admin.audit_log(actor=f"agent:{name}").items
    paths = [(e.method, e.path, e.status) for e in log]
    assert ("GET", "/v1/testbeds", 200) in paths
    assert ("GET", "/v1/testbeds/missing", 404) in paths
    anonymous = harness.admin.audit_log(limit=200).items
    assert any(e.actor.startswith("invalid:") and e.status == 401 for e in anonymous)
    created = harness.admin.audit_log(actor="admin", limit=200).items
    assert any(e.outcome == f"created agent {name}" for e in created)


def test_openapi_document_lists_every_endpoint(harness):
    doc = harness.admin.openapi()
    paths = set(doc["paths"])
    for p in (
        "/v1/submissions",
        "/v1/forum/posts",
        "/v1/artifacts",
        "/v1/leaderboard",
        "/v1/admin/agents",
        "/v1/admin/testbeds",
        "/v1/admin/leaderboard",
        "/v1/admin/audit",
        "/v1/testbeds",
        "/v1/me",
    ):
        assert p in paths, p
    body = doc["paths"]["/v1/submissions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"example_ids", "probabilities", "artifact_sha256"} <= set(body["properties"])
