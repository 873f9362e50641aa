"""The dashboard in a real browser (Debian's chromium under Playwright) against a real server on
loopback: logins, visibility of an agent's token, the live chart, inert forum XSS, the code view,
and no console error on any page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from server.helpers import ADMIN_TOKEN

from .conftest import BOB_BUDGET, Site

PAGES = ["/", "/chart", "/submissions", "/forum", "/agents"]


@contextmanager
def watched(browser) -> Iterator[tuple]:
    """A fresh browser context and page whose console errors, page errors, dialogs and fetched
    responses are recorded; asserts at the end that no console error and no dialog happened."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    responses: list = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("response", lambda r: responses.append(r))
    bodies: list[str] = []

    def record(route) -> None:  # every body the page receives, read before the page can move on
        response = route.fetch(max_redirects=0)
        bodies.append(response.text())
        route.fulfill(response=response)

    context.route("**/*", record)
    try:
        yield page, SimpleNamespace(bodies=bodies, responses=responses, dialogs=dialogs)
        assert errors == [], errors
        assert dialogs == [], dialogs
    finally:
        context.unroute_all(behavior="ignoreErrors")  # a chart poll may be in flight
        context.close()


def login(page, site: Site, token: str, path: str = "/") -> None:
    """Log in through the form (the page asked for redirects there first)."""
    page.goto(site.url(path))
    assert "/dashboard/login" in page.url
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("#login-button")
    page.wait_for_load_state()
    assert "/dashboard/login" not in page.url, page.content()


def wait_points(page, n: int) -> None:
    """Wait until the chart has plotted ``n`` points (set by chart.js after drawing)."""
    page.wait_for_function("n => document.querySelector('#chart')?.dataset.points === String(n)", arg=n)


def test_admin_login_sees_private_figures_audits_and_baselines(browser, site: Site):
    board = site.admin.admin_leaderboard(site.bundle.testbed_id)[0]
    with watched(browser) as (page, _):
        login(page, site, ADMIN_TOKEN, "/")
        assert page.get_attribute("#whoami", "data-role") == "admin"
        text = page.inner_text("main")
        best = board.agents[0]
        row = page.inner_text("#leaderboard tbody tr:first-child")
        assert f"{best.private_pgr.mean:.3f}" in row and best.agent in row
        assert f"[{best.private_pgr.ci_low:.3f}, {best.private_pgr.ci_high:.3f}]" in row
        assert "disqualified" in text and "planted: reads the private half" in text
        assert "[0.311, 0.522]" in text  # the interval of the audited final-split figure
        assert board.best_baseline in page.inner_text("#baselines")
        assert page.locator("#beats").count() == 1
        page.goto(site.url("/agents"))
        agents = page.inner_text("#agents")
        assert "direction-0" in agents and "direction-1" in agents
        assert str(BOB_BUDGET) in page.inner_text("#server-agents")
        assert "sandbox.limit" in page.inner_text("#events")


def _visible_private(site: Site) -> list[tuple[str, str]]:
    """(exact, 3-decimal) renderings of every private figure that no public figure shares."""
    subs = site.admin.admin_submissions(testbed_id=site.bundle.testbed_id, limit=100).items
    public = {f"{s.released_pgr:.3f}" for s in subs} | {f"{s.released_accuracy:.3f}" for s in subs}
    out = []
    for s in subs:
        for value in (s.private_pgr, s.private_accuracy):
            # no chance collision: not a released figure, not a short float, not 0 or 1 (also hours)
            if f"{value:.3f}" not in public | {"0.000", "1.000"} and len(repr(value)) >= 8:
                out.append((repr(value), f"{value:.3f}"))
    return out


def test_agent_sees_no_private_figure_anywhere(browser, site: Site):
    secrets = _visible_private(site)
    assert secrets, "the seeded data must have private figures to hide"
    bob_sub = site.subs[1]
    with watched(browser) as (page, seen):
        login(page, site, site.tokens["alice"])
        assert page.get_attribute("#whoami", "data-role") == "agent"
        dom = []
        for path in [
            *PAGES,
            f"/submissions/{bob_sub}",
            f"/submissions/{site.subs[0]}",
            f"/code/{site.codes['bob'][0]}",
            f"/forum/{site.posts['plain']}",
        ]:
            page.goto(site.url(path))
            if path == "/chart":
                wait_points(page, len(site.subs))
            dom.append(page.content())
        html = "\n".join(dom)
        fetched = "\n".join(seen.bodies)
        for exact, rounded in secrets:
            assert exact not in fetched and exact not in html
            shown = re.search(rf"(?<![\d.]){re.escape(rounded)}(?!\d)", html)  # a whole number, not "0.2500"
            assert not shown, f"private figure {rounded} shown to an agent"
        for word in (
            "private PGR",
            "private half",
            "public-half",
            "disqualified",
            "planted",
            "sandbox.",
            "direction-1",
            "[0.311, 0.522]",
        ):
            assert word not in html, f"{word!r} shown to an agent"
        assert not re.search(rf"(?<![\d.]){BOB_BUDGET}(?![\d.])", html + fetched), "another agent's budget"
        chart = [json.loads(b) for b in seen.bodies if b.startswith('{"testbed"')]
        assert chart and all(c["metric"] == "released" and c["baseline"] is None for c in chart)
        assert all(set(c["points"]) == {"id", "x", "y", "agent", "method"} for c in chart)
        # the agent's own budget is shown on its own submission, never on bob's
        page.goto(site.url(f"/submissions/{site.subs[0]}"))
        assert "500" in page.inner_text("#budget")
        page.goto(site.url(f"/submissions/{bob_sub}"))
        assert page.locator("#budget").count() == 0
        # asking for the private figure explicitly still returns the released one
        data = page.request.get(
            site.url(f"/api/chart.json?metric=private&testbed={site.bundle.testbed_id}")
        ).json()
        assert data["metric"] == "released"


