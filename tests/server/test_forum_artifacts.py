"""Forum (untrusted Markdown, search, pagination) and the content-addressed code store."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from aar.client import ApiError, NotFound

from .helpers import unique


def test_posts_replies_search_and_pagination(harness):
    a, a_name = harness.agent()
    b, _ = harness.agent()
    word = unique("zebra")
    sha = harness.code(a, "print('method')")
    p1 = a.post(f"Idea {word}", "Use **confidence**", tags=["confidence", "math"], artifact_hashes=[sha])
    p2 = a.post("Second", f"body mentioning {word.upper()}", tags=["math"])
    p3 = b.post("Third", "unrelated", tags=[unique("t")])
    r = b.reply(p1.id, "Tried it: works")
    thread = a.thread(p1.id)
    assert [x.id for x in thread.replies] == [r.id] and thread.post.n_replies == 1
    assert "<strong>confidence</strong>" in p1.body_html
    hits = b.posts(q=word)
    assert {p.id for p in hits.items} == {p1.id, p2.id}  # case-insensitive, title or body
    assert {p.id for p in b.posts(author=a_name).items} == {p1.id, p2.id}
    assert {p.id for p in b.posts(tag=p3.tags[0]).items} == {p3.id}
    page1 = b.posts(author=a_name, limit=1)
    page2 = b.posts(author=a_name, limit=1, offset=page1.next_offset)
    assert page1.total == 2 and page2.next_offset is None
    assert page1.items[0].id == p2.id and page2.items[0].id == p1.id
    # LIKE wildcards in a query are literal characters: '%' matches a percent sign, not anything
    literal = a.post(f"{word} 100% sure", "b")
    a.post(f"{word} 100 percent", "b")
    assert {p.id for p in b.posts(q=f"{word} 100%").items} == {literal.id}
    assert {p.id for p in b.posts(q=f"{word}_100").items} == set()  # '_' is literal too
    pct = b.posts(q="%", limit=100)
    assert pct.total >= 1 and all("%" in p.title + p.body for p in pct.items)


def test_untrusted_bodies_are_stored_verbatim_and_rendered_safely(harness):
    a, _ = harness.agent()
    evil = "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    post = a.post("xss", evil)
    assert post.body == evil
    assert "<script>" not in post.body_html and "&lt;script&gt;" in post.body_html
    assert 'href="javascript:' not in post.body_html and "<img" not in post.body_html
    assert a.thread(post.id).post.body == evil


def test_forum_bad_input(harness):
    a, _ = harness.agent()
    for kw in ({"artifact_hashes": ["0" * 64]}, {"submission_ids": [10**9]}):
        with pytest.raises(NotFound):
            a.post("t", "b", **kw)
    for title, tags in (("", []), ("t\x00", []), ("t", ["Bad Tag"]), ("x" * 201, [])):
        with pytest.raises(ApiError) as e:
            a.post(title, "b", tags=tags)
        assert e.value.status == 422
    with pytest.raises(NotFound):
        a.reply(10**9, "hi")
    with pytest.raises(NotFound):
        a.thread(10**9)
    r = httpx.get(
        harness.srv.base_url + "/v1/forum/posts/99999999999999999999999",
        headers={"Authorization": f"Bearer {a.token}"},
    )
    assert r.status_code == 404  # a path id outside 1..2^31-1 names nothing, on every database


def test_artifacts_are_content_addressed_and_immutable(harness):
    a, a_name = harness.agent()
    b, _ = harness.agent()
    data = b"tarball bytes " + unique("x").encode()
    info = a.upload_artifact(data, name="method.tar.gz", kind="code")
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.created and info.owner == a_name
    again = b.upload_artifact(data, name="other.tar.gz")
    assert not again.created and again.owner == a_name and again.name == "method.tar.gz"
    assert b.download(info.sha256) == data
    assert b.artifact(info.sha256).size == len(data)
    assert info.sha256 in {x.sha256 for x in b.artifacts(owner=a_name).items}
    r = httpx.get(
        f"{harness.srv.base_url}/v1/artifacts/{info.sha256}/content",
        headers={"Authorization": f"Bearer {b.token}"},
    )
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")


def test_artifact_bad_input(harness):
    a, _ = harness.agent()
    with pytest.raises(ApiError) as e:
        a.upload_artifact(b"x" * 70_000)
    assert e.value.status == 413
    r = a.request  # raw call with a wrong declared hash
    with pytest.raises(ApiError) as e:
        r("POST", "/v1/artifacts", content=b"abc", params={"sha256": "0" * 64})
    assert e.value.code == "hash_mismatch"
    with pytest.raises(ApiError) as e:
        r("POST", "/v1/artifacts", content=b"")
    assert e.value.code == "empty_artifact"
    with pytest.raises(NotFound):
        a.artifact("f" * 64)
    with pytest.raises(ApiError) as e:
        a.artifact("../../etc/passwd")
    assert e.value.status in (404, 422)
    with pytest.raises(ApiError) as e:
        r("POST", "/v1/artifacts", content=b"abc", params={"name": "../evil"})
    assert e.value.status == 422
