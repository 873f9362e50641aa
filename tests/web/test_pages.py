"""The dashboard over plain HTTP (no browser needed) on SQLite and PostgreSQL: every page answers with
its security headers, an agent's token never receives what the API hides from it, logins and
redirects, read-only routes, unknown objects, and the live dashboard a campaign starts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from aar.web.standalone import start_live
from server.conftest import pg_database  # noqa: F401 - the PostgreSQL fixture
from server.helpers import ADMIN_TOKEN

from .conftest import BOB_BUDGET, Site, build_site


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request, tmp_path_factory) -> Iterator[Site]:
    """The seeded campaign on SQLite, or with its server on the run's PostgreSQL database."""
    db_url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    site = build_site(tmp_path_factory.mktemp(f"pages-{request.param}"), db_url)
    yield site
    for c in site.clients.values():
        c.close()
    site.admin.close()
    site.srv.stop()


def _paths(site: Site) -> list[str]:
    tb = site.bundle.testbed_id
    return [
        "/",
        "/leaderboard",
        f"/leaderboard?testbed={tb}",
        "/chart",
        "/chart?metric=private",
        "/submissions",
        "/submissions?flagged=yes",
        "/submissions?agent=bob&method=confident&page_no=3",
        f"/submissions/{site.subs[1]}",
        f"/submissions/{site.subs[2]}",
        f"/code/{site.codes['alice'][1]}",
        f"/code/{site.codes['alice'][1]}?file=experiment.json",
        f"/code/{site.codes['alice'][1]}?against={site.codes['alice'][0]}",
        "/forum",
        "/forum?q=SOFT",
        "/forum?tag=xss",
        "/forum?author=bob",
        f"/forum/{site.posts['plain']}",
        f"/forum/{site.posts['evil']}",
        "/agents",
    ]


def _get(site: Site, token: str, path: str) -> httpx.Response:
    return httpx.get(site.url(path), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_every_page_answers_with_security_headers(served: Site):
    for token in (ADMIN_TOKEN, served.tokens["alice"]):
        for path in _paths(served):
            r = _get(served, token, path)
            assert r.status_code == 200, (path, r.text[:300])
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
            assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
            assert "<script>" not in r.text  # only <script src=...> from the package, never inline code


def test_an_agent_token_receives_nothing_the_api_hides(served: Site):
    subs = served.admin.admin_submissions(testbed_id=served.bundle.testbed_id, limit=100).items
    shown = {f"{s.released_pgr:.3f}" for s in subs} | {f"{s.released_accuracy:.3f}" for s in subs}
    alice = served.tokens["alice"]
    html = "\n".join(_get(served, alice, p).text for p in _paths(served))
    data = "\n".join(
        _get(served, alice, p).text
        for p in ("/api/chart.json", "/api/chart.json?metric=private", "/api/chart.csv?metric=public")
    )
    released = {s.released_pgr for s in subs} | {s.released_accuracy for s in subs}
    for s in subs:
        for value in (s.private_pgr, s.private_accuracy):
            if value not in released and len(repr(value)) >= 8:  # exact: JSON and CSV carry full floats
                assert repr(value) not in html + data
            if f"{value:.3f}" not in shown | {
                "0.000",
                "1.000",
            }:  # as rounded (0 and 1 are also hours), as a whole number (not inside "0.2500")
                assert not re.search(rf"(?<![\d.]){value:.3f}(?!\d)", html), f"{value:.3f}"
    for word in (
        "private PGR",
        "disqualified",
        "planted",
        "near_constant",
        "above_ceiling",
        "sandbox.",
        "best baseline",
        "Shipped baselines",
        "0.4321",
        "[0.311, 0.522]",
        "direction-1",
        served.tokens["bob"],
        ADMIN_TOKEN,
    ):
        assert word not in html + data, word
    assert not re.search(rf"(?<![\d.]){BOB_BUDGET}(?![\d.])", html + data)  # bob's budget, as a number
    chart = _get(served, alice, "/api/chart.json?metric=private").json()
    assert chart["metric"] == "released" and chart["baseline"] is None
    assert sorted(chart["points"]["id"]) == sorted(served.subs)
    admin_chart = _get(served, ADMIN_TOKEN, "/api/chart.json?metric=private").json()
    assert admin_chart["metric"] == "private" and admin_chart["baseline"]["name"] in ("vanilla", "confident")


def test_logins_redirects_and_refusals(served: Site):
    with httpx.Client(timeout=30) as http:
        r = http.get(served.url("/submissions?agent=bob"))
        assert r.status_code == 303
        assert r.headers["location"].startswith(
            "/dashboard/login?next=%2Fdashboard%2Fsubmissions%3Fagent%3Dbob"
        )
        r = http.get(served.url("/api/chart.json"))
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        for target in ("https://evil.example/x", "//evil.example/x", "/dashboard/..\\x", "/v1/admin/agents"):
            r = http.post(served.url("/login"), data={"token": ADMIN_TOKEN, "next": target})
            assert r.status_code == 303 and r.headers["location"] == "/dashboard/", target
        http.cookies.clear()
        r = http.post(
            served.url("/login"), data={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers  # no login from another site's form
        r = http.post(
            served.url("/login"), data={"token": ADMIN_TOKEN}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert r.status_code == 403 and "set-cookie" not in r.headers
        http.cookies.set("aar_dashboard", "aar_not-a-token", path="/dashboard")
        assert http.get(served.url("/")).status_code == 303
    carol = served.admin.create_agent("carol")
    served.admin.revoke_agent("carol")
    r = httpx.get(served.url("/"), headers={"Authorization": f"Bearer {carol.token}"})
    assert r.status_code == 303 and "revoked" in r.headers["location"]


def test_the_dashboard_is_read_only_and_unknown_objects_are_404(served: Site):
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/submissions", f"/submissions/{served.subs[0]}", "/api/chart.json", "/forum"):
            assert httpx.request(method, served.url(path), headers=auth).status_code == 405, (method, path)
    for path in (
        "/submissions/999999",
        "/submissions/abc",
        "/code/" + "0" * 64,
        "/code/xyz",
        f"/code/{served.codes['bob'][0]}?file=nope.py",
        "/forum/999999",
        f"/forum/{served.posts['plain'] + 1}",
    ):  # a reply is not a thread
        r = httpx.get(served.url(path), headers=auth)
        assert r.status_code == 404 and "Error 404" in r.text, path
    assert httpx.get(served.url("/static/../routes.py"), headers=auth).status_code == 404
    assert httpx.get(served.url("/static/uPlot.LICENSE.txt")).status_code == 200  # assets need no login


def test_the_live_dashboard_of_a_campaign_waits_for_its_set_up(tmp_path, monkeypatch):
    monkeypatch.setenv("AAR_DASHBOARD_PORT", "0")
    said: list[str] = []
    live = start_live(tmp_path / "campaign", say=said.append)
    try:
        assert live.url and said and said[0].startswith(f"dashboard: {live.url}")
        deadline = time.monotonic() + 120  # a safety net: the loop waits for the port
        while True:  # the child process binds its port after importing the server
            try:
                first = httpx.get(live.url, timeout=10)
                break
            except httpx.ConnectError:
                assert live.proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert first.status_code == 503 and "being set up" in first.text
        site = build_site(tmp_path)  # the campaign appears in the directory the dashboard watches
        try:
            r = httpx.get(live.url + "leaderboard", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert r.status_code == 200 and "disqualified" in r.text
        finally:
            site.srv.stop()
    finally:
        live.stop()
    assert live.proc.poll() is not None
