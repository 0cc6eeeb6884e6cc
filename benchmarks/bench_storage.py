"""Storage benchmark: bulk-insert N synthetic trades into SQLite and PostgreSQL, print rows/s and peak RSS.

    python benchmarks/bench_storage.py [--rows 1000000] [--postgres URL]

PostgreSQL (default env TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/postgres) is used when
reachable: a scratch database is created and dropped. Prints figures only; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import sqlalchemy as sa

from surveillance_pipeline.contract import TRADE_SCHEMA, Trade
from surveillance_pipeline.storage import Database, normalize_url

DAY = dt.date(2024, 3, 1)


def synthetic_trades(n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = int(dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp() * 1_000_000)
    micros = np.sort(rng.integers(start, start + 86_400_000_000, n))
    symbols = np.array(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"])
    price = rng.uniform(10, 70_000, n)
    quantity = rng.exponential(0.5, n)
    ids = pl.int_range(0, n, eager=True)
    frame = pl.DataFrame({
        Trade.TRADE_ID: ids.cast(pl.String),
        Trade.TIMESTAMP: pl.Series(micros).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        Trade.SYMBOL: symbols[rng.integers(0, len(symbols), n)],
        Trade.SIDE: np.where(rng.random(n) < 0.5, "buy", "sell"),
        Trade.PRICE: price,
        Trade.QUANTITY: quantity,
        Trade.BUYER_ID: pl.Series(rng.integers(0, 50_000, n)).cast(pl.String),
        Trade.SELLER_ID: pl.Series(rng.integers(0, 50_000, n)).cast(pl.String),
        Trade.BUYER_ORDER_ID: ("b" + ids.cast(pl.String)),
        Trade.SELLER_ORDER_ID: ("s" + ids.cast(pl.String)),
        Trade.MARKET_TYPE: ["spot"] * n,
        Trade.QUOTE_QUANTITY: price * quantity,
        Trade.FEE: price * quantity * 0.001,
    })
    return frame.cast(TRADE_SCHEMA)  # type: ignore[arg-type]


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def timed(label: str, rows: int, fn) -> object:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"  {label:<38} {rows:>10,} rows  {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s"
          f"  peak RSS {peak_rss_mb():,.0f} MB", flush=True)
    return result


def bench(db: Database, trades: pl.DataFrame) -> None:
    n = trades.height
    db.migrate()
    timed("insert_trades (empty table)", n, lambda: db.insert_trades(trades))
    timed("replace_trades_partition (same day)", n, lambda: db.replace_trades_partition(DAY, trades))
    timed("existing_trade_keys", n, lambda: db.existing_trade_keys(trades))
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    back = timed("read_trades (whole day)", n, lambda: db.read_trades(start, start + dt.timedelta(days=1)))
    assert back.height == n  # correctness, not speed
    print(f"  counts: trades={db.counts()['trades']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    print(f"peak RSS at start {peak_rss_mb():,.0f} MB")
    trades = timed("generate synthetic trades", args.rows, lambda: synthetic_trades(args.rows))
    print(f"frame size {trades.estimated_size('mb'):,.0f} MB")

    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite ({Path(folder) / 'bench.db'})")
        db = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            bench(db, trades)
        finally:
            db.dispose()

    admin = sa.create_engine(normalize_url(args.postgres), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool,
                             connect_args={"connect_timeout": 3})
    name = f"surveillance_bench_{uuid.uuid4().hex[:10]}"
    shown = sa.make_url(args.postgres).render_as_string(hide_password=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        print(f"PostgreSQL skipped: unreachable at {shown}: {str(error.orig).strip().splitlines()[0]}")
        return
    try:
        print(f"PostgreSQL ({shown}, scratch database {name})")
        db = Database(sa.make_url(normalize_url(args.postgres)).set(database=name).render_as_string(False))
        try:
            bench(db, trades)
        finally:
            db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