def test_chart_has_one_point_per_submission_and_follows_new_scores(browser, site: Site):
    with watched(browser) as (page, _):
        login(page, site, site.tokens["bob"], "/chart")
        n = len(site.subs)
        wait_points(page, n)
        box = page.locator("#chart .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        page.wait_for_function("() => document.querySelector('#tip').textContent.includes('submission #')")
        assert re.search(r"(alice|bob) · \w+ · submission #\d+", page.inner_text("#tip"))
        new_id = site.submit("alice", site.codes["alice"][1], 0.82, "soft_labels")
        wait_points(page, n + 1)
        page.wait_for_function(f"() => document.querySelector('#chart').dataset.latest === '{new_id}'")
        csv = page.request.get(site.srv.base_url + page.get_attribute("#dl-csv", "href"))
        assert csv.ok and csv.headers["content-type"].startswith("text/csv")
        rows = csv.text().strip().splitlines()
        assert len(rows) == n + 2 and rows[0].startswith("submission_id,agent,method")
        assert sorted(int(r.split(",")[0]) for r in rows[1:]) == sorted(site.subs)
        js = page.request.get(site.srv.base_url + page.get_attribute("#dl-json", "href"))
        assert sorted(js.json()["points"]["id"]) == sorted(site.subs)


def test_forum_post_with_script_and_javascript_links_is_inert(browser, site: Site):
    with watched(browser) as (page, seen):
        login(page, site, site.tokens["alice"], f"/forum/{site.posts['evil']}")
        response = page.request.get(site.url(f"/forum/{site.posts['evil']}"))
        assert "script-src 'self'" in response.headers["content-security-policy"]
        body = page.locator(f"#post-{site.posts['evil']} .md")
        assert "<script>window.alert('xss-script')</script>" in body.inner_text()
        assert body.locator("script, img, iframe").count() == 0
        assert page.locator("a[href^='javascript:' i]").count() == 0
        assert body.locator("a[href='https://example.org/paper']").count() == 1
        assert "<b>bold</b>" in page.inner_text("h1")
        for text in ("click me", "xss-autolink"):
            page.get_by_text(text).first.click()
        page.goto(site.url("/forum?tag=xss"))
        assert page.locator("#threads li").count() == 1
        assert seen.dialogs == []


def test_code_view_shows_a_file_and_a_diff(browser, site: Site):
    with watched(browser) as (page, _):
        login(page, site, site.tokens["bob"], f"/submissions/{site.subs[2]}")
        assert "lr" in page.inner_text("table.params")
        page.click("#view-code")
        page.click("#file-tree a:text('method.py')")
        assert page.inner_text("#file-name").startswith("src/method.py")
        assert "# version 2" in page.inner_text("#file-view")
        assert page.locator("#file-view .hl").count() == 1
        page.goto(site.url(f"/submissions/{site.subs[2]}"))
        page.click("#diff-previous")
        diff = page.inner_text("#diff")
        assert "-    # version 1" in diff and "+    # version 2" in diff
        assert page.locator("#diff .add").count() >= 2 and page.locator("#diff .del").count() >= 2


@pytest.mark.parametrize("role", ["admin", "alice"])
def test_every_page_renders_without_console_errors(browser, site: Site, role: str):
    token = ADMIN_TOKEN if role == "admin" else site.tokens[role]
    with watched(browser) as (page, seen):
        login(page, site, token)
        for path in [
            *PAGES,
            f"/submissions/{site.subs[0]}",
            f"/code/{site.codes['alice'][0]}",
            f"/forum/{site.posts['plain']}",
            f"/forum/{site.posts['evil']}",
            f"/submissions?agent=bob&testbed={site.bundle.testbed_id}",
            "/forum?q=soft",
        ]:
            page.goto(site.url(path))
            page.wait_for_load_state("load")
            if path == "/chart":
                page.wait_for_function("() => Number(document.querySelector('#chart').dataset.points) >= 0")
        assert [r.url for r in seen.responses if r.status >= 400] == []
        page.click("text=Log out")
        page.goto(site.url("/leaderboard"))
        assert "/dashboard/login" in page.url
