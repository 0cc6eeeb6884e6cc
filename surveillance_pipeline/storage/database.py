"""`Database`: the application store (SQLite file by default, PostgreSQL in production).

Every method that writes accepts `conn=` so that a caller can group several calls in one transaction:

    with db.transaction() as conn:
        import_id = db.start_import(path, "trades", day, conn=conn)
        db.replace_trades_partition(day, trades, import_id=import_id, conn=conn)
        db.insert_rejects(import_id, rejects, conn=conn)
        db.finish_import(import_id, rows_read, len(trades), len(rejects), "ok", conn=conn)

Without `conn=` each call runs in its own transaction.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from surveillance_pipeline.contract import (
    ORDER_KEY,
    ORDER_REQUIRED,
    ORDER_SCHEMA,
    REJECT_SCHEMA,
    TRADE_KEY,
    TRADE_REQUIRED,
    TRADE_SCHEMA,
    Order,
    Trade,
)
from surveillance_pipeline.storage import bulk
from surveillance_pipeline.storage.engine import make_engine, normalize_url, upgrade
from surveillance_pipeline.storage.models import (
    IMPORT_KINDS,
    Base,
    imports_table,
    orders_table,
    rejected_rows_table,
    trades_table,
)

_KEY_BATCH_ROWS = 500_000


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive datetimes are UTC (the contract); aware ones are converted."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True)
class _Kind:
    """What differs between trades and orders."""

    table: sa.Table
    schema: dict[str, pl.DataType]
    required: tuple[str, ...]
    key: tuple[str, ...]
    date_column: str
    symbol: str
    timestamp: str


_TRADES = _Kind(trades_table, TRADE_SCHEMA, TRADE_REQUIRED, TRADE_KEY, "trade_date", Trade.SYMBOL, Trade.TIMESTAMP)
_ORDERS = _Kind(orders_table, ORDER_SCHEMA, ORDER_REQUIRED, ORDER_KEY, "order_date", Order.SYMBOL, Order.TIMESTAMP)


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType], required: tuple[str, ...] = ()) -> pl.DataFrame:
    """The contract's columns in order and dtypes (datetimes in UTC); absent optional columns become nulls."""
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks required column(s) {missing}; it has {frame.columns}")
    exprs = []
    for name, dtype in schema.items():
        if name not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(bulk.to_utc(pl.col(name), frame.schema[name]).cast(dtype).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype).alias(name))
    return frame.select(exprs)


