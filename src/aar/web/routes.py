"""The dashboard's pages and data endpoints, all under ``/dashboard`` and all read-only (GET), except the
login form, which only sets the browser's cookie.

Visibility follows the API: an agent's token gets the public (Ladder-released) figures, the forum,
the code store and its own budget; only the admin token gets private and public-half figures,
intervals, scoring flags, audit verdicts, baselines, other agents' budgets and the sandbox trail.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, RedirectResponse, Response

from aar.server.auth import Principal, resolve
from aar.server.deps import ctx, read_body
from aar.server.errors import ApiError
from aar.server.models import Artifact
from aar.server.schemas import MAX_ID
from aar.web import queries
from aar.web.board import best_baseline
from aar.web.campaign import (
    CampaignSource,
    agent_hours_at,
    agent_rows,
    campaign_summary,
    sandbox_events,
)
from aar.web.code import CodeFile, artifact_files, diff, highlight, tree
from aar.web.markdown import render_markdown
from aar.web.render import error_page, html, login_redirect, page, static_file
from aar.web.security import (
    PREFIX,
    LoginRequired,
    clear_login_cookie,
    safe_next,
    secure,
    set_login_cookie,
    viewer,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
POLL_MS = 3000


def mount(app: FastAPI, campaign_dir: Path | None = None) -> None:
    """Serve the dashboard from ``app`` (whose ``state.ctx`` holds settings, database and vault); the
    campaign directory defaults to the one whose ``server/`` folder is the data dir, if any."""
    settings = app.state.ctx.settings
    source = CampaignSource(Path(campaign_dir)) if campaign_dir else CampaignSource.find(settings.data_dir)
    app.state.dashboard_campaign = source
    app.include_router(router)


def _campaign(request: Request) -> CampaignSource | None:
    return getattr(request.app.state, "dashboard_campaign", None)


def _common(request: Request, requested: str | None, s: Session) -> dict[str, Any]:
    """What every page shows: the testbeds, the chosen one, the campaign's summary."""
    source = _campaign(request)
    state = source.state() if source else None
    testbed = queries.pick_testbed(s, requested, state.testbed if state else None)
    return {
        "testbeds": queries.testbed_ids(s),
        "testbed": testbed,
        "campaign": campaign_summary(state) if state else None,
    }


def _int(value: str | None, default: int, low: int = 1, high: int = MAX_ID) -> int:
    try:
        return min(max(int(value), low), high) if value is not None else default
    except ValueError:
        return default


# -- login -----------------------------------------------------------------------------------------
@router.get("")
def root_redirect() -> Response:
    """``/dashboard`` -> ``/dashboard/``."""
    return secure(RedirectResponse(PREFIX + "/", status_code=307))


