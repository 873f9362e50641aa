"""Submissions: score predictions on the test split and release the Ladder figure of the public half.

The hot path: parse the body with pydantic's JSON parser, put the probabilities in canonical order,
score both halves in one numpy pass against arrays cached in memory, then hand the write to the
process's group-commit writer (:mod:`aar.server.group_commit`): in a transaction it may share with
other submissions, it checks the budget, stores the submission (predictions as one float64 blob),
moves the Ladder and appends the audit entry. The receipt is sent only after that commit.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from sqlalchemy import func, select
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
    json_response,
    page_bounds,
    parse_model,
    read_body,
)
from aar.server.errors import ApiError, error_responses
from aar.server.group_commit import Tx
from aar.server.models import Agent, Artifact, Ladder, Submission
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
    Limits,
    assess,
    canonical_probs,
    check_budget,
    default_margin,
    ladder_step,
    paired_grid,
    paired_release,
    public_correct,
)
from aar.server.vault import TestbedArrays, VaultCache
from aar.w2s.metrics import pgr

router = APIRouter(prefix="/v1/submissions", tags=["submissions"])
AGENTS, ARTIFACTS, LADDER, SUBS = (m.__table__ for m in (Agent, Artifact, Ladder, Submission))


SQL_AGENT = (
    "SELECT id, name, revoked_at, budget_per_hour, budget_total, n_submissions FROM agents WHERE id = :id"
)
AGENT_ROW = "agent"  # Tx.scratch key prefix of the agent rows read (and locked) by lock_agents
# everything else the checks need, in one round trip: the hour's usage, the artifact, the Ladder row
# (run after the agent's row is locked, so on PostgreSQL it sees every earlier committed submission)
SQL_STATE = (
    "SELECT count(*), min(created_at), "
    "(SELECT 1 FROM artifacts WHERE sha256 = :sha), "
    "(SELECT best_acc FROM ladder WHERE agent_id = :agent_id AND testbed_id = :testbed_id), "
    "(SELECT best_submission_id FROM ladder WHERE agent_id = :agent_id AND testbed_id = :testbed_id) "
    "FROM submissions WHERE agent_id = :agent_id AND created_at > :since"
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
# PostgreSQL: all the writes of a submission in one statement (one round trip instead of four); the
# Ladder part is one of these, filled in by pg_write_sql
PG_LADDER = {
    "none": "",
    "new": "l AS (INSERT INTO ladder (agent_id, testbed_id, best_acc, best_submission_id, n_updates) "
    "SELECT :agent_id, :testbed_id, :best_acc, s.id, 1 FROM s), ",
    "up": "l AS (UPDATE ladder SET best_acc = :best_acc, best_submission_id = (SELECT id FROM s), "
    "n_updates = n_updates + 1 WHERE agent_id = :agent_id AND testbed_id = :testbed_id), ",
}
PG_WRITE = (
    "WITH s AS ({insert}), {ladder}"
    "n AS (UPDATE agents SET n_submissions = n_submissions + 1 WHERE id = :agent_id), "
    "a AS (INSERT INTO audit_log (at, actor, method, path, status, outcome, client) "
    "SELECT :a_at, :a_actor, :a_method, :a_path, :a_status, 'submission ' || CAST(s.id AS TEXT), :a_client "
    "FROM s) "
    "SELECT id FROM s"
)


@functools.cache
def pg_write_sql(ladder: str) -> str:
    """The single PostgreSQL statement that stores a submission, moves its Ladder (``ladder``: none,
    new or up), counts it and appends its audit entry (whose outcome names the new id)."""
    return PG_WRITE.format(insert=SQL_INSERT.format(flags="CAST(:flags AS JSON)"), ladder=PG_LADDER[ladder])


def lock_agents(tx: Tx, agent_ids: list[int]) -> None:
    """A batch's first statement: the rows of its jobs' agents, in one round trip (locked on
    PostgreSQL, in id order, so that two processes' batches cannot deadlock), kept in the
    transaction's scratch for the jobs, which keep them current as they count their submissions."""
    ids = sorted(set(agent_ids))
    names = ", ".join(f":a{i}" for i in range(len(ids)))
    sql = SQL_AGENT.replace("id = :id", f"id IN ({names}) ORDER BY id")
    rows = tx.run(sql + ("" if tx.db.is_sqlite else " FOR UPDATE"), {f"a{i}": v for i, v in enumerate(ids)})
    for row in rows.fetchall():
        tx.scratch[(AGENT_ROW, row[0])] = tuple(row)


def _record_job(
    c: Any, scope: Any, who: Principal, sub: SubmissionIn, arrays: TestbedArrays, probs: np.ndarray
) -> Callable[[Tx], SubmissionReceipt]:
    """The write of one submission, run by the group-commit writer inside its shared transaction:
    budget check, insert, Ladder move and audit entry (hand-written SQL on the raw cursor: this is the
    hot path). What it raises answers this request alone; its writes then never commit."""
    scored = assess(arrays, probs)
    acc_pub, acc_priv = scored.public_acc, scored.private_acc
    pgr_pub, pgr_priv = arrays.half_pgr(acc_pub, acc_priv)
    paired = c.settings.ladder == "paired"
    n_public = scored.public_correct.size
    margin = paired_grid(n_public) if paired else c.settings.ladder_margin or default_margin(n_public)
    flags = json.dumps(scored.flags)
    predictions = probs.astype("<f8").tobytes()
    db = c.db
    insert = SQL_INSERT.format(flags=":flags")
    sql_agent = SQL_AGENT + ("" if db.is_sqlite else " FOR UPDATE")
    state = scope.setdefault("state", {})

    def job(tx: Tx) -> SubmissionReceipt:
        now = time.time()
        agent = tx.scratch.get((AGENT_ROW, who.agent_id))
        if agent is None:  # not read by lock_agents (it found no row): read it here
            agent = tx.first(sql_agent, {"id": who.agent_id})
        if agent is None or agent[2] is not None:
            raise ApiError(401, "revoked_token", "this token has been revoked")
        agent_id, _, _, per_hour, total, n_submissions = agent
        limits = Limits(
            c.settings.budget_per_hour if per_hour is None else per_hour,
            c.settings.budget_total if total is None else total,
        )
        key = {"agent_id": agent_id, "testbed_id": sub.testbed_id}
        # the hour's usage is counted also when unlimited: the receipt reports usage either way
        used, oldest, artifact, best_acc, best_id = tx.one(
            SQL_STATE, {**key, "sha": sub.artifact_sha256, "since": now - HOUR}
        )
        status = BudgetStatus(
            per_hour=limits.per_hour,
            total=limits.total,
            used_last_hour=int(used),
            used_total=n_submissions,
            hour_resets_at=None if oldest is None else float(oldest) + HOUR,
        )
        check_budget(status, now)
        if artifact is None:
            raise ApiError(
                404, "unknown_artifact", "artifact_sha256 names no stored artifact; upload the code first"
            )
        correct = scored.public_correct
        if paired:
            best_correct = None
            if best_id is not None:  # the best so far: written earlier in this transaction, cached, or read
                best_correct = tx.scratch.get(("correct", best_id))
                if best_correct is None:
                    best_correct = c.vault.best_correct.get(best_id)
                if best_correct is None:
                    (blob,) = tx.one(SQL_PREDICTIONS, {"id": best_id})
                    best_correct = public_correct(arrays, np.frombuffer(blob, dtype="<f8"))
                    c.vault.best_correct.put(best_id, best_correct)  # committed: the Ladder row names it
            released, improved = paired_release(correct, best_acc, best_correct)
        else:
            released, improved = ladder_step(best_acc, acc_pub, margin)
        released_pgr = pgr(released, arrays.weak[0], arrays.ceiling[0])
        values = {
            **key,
            "artifact_sha256": sub.artifact_sha256,
            "method": sub.method,
            "description": sub.description,
            "seed": sub.seed,
            "created_at": now,
            "predictions": predictions,
            "public_acc": acc_pub,
            "private_acc": acc_priv,
            "public_pgr": pgr_pub,
            "private_pgr": pgr_priv,
            "released_acc": released,
            "released_pgr": released_pgr,
            "improved": improved,
            "flags": flags,
            "best_acc": released,
        }
        ladder = "none" if not improved else "new" if best_id is None else "up"
        if db.is_sqlite:  # in-process statements: nothing to gain from merging them
            (sid,) = tx.one(insert, values, write=True)
            if ladder != "none":
                tx.run(
                    SQL_LADDER_NEW if ladder == "new" else SQL_LADDER_UP, {**values, "sid": sid}, write=True
                )
            tx.run(SQL_COUNT, {"id": agent_id}, write=True)
            state["outcome"] = f"submission {sid}"
            tx.run(SQL_AUDIT, audit_values(scope, 201, state["outcome"]), write=True)
        else:
            audit = {f"a_{k}": v for k, v in audit_values(scope, 201, "").items()}
            (sid,) = tx.one(pg_write_sql(ladder), {**values, **audit}, write=True)
            state["outcome"] = f"submission {sid}"
        tx.scratch[(AGENT_ROW, agent_id)] = (*agent[:5], n_submissions + 1)  # the count just written
        if improved and paired:  # the paired Ladder's next comparison can skip the blob
            tx.scratch[("correct", sid)] = correct
            tx.after_commit(lambda: c.vault.best_correct.put(sid, correct))
        return SubmissionReceipt(
            id=sid,
            testbed_id=sub.testbed_id,
            method=sub.method,
            created_at=now,
            public=PublicScore(accuracy=released, pgr=released_pgr, improved=improved, margin=margin),
            budget=status.model_copy(
                update={
                    "used_last_hour": status.used_last_hour + 1,
                    "used_total": status.used_total + 1,
                    "hour_resets_at": status.hour_resets_at or now + HOUR,
                }
            ),
        )

    return job


class _SubmissionIdsUnchecked(SubmissionIn):
    """:class:`SubmissionIn` without the per-id text check of ``example_ids`` (a regex pass over every
    id): needless when the ids are the testbed's own, checked ids in canonical order."""

    example_ids: list[str]


def parse_submission(vault: VaultCache, raw: bytes) -> tuple[SubmissionIn, TestbedArrays, np.ndarray]:
    """The submission in ``raw``, its testbed's arrays and its probabilities in canonical order.

    Agents send the testbed's ids in canonical order (the client does): then the body is parsed once
    with every rule of :class:`SubmissionIn` but the ids' text check, which the testbed's own ids
    are known to pass. Any other body (ids in another order, an invalid body, an unknown testbed)
    goes the general way, so it is answered exactly as the schema and :func:`canonical_probs` answer.
    """
    try:
        quick: SubmissionIn | None = _SubmissionIdsUnchecked.model_validate_json(raw)
        arrays = vault.get(quick.testbed_id) if quick is not None else None
    except Exception:  # answered below, by the general way
        quick = arrays = None
    if quick is not None and arrays is not None and arrays.ids_are_lines and quick.example_ids == arrays.ids:
        return quick, arrays, canonical_probs(arrays, quick)
    sub = parse_model(SubmissionIn, raw)
    arrays = vault.get(sub.testbed_id)
    return sub, arrays, canonical_probs(arrays, sub)


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
    sub, arrays, probs = parse_submission(c.vault, await read_body(request))
    job = _record_job(c, request.scope, who, sub, arrays, probs)
    receipt = await c.writer.run(job, order_key=who.agent_id or 0, prepare=lock_agents)
    request.state.audited = True  # the audit entry was committed with the submission
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