class Database:
    """The application store behind one SQLAlchemy engine (pooled)."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 10) -> None:
        self.url = normalize_url(url)
        self.engine: Engine = make_engine(self.url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self.dialect = self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    # -- transactions and schema ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _tx(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.transaction() as own:
                yield own

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (idempotent; concurrent callers wait for each other)."""
        upgrade(self.engine)

    def counts(self, conn: Connection | None = None) -> dict[str, int]:
        """Rows per table of the application store."""
        with self._tx(conn) as c:
            return {t.name: c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in Base.metadata.sorted_tables}

    # -- trades and orders ---------------------------------------------------------------------------
    def insert_trades(self, frame: pl.DataFrame, import_id: int | None = None,
                      conn: Connection | None = None) -> int:
        """Append trades (contract columns); returns rows written. Duplicate keys raise IntegrityError."""
        return self._insert(_TRADES, frame, import_id, conn)

    def insert_orders(self, frame: pl.DataFrame, import_id: int | None = None,
                      conn: Connection | None = None) -> int:
        """Append order events (contract columns); returns rows written."""
        return self._insert(_ORDERS, frame, import_id, conn)

    def replace_trades_partition(self, day: dt.date, frame: pl.DataFrame, import_id: int | None = None,
                                 conn: Connection | None = None) -> int:
        """Delete the trades of UTC `day`, then insert `frame` (all rows must fall on `day`), atomically."""
        return self._replace(_TRADES, day, frame, import_id, conn)

    def replace_orders_partition(self, day: dt.date, frame: pl.DataFrame, import_id: int | None = None,
                                 conn: Connection | None = None) -> int:
        """Delete the order events of UTC `day`, then insert `frame`, atomically."""
        return self._replace(_ORDERS, day, frame, import_id, conn)

    def existing_trade_keys(self, frame: pl.DataFrame, exclude_day: dt.date | None = None,
                            conn: Connection | None = None) -> pl.DataFrame:
        """The distinct (symbol, trade_id) of `frame` already stored, ignoring rows of `exclude_day`."""
        return self._existing_keys(_TRADES, frame, exclude_day, conn)

    def existing_order_keys(self, frame: pl.DataFrame, exclude_day: dt.date | None = None,
                            conn: Connection | None = None) -> pl.DataFrame:
        """The distinct (symbol, order_id, event, timestamp) of `frame` already stored."""
        return self._existing_keys(_ORDERS, frame, exclude_day, conn)

    def read_trades(self, start: dt.datetime, end: dt.datetime, symbols: list[str] | None = None,
                    conn: Connection | None = None) -> pl.DataFrame:
        """Trades with start <= timestamp < end (naive = UTC), contract columns, by time."""
        return self._read(_TRADES, start, end, symbols, conn)

    def read_orders(self, start: dt.datetime, end: dt.datetime, symbols: list[str] | None = None,
                    conn: Connection | None = None) -> pl.DataFrame:
        """Order events with start <= timestamp < end (naive = UTC), contract columns, by time."""
        return self._read(_ORDERS, start, end, symbols, conn)

    def _insert(self, kind: _Kind, frame: pl.DataFrame, import_id: int | None, conn: Connection | None) -> int:
        rows = _conform(frame, kind.schema, kind.required).with_columns(
            pl.col(kind.timestamp).dt.date().alias(kind.date_column),
            pl.lit(import_id, dtype=pl.Int64).alias("import_id"))
        with self._tx(conn) as c:
            return bulk.insert_frame(c, kind.table.name, rows)

    def _replace(self, kind: _Kind, day: dt.date, frame: pl.DataFrame, import_id: int | None,
                 conn: Connection | None) -> int:
        rows = _conform(frame, kind.schema, kind.required)
        if rows.height:
            days = rows.get_column(kind.timestamp).dt.date()
            outside = rows.filter(days != day).height
            if outside:
                raise ValueError(f"{outside} of {rows.height} {kind.table.name} rows are not on partition {day} (UTC)")
        with self._tx(conn) as c:
            c.execute(kind.table.delete().where(kind.table.c[kind.date_column] == day))
            return self._insert(kind, rows, import_id, c)

    def _existing_keys(self, kind: _Kind, frame: pl.DataFrame, exclude_day: dt.date | None,
                       conn: Connection | None) -> pl.DataFrame:
        key_schema = {k: kind.schema[k] for k in kind.key}
        keys = _conform(frame.select([k for k in kind.key if k in frame.columns]), key_schema, kind.key).unique()
        found = [pl.DataFrame(schema=key_schema)]
        if keys.height == 0:
            return found[0]
        temp = f"tmp_{kind.table.name}_keys"
        temp_table = sa.table(temp, *(sa.column(k, kind.table.c[k].type) for k in kind.key))
        with self._tx(conn) as c:
            columns = ", ".join(f"{bulk.quote(c, k)} {kind.table.c[k].type.compile(c.dialect)}" for k in kind.key)
            c.execute(sa.text(f"DROP TABLE IF EXISTS {bulk.quote(c, temp)}"))
            c.execute(sa.text(f"CREATE TEMPORARY TABLE {bulk.quote(c, temp)} ({columns})"))
            for offset in range(0, keys.height, _KEY_BATCH_ROWS):
                c.execute(sa.text(f"DELETE FROM {bulk.quote(c, temp)}"))
                bulk.insert_frame(c, temp, keys.slice(offset, _KEY_BATCH_ROWS))
                stmt = sa.select(*(bulk.read_column(c, temp_table.c[k], key_schema[k], k) for k in kind.key))
                stmt = stmt.select_from(temp_table.join(kind.table, sa.and_(
                    *(temp_table.c[k] == kind.table.c[k] for k in kind.key))))
                if exclude_day is not None:
                    stmt = stmt.where(kind.table.c[kind.date_column] != exclude_day)
                # the temp keys are distinct and the key is unique in the table: no DISTINCT needed
                found.append(bulk.fetch_frame(c, stmt, key_schema))
            c.execute(sa.text(f"DROP TABLE IF EXISTS {bulk.quote(c, temp)}"))
        return pl.concat(found)

    def _read(self, kind: _Kind, start: dt.datetime, end: dt.datetime, symbols: list[str] | None,
              conn: Connection | None) -> pl.DataFrame:
        start, end = _utc(start), _utc(end)
        t = kind.table
        with self._tx(conn) as c:
            stmt = sa.select(*(bulk.read_column(c, t.c[n], d, n) for n, d in kind.schema.items())).where(
                t.c[kind.timestamp] >= start, t.c[kind.timestamp] < end,
                # the date index narrows the scan when no symbol is given
                t.c[kind.date_column] >= start.date(), t.c[kind.date_column] <= end.date())
            if symbols is not None:
                stmt = stmt.where(t.c[kind.symbol].in_(list(symbols)))
            stmt = stmt.order_by(t.c[kind.timestamp], t.c.id)
            return bulk.fetch_frame(c, stmt, kind.schema)

    # -- import bookkeeping --------------------------------------------------------------------------
    def start_import(self, source: str, kind: str, partition_date: dt.date | None = None,
                     conn: Connection | None = None) -> int:
        """Record the start of a load ('running'); returns the import id."""
        if kind not in IMPORT_KINDS:
            raise ValueError(f"import kind must be one of {IMPORT_KINDS}, got {kind!r}")
        with self._tx(conn) as c:
            result = c.execute(imports_table.insert().values(
                source=str(source), kind=kind, partition_date=partition_date, status="running",
                started_at=dt.datetime.now(dt.UTC)))
            return int(result.inserted_primary_key[0])

    def finish_import(self, import_id: int, rows_read: int, rows_accepted: int, rows_rejected: int,
                      status: str, conn: Connection | None = None) -> None:
        """Record the outcome of a load (one of IMPORT_STATUSES) and its row counts."""
        with self._tx(conn) as c:
            result = c.execute(imports_table.update().where(imports_table.c.id == import_id).values(
                rows_read=rows_read, rows_accepted=rows_accepted, rows_rejected=rows_rejected, status=status,
                finished_at=dt.datetime.now(dt.UTC)))
            if result.rowcount != 1:
                raise LookupError(f"no import with id {import_id}")

    def forget_partition_imports(self, day: dt.date, kind: str, conn: Connection | None = None) -> int:
        """Delete the import records (and, by cascade, the rejected rows) of an earlier load of a partition.

        Called before a partition is written again, so that a re-run leaves one record of the day, not two.
        """
        with self._tx(conn) as c:
            result = c.execute(imports_table.delete().where(
                imports_table.c.partition_date == day, imports_table.c.kind == kind))
            return result.rowcount

    def insert_rejects(self, import_id: int, rejects: pl.DataFrame, conn: Connection | None = None) -> int:
        """Store the rejected rows (REJECT_SCHEMA) of an import; returns rows written."""
        rows = _conform(rejects, REJECT_SCHEMA).with_columns(
            pl.lit(import_id, dtype=pl.Int64).alias("import_id"),
            pl.lit(dt.datetime.now(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("created_at"))
        with self._tx(conn) as c:
            return bulk.insert_frame(c, rejected_rows_table.name, rows)

