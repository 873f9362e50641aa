"""Hardening: malformed and racing registrations, id ranges, control characters, reserved names,
the receipt's budget, and leftovers of killed uploads. Each test failed before its fix."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import random
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from aar.client import ApiError
from aar.server import models
from aar.server.app import create_app
from aar.server.artifacts import clean_uploads
from aar.server.db import Database, migrate
from aar.server.vault import register
from aar.textcheck import check_line, check_text
from aar.w2s.vault import VaultBundle

from .conftest import settings_for
from .helpers import ADMIN_TOKEN, ServerThread, labels_of, make_bundle, unique

MAX_ID = 2**31 - 1


def _http(harness, token: str = ADMIN_TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=harness.srv.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _vault_files(harness, testbed_id: str) -> list[Path]:
    return sorted((harness.srv.settings.data_dir / "vault").glob(f"*{testbed_id}*"))


# -- item 6: every malformed bundle is a 4xx (fuzzed), never a 500 -------------------------------------


def _mutations(valid: dict, rng: random.Random, n: int) -> tuple[list[dict | str], list[dict]]:
    """Known malformed variants of a valid bundle, and random structural edits (some still valid)."""
    ids = sorted(valid["labels"])
    known: list[dict | str] = []
    for name in ("weak", "ceiling", "vanilla"):
        for bad in ([], [{}], [{ids[0]: 0.5}], None, {}, "x", [[]]):
            b = copy.deepcopy(valid)
            b["references"][name] = bad
            known.append(b)
    for key in ("labels", "references", "testbed_id"):
        b = copy.deepcopy(valid)
        del b[key]
        known.append(b)
    for key, bad in (
        ("labels", {}),
        ("labels", {ids[0]: 1}),
        ("labels", {**valid["labels"], ids[0]: 2}),
        ("final_labels", {ids[0]: 1}),  # shares an id with the test split
        ("references", {}),
        ("format", 1),
        ("format", 3),
        ("testbed_id", ""),
        ("testbed_id", "../etc"),
        ("testbed_id", "x" * 65),
        ("description", "line\x00"),
        ("description", "\x1b[2J"),
        ("teacher_on_test", "maybe"),
        ("extra", 1),
    ):
        b = copy.deepcopy(valid)
        b[key] = bad
        known.append(b)
    b = copy.deepcopy(valid)  # a probability outside [0, 1] and one that is not finite
    b["references"]["vanilla"][0][ids[1]] = 1.5
    known.append(b)
    known.append(json.dumps(valid).replace(f'"{ids[2]}": 0.', f'"{ids[2]}": NaN, "_x": 0.', 1))
    known.append(json.dumps(valid).replace(f'"{ids[3]}": 0', f'"{ids[3]}": 1e999, "_y": 0', 1))
    b = copy.deepcopy(valid)  # weak as good as the ceiling: no gap to recover
    b["references"]["weak"] = copy.deepcopy(b["references"]["ceiling"])
    known.append(b)
    b = copy.deepcopy(valid)  # a control character in an example id
    b["labels"]["bad\x07id"] = 1
    for runs in b["references"].values():
        for run in runs:
            run["bad\x07id"] = 0.5
    known.append(b)

    junk = [None, [], {}, "", -1, 2, 1e308, "x\x00", [None], {"": None}, True, "\ud7ff" * 3]
    fuzzed: list[dict | str] = []
    for _ in range(n):
        b = copy.deepcopy(valid)
        node, parent, key = b, None, None
        for _depth in range(rng.randint(1, 4)):  # walk to a random place in the tree
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            parent, key = node, rng.choice(keys)
            if not isinstance(node[key], (dict, list)) or rng.random() < 0.3:
                break
            node = node[key]
        if parent is None:
            continue
        if isinstance(parent, dict) and rng.random() < 0.3:
            del parent[key]
        else:
            parent[key] = copy.deepcopy(rng.choice(junk))
        fuzzed.append(b)
    return known, fuzzed


def test_registration_fuzz_never_500(harness):
    valid = json.loads(make_bundle(n=40, seed=77, n_seeds=2, n_final=10).model_dump_json())
    known, fuzzed = _mutations(valid, random.Random(6), n=150)
    with _http(harness) as http:
        for i, case in enumerate(known + fuzzed):
            if isinstance(case, dict) and case.get("testbed_id") == valid["testbed_id"] and i % 5:
                case["testbed_id"] = f"fz-{i}-{valid['testbed_id']}"  # most valid variants register
            body = case if isinstance(case, str) else json.dumps(case)
            r = http.post("/v1/admin/testbeds", content=body, headers={"content-type": "application/json"})
            assert r.status_code in (200, 201, 400, 409, 422), (i, r.status_code, r.text[:300], body[:300])
            assert r.status_code < 300 or r.json()["error"]["code"]
            if i < len(known):  # a known-malformed bundle is refused, and nothing of it is stored
                assert r.status_code in (400, 422), (i, r.status_code, body[:300])
                if isinstance(case, dict) and isinstance(case.get("testbed_id"), str):
                    assert not _vault_files(harness, case["testbed_id"]) or case["testbed_id"] == ""
    assert not list((harness.srv.settings.data_dir / "vault").glob(".*"))


# -- item 7: the same new bundle from 8 threads: all answer 2xx, one file, no temp files ---------------


def test_concurrent_identical_registration(harness):
    bundle = make_bundle(n=700, seed=5151)
    body = bundle.model_dump_json()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def go() -> None:
        with _http(harness) as http:
            barrier.wait()
            r = http.post("/v1/admin/testbeds", content=body, headers={"content-type": "application/json"})
            statuses.append(r.status_code)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200] * 7 + [201], statuses
    assert len(_vault_files(harness, bundle.testbed_id)) == 1
    assert not list((harness.srv.settings.data_dir / "vault").glob(".*"))
    # again, sequentially: 200; a different bundle under the same id: 409
    with _http(harness) as http:
        assert http.post("/v1/admin/testbeds", content=body).status_code == 200
        other = make_bundle(bundle.testbed_id, n=100, seed=5152)
        assert http.post("/v1/admin/testbeds", content=other.model_dump_json()).status_code == 409


def test_vault_file_only_with_its_row(tmp_path, monkeypatch):
    """A transaction that fails after the insert leaves neither a row nor a vault file."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
    db = Database(url)
    bundle = make_bundle("rowless", n=60, seed=8)
    real_write = Database.write

    def failing_write(self):
        class _Failing:
            def __enter__(inner):
                inner.cm = real_write(self)
                return inner.cm.__enter__()

            def __exit__(inner, *exc):
                inner.cm.__exit__(OperationalError, OperationalError("commit", {}, Exception()), None)
                raise OperationalError("commit failed", {}, Exception("disk gone"))

        return _Failing()

    try:
        monkeypatch.setattr(Database, "write", failing_write)
        with pytest.raises(OperationalError):
            register(db, tmp_path, bundle)
        monkeypatch.setattr(Database, "write", real_write)
        assert not list((tmp_path / "vault").iterdir())
        with db.read() as s:
            assert s.get(models.Testbed, "rowless") is None
        _, created = register(db, tmp_path, bundle)  # and it can be registered afterwards
        assert created and len(list((tmp_path / "vault").iterdir())) == 1
    finally:
        db.dispose()


