"""The scoring hot path answers exactly as the general way: the quick body parse against the schema
plus ``canonical_probs``, and ``POST /v1/submissions`` served ahead of FastAPI against the same route
served through FastAPI (status, body, audit entry), on a real server."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from aar.server.app import create_app
from aar.server.deps import parse_model
from aar.server.errors import ApiError
from aar.server.routers.submissions import parse_submission
from aar.server.schemas import SubmissionIn
from aar.server.scoring import canonical_probs
from aar.server.vault import VaultCache, register_bundle

from .conftest import settings_for
from .helpers import ADMIN_TOKEN, ServerThread, make_bundle

SHA = "ab" * 32


def _outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    """What a parse gives: the submission and probabilities, or the error it answers with."""
    try:
        sub, probs = fn()
    except ApiError as e:
        return ("error", e.status, e.code, e.message, e.details)
    return ("ok", sub.model_dump(), np.asarray(probs).tolist())


def _bodies(testbed_id: str, ids: list[str]) -> list[bytes]:
    """Valid and invalid submission bodies: every rule of the schema and of canonical_probs."""
    rng = np.random.default_rng(0)
    probs = rng.random(len(ids)).round(6).tolist()
    base = {"testbed_id": testbed_id, "example_ids": ids, "probabilities": probs, "artifact_sha256": SHA}

    def body(**changes: Any) -> bytes:
        return json.dumps({**base, **changes}).encode()

    swapped = [ids[1], ids[0], *ids[2:]]
    out = [
        body(),
        body(description="a\nb", method="m.1", seed=7),
        body(seed=None),
        body(example_ids=swapped, probabilities=[probs[1], probs[0], *probs[2:]]),
        body(probabilities=[0, 1, *probs[2:]]),  # JSON integers
        body(probabilities=[True, *probs[1:]]),
        body(probabilities=["0.5", *probs[1:]]),
        body(probabilities=[None, *probs[1:]]),
        body(probabilities=[1.5, *probs[1:]]),
        body(probabilities=[-0.0, *probs[1:]]),
        body(probabilities=probs[:-1]),
        body(example_ids=ids[:-1], probabilities=probs[:-1]),
        body(example_ids=[ids[0], *ids[:-1]]),
        body(example_ids=["nope", *ids[1:]]),
        body(example_ids=[ids[0] + "\x01", *ids[1:]]),
        body(example_ids=[1, *ids[1:]]),
        body(testbed_id="unknown-testbed"),
        body(testbed_id=""),
        body(testbed_id="bad id"),
        body(artifact_sha256=SHA.upper()),
        body(artifact_sha256=SHA + "\n"),
        body(description="x" * 2001),
        body(description="bell\x07"),
        body(method="no spaces"),
        body(seed=True),
        body(seed=-1),
        body(seed=2**31),
        body(seed=1.0),
        body(extra=1),
        json.dumps({k: v for k, v in base.items() if k != "artifact_sha256"}).encode(),
        json.dumps(base).replace("1", "NaN", 1).encode(),
        json.dumps(base).encode("utf-16"),
        b'{"testbed_id": "other", ' + body()[1:],  # a duplicate key
        body()[:-1],
        b"[]",
        b"",
    ]
    return out


def test_quick_parse_answers_as_the_schema(tmp_path: Path) -> None:
    """Every body gets from parse_submission what the schema, the vault and canonical_probs give."""
    bundle = make_bundle(n=50, seed=3)
    register_bundle(tmp_path, bundle)
    app = create_app(settings_for(tmp_path, None))
    vault: VaultCache = app.state.ctx.vault
    ids = sorted(bundle.labels)

    def general(raw: bytes) -> tuple[SubmissionIn, np.ndarray]:
        sub = parse_model(SubmissionIn, raw)
        return sub, canonical_probs(vault.get(sub.testbed_id), sub)

    bodies = _bodies(bundle.testbed_id, ids)
    kinds = set()
    for raw in bodies:
        expected = _outcome(lambda raw=raw: general(raw))
        got = _outcome(lambda raw=raw: parse_submission(vault, raw)[::2])
        assert got == expected, raw[:200]
        kinds.add(expected[0] if expected[0] == "ok" else expected[1])
    assert kinds >= {"ok", 400, 404, 422}  # the list covers acceptance and each kind of refusal
    app.state.ctx.db.dispose()


def test_ids_with_a_control_character_are_not_taken_as_checked(tmp_path: Path) -> None:
    """A testbed whose stored ids would fail the text check never lets a body skip it."""
    bundle = make_bundle(n=50, seed=4)
    register_bundle(tmp_path, bundle)
    app = create_app(settings_for(tmp_path, None))
    arrays = app.state.ctx.vault.get(bundle.testbed_id)
    assert arrays.ids_are_lines
    assert not dataclasses.replace(arrays, ids=[*arrays.ids[:-1], "bad\x1b[2J"]).ids_are_lines
    app.state.ctx.db.dispose()


def _exchange(base: str, token: str, sha: str, testbed_id: str, ids: list[str]) -> list[Any]:
    """Requests that reach the submissions route, and what comes back (no row id or time)."""
    good = {
        "testbed_id": testbed_id,
        "example_ids": ids,
        "probabilities": [0.75] * len(ids),
        "artifact_sha256": sha,
    }
    auth = {"Authorization": f"Bearer {token}"}
    cases: list[tuple[dict[str, str], bytes]] = [
        (auth, json.dumps(good).encode()),
        (auth, json.dumps({**good, "artifact_sha256": SHA}).encode()),  # no such artifact: 404
        (auth, json.dumps({**good, "probabilities": [2.0] * len(ids)}).encode()),
        (auth, b"{not json"),
        (auth, json.dumps({**good, "seed": "1"}).encode()),
        ({}, json.dumps(good).encode()),  # no token: 401
        ({"Authorization": "Bearer aar_wrong"}, json.dumps(good).encode()),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, json.dumps(good).encode()),  # admin: 403
        (auth, b" " * 1_000_001),  # over the body limit (settings_for): 413 before parsing
    ]
    answers = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for headers, content in cases:
            r = http.post("/v1/submissions", content=content, headers=headers)
            body = r.json()
            if r.status_code == 201:
                # each server draws its own halves: the released figures differ, not the fields
                body = {k: sorted(v) if k == "public" else v for k, v in body.items()}
                body = {k: v for k, v in body.items() if k not in ("id", "created_at", "budget")}
            answers.append((r.status_code, body, r.headers.get("www-authenticate")))
    return answers


def test_hot_path_answers_and_audits_as_fastapi(tmp_path: Path) -> None:
    """The same requests get the same answers and audit entries with the hot path on and off."""
    results = {}
    for label, use_hot in (("hot", True), ("fastapi", False)):
        data_dir = tmp_path / label
        data_dir.mkdir()
        bundle = make_bundle("tb-hot", n=40, seed=5)
        register_bundle(data_dir, bundle)
        srv = ServerThread(settings_for(data_dir, None))
        app = srv.server.config.app
        served = []
        if use_hot:
            inner = app.hot

            async def counted(
                scope: Any, receive: Any, send: Any, inner: Any = inner, served: list[str] = served
            ) -> None:
                served.append(scope["path"])
                await inner(scope, receive, send)

            app.hot = counted
        else:
            app.hot = None
        srv.start()
        try:
            with srv.client() as admin:
                agent = admin.create_agent("hot")
                with srv.client(agent.token) as c:
                    sha = c.upload_artifact(b"code", name="m.py").sha256
                answers = _exchange(srv.base_url, agent.token, sha, bundle.testbed_id, sorted(bundle.labels))
                log = admin.audit_log(limit=50).items
        finally:
            srv.stop()
        entries = [(e.actor, e.status, e.outcome.split(" ")[0]) for e in log if e.path == "/v1/submissions"]
        results[label] = (answers, sorted(entries))
        assert len(served) == (len(answers) if use_hot else 0)
    assert results["hot"][0] == results["fastapi"][0]
    assert results["hot"][1] == results["fastapi"][1]
    statuses = [a[0] for a in results["hot"][0]]
    assert statuses == [201, 404, 422, 400, 422, 401, 401, 403, 413]
