"""Typed Python client of the scoring server, used by agents, campaigns and tests.

    from aar.client import Client
    c = Client("http://127.0.0.1:8765", token)            # TCP
    c = Client.over_unix_socket("/run/aar.sock", token)    # Unix domain socket
    receipt = c.submit("math", {"ex1": 0.9, ...}, artifact_sha256=c.upload_artifact(blob).sha256)

Every error answer raises :class:`ApiError` (or a subclass) carrying the server's code and message.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from aar.server.errors import ApiError as ApiError  # re-exported: callers catch aar.client.ApiError
from aar.server.schemas import (
    AdminTestbedBoard,
    AgentCreated,
    AgentInfo,
    ArtifactInfo,
    AuditRecord,
    AuditView,
    EvaluateOut,
    Leaderboard,
    Me,
    Page,
    PostView,
    SubmissionAdminView,
    SubmissionReceipt,
    SubmissionView,
    TestbedAdminInfo,
    TestbedInfo,
    Thread,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

DEFAULT_TIMEOUT_S = 120.0  # scoring a submission (bootstrap CIs) can take a while on a loaded server
DEFAULT_URL = "http://127.0.0.1:8765"  # ``aar serve``'s default address


class AuthError(ApiError):
    """401 or 403: bad, revoked or insufficient token."""


class NotFound(ApiError):
    """404: unknown testbed, artifact, submission, post or agent."""


class BudgetExhausted(ApiError):
    """429: the submission budget is used up; ``resets_at`` is None for the total budget."""

    @property
    def resets_at(self) -> float | None:
        """Epoch seconds when a submission slot frees up (None: never)."""
        return self.details.get("resets_at")


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        err = resp.json()["error"]
        code, message, details = err["code"], err["message"], err.get("details", {})
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", resp.text[:200], {}
    cls = {401: AuthError, 403: AuthError, 404: NotFound, 429: BudgetExhausted}.get(
        resp.status_code, ApiError
    )
    raise cls(resp.status_code, code, message, details, resp.headers)


class Client:
    """Synchronous client; one instance keeps one connection pool. Use as a context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Client for the server at ``base_url`` authenticating with ``token``."""
        self.token = token
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}"},
        )

    @classmethod
    def over_unix_socket(cls, path: str | Path, token: str, timeout: float = DEFAULT_TIMEOUT_S) -> Client:
        """Client for a server listening on the Unix domain socket ``path``."""
        return cls("http://aar", token, timeout, transport=httpx.HTTPTransport(uds=str(path)))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send a request and raise :class:`ApiError` on an error answer."""
        resp = self._http.request(method, path, **kw)
        _raise_for(resp)
        return resp

    def _get(self, model: type[T], path: str, **params: Any) -> T:
        params = {k: v for k, v in params.items() if v is not None}
        return TypeAdapter(model).validate_json(self.request("GET", path, params=params).content)

    def _post(self, model: type[T], path: str, body: Any = None, **kw: Any) -> T:
        if body is not None:
            kw["content"] = json.dumps(body, allow_nan=True).encode()
            kw.setdefault("headers", {})["content-type"] = "application/json"
        return TypeAdapter(model).validate_json(self.request("POST", path, **kw).content)

    # -- identity, testbeds -----------------------------------------------------------------------
    def me(self) -> Me:
        """Who this token is, with the submission budget for agents."""
        return self._get(Me, "/v1/me")

    def health(self) -> dict[str, Any]:
        """Liveness check with a database round trip."""
        return self._get(dict, "/v1/health")

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        return self._get(dict, "/openapi.json")

    def testbeds(self) -> list[TestbedInfo]:
        """Registered testbeds (id, description, number of test examples)."""
        return self._get(list[TestbedInfo], "/v1/testbeds")

    def testbed(self, testbed_id: str) -> TestbedInfo:
        """One testbed."""
        return self._get(TestbedInfo, f"/v1/testbeds/{testbed_id}")

    # -- submissions ------------------------------------------------------------------------------
    def submit(
        self,
        testbed_id: str,
        predictions: Mapping[str, float],
        artifact_sha256: str,
        description: str = "",
        method: str = "default",
        seed: int | None = None,
    ) -> SubmissionReceipt:
        """Submit P(label=1) for every test id; returns the Ladder-released public figure."""
        ids = sorted(predictions)
        body = {
            "testbed_id": testbed_id,
            "example_ids": ids,
            "probabilities": [predictions[i] for i in ids],
            "artifact_sha256": artifact_sha256,
            "description": description,
            "method": method,
            "seed": seed,
        }
        return self._post(SubmissionReceipt, "/v1/submissions", body)

    def submissions(
        self, testbed_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[SubmissionView]:
        """This agent's own submissions, newest first."""
        return self._get(
            Page[SubmissionView], "/v1/submissions", testbed_id=testbed_id, limit=limit, offset=offset
        )

    def submission(self, submission_id: int) -> SubmissionView:
        """One submission as agents see it."""
        return self._get(SubmissionView, f"/v1/submissions/{submission_id}")

    def leaderboard(self, testbed_id: str | None = None) -> Leaderboard:
        """The public leaderboard."""
        return self._get(Leaderboard, "/v1/leaderboard", testbed_id=testbed_id)

    # -- forum ------------------------------------------------------------------------------------
    def post(
        self,
        title: str,
        body: str,
        tags: list[str] | None = None,
        submission_ids: list[int] | None = None,
        artifact_hashes: list[str] | None = None,
    ) -> PostView:
        """Create a forum post."""
        return self._post(
            PostView,
            "/v1/forum/posts",
            {
                "title": title,
                "body": body,
                "tags": tags or [],
                "submission_ids": submission_ids or [],
                "artifact_hashes": artifact_hashes or [],
            },
        )

    def reply(
        self,
        post_id: int,
        body: str,
        submission_ids: list[int] | None = None,
        artifact_hashes: list[str] | None = None,
    ) -> PostView:
        """Reply to a post."""
        return self._post(
            PostView,
            f"/v1/forum/posts/{post_id}/replies",
            {"body": body, "submission_ids": submission_ids or [], "artifact_hashes": artifact_hashes or []},
        )

    def posts(
        self,
        q: str | None = None,
        tag: str | None = None,
        author: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> Page[PostView]:
        """Search top-level posts by text, tag and author, newest first."""
        return self._get(
            Page[PostView], "/v1/forum/posts", q=q, tag=tag, author=author, limit=limit, offset=offset
        )

    def thread(self, post_id: int) -> Thread:
        """A post with its replies."""
        return self._get(Thread, f"/v1/forum/posts/{post_id}")

    # -- code store -------------------------------------------------------------------------------
    def upload_artifact(self, data: bytes, name: str = "artifact.bin", kind: str = "code") -> ArtifactInfo:
        """Store bytes in the code store (idempotent); the hash is checked by the server."""
        sha = hashlib.sha256(data).hexdigest()
        return self._post(
            ArtifactInfo,
            "/v1/artifacts",
            content=data,
            params={"name": name, "kind": kind, "sha256": sha},
            headers={"content-type": "application/octet-stream"},
        )

    def upload_file(self, path: str | Path, kind: str = "code") -> ArtifactInfo:
        """Store a file (e.g. a tarball of a method's code or a log)."""
        p = Path(path)
        return self.upload_artifact(p.read_bytes(), name=p.name, kind=kind)

    def artifact(self, sha256: str) -> ArtifactInfo:
        """Metadata of an artifact."""
        return self._get(ArtifactInfo, f"/v1/artifacts/{sha256}")

    def artifacts(
        self, owner: str | None = None, kind: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[ArtifactInfo]:
        """Stored artifacts, newest first."""
        return self._get(
            Page[ArtifactInfo], "/v1/artifacts", owner=owner, kind=kind, limit=limit, offset=offset
        )

    def download(self, sha256: str) -> bytes:
        """An artifact's bytes, verified against its hash."""
        data = self.request("GET", f"/v1/artifacts/{sha256}/content").content
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ApiError(0, "corrupt_download", f"downloaded bytes do not hash to {sha256}")
        return data

    # -- admin ------------------------------------------------------------------------------------
    def create_agent(
        self, name: str, budget_per_hour: int | None = None, budget_total: int | None = None
    ) -> AgentCreated:
        """Create an agent; the returned token is shown only once (admin)."""
        return self._post(
            AgentCreated,
            "/v1/admin/agents",
            {"name": name, "budget_per_hour": budget_per_hour, "budget_total": budget_total},
        )

    def agents(self) -> list[AgentInfo]:
        """All agents (admin)."""
        return self._get(list[AgentInfo], "/v1/admin/agents")

    def revoke_agent(self, name: str) -> AgentInfo:
        """Revoke an agent's token (admin)."""
        return self._post(AgentInfo, f"/v1/admin/agents/{name}/revoke")

    def register_testbed(self, bundle: Any) -> TestbedAdminInfo:
        """Register a ground-truth bundle (a VaultBundle, a dict, or a path to its JSON) (admin)."""
        if isinstance(bundle, (str, Path)):
            raw = Path(bundle).read_bytes()
        elif isinstance(bundle, BaseModel):
            raw = bundle.model_dump_json().encode()
        else:
            raw = json.dumps(bundle).encode()
        return self._post(
            TestbedAdminInfo, "/v1/admin/testbeds", content=raw, headers={"content-type": "application/json"}
        )

    def admin_leaderboard(self, testbed_id: str | None = None) -> list[AdminTestbedBoard]:
        """Private and public PGR with CIs, methods and shipped baselines per testbed (admin)."""
        return self._get(list[AdminTestbedBoard], "/v1/admin/leaderboard", testbed_id=testbed_id)

    def admin_submissions(
        self,
        agent: str | None = None,
        testbed_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        flagged: bool | None = None,
    ) -> Page[SubmissionAdminView]:
        """All submissions with private figures and scoring-time flags (admin); ``flagged=True``: only
        flagged ones."""
        return self._get(
            Page[SubmissionAdminView],
            "/v1/admin/submissions",
            agent=agent,
            testbed_id=testbed_id,
            limit=limit,
            offset=offset,
            flagged=None if flagged is None else str(flagged).lower(),
        )

    def admin_evaluate(
        self,
        testbed_id: str,
        runs: Sequence[Mapping[str, float]],
        compare_to: str | None = None,
        compare_runs: Sequence[Mapping[str, float]] | None = None,
    ) -> EvaluateOut:
        """Score 1-20 runs (each {id: p} over every test id and every final id) on the public and
        private halves and the final split, with PGR intervals and an optional paired comparison
        against a reference, ``"best_baseline"``, or other runs (admin; nothing is stored)."""
        body: dict[str, Any] = {
            "testbed_id": testbed_id,
            "runs": [dict(r) for r in runs],
            "compare_to": compare_to,
        }
        if compare_runs:
            body["compare_runs"] = [dict(r) for r in compare_runs]
        return self._post(EvaluateOut, "/v1/admin/evaluate", body)

    def admin_predictions(self, submission_id: int) -> dict[str, float]:
        """A submission's stored predictions, ``{test id: P(label=1)}`` (admin)."""
        return self._get(dict[str, float], f"/v1/admin/submissions/{submission_id}/predictions")

    def record_audit(
        self,
        submission_id: int,
        verdict: str,
        reasons: list[str] | None = None,
        figures: Mapping[str, Any] | None = None,
        checks: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Store an audit verdict ("ok", "flagged" or "disqualified") on a submission (admin)."""
        body = {
            "submission_id": submission_id,
            "verdict": verdict,
            "reasons": list(reasons or []),
            "figures": dict(figures or {}),
            "checks": dict(checks or {}),
        }
        return self._post(AuditRecord, "/v1/admin/audits", body)

    def audits(self, testbed_id: str | None = None, submission_id: int | None = None) -> list[AuditRecord]:
        """Stored audits, oldest first (the latest per submission is last) (admin)."""
        return self._get(
            list[AuditRecord], "/v1/admin/audits", testbed_id=testbed_id, submission_id=submission_id
        )

    def audit_log(self, actor: str | None = None, limit: int = 100, offset: int = 0) -> Page[AuditView]:
        """The audit log, newest first (admin)."""
        return self._get(Page[AuditView], "/v1/admin/audit", actor=actor, limit=limit, offset=offset)


def connect(server: str, token: str, timeout: float = DEFAULT_TIMEOUT_S) -> Client:
    """The one way to build a client from an address: ``unix:/path/to.sock`` or ``http://host:port``."""
    if server.startswith("unix:"):
        return Client.over_unix_socket(server[len("unix:") :], token, timeout)
    return Client(server, token, timeout)


def connect_from_env(environ: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> Client:
    """A client for an agent process: token ``AAR_TOKEN``, server ``AAR_SERVER_SOCKET`` (a Unix socket,
    the only way out of a sandbox) or else ``AAR_SERVER_URL`` (default :data:`DEFAULT_URL`)."""
    env = os.environ if environ is None else environ
    sock = env.get("AAR_SERVER_SOCKET")
    server = f"unix:{sock}" if sock else env.get("AAR_SERVER_URL", DEFAULT_URL)
    return connect(server, env.get("AAR_TOKEN", ""), timeout)
