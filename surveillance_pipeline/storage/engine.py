"""Engines and migrations: URL normalisation, pooled engines with SQLite pragmas, Alembic run from code."""
from __future__ import annotations

import sqlite3
import time
import zlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Serialises concurrent migrations on PostgreSQL (e.g. several Dagster run workers starting at once).
MIGRATION_LOCK_ID = zlib.crc32(b"surveillance_pipeline.migrate")
# A 64 MB SQLite page cache (default 2 MB) halves bulk-insert time into the five indexes of 1 M trades.
SQLITE_CACHE_KIB = 65_536
SQLITE_BUSY_TIMEOUT_S = 30


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` → `postgresql+psycopg2://` (STACK.md trap 4); others unchanged."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """A pooled engine: QueuePool with pre-ping for PostgreSQL; WAL, foreign keys and real transactions
    for SQLite (whose file's folder is created)."""
    url = normalize_url(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, echo=echo, poolclass=sa.QueuePool, pool_size=pool_size,
                                max_overflow=max_overflow, pool_pre_ping=True)
    database = parsed.database or ""
    memory = database in ("", ":memory:")
    if not memory and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pooling = {"poolclass": sa.StaticPool} if memory else {"pool_size": pool_size, "max_overflow": max_overflow}
    engine = sa.create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **pooling)
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # SQLAlchemy's recipe for real SQLite transactions: the driver stays out of it (no implicit BEGIN
    # before DML only, no autocommitted DDL) and `_sqlite_on_begin` opens every transaction explicitly.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    _set_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _set_wal(cursor) -> None:
    """WAL is a property of the file, set once; switching needs a moment with no other connection
    writing and SQLite does not wait for that by itself (busy_timeout does not apply): retry."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config built in code (no alembic.ini): the package's migrations and the given connection
    (or URL, for `command.revision(config, autogenerate=True)` from a developer shell)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision` in one transaction; concurrent callers wait for each other, then find it done."""
    # SQLite: BEGIN IMMEDIATE takes the write lock before Alembic reads the version table.
    with engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE") as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        command.upgrade(alembic_config(conn), revision)
