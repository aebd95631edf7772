"""Engine, sessions and migrations.

`Database` owns one async engine. Reads use `db.session()`; anything that writes uses
`db.write()`, which on SQLite starts the transaction with BEGIN IMMEDIATE so two writers
queue on the lock instead of failing on a read-to-write upgrade. SQLite runs in WAL mode
with synchronous=FULL: a committed transaction survives a crash of the process or the
machine, which is what a 200 from the webhook promises.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    def __init__(self, url: str, *, echo: bool = False, statement_timeout: float | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.sqlite_path = _sqlite_path(url) if self.is_sqlite else None
        # PostgreSQL session settings for every connection, the ingest writer's own pool included
        self.server_settings = (
            {"statement_timeout": str(int(statement_timeout * 1000))} if statement_timeout and not self.is_sqlite
            else {})
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, connect_args={"timeout": 30}, pool_size=5, max_overflow=5
            )
            _configure_sqlite(self.engine)
            write_engine = self.engine.execution_options(tokenbot_write=True)
        else:
            # A frozen or locked database fails a statement after `statement_timeout` instead of
            # hanging the request (and its pooled connection) with no limit. Whole-ledger work
            # (rebuilds, reprice, re-attribution, retention) lifts it with SET LOCAL.
            connect_args = {"server_settings": self.server_settings} if self.server_settings else {}
            self.engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True,
                                              connect_args=connect_args)
            write_engine = self.engine
        self.dialect = self.engine.dialect.name
        self._write_engine = write_engine
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(write_engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed on success, rolled back on error."""
        async with self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a write transaction, for the ingest hot path."""
        async with self._write_engine.begin() as conn:
            yield conn

    @property
    def asyncpg_dsn(self) -> str:
        """The URL for a plain asyncpg connection (the ingest writer's own pool)."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=30000",  # first: the statements below may have to wait for another connection
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def _apply_pragmas(cursor) -> None:
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    # Switching to WAL takes an exclusive lock that a busy handler does not always wait for
    # ("database is locked" when a second process connects while the first writes); a file
    # already in WAL mode (every file after its first connection) is left alone.
    # A new file's first connections can race to switch it (two processes starting at once): the
    # loser waits, briefly, until the switch is seen, then goes on.
    deadline = time.monotonic() + 10
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # sqlite3 or the async driver's OperationalError
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_path(url: str) -> str | None:
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    return path if path and path != ":memory:" else None


def connect_sqlite(path: str):
    """A plain sqlite3 connection with the same settings as the engine's (the ingest writer's)."""
    import sqlite3

    from storage.types import register_sqlite_functions

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    cursor = conn.cursor()
    _apply_pragmas(cursor)
    cursor.close()
    register_sqlite_functions(conn)
    return conn


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control from the driver so BEGIN is ours (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        _apply_pragmas(cursor)
        cursor.close()
        _register_functions(dbapi_conn)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn):
        write = conn.get_execution_options().get("tokenbot_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _register_functions(dbapi_conn) -> None:
    """The wide-integer SQL functions (storage/types.py) on an aiosqlite connection, in its thread."""
    from sqlalchemy.util import await_only

    from storage.types import register_sqlite_functions

    aio = dbapi_conn._connection  # aiosqlite.Connection: run the registration on its own thread
    await_only(aio._execute(register_sqlite_functions, aio._conn))


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply migrations (synchronous; Alembic's env.py runs its own event loop)."""
    from alembic import command

    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    await asyncio.to_thread(upgrade, url, revision)


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
