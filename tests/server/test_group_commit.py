"""Group commit (aar.server.group_commit) on a real database: several jobs share one transaction, a job
that fails after writing is isolated (its writes vanish, the others commit exactly once), a job refused
before writing leaves the batch intact, and no job is answered before its commit."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest

from aar.server.db import Database, migrate
from aar.server.errors import ApiError
from aar.server.group_commit import GroupWriter, Tx

SQL_MARK = (
    "INSERT INTO audit_log (at, actor, method, path, status, outcome, client) "
    "VALUES (0, :actor, 'TEST', '/', 200, 'ok', 'test')"
)
SQL_COUNT = "SELECT count(*) FROM audit_log WHERE actor = :actor"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path) -> Iterator[Database]:
    """A migrated database of each kind (PostgreSQL: the test run's throwaway database)."""
    url = (
        request.getfixturevalue("pg_database")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path}/g.db"
    )
    migrate(url)
    database = Database(url)
    yield database
    database.dispose()


def _count(db: Database, actor: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql(db.sql(SQL_COUNT), {"actor": actor}).scalar_one())


def _mark(actor: str, fail: BaseException | None = None, fail_before_write: bool = False):
    def job(tx: Tx) -> str:
        if fail is not None and fail_before_write:
            raise fail
        tx.run(SQL_MARK, {"actor": actor}, write=True)
        if fail is not None:
            raise fail
        return actor

    return job


async def _batch(writer: GroupWriter, jobs: list, prepare=None) -> list:
    """Run ``jobs`` as one batch: a first job holds the writer thread until all of them are queued."""
    queued, release = threading.Event(), threading.Event()

    def hold(tx: Tx) -> None:
        queued.set()
        assert release.wait(60)

    holder = asyncio.ensure_future(writer.run(hold))
    await asyncio.get_running_loop().run_in_executor(None, queued.wait, 60)
    tasks = [
        asyncio.ensure_future(writer.run(job, order_key=k, prepare=prepare)) for k, job in enumerate(jobs)
    ]
    await asyncio.sleep(0)  # the tasks enqueue their jobs
    release.set()
    await holder
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_jobs_share_one_transaction(db):
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    actors = [f"g-{tag}-{i}" for i in range(5)]
    results = asyncio.run(_batch(writer, [_mark(a) for a in actors]))
    assert results == actors
    assert writer.batches == 2 and writer.jobs == 6  # the holder's transaction, then all five together
    assert all(_count(db, a) == 1 for a in actors)


def test_failure_after_a_write_is_isolated(db):
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    ok1, bad, ok2 = f"g-{tag}-ok1", f"g-{tag}-bad", f"g-{tag}-ok2"
    results = asyncio.run(_batch(writer, [_mark(ok1), _mark(bad, RuntimeError("boom")), _mark(ok2)]))
    assert results[0] == ok1 and results[2] == ok2
    assert isinstance(results[1], RuntimeError)
    # the shared transaction was rolled back and each job ran again alone: no write twice, none lost
    assert (_count(db, ok1), _count(db, bad), _count(db, ok2)) == (1, 0, 1)


def test_database_error_is_isolated(db):
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    ok1, ok2 = f"g-{tag}-ok1", f"g-{tag}-ok2"

    def broken(tx: Tx) -> None:
        tx.run("INSERT INTO audit_log (at) VALUES (0)", write=True)  # NOT NULL columns missing

    results = asyncio.run(_batch(writer, [_mark(ok1), broken, _mark(ok2)]))
    assert results[0] == ok1 and results[2] == ok2
    from sqlalchemy.exc import IntegrityError

    assert isinstance(results[1], IntegrityError)
    assert (_count(db, ok1), _count(db, ok2)) == (1, 1)


def test_refusal_before_writing_keeps_the_batch(db):
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    ok1, refused, ok2 = f"g-{tag}-ok1", f"g-{tag}-refused", f"g-{tag}-ok2"
    refusal = ApiError(429, "budget_exhausted", "no budget left")
    jobs = [_mark(ok1), _mark(refused, refusal, fail_before_write=True), _mark(ok2)]
    results = asyncio.run(_batch(writer, jobs))
    assert results[0] == ok1 and results[1] is refusal and results[2] == ok2
    assert writer.batches == 2  # the holder's, then one for all three: no rollback, no re-run
    assert (_count(db, ok1), _count(db, refused), _count(db, ok2)) == (1, 0, 1)


def test_answer_only_after_commit(db):
    """A job's result reaches its caller only once a fresh connection can read its write."""
    writer = GroupWriter(db, lanes=1)
    actor = f"g-{uuid.uuid4().hex[:8]}"
    seen_inside: list[int] = []

    def job(tx: Tx) -> int:
        tx.run(SQL_MARK, {"actor": actor}, write=True)
        seen_inside.append(_count(db, actor))  # another connection: the write is not committed yet
        return 1

    assert asyncio.run(writer.run(job)) == 1
    assert seen_inside == [0] and _count(db, actor) == 1


def test_commit_hooks_run_only_for_committed_jobs(db):
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    ran: list[str] = []

    def with_hook(name: str, fail: bool):
        def job(tx: Tx) -> None:
            tx.run(SQL_MARK, {"actor": f"g-{tag}-{name}"}, write=True)
            tx.after_commit(lambda: ran.append(name))
            if fail:
                raise RuntimeError(name)

        return job

    asyncio.run(_batch(writer, [with_hook("a", False), with_hook("b", True), with_hook("c", False)]))
    assert sorted(ran) == ["a", "c"]


def test_prepare_runs_once_per_batch_before_its_jobs(db):
    """A batch's prepare step runs once, first, with the sorted keys of the jobs that named it; what
    it leaves in the transaction's scratch is what the jobs see."""
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    calls: list[list[int]] = []

    def prepare(tx: Tx, keys: list[int]) -> None:
        calls.append(list(keys))
        tx.scratch["prepared"] = len(keys)

    def job(actor: str):
        def run(tx: Tx) -> int:
            tx.run(SQL_MARK, {"actor": actor}, write=True)
            return int(tx.scratch["prepared"])

        return run

    actors = [f"g-{tag}-{i}" for i in range(4)]
    results = asyncio.run(_batch(writer, [job(a) for a in actors], prepare=prepare))
    assert results == [4, 4, 4, 4]
    assert calls == [[0, 1, 2, 3]]
    assert all(_count(db, a) == 1 for a in actors)


def test_failed_prepare_runs_each_job_alone(db):
    """A prepare step that fails for the batch rolls it back; each job then runs in its own
    transaction with its own prepare, and commits exactly once."""
    writer = GroupWriter(db, lanes=1)
    tag = uuid.uuid4().hex[:8]
    calls: list[list[int]] = []

    def prepare(tx: Tx, keys: list[int]) -> None:
        calls.append(list(keys))
        tx.run(SQL_MARK, {"actor": f"g-{tag}-prepare"}, write=True)
        if len(keys) > 1:
            raise RuntimeError("cannot prepare a batch")

    actors = [f"g-{tag}-{i}" for i in range(3)]
    results = asyncio.run(_batch(writer, [_mark(a) for a in actors], prepare=prepare))
    assert results == actors
    assert calls == [[0, 1, 2], [0], [1], [2]]
    assert all(_count(db, a) == 1 for a in actors)
    assert _count(db, f"g-{tag}-prepare") == 3  # the failed batch's write was rolled back