@router.get("/login")
def login_form(request: Request, next: str | None = None, reason: str | None = None) -> Response:
    """The login form (a token field)."""
    return html(request, "login.html", None, title="Log in", next=safe_next(next), reason=reason or "")


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token and store it in the HttpOnly, SameSite=Strict cookie; changes no data."""
    origin = request.headers.get("origin")
    other_site = request.headers.get("sec-fetch-site") in ("cross-site", "same-site") or (
        origin not in (None, "null") and urlparse(origin).netloc != request.headers.get("host")
    )
    if other_site:  # a form on another site would log this browser in with someone else's token
        request.state.outcome = "dashboard login from another origin refused"
        return html(
            request,
            "login.html",
            None,
            status=403,
            title="Log in",
            next=PREFIX + "/",
            reason="log in from this dashboard's own page",
        )
    fields = parse_qs((await read_body(request)).decode("utf-8", "replace"))
    token = (fields.get("token") or [""])[0].strip()
    target = safe_next((fields.get("next") or [""])[0])
    try:
        if not token:
            raise ApiError(401, "unauthenticated", "enter a token")
        resolve(request, token)
    except ApiError as e:
        request.state.outcome = "dashboard login refused"
        return html(request, "login.html", None, status=401, title="Log in", next=target, reason=e.message)
    request.state.outcome = "dashboard login"
    response = secure(RedirectResponse(target, status_code=303))
    set_login_cookie(response, token, https=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout() -> Response:
    """Forget the cookie."""
    response = secure(RedirectResponse(PREFIX + "/login", status_code=303))
    clear_login_cookie(response)
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    """Scripts, styles and icons shipped in the package (no CDN)."""
    return static_file(name)


# -- leaderboard -----------------------------------------------------------------------------------
@router.get("/")
@router.get("/leaderboard")
def leaderboard_page(request: Request, testbed: str | None = None) -> Response:
    """Per testbed: public figures; for the admin private figures, intervals, audits, baselines."""

    def build(who: Principal) -> dict[str, Any]:
        c = ctx(request)
        with c.db.read() as s:
            common = _common(request, testbed, s)
            board = (
                queries.leaderboard(s, c.vault, common["testbed"], who.is_admin, c.db.url)
                if common["testbed"]
                else None
            )
        return {**common, "board": board, "active": "leaderboard", "title": "Leaderboard"}

    return page(request, "leaderboard.html", build)


# -- chart -----------------------------------------------------------------------------------------
def _metric(who: Principal, metric: str | None) -> str:
    return metric if who.is_admin and metric in queries.METRICS else "released"


def chart_data(
    request: Request, who: Principal, testbed: str | None, metric: str | None, after: int
) -> dict[str, Any]:
    """Every submission after id ``after`` as a chart point (x: agent-hours, y: the metric's PGR),
    with the best baseline (admin only)."""
    c = ctx(request)
    metric = _metric(who, metric)
    source = _campaign(request)
    state = source.state() if source else None
    with c.db.read() as s:
        testbed = queries.pick_testbed(s, testbed, state.testbed if state else None)
        if testbed is None:
            raise ApiError(404, "unknown_testbed", "no testbed is registered yet")
        rows = queries.chart_rows(s, testbed, metric, after)
        t0 = None if state else queries.first_submission_time(s, testbed)
        baseline = None
        if who.is_admin:  # the best shipped baseline, chosen on its public figure
            best = best_baseline(s, c.vault, testbed, c.db.url)
            if best is not None:
                half = "private" if metric == "private" else "public"
                baseline = {"name": best["name"], "pgr": best[half]}
    times = np.array([r[1] for r in rows], dtype=float)
    agents = sorted({r[2] for r in rows})
    methods = sorted({r[3] for r in rows})
    agent_index = {name: i for i, name in enumerate(agents)}
    method_index = {name: i for i, name in enumerate(methods)}
    if state is not None:
        x, x_label = agent_hours_at(state, times), "cumulative agent-hours (all agents)"
    else:
        x, x_label = (times - (t0 or 0.0)) / 3600.0, "hours since the testbed's first submission"
    return {
        "testbed": testbed,
        "metric": metric,
        "metric_label": queries.METRICS[metric],
        "x_label": x_label,
        "after": after,
        "latest_id": max([after, *(r[0] for r in rows)]),
        "agents": agents,
        "methods": methods,
        "points": {  # agent and method as indices into the lists above (a tenth of the bytes)
            "id": [r[0] for r in rows],
            "x": np.round(x, 6).tolist(),
            "y": [round(float(r[4]), 6) for r in rows],
            "agent": [agent_index[r[2]] for r in rows],
            "method": [method_index[r[3]] for r in rows],
        },
        "baseline": baseline,
    }


@router.get("/chart")
def chart_page(request: Request, testbed: str | None = None, metric: str | None = None) -> Response:
    """PGR against agent-hours: one line per agent, the campaign best, the best baseline; live."""

    def build(who: Principal) -> dict[str, Any]:
        with ctx(request).db.read() as s:
            common = _common(request, testbed, s)
        chosen = _metric(who, metric)
        metrics = queries.METRICS if who.is_admin else {"released": queries.METRICS["released"]}
        return {
            **common,
            "metric": chosen,
            "metrics": metrics,
            "poll_ms": POLL_MS,
            "active": "chart",
            "title": "PGR vs agent-hours",
        }

    return page(request, "chart.html", build)


def _api_viewer(request: Request) -> Principal | Response:
    try:
        return viewer(request)
    except LoginRequired as e:
        body = {"error": {"code": "unauthenticated", "message": e.reason, "details": {}}}
        return secure(JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"}))


@router.get("/api/chart.json")
def chart_json(
    request: Request, testbed: str | None = None, metric: str | None = None, after: str | None = None
) -> Response:
    """The chart's points as JSON (``after``: only submissions with a larger id, for live updates)."""
    who = _api_viewer(request)
    if isinstance(who, Response):
        return who
    try:
        data = chart_data(request, who, testbed, metric, _int(after, 0, 0))
    except ApiError as e:
        return secure(JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=e.status))
    response = secure(JSONResponse(data))
    if request.query_params.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="pgr_{data["testbed"]}.json"'
    return response


