"""Group commit: writer threads run queued write jobs in shared transactions, one commit for many.

A request hands its write (a *job*: a function of a :class:`Tx`) to the process's
:class:`GroupWriter` and waits. A writer thread takes every job queued while its previous transaction
was committing (at most ``max_batch``), runs them one after the other in one transaction, commits once
and only then answers each request. So:

* nothing is acknowledged before the commit that holds it (an answered write survives a kill -9 of
  the server: see :mod:`aar.server.db` for what each database guarantees);
* each job sees the writes of the jobs before it in the same transaction, so read-then-write rules
  (budgets) are exact, as they are with one transaction per request;
* a job that raises before writing anything (a refused budget, an unknown artifact) just answers its
  request with the error while the others go on; a job that fails after a write, or on a database
  error, rolls the whole transaction back, and then every job of the batch runs again in its own
  transaction, so each request gets its own outcome (savepoints would do the same at two extra
  round trips per job on PostgreSQL);
* under load one commit (an fsync on PostgreSQL) and one round of locking serve many requests; with
  one request at a time a batch holds one job and nothing waits for a timer.

Each writer thread holds one pooled connection while it is busy (returned after a second idle), and
jobs run on a raw DB-API cursor with hand-written SQL (:meth:`aar.server.db.Database.sql`), which
skips SQLAlchemy's per-statement work on the hot path; driver errors reach the request as
SQLAlchemy's exception classes (so the app's handlers answer 503 or 409 as elsewhere). On SQLite the
transaction is ``BEGIN IMMEDIATE`` under :meth:`~aar.server.db.Database.write_lock`; on PostgreSQL the
jobs of a batch run in the order of their ``order_key`` (the agent id), so two writer processes that
lock agent rows (``SELECT ... FOR UPDATE``) always lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from aar.server.db import Database

log = logging.getLogger("aar.server")
R = TypeVar("R")


class Tx:
    """The shared transaction as a job sees it: statements, and work to do once it is committed."""

    def __init__(self, db: Database, cursor: Any) -> None:
        """Wrap a DB-API cursor of ``db``'s write connection."""
        self.db, self.cursor = db, cursor
        self.committed_hooks: list[Callable[[], None]] = []
        self.scratch: dict[Any, Any] = {}  # per-transaction memo for jobs (values written earlier in it)
        self.wrote = False  # whether the current job has run a write

    def run(self, sql: str, params: dict[str, Any] | None = None, write: bool = False) -> Any:
        """Execute hand-written SQL with ``:name`` parameters (``write``: it changes data); returns the
        cursor."""
        self.wrote = self.wrote or write
        statement = self.db.sql(sql)
        try:
            self.cursor.execute(statement, params or {})
        except self.db.dbapi_error as e:
            raise DBAPIError.instance(statement, params, e, self.db.dbapi_error) from e
        return self.cursor

    def one(self, sql: str, params: dict[str, Any] | None = None, write: bool = False) -> tuple[Any, ...]:
        """The single row of a query, or of a write's RETURNING clause (LookupError when there is none)."""
        row = self.run(sql, params, write).fetchone()
        if row is None:
            raise LookupError(f"no row for {sql.split(' WHERE')[0]}")
        return tuple(row)

    def first(self, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        row = self.run(sql, params).fetchone()
        return None if row is None else tuple(row)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the transaction holding this job's writes is committed (never on rollback)."""
        self.committed_hooks.append(hook)


Prepare = Callable[[Tx, list[int]], None]  # a batch's first statements, given its jobs' order keys


@dataclass
class _Job(Generic[R]):
    fn: Callable[[Tx], R]
    order_key: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]
    prepare: Prepare | None = None
    hooks: list[Callable[[], None]] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


def _deliver(job: _Job[Any]) -> None:
    """Answer a job's request from its event loop's thread (a request gone meanwhile is skipped)."""
    if job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)


# writer threads per process on PostgreSQL: two overlap one transaction's round trips with another's;
# more split the batches (bench_server: 0.9-1.0 ms of server CPU per score with one or two, 1.2 with four)
PG_LANES = 2
IDLE_RELEASE_S = 1.0  # a lane holds its connection while busy and returns it after this long idle


class GroupWriter:
    """A process's group-commit writer: one lane (a thread with its queue) on SQLite, whose writers
    are serialised anyway, and :data:`PG_LANES` on PostgreSQL, so that one transaction's round trips
    overlap with another's. Jobs with the same ``order_key`` (one agent) always share a lane."""

    def __init__(self, db: Database, max_batch: int = 64, lanes: int | None = None) -> None:
        """A writer over ``db``'s write engine committing at most ``max_batch`` jobs at a time."""
        n = lanes if lanes is not None else (1 if db.is_sqlite else PG_LANES)
        self.lanes = [_Lane(db, max_batch) for _ in range(n)]

    @property
    def batches(self) -> int:
        """Transactions committed so far (for tests and benchmarks)."""
        return sum(lane.batches for lane in self.lanes)

    @property
    def jobs(self) -> int:
        """Jobs those transactions held."""
        return sum(lane.jobs for lane in self.lanes)

    async def run(self, fn: Callable[[Tx], R], order_key: int = 0, prepare: Prepare | None = None) -> R:
        """Run ``fn`` in the next group transaction of its lane; returns its result once that is
        committed (or raises what it raised).

        ``prepare``, when given, runs once per transaction before its jobs, with the (sorted) order
        keys of the jobs that named it: one statement can then do for all of them what each would do
        alone (lock their rows). An error in it fails the batch, whose jobs then run one by one."""
        return await self.lanes[order_key % len(self.lanes)].run(fn, order_key, prepare)


