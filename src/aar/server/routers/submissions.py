"""Submissions: score predictions on the test split and release the Ladder figure of the public half.

The hot path: parse the body with pydantic's JSON parser, put the probabilities in canonical order,
score both halves with numpy against arrays cached in memory, then one write transaction that
checks the budget, stores the submission (predictions as one float64 blob), moves the Ladder and
appends the audit entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aar.server.audit import SQL_AUDIT, audit_values
from aar.server.auth import AgentUser, AnyUser, Principal, require_agent
from aar.server.deps import (
    Filter,
    Limit,
    Offset,
    PathId,
    body_doc,
    ctx,
    json_body,
    json_response,
    page_bounds,
)
from aar.server.errors import ApiError, error_responses
from aar.server.models import Agent, Artifact, Ladder, Submission
from aar.server.routers.meta import limits_of
from aar.server.schemas import (
    BudgetStatus,
    Page,
    PublicScore,
    SubmissionIn,
    SubmissionReceipt,
    SubmissionView,
)
from aar.server.scoring import (
    HOUR,
    canonical_probs,
    check_budget,
    default_margin,
    ladder_step,
    paired_grid,
    paired_release,
    public_correct,
    scoring_flags,
)
from aar.server.vault import TestbedArrays
from aar.w2s.metrics import pgr

router = APIRouter(prefix="/v1/submissions", tags=["submissions"])
AGENTS, ARTIFACTS, LADDER, SUBS = (m.__table__ for m in (Agent, Artifact, Ladder, Submission))


SQL_AGENT = (
    "SELECT id, name, revoked_at, budget_per_hour, budget_total, n_submissions FROM agents WHERE id = :id"
)
SQL_WINDOW = (
    "SELECT count(*), min(created_at) FROM submissions WHERE agent_id = :agent_id AND created_at > :since"
)
SQL_ARTIFACT = "SELECT 1 FROM artifacts WHERE sha256 = :sha"
SQL_LADDER = "SELECT best_acc, n_updates FROM ladder WHERE agent_id = :agent_id AND testbed_id = :testbed_id"
SQL_LADDER_PAIRED = (  # the paired Ladder compares with the best submission's predictions
    "SELECT best_acc, n_updates, best_submission_id FROM ladder "
    "WHERE agent_id = :agent_id AND testbed_id = :testbed_id"
)
SQL_PREDICTIONS = "SELECT predictions FROM submissions WHERE id = :id"
SQL_INSERT = (
    "INSERT INTO submissions (agent_id, testbed_id, artifact_sha256, method, description, seed, created_at, "
    "predictions, public_acc, private_acc, public_pgr, private_pgr, released_acc, released_pgr, improved, "
    "flags) VALUES (:agent_id, :testbed_id, :artifact_sha256, :method, :description, :seed, :created_at, "
    ":predictions, :public_acc, :private_acc, :public_pgr, :private_pgr, :released_acc, :released_pgr, "
    ":improved, {flags}) RETURNING id"
)
SQL_LADDER_NEW = (
    "INSERT INTO ladder (agent_id, testbed_id, best_acc, best_submission_id, n_updates) "
    "VALUES (:agent_id, :testbed_id, :best_acc, :sid, 1)"
)
SQL_LADDER_UP = (
    "UPDATE ladder SET best_acc = :best_acc, best_submission_id = :sid, n_updates = n_updates + 1 "
    "WHERE agent_id = :agent_id AND testbed_id = :testbed_id"
)
SQL_COUNT = "UPDATE agents SET n_submissions = n_submissions + 1 WHERE id = :id"


def _record(
    c: Any, request: Request, who: Principal, sub: SubmissionIn, arrays: TestbedArrays, probs: np.ndarray
) -> SubmissionReceipt:
    """Budget check, insert, Ladder move and audit entry in one write transaction (hand-written SQL:
    this is the hot path, and SQLAlchemy's per-statement compilation costs more than the query)."""
    acc_pub, acc_priv = arrays.half_accuracy(probs)
    pgr_pub, pgr_priv = arrays.half_pgr(acc_pub, acc_priv)
    paired = c.settings.ladder == "paired"
    n_public = int(arrays.public.sum())
    margin = paired_grid(n_public) if paired else c.settings.ladder_margin or default_margin(n_public)
    flags = json.dumps(scoring_flags(arrays, probs))
    db = c.db
    insert = SQL_INSERT.format(flags=":flags" if db.is_sqlite else "CAST(:flags AS JSON)")
    lock = "" if db.is_sqlite else " FOR UPDATE"
    now = time.time()
    with db.write_conn() as conn:
        run = conn.exec_driver_sql
        agent = run(db.sql(SQL_AGENT + lock), {"id": who.agent_id}).one()
        if agent.revoked_at is not None:
            raise ApiError(401, "revoked_token", "this token has been revoked")
        limits = limits_of(c.settings, agent)
        # counted also when the hourly budget is unlimited: the receipt reports usage either way
        used, oldest = run(db.sql(SQL_WINDOW), {"agent_id": agent.id, "since": now - HOUR}).one()
        status = BudgetStatus(
            per_hour=limits.per_hour,
            total=limits.total,
            used_last_hour=int(used),
            used_total=agent.n_submissions,
            hour_resets_at=None if oldest is None else float(oldest) + HOUR,
        )
        check_budget(status, now)
        if run(db.sql(SQL_ARTIFACT), {"sha": sub.artifact_sha256}).first() is None:
            raise ApiError(
                404, "unknown_artifact", "artifact_sha256 names no stored artifact; upload the code first"
            )
        key = {"agent_id": agent.id, "testbed_id": sub.testbed_id}
        lad = run(db.sql(SQL_LADDER_PAIRED if paired else SQL_LADDER), key).first()
        if paired:
            correct, best_correct = public_correct(arrays, probs), None
            if lad is not None:
                best_correct = c.vault.best_correct.get(lad[2])
                if best_correct is None:
                    blob = run(db.sql(SQL_PREDICTIONS), {"id": lad[2]}).scalar_one()
                    best_correct = public_correct(arrays, np.frombuffer(blob, dtype="<f8"))
                    c.vault.best_correct.put(lad[2], best_correct)  # committed: the Ladder row names it
            released, improved = paired_release(correct, None if lad is None else lad[0], best_correct)
        else:
            released, improved = ladder_step(None if lad is None else lad[0], acc_pub, margin)
        released_pgr = pgr(released, arrays.weak[0], arrays.ceiling[0])
        sid = run(
            db.sql(insert),
            {
                **key,
                "artifact_sha256": sub.artifact_sha256,
                "method": sub.method,
                "description": sub.description,
                "seed": sub.seed,
                "created_at": now,
                "predictions": probs.astype("<f8").tobytes(),
                "public_acc": acc_pub,
                "private_acc": acc_priv,
                "public_pgr": pgr_pub,
                "private_pgr": pgr_priv,
                "released_acc": released,
                "released_pgr": released_pgr,
                "improved": improved,
                "flags": flags,
            },
        ).scalar_one()
        if improved:
            run(
                db.sql(SQL_LADDER_NEW if lad is None else SQL_LADDER_UP),
                {**key, "best_acc": released, "sid": sid},
            )
        run(db.sql(SQL_COUNT), {"id": agent.id})
        request.state.outcome = f"submission {sid}"
        run(db.sql(SQL_AUDIT), audit_values(request.scope, 201, f"submission {sid}"))
    request.state.audited = True
    if paired and improved:  # committed: the paired Ladder's next comparison can skip the blob
        c.vault.best_correct.put(sid, correct)
    status = status.model_copy(
        update={
            "used_last_hour": status.used_last_hour + 1,
            "used_total": status.used_total + 1,
            "hour_resets_at": status.hour_resets_at or now + HOUR,
        }
    )
    return SubmissionReceipt(
        id=sid,
        testbed_id=sub.testbed_id,
        method=sub.method,
        created_at=now,
        public=PublicScore(accuracy=released, pgr=released_pgr, improved=improved, margin=margin),
        budget=status,
    )


@router.post(
    "",
    status_code=201,
    response_model=SubmissionReceipt,
    openapi_extra=body_doc(SubmissionIn),
    responses=error_responses(403, 404, 429),
)
async def submit(request: Request) -> Response:
    """Score a prediction set on the test split; returns only the Ladder-released public figure."""
    who = require_agent(request)
    c = ctx(request)
    sub = await json_body(request, SubmissionIn)
    arrays = c.vault.get(sub.testbed_id)
    probs = canonical_probs(arrays, sub)
    receipt = await run_in_threadpool(_record, c, request, who, sub, arrays, probs)
    return json_response(receipt, 201)


def view(row: Any, agent: str) -> SubmissionView:
    """What agents may see of a submission."""
    return SubmissionView(
        id=row.id,
        agent=agent,
        testbed_id=row.testbed_id,
        method=row.method,
        description=row.description,
        seed=row.seed,
        artifact_sha256=row.artifact_sha256,
        created_at=row.created_at,
        released_accuracy=row.released_acc,
        released_pgr=row.released_pgr,
        improved=row.improved,
    )


VIEW_COLS = (
    SUBS.c.id,
    SUBS.c.testbed_id,
    SUBS.c.method,
    SUBS.c.description,
    SUBS.c.seed,
    SUBS.c.artifact_sha256,
    SUBS.c.created_at,
    SUBS.c.released_acc,
    SUBS.c.released_pgr,
    SUBS.c.improved,
    AGENTS.c.name,
)


@router.get("", response_model=Page[SubmissionView], responses=error_responses(403))
def my_submissions(
    request: Request, who: AgentUser, testbed_id: Filter = None, limit: Limit = 50, offset: Offset = 0
) -> Response:
    """The caller's own submissions, newest first."""
    limit, offset = page_bounds(limit, offset)
    cond = [SUBS.c.agent_id == who.agent_id]
    if testbed_id is not None:
        cond.append(SUBS.c.testbed_id == testbed_id)
    with ctx(request).db.read() as s:
        total = s.scalar(select(func.count()).select_from(SUBS).where(*cond))
        rows = s.execute(
            select(*VIEW_COLS)
            .join(AGENTS, AGENTS.c.id == SUBS.c.agent_id)
            .where(*cond)
            .order_by(SUBS.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    nxt = offset + limit if offset + limit < total else None
    return json_response(
        Page[SubmissionView](
            items=[view(r, r.name) for r in rows], total=total, offset=offset, limit=limit, next_offset=nxt
        )
    )


@router.get("/{submission_id}", response_model=SubmissionView, responses=error_responses(404))
def get_submission(submission_id: PathId, request: Request, who: AnyUser) -> Response:
    """One submission: its released figure, method, description and code (any caller)."""
    with ctx(request).db.read() as s:
        row = s.execute(
            select(*VIEW_COLS).join(AGENTS, AGENTS.c.id == SUBS.c.agent_id).where(SUBS.c.id == submission_id)
        ).first()
    if row is None:
        raise ApiError(404, "unknown_submission", f"no submission {submission_id}")
    return json_response(view(row, row.name))
