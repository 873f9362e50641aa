"""Database engines, transactions and schema migrations.

SQLite (the default) runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives a
kill (even ``kill -9``) of the server process, since the commit has written it to the WAL file; the
WAL is fsynced at checkpoints, not at each commit, so a power loss or an OS crash can lose the last
committed transactions (the database stays consistent). PostgreSQL keeps its own settings (by default
``synchronous_commit=on``: a commit is on disk before it returns). SQLite write transactions start
with ``BEGIN IMMEDIATE`` so that a read followed by a write (budget check, then insert) is atomic
across worker processes. On PostgreSQL the same atomicity comes from locking the agent's row
(``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8, max_overflow=16
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """A read engine and a write engine over one database URL."""

    def __init__(self, url: str) -> None:
        """Create the engines (no connection is opened yet)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._thread_lock = threading.Lock()
        self._sql_cache: dict[str, str] = {}
        self._lock_file = None
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, immediate=False)
            self.write_engine = _sqlite_engine(url, immediate=True)
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                self._lock_file = open(path + ".writelock", "a+b")  # noqa: SIM115 - lives with the engine
        else:
            self.engine = create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True)
            self.write_engine = self.engine
        # the driver's base exception, for code that runs raw DB-API cursors (group commit)
        self.dbapi_error: type[Exception] = self.write_engine.dialect.loaded_dbapi.Error

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise SQLite writers: a thread lock, then an flock shared by all worker processes.

        Waiting writers wake as soon as the lock is free, instead of polling through SQLite's busy
        handler (which sleeps up to 100 ms per try). A no-op on PostgreSQL.
        """
        if not self.is_sqlite:
            yield
            return
        with self._thread_lock:
            if self._lock_file is None:
                yield
                return
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, committed on success and rolled back on error."""
        with self.write_lock(), Session(self.write_engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def write_conn(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, committed on success and rolled back on error."""
        with self.write_lock(), self.write_engine.begin() as conn:
            yield conn

    def sql(self, statement: str) -> str:
        """Hand-written SQL with ``:name`` parameters in this driver's style (for hot paths that skip
        SQLAlchemy's statement compilation); run it with ``conn.exec_driver_sql(sql, params)``."""
        cached = self._sql_cache.get(statement)
        if cached is None:
            cached = statement if self.is_sqlite else _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))
            self._sql_cache[statement] = cached
        return cached

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations shipped with this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the latest schema (idempotent)."""
    from alembic import command

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