def _cell(text: str) -> str:
    """A text cell no spreadsheet reads as a formula (names are agent-chosen)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@router.get("/api/chart.csv")
def chart_csv(request: Request, testbed: str | None = None, metric: str | None = None) -> Response:
    """The chart's points as CSV, with the campaign's best so far."""
    who = _api_viewer(request)
    if isinstance(who, Response):
        return who
    try:
        data = chart_data(request, who, testbed, metric, 0)
    except ApiError as e:
        return secure(Response(e.message + "\n", status_code=e.status, media_type="text/plain"))
    p = data["points"]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["submission_id", "agent", "method", data["x_label"], data["metric_label"], "campaign_best"])
    order = sorted(range(len(p["id"])), key=lambda i: (p["x"][i], p["id"][i]))
    best = None
    for i in order:
        best = p["y"][i] if best is None else max(best, p["y"][i])
        agent, method = data["agents"][p["agent"][i]], data["methods"][p["method"][i]]
        w.writerow([p["id"][i], _cell(agent), _cell(method), p["x"][i], p["y"][i], best])
    response = secure(Response(out.getvalue(), media_type="text/csv"))
    response.headers["Content-Disposition"] = f'attachment; filename="pgr_{data["testbed"]}.csv"'
    return response


# -- submissions -----------------------------------------------------------------------------------
@router.get("/submissions")
def submissions_page(
    request: Request,
    testbed: str | None = None,
    agent: str | None = None,
    method: str | None = None,
    flagged: str | None = None,
    page_no: str | None = None,
) -> Response:
    """Filterable list of submissions, newest first (50 a page)."""

    def build(who: Principal) -> dict[str, Any]:
        flag = {"yes": True, "no": False}.get(flagged or "")
        with ctx(request).db.read() as s:
            common = _common(request, testbed, s)
            data = queries.submissions_page(
                s,
                common["testbed"],
                who.is_admin,
                agent or None,
                method or None,
                flag,
                _int(page_no, 1),
            )
        filters = {"testbed": common["testbed"], "agent": agent, "method": method, "flagged": flagged}
        return {**common, **data, "filters": filters, "active": "submissions", "title": "Submissions"}

    return page(request, "submissions.html", build)


@router.get("/submissions/{sid}")
def submission_page(request: Request, sid: str) -> Response:
    """One submission: method, parameters, description, figures, budget use, code, forum posts."""

    def build(who: Principal) -> dict[str, Any]:
        c = ctx(request)
        number = _int(sid, 0, 0)
        with c.db.read() as s:
            sub = queries.submission_detail(s, number, who.is_admin, who.agent_id) if number else None
            if sub is None:
                raise ApiError(404, "unknown_submission", f"no submission {sid}")
            common = _common(request, sub["testbed_id"], s)
        if "budget" in sub:
            sub["budget"]["total"] = sub["budget"]["total"] or c.settings.budget_total
            sub["budget"]["per_hour"] = sub["budget"]["per_hour"] or c.settings.budget_per_hour
        files = artifact_files(c.settings.data_dir, sub["artifact_sha256"], sub["artifact_name"])
        params = _experiment(files)
        return {
            **common,
            "sub": sub,
            "files": tree(files),
            "params": params,
            "active": "submissions",
            "title": f"Submission {sub['id']}",
        }

    return page(request, "submission.html", build)


def _experiment(files: list[CodeFile]) -> dict[str, Any] | None:
    """The method's parameters from the artifact's ``experiment.json``, when it has one."""
    for f in files:
        if f.path == "experiment.json" and f.text:
            try:
                data = json.loads(f.text)
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


@router.get("/code/{sha}")
def code_page(request: Request, sha: str, file: str | None = None, against: str | None = None) -> Response:
    """An artifact's file tree and one highlighted file, or its diff against another artifact."""

    def build(who: Principal) -> dict[str, Any]:
        c = ctx(request)
        with c.db.read() as s:
            common = _common(request, None, s)
            art = s.get(Artifact, sha) if len(sha) == 64 else None
            other = s.get(Artifact, against) if against and len(against) == 64 else None
        if art is None:
            raise ApiError(404, "unknown_artifact", f"no artifact {sha}")
        if against and other is None:
            raise ApiError(404, "unknown_artifact", f"no artifact {against}")
        files = artifact_files(c.settings.data_dir, art.sha256, art.name)
        shown = next((f for f in files if f.path == file), None) if file else (files[0] if files else None)
        if file and shown is None:
            raise ApiError(404, "unknown_file", f"no file {file!r} in artifact {sha[:12]}")
        data = {"art": art, "files": tree(files), "shown": shown, "other": other, "diff": None}
        if other is not None:
            data["diff"] = diff(artifact_files(c.settings.data_dir, other.sha256, other.name), files)
        elif shown is not None and shown.text is not None:
            data["code"] = highlight(shown.path, shown.text)
        return {**common, **data, "active": "submissions", "title": f"Code {sha[:12]}"}

    return page(request, "code.html", build)


