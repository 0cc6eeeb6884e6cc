"""Storage fixtures: every test runs on SQLite (a file under tmp_path) and on PostgreSQL.

PostgreSQL: the server named by env TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
A fresh, uniquely named database is created once per test session and dropped at the end; each test starts
from an empty `public` schema. If the server is unreachable the PostgreSQL half is skipped, naming the URL.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator

import polars as pl
import pytest
import sqlalchemy as sa

from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA, Order, Trade
from surveillance_pipeline.storage import Database, normalize_url

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
DAY = dt.date(2024, 3, 1)


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """URL of a fresh database on the test server (created now, dropped at the end of the session)."""
    server_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool,
                             connect_args={"connect_timeout": 3})
    name = f"surveillance_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        pytest.skip(f"PostgreSQL unreachable at {_shown(server_url)} (set TEST_POSTGRES_URL): {reason}")
    try:
        yield sa.make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    """A `Database` on an empty (unmigrated) store, once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store' / 'surveillance.db'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
        _reset_postgres(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A migrated `Database`, once per backend."""
    empty_db.migrate()
    return empty_db


def _make_trades(n: int = 5, day: dt.date = DAY, prefix: str = "t", symbol: str = "BTCUSDT") -> pl.DataFrame:
    """`n` contract trades on `day`, microsecond timestamps, some optional fields null."""
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
    return pl.DataFrame({
        Trade.TRADE_ID: [f"{prefix}{i}" for i in range(n)],
        Trade.TIMESTAMP: [start + dt.timedelta(hours=i % 24, microseconds=123_457 + i) for i in range(n)],
        Trade.SYMBOL: [symbol] * n,
        Trade.SIDE: ["buy" if i % 2 else "sell" for i in range(n)],
        Trade.PRICE: [65_000.123456789 + i for i in range(n)],
        Trade.QUANTITY: [0.1 + i / 3 for i in range(n)],
        Trade.BUYER_ID: [f"u{i}" if i % 3 else None for i in range(n)],
        Trade.SELLER_ID: [f"u{i + 1}" for i in range(n)],
        Trade.BUYER_ORDER_ID: [f"o{i}" for i in range(n)],
        Trade.SELLER_ORDER_ID: [None if i % 2 else "" for i in range(n)],
        Trade.MARKET_TYPE: ["spot"] * n,
        Trade.QUOTE_QUANTITY: [None if i % 2 else 1e-12 * i for i in range(n)],
        Trade.FEE: [0.0] * n,
    }, schema=TRADE_SCHEMA)


def _make_orders(n: int = 4, day: dt.date = DAY, symbol: str = "BTCUSDT") -> pl.DataFrame:
    """`n` order events (new then cancel of the same order) on `day`."""
    start = dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC)
    return pl.DataFrame({
        Order.ORDER_ID: [f"o{i // 2}" for i in range(n)],
        Order.TIMESTAMP: [start + dt.timedelta(microseconds=7 * i + 1) for i in range(n)],
        Order.USER_ID: [f"u{i // 2}" for i in range(n)],
        Order.SYMBOL: [symbol] * n,
        Order.SIDE: ["buy"] * n,
        Order.PRICE: [None if i % 2 else 100.5 + i for i in range(n)],
        Order.QUANTITY: [None if i % 2 else 2.0 for i in range(n)],
        Order.EVENT: ["cancel" if i % 2 else "new" for i in range(n)],
        Order.ORDER_TYPE: ["limit"] * n,
        Order.MARKET_TYPE: ["spot"] * n,
    }, schema=ORDER_SCHEMA)


@pytest.fixture
def make_trades():
    """Factory of small contract trade frames: make_trades(n, day, prefix, symbol)."""
    return _make_trades


@pytest.fixture
def make_orders():
    """Factory of small contract order-event frames: make_orders(n, day, symbol)."""
    return _make_orders