class _Lane:
    """One writer thread and its queue (started on first use)."""

    def __init__(self, db: Database, max_batch: int) -> None:
        self.db, self.max_batch = db, max_batch
        self._queue: deque[_Job[Any]] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._raw: Any = None  # the lane's write connection (a pooled DB-API connection)
        self.batches = 0
        self.jobs = 0

    async def run(self, fn: Callable[[Tx], R], order_key: int, prepare: Prepare | None) -> R:
        loop = asyncio.get_running_loop()
        job: _Job[R] = _Job(fn, order_key, loop, loop.create_future(), prepare)
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="aar-group-commit", daemon=True)
                self._thread.start()
            self._queue.append(job)
            self._wake.notify()
        return await job.future

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    if not self._wake.wait(IDLE_RELEASE_S) and self._raw is not None:
                        with contextlib.suppress(Exception):
                            self._raw.close()  # idle: the connection goes back to the pool
                        self._raw = None
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            try:
                self._commit(batch)
            except BaseException as e:  # the transaction failed as a whole: every job gets the error
                log.warning("group commit of %d jobs failed: %s", len(batch), e)
                for job in batch:
                    job.error = e
            else:
                for job in batch:
                    for hook in job.hooks:
                        try:
                            hook()
                        except Exception:  # a cache update; the commit stands
                            log.exception("after-commit hook failed")
            for job in batch:
                with contextlib.suppress(RuntimeError):  # the request's loop is closed: the server stops
                    job.loop.call_soon_threadsafe(_deliver, job)

    def _commit(self, batch: list[_Job[Any]]) -> None:
        """Run the jobs in one transaction, or each in its own when one of them fails after a write."""
        batch = sorted(batch, key=lambda j: j.order_key)  # stable: one agent's jobs keep their order
        if self._transaction(batch):
            return
        for job in batch:
            job.error, job.hooks = None, []
            try:
                self._transaction([job])
            except BaseException as e:
                job.error = e

    def _transaction(self, jobs: list[_Job[Any]]) -> bool:
        """Run ``jobs`` in one transaction and commit it; False (rolled back) when several jobs shared
        it and one failed after a write or on a database error. Jobs' own errors stay on the job."""
        db = self.db
        with db.write_lock():
            if self._raw is None:  # held between transactions: no pool checkout, ping or reset each time
                self._raw = db.write_engine.raw_connection()
            raw = self._raw
            try:
                cursor = raw.cursor()
                tx = Tx(db, cursor)
                if db.is_sqlite:
                    tx.run("BEGIN IMMEDIATE")
                prepares: dict[Prepare, list[int]] = {}
                for job in jobs:
                    if job.prepare is not None:
                        prepares.setdefault(job.prepare, []).append(job.order_key)
                try:
                    for prepare, keys in prepares.items():
                        prepare(tx, keys)  # keys are sorted: the jobs are
                except Exception as e:  # as a job's database error: each job alone, or this one answers
                    self._rollback(raw)
                    for job in jobs:
                        job.error = e
                    return len(jobs) == 1
                for job in jobs:
                    tx.committed_hooks, tx.wrote = [], False
                    try:
                        job.result = job.fn(tx)
                    except Exception as e:
                        job.error = e
                        if tx.wrote or isinstance(e, DBAPIError):
                            self._rollback(raw)
                            return len(jobs) == 1
                    else:
                        job.hooks = tx.committed_hooks
                if db.is_sqlite:
                    tx.run("COMMIT")
                else:
                    try:
                        raw.commit()
                    except db.dbapi_error as e:
                        raise DBAPIError.instance("COMMIT", None, e, db.dbapi_error) from e
                cursor.close()
            except BaseException:
                self._rollback(raw)
                self._drop()  # the connection's state is unknown: the next transaction gets a fresh one
                raise
        self.batches += 1
        self.jobs += len(jobs)
        return True

    def _rollback(self, raw: Any) -> None:
        try:
            if self.db.is_sqlite:
                if raw.dbapi_connection.in_transaction:
                    raw.cursor().execute("ROLLBACK")
            else:
                raw.rollback()
        except Exception as e:  # the connection is broken
            log.warning("rollback after a failed group commit failed: %s", e)
            self._drop()

    def _drop(self) -> None:
        """Discard the held connection (the pool opens a new one when it is next needed)."""
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None
