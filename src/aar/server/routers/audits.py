"""Admin endpoints of the audit: evaluate runs on every split, read a submission's predictions, record
and list audit verdicts.

``POST /v1/admin/evaluate`` scores runs on the public and private halves and on the final split
(:mod:`aar.server.evaluate`) and records nothing as a submission. ``POST /v1/admin/audits`` stores a
verdict in the append-only ``audits`` table and its audit-log entry in the same transaction.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aar.server.audit import SQL_AUDIT, audit_values
from aar.server.auth import AdminUser
from aar.server.deps import Filter, PathId, body_doc, ctx, json_body, json_response
from aar.server.errors import ApiError, error_responses
from aar.server.evaluate import evaluate
from aar.server.models import Agent, Audit, Submission
from aar.server.schemas import MAX_ID, AuditIn, AuditRecord, EvaluateIn, EvaluateOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/evaluate",
    response_model=EvaluateOut,
    openapi_extra=body_doc(EvaluateIn),
    responses=error_responses(403, 404),
)
async def admin_evaluate(request: Request, _: AdminUser) -> Response:
    """Score 1-20 runs on the public and private halves and the final split (nothing is stored)."""
    body = await json_body(request, EvaluateIn)
    c = ctx(request)
    arrays = c.vault.get(body.testbed_id)
    out = await run_in_threadpool(evaluate, arrays, body.runs, body.compare_to, body.compare_runs)
    request.state.outcome = f"evaluated {len(body.runs)} runs on {body.testbed_id}"
    return json_response(out)


@router.get(
    "/submissions/{submission_id}/predictions",
    response_model=dict[str, float],
    responses=error_responses(403, 404),
)
def admin_predictions(submission_id: PathId, request: Request, _: AdminUser) -> Response:
    """A submission's stored predictions as ``{test id: P(label=1)}``."""
    c = ctx(request)
    with c.db.read() as s:
        row = s.execute(
            select(Submission.testbed_id, Submission.predictions).where(Submission.id == submission_id)
        ).first()
    if row is None:
        raise ApiError(404, "unknown_submission", f"no submission {submission_id}")
    arrays = c.vault.get(row.testbed_id)
    probs = np.frombuffer(row.predictions, dtype="<f8")
    request.state.outcome = f"predictions of submission {submission_id}"
    return JSONResponse(dict(zip(arrays.ids, probs.tolist(), strict=True)))


def _record(row: Audit, agent: str, testbed_id: str) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        submission_id=row.submission_id,
        agent=agent,
        testbed_id=testbed_id,
        verdict=row.verdict,
        reasons=row.reasons,
        figures=row.figures,
        checks=row.checks,
        created_at=row.created_at,
    )


def _store(c: Any, request: Request, body: AuditIn) -> AuditRecord:
    """Insert the audit and its audit-log entry in one transaction."""
    with c.db.write() as s:
        sub = s.execute(
            select(Submission.testbed_id, Agent.name)
            .join(Agent, Agent.id == Submission.agent_id)
            .where(Submission.id == body.submission_id)
        ).first()
        if sub is None:
            raise ApiError(404, "unknown_submission", f"no submission {body.submission_id}")
        row = Audit(
            submission_id=body.submission_id,
            verdict=body.verdict,
            reasons=list(body.reasons),
            figures=body.figures,
            checks=body.checks,
            created_at=time.time(),
        )
        s.add(row)
        s.flush()
        outcome = f"audit {row.id} of submission {body.submission_id}: {body.verdict}"
        request.state.outcome = outcome
        s.connection().exec_driver_sql(c.db.sql(SQL_AUDIT), audit_values(request.scope, 201, outcome))
        record = _record(row, sub.name, sub.testbed_id)
    request.state.audited = True
    return record


@router.post(
    "/audits",
    status_code=201,
    response_model=AuditRecord,
    openapi_extra=body_doc(AuditIn),
    responses=error_responses(403, 404),
)
async def record_audit(request: Request, _: AdminUser) -> Response:
    """Record an audit verdict on a submission (append-only: a later audit supersedes it)."""
    body = await json_body(request, AuditIn)
    record = await run_in_threadpool(_store, ctx(request), request, body)
    return json_response(record, 201)


@router.get("/audits", response_model=list[AuditRecord], responses=error_responses(403))
def list_audits(
    request: Request,
    _: AdminUser,
    testbed_id: Filter = None,
    submission_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Audit records, oldest first (so the latest per submission comes last)."""
    q = (
        select(Audit, Agent.name, Submission.testbed_id)
        .join(Submission, Submission.id == Audit.submission_id)
        .join(Agent, Agent.id == Submission.agent_id)
    )
    if testbed_id is not None:
        q = q.where(Submission.testbed_id == testbed_id)
    if submission_id is not None:
        q = q.where(Audit.submission_id == submission_id)
    with ctx(request).db.read() as s:
        rows = s.execute(q.order_by(Audit.id)).all()
        items = [_record(a, name, tid) for a, name, tid in rows]
    return json_response(items)
