"""Units of the dashboard: safe Markdown, artifact files and diffs, the bounded caches, agent-hours."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aar.agents.artifacts import pack
from aar.campaign.state import AgentState, CampaignState
from aar.server.artifacts import blob_path
from aar.server.errors import ApiError
from aar.web.campaign import agent_hours_at, sandbox_events
from aar.web.code import MAX_DIFF_CHARS, CodeFile, _Cache, artifact_files, diff, tree
from aar.web.markdown import link_allowed, render_markdown


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org/x", True),
        ("http://a.b", True),
        ("mailto:a@b.c", True),
        ("/dashboard/forum/3", True),
        ("relative/path", True),
        ("#anchor", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("java\tscript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("data:text/html,<b>x</b>", False),
        ("vbscript:msgbox", False),
        ("file:///etc/passwd", False),
        ("//evil.example/x", False),
    ],
)
def test_link_schemes(url: str, ok: bool):
    assert link_allowed(url) is ok


def test_markdown_keeps_text_and_drops_active_content():
    html = render_markdown(
        "# T\n\n<script>alert(1)</script> <b onclick=x>b</b> ![img](https://x/y.png) "
        "[a](javascript:alert(1)) [b](https://ok.example) `code <i>`"
    )
    assert "<script" not in html and "<b " not in html and "<img" not in html
    assert 'href="javascript' not in html
    assert "[a](javascript:alert(1))" in html  # stays text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<code>code &lt;i&gt;</code>" in html
    assert '<a href="https://ok.example" rel="nofollow noopener noreferrer">b</a>' in html


def test_artifact_files_tree_and_single_file(tmp_path):
    tarball = pack({"src/pkg/a.py": b"print(1)\n", "README.md": b"# hi\n", "blob.bin": b"\0\1\2"})
    raw = b"def method():\n    return 1\n"
    shas = {}
    for name, data in (("code.tar.gz", tarball), ("method.py", raw)):
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        path = blob_path(tmp_path, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        shas[name] = sha
    files = artifact_files(tmp_path, shas["code.tar.gz"], "code.tar.gz")
    assert [f.path for f in files] == ["README.md", "blob.bin", "src/pkg/a.py"]
    assert next(f for f in files if f.path == "blob.bin").text is None  # binary: described, not shown
    rows = tree(files)
    assert [(r["name"], r["depth"], r["dir"]) for r in rows] == [
        ("README.md", 0, False),
        ("blob.bin", 0, False),
        ("src/", 0, True),
        ("pkg/", 1, True),
        ("a.py", 2, False),
    ]
    single = artifact_files(tmp_path, shas["method.py"], "method.py")
    assert [(f.path, f.text) for f in single] == [("method.py", raw.decode())]
    with pytest.raises(ApiError) as missing:
        artifact_files(tmp_path, "f" * 64, "gone")
    assert missing.value.status == 503


def test_diff_marks_changes_and_refuses_huge_files():
    old = [CodeFile("a.py", 0, "x = 1\ny = 2\n"), CodeFile("gone.py", 0, "bye\n")]
    new = [CodeFile("a.py", 0, "x = 1\ny = 3\n"), CodeFile("new.py", 0, "hi\n")]
    rows = diff(old, new)
    assert ("del", "-y = 2") in rows and ("add", "+y = 3") in rows and ("add", "+hi") in rows
    assert ("del", "-bye") in rows and ("meta", "+++ /dev/null") in rows
    big = "z\n" * MAX_DIFF_CHARS
    assert diff([CodeFile("b.py", 0, big)], [CodeFile("b.py", 0, big + "w\n")]) == [
        ("meta", "b.py differs (too large to diff here)")
    ]


def test_artifact_cache_is_bounded_in_entries_and_bytes():
    cache = _Cache(entries=3, max_bytes=100)
    cache.put("a", [1], 60)
    cache.put("b", [2], 30)
    cache.put("c", [3], 30)  # 120 bytes: the oldest goes
    assert cache.get("a") is None and cache.get("b") == [2] and cache.get("c") == [3]
    cache.put("huge", [4], 101)  # larger than the whole cache: never kept
    assert cache.get("huge") is None
    cache.put("d", [5], 1)
    cache.put("e", [6], 1)  # four entries: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("c") == [3]


def test_agent_hours_match_the_campaign_state_and_count_a_running_agent_up_to_now(tmp_path):
    now = time.time()
    agents = [
        AgentState(
            "a", 0, {"name": "d"}, 0, "t", "w", "l", intervals=[[now - 7200, now - 3600]], status="done"
        ),
        AgentState(
            "b", 1, {"name": "d"}, 1, "t", "w", "l", intervals=[[now - 1800, now - 1700]], status="running"
        ),
    ]
    state = CampaignState(str(tmp_path), "tb", {}, {}, agents)
    times = np.array([now - 5400, now - 3000, now])
    got = agent_hours_at(state, times)
    assert got[0] == pytest.approx(state.agent_hours_at(times[0]))
    assert got[1] == pytest.approx(state.agent_hours_at(times[1]))
    assert got[2] == pytest.approx(1.0 + 0.5, abs=1e-6)  # b's saved end lags; it is still running


def test_sandbox_events_newest_first_and_tolerant(tmp_path):
    lines = [
        '{"ts": 1, "event": "sandbox.start", "label": "a"}',
        "not json",
        '{"ts": 2, "event": "sandbox.exit"}',
    ]
    (tmp_path / "sandbox_events.jsonl").write_text("\n".join(lines) + "\n")
    events = sandbox_events(tmp_path)
    assert [e["event"] for e in events] == ["sandbox.exit", "sandbox.start"]
    assert events[1]["agent"] == "a" and sandbox_events(tmp_path / "nowhere") == []