# -- item 8: ids beyond 32 bits: 404 in paths, 422 in bodies, on SQLite and PostgreSQL alike -----------


def test_id_ranges_same_on_every_database(harness):
    agent, _ = harness.agent()
    with _http(harness, agent.token) as http:
        for bad in (MAX_ID + 1, 2**53, 2**63, 10**30, 0, -1):
            for path in (f"/v1/submissions/{bad}", f"/v1/forum/posts/{bad}"):
                r = http.get(path)
                assert r.status_code == 404, (path, r.status_code, r.text)
                assert r.json()["error"]["code"] == "not_found"
            r = http.post(f"/v1/forum/posts/{bad}/replies", json={"body": "hi"})
            assert r.status_code == 404, (bad, r.text)
        assert http.get(f"/v1/submissions/{MAX_ID}").status_code == 404  # in range, unknown
        for bad in (MAX_ID + 1, 2**53, 0):
            r = http.post("/v1/forum/posts", json={"title": "t", "body": "b", "submission_ids": [bad]})
            assert r.status_code == 422, (bad, r.text)
            r = http.post("/v1/forum/posts/1/replies", json={"body": "b", "submission_ids": [bad]})
            assert r.status_code in (404, 422), r.text
        r = http.post("/v1/forum/posts", json={"title": "t", "body": "b", "submission_ids": [MAX_ID]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_submission"


# -- item 9: control characters in request text ---------------------------------------------------------


def test_control_characters_refused_everywhere(harness):
    agent, _ = harness.agent()
    bundle = harness.testbed(n=60)
    sha = harness.code(agent)
    with _http(harness, agent.token) as http:
        for title in ("a\x00b", "a\nb", "a\rb", "\x1b[31mred", "a\x85b", "tab\there"):
            r = http.post("/v1/forum/posts", json={"title": title, "body": "b"})
            assert r.status_code == 422, (repr(title), r.text)
        for body in ("a\x00", "a\r\nb", "\x1b]0;title\x07", "\x7f"):
            r = http.post("/v1/forum/posts", json={"title": "t", "body": body})
            assert r.status_code == 422, (repr(body), r.text)
            r = http.post("/v1/forum/posts/1/replies", json={"body": body})
            assert r.status_code in (404, 422), r.text
        ok = http.post("/v1/forum/posts", json={"title": "fine", "body": "line one\n\tindented"})
        assert ok.status_code == 201 and ok.json()["body"] == "line one\n\tindented"
        preds = {k: float(v) for k, v in labels_of(bundle).items()}
        body = {
            "testbed_id": bundle.testbed_id,
            "example_ids": list(preds),
            "probabilities": list(preds.values()),
            "artifact_sha256": sha,
        }
        r = http.post("/v1/submissions", json={**body, "description": "x\x00y"})
        assert r.status_code == 422, r.text
        r = http.post("/v1/submissions", json={**body, "example_ids": [*body["example_ids"][:-1], "a\x00"]})
        assert r.status_code == 422, r.text
    # a bundle with a NUL in its description: refused before anything is stored (no row, no file)
    b = make_bundle(n=40, seed=4242).model_dump()
    b["description"] = "synthetic\x00"
    with _http(harness) as http:
        r = http.post("/v1/admin/testbeds", json=b)
        assert r.status_code == 422, r.text
        assert http.get(f"/v1/testbeds/{b['testbed_id']}").status_code == 404
    assert _vault_files(harness, b["testbed_id"]) == []


def test_text_rules_unit():
    assert check_text("a\n\tb") == "a\n\tb" and check_line("plain é ✓") == "plain é ✓"
    for bad in ("\x00", "\r", "\x1b", "\x7f", "\x9b", "\ud800"):
        with pytest.raises(ValueError):
            check_text("x" + bad)
    with pytest.raises(ValueError):
        check_line("a\nb")
    with pytest.raises(ValueError):
        VaultBundle.model_validate({**make_bundle(n=10, seed=1).model_dump(), "description": "\x00"})


# -- item 12: the receipt's budget when the hourly budget is unlimited --------------------------------


def test_receipt_budget_with_unlimited_hourly_budget(tmp_path):
    srv = ServerThread(settings_for(tmp_path, None, budget_per_hour=None, budget_total=None)).start()
    try:
        admin = srv.client()
        bundle = make_bundle(n=60, seed=12)
        admin.register_testbed(bundle)
        agent = srv.client(admin.create_agent("unlimited").token)
        sha = agent.upload_artifact(b"code").sha256
        preds = {k: float(v) for k, v in labels_of(bundle).items()}
        for i in range(4):
            receipt = agent.submit(bundle.testbed_id, preds, sha, f"run {i}")
            assert receipt.budget.used_last_hour == i + 1
            assert receipt.budget.used_total == i + 1
            assert receipt.budget.per_hour is None and receipt.budget.total is None
        me = agent.me().budget
        assert me.used_last_hour == receipt.budget.used_last_hour == 4
        assert me.hour_resets_at == pytest.approx(receipt.budget.hour_resets_at)
    finally:
        srv.stop()


# -- item 13: reserved names -----------------------------------------------------------------------------


def test_reserved_agent_names(harness):
    for name in ("admin", "Admin", "ADMIN", "ad-min", "root", "system_2", "server", "aar", "anonymous",
                 "baseline", "weak", "Ceiling", "best_baseline"):  # fmt: skip
        with pytest.raises(ApiError) as e:
            harness.admin.create_agent(name)
        assert e.value.status == 422 and e.value.code == "reserved_name", name
    fine = unique("admiral")
    assert harness.admin.create_agent(fine).name == fine


# -- item 11: leftovers of killed uploads are removed at start, live uploads are kept -----------------


def test_killed_upload_leftovers_removed_at_start(tmp_path):
    root = tmp_path / "artifacts"
    root.mkdir(parents=True)
    orphan = root / ".upload-orphan"
    orphan.write_bytes(b"half an upload")
    live = root / ".upload-live"
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as an upload in progress in another worker holds it
    try:
        app = create_app(settings_for(tmp_path, None))
        assert not orphan.exists() and live.exists()
        app.state.ctx.db.dispose()
    finally:
        os.close(fd)
    assert clean_uploads(tmp_path) == 1 and not live.exists()


def test_killed_registration_leftovers_removed_at_start(tmp_path):
    from aar.server.vault import REGISTER_PREFIX, clean_registrations, vault_dir

    vault = vault_dir(tmp_path)
    orphan = vault / f"{REGISTER_PREFIX}orphan"
    orphan.write_text("{half a bundle")
    live = vault / f"{REGISTER_PREFIX}live"
    live.write_text("{being written")
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a registration in progress in another worker holds it
    try:
        app = create_app(settings_for(tmp_path, None))
        assert not orphan.exists() and live.exists()
        app.state.ctx.db.dispose()
    finally:
        os.close(fd)
    assert clean_registrations(tmp_path) == 1 and not live.exists()