# -- forum -----------------------------------------------------------------------------------------
@router.get("/forum")
def forum_page(
    request: Request,
    q: str | None = None,
    tag: str | None = None,
    author: str | None = None,
    page_no: str | None = None,
) -> Response:
    """Threads, newest first; search by text, tag and author."""

    def build(who: Principal) -> dict[str, Any]:
        with ctx(request).db.read() as s:
            common = _common(request, None, s)
            data = queries.forum_page(
                s, (q or "")[:200] or None, tag or None, author or None, _int(page_no, 1)
            )
        return {
            **common,
            **data,
            "filters": {"q": q, "tag": tag, "author": author},
            "active": "forum",
            "title": "Forum",
        }

    return page(request, "forum.html", build)


@router.get("/forum/{post_id}")
def thread_page(request: Request, post_id: str) -> Response:
    """A thread: the post and its replies, Markdown rendered safely."""

    def build(who: Principal) -> dict[str, Any]:
        number = _int(post_id, 0, 0)
        with ctx(request).db.read() as s:
            common = _common(request, None, s)
            t = queries.thread(s, number) if number else None
        if t is None:
            raise ApiError(404, "unknown_post", f"no thread {post_id}")
        for p in [t["post"], *t["replies"]]:
            p["html"] = render_markdown(p["body"])
        return {**common, **t, "active": "forum", "title": t["post"]["title"]}

    return page(request, "thread.html", build)


# -- agents ----------------------------------------------------------------------------------------
@router.get("/agents")
def agents_page(request: Request) -> Response:
    """Agents: direction, status, agent-hours, tokens, dollars, budget left, restarts; the sandbox
    trail (admin). An agent's token sees its own row only."""

    def build(who: Principal) -> dict[str, Any]:
        source = _campaign(request)
        state = source.state() if source else None
        only = None if who.is_admin else who.name
        with ctx(request).db.read() as s:
            common = _common(request, None, s)
            counts = queries.submission_counts(s, state.testbed if state else None)
            server = queries.server_agents(s, None if who.is_admin else who.agent_id)
        rows = agent_rows(state, counts, only) if state else []
        events = sandbox_events(Path(state.dir)) if state and who.is_admin else []
        return {
            **common,
            "rows": rows,
            "server_agents": server,
            "events": events,
            "active": "agents",
            "title": "Agents",
        }

    return page(request, "agents.html", build)


__all__ = ["error_page", "login_redirect", "mount", "router"]
