"""The OpenAPI document is complete: bearer auth on every operation, every answer a route can give
declared (with the error envelope), and the enforced parameter limits stated. Checked statically
against the routes' code and dynamically by walking the document with junk requests."""

from __future__ import annotations

import inspect
import random
import re

import httpx
from fastapi.routing import APIRoute

from aar.server.auth import require_admin, require_agent

from .helpers import ADMIN_TOKEN

ENVELOPE = "#/components/schemas/ErrorEnvelope"
METHODS = ("get", "post", "put", "patch", "delete")


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def _api_routes(routes):
    """The APIRoutes under ``routes``, also inside included routers (kept lazily by FastAPI)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _doc(harness) -> dict:
    with httpx.Client(base_url=harness.srv.base_url, timeout=30) as http:
        assert http.get("/openapi.json").status_code == 401  # the document itself needs a token
        r = http.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 200
        return r.json()


def test_document_declares_auth_errors_and_limits(harness):
    doc = _doc(harness)
    scheme = doc["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["properties"]["error"]["$ref"] == "#/components/schemas/ErrorBody"
    ops = list(_operations(doc))
    assert len(ops) >= 20
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        assert op.get("security") == [{"HTTPBearer": []}], where
        responses = op["responses"]
        for status in ("400", "401", "413", "422", "503"):
            assert status in responses, (where, status)
        for status, entry in responses.items():
            if int(status) >= 400:
                schema = entry["content"]["application/json"]["schema"]
                assert schema == {"$ref": ENVELOPE}, (where, status)
        assert any(200 <= int(s) < 300 for s in responses), where
        if path.startswith("/v1/admin"):
            assert "403" in responses, where
        for param in op.get("parameters", []):
            schema = param["schema"]
            if param["in"] == "path" and schema.get("type") == "integer":
                assert schema["minimum"] == 1 and schema["maximum"] == 2**31 - 1, (where, param)
                assert "404" in responses, where
            if param["name"] == "limit":
                assert schema["minimum"] == 1 and schema["maximum"] == 200, where
            if param["name"] == "offset":
                assert schema["minimum"] == 0 and "maximum" in schema, where
            if param["in"] == "path" and param["name"] == "sha256":
                assert schema["pattern"] == "^[0-9a-f]{64}$", where
            variants = [schema, *schema.get("anyOf", [])]
            if any(v.get("type") == "string" for v in variants):
                assert any("maxLength" in v or "pattern" in v for v in variants), (where, param["name"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_statuses_raised_in_route_code_are_declared(harness):
    """Every ``ApiError(status, ...)`` in a route's own code, and 403 of role dependencies, is declared."""
    doc = _doc(harness)
    app = harness.srv.server.config.app
    checked = 0
    for route in _api_routes(app.routes):
        if not route.include_in_schema:
            continue
        source = inspect.getsource(route.endpoint)
        raised = {int(s) for s in re.findall(r"ApiError\(\s*(\d{3})", source)}
        calls = {d.call for d in route.dependant.dependencies}
        if calls & {require_admin, require_agent} or "require_agent(" in source:
            raised.add(403)
        path = route.path_format
        for method in route.methods:
            responses = doc["paths"][path][method.lower()]["responses"]
            missing = {s for s in raised if str(s) not in responses}
            assert not missing, (method, path, missing)
            checked += 1
    assert checked >= 20


def _fill(path: str, op: dict, rng: random.Random) -> str:
    for param in op.get("parameters", []):
        if param["in"] != "path":
            continue
        schema = param["schema"]
        if schema.get("type") == "integer":
            value = rng.choice(["1", "0", "-3", "2147483647", "2147483648", "99999999999999999999", "x"])
        elif param["name"] == "sha256":
            value = rng.choice(["a" * 64, "0", "zz", "A" * 64])
        else:
            value = rng.choice(["x", "nope", "admin", "a" * 80])
        path = path.replace("{" + param["name"] + "}", value)
    return path


def test_walk_every_operation_answers_only_declared_statuses(harness):
    doc = _doc(harness)
    agent, _ = harness.agent()
    rng = random.Random(14)
    tokens = [None, "junk-token", agent.token, ADMIN_TOKEN]
    bodies = [b"", b"{", b"{}", b"[]", b'{"name": 1}', b'{"title": "t", "body": "b"}', b"\xff"]
    queries = ["", "?limit=0", "?limit=201", "?offset=-1", "?limit=abc", "?testbed_id=" + "x" * 300]
    seen: dict[str, set[int]] = {}
    with httpx.Client(base_url=harness.srv.base_url, timeout=30) as http:
        for path, method, op in _operations(doc):
            where = f"{method.upper()} {path}"
            for i in range(24):
                token = tokens[i % len(tokens)]
                headers = {"content-type": "application/json"}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                content = rng.choice(bodies) if method != "get" else b""
                if i == 23:  # over the body limit: refused before routing
                    content = b"x" * (harness.srv.settings.max_json_bytes + 1)
                url = _fill(path, op, rng) + rng.choice(queries)
                r = http.request(method.upper(), url, content=content, headers=headers)
                seen.setdefault(where, set()).add(r.status_code)
                assert str(r.status_code) in op["responses"], (where, url, r.status_code, r.text[:200])
                if r.status_code >= 400:
                    assert set(r.json()) == {"error"} and r.json()["error"]["code"], (where, r.text[:200])
    assert all(401 in statuses for statuses in seen.values()), seen
