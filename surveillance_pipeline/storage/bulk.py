"""Fast frame ⇄ table transfer on the raw DBAPI connection of an open SQLAlchemy `Connection`.

Writing: PostgreSQL gets `COPY ... FROM STDIN (FORMAT csv)` fed by polars `write_csv` from an in-memory
buffer, one chunk at a time (bounded memory); SQLite gets `executemany` in large batches with datetimes
pre-formatted exactly as SQLAlchemy's SQLite `DateTime` stores and reads them back.
Reading: PostgreSQL `COPY (SELECT ...) TO STDOUT` parsed by polars `read_csv` with timestamps sent as
epoch microseconds (exact); SQLite rows fetched in batches, timestamp strings parsed by polars.
Everything runs inside the caller's transaction: nothing here commits.
"""
from __future__ import annotations

import io
from collections.abc import Mapping

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Rows per COPY statement / executemany call (~35 MB of CSV for trades) and per fetched batch.
CHUNK_ROWS = 200_000
FETCH_ROWS = 100_000
_COPY_BUFFER = 1 << 20  # bytes per write to the server (psycopg2's default of 8 kB costs ~15 %)
# SQLAlchemy's SQLite DATETIME storage format ("%(year)04d-...%(microsecond)06d"), in chrono syntax.
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%6f"
SQLITE_DATETIME_PARSE = "%Y-%m-%d %H:%M:%S%.f"
DATE_FORMAT = "%Y-%m-%d"


def quote(conn: Connection, name: str) -> str:
    """An identifier quoted for the connection's dialect (e.g. "timestamp")."""
    return conn.dialect.identifier_preparer.quote(name)


def to_utc(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A datetime column in UTC (naive values are UTC by contract)."""
    if getattr(dtype, "time_zone", None) is None:
        return expr.dt.replace_time_zone("UTC")
    return expr.dt.convert_time_zone("UTC")


def _format_temporal(frame: pl.DataFrame, datetime_suffix: str) -> pl.DataFrame:
    """Datetimes and dates as strings in the storage format (UTC, always six fractional digits)."""
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            exprs.append((to_utc(pl.col(name), dtype).dt.strftime(SQLITE_DATETIME_FORMAT) + datetime_suffix)
                         .alias(name))
        elif isinstance(dtype, pl.Date):
            exprs.append(pl.col(name).dt.strftime(DATE_FORMAT).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def _insert_chunk(conn: Connection, table: str, chunk: pl.DataFrame) -> None:
    """Write one chunk of already-formatted rows (module-level so tests can inject a failure)."""
    columns = ", ".join(quote(conn, c) for c in chunk.columns)
    dialect, driver = conn.dialect.name, conn.dialect.driver
    raw = conn.connection.dbapi_connection
    if dialect == "postgresql":
        buffer = io.BytesIO()
        chunk.write_csv(buffer, include_header=False)
        buffer.seek(0)
        sql = f"COPY {quote(conn, table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
        with raw.cursor() as cursor:
            if driver == "psycopg2":
                cursor.copy_expert(sql, buffer, size=_COPY_BUFFER)
            else:  # psycopg 3
                with cursor.copy(sql) as copy:
                    copy.write(buffer.getvalue())
    elif dialect == "sqlite":
        marks = ", ".join("?" * chunk.width)
        cursor = raw.cursor()
        try:
            cursor.executemany(f"INSERT INTO {quote(conn, table)} ({columns}) VALUES ({marks})", chunk.iter_rows())
        finally:
            cursor.close()
    else:  # any other dialect: SQLAlchemy executemany (correct, not tuned)
        params = ", ".join(f":p{i}" for i in range(chunk.width))
        stmt = sa.text(f"INSERT INTO {quote(conn, table)} ({columns}) VALUES ({params})")
        conn.execute(stmt, [{f"p{i}": v for i, v in enumerate(row)} for row in chunk.iter_rows()])


def insert_frame(conn: Connection, table: str, frame: pl.DataFrame, chunk_rows: int | None = None) -> int:
    """Append `frame` (columns named as the table's) to `table`; returns the number of rows written."""
    if frame.height == 0:
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        frame = _format_temporal(frame, "+00")
    elif dialect == "sqlite":
        frame = _format_temporal(frame, "")
    step = chunk_rows or CHUNK_ROWS
    dbapi_error = conn.dialect.loaded_dbapi.Error
    for offset in range(0, frame.height, step):
        try:
            _insert_chunk(conn, table, frame.slice(offset, step))
        except dbapi_error as error:  # raw-cursor errors as SQLAlchemy's (IntegrityError, ...), like conn.execute
            raise sa.exc.DBAPIError.instance(f"bulk insert into {table}", None, error, dbapi_error,
                                             dialect=conn.dialect) from error
    return frame.height


def read_column(conn: Connection, expr: sa.ColumnElement, dtype: pl.DataType, name: str) -> sa.ColumnElement:
    """A select-list entry that `fetch_frame` can turn back into `dtype` exactly."""
    if isinstance(dtype, pl.Datetime):
        if conn.dialect.name == "postgresql":
            # extract() returns numeric on PostgreSQL ≥ 14: exact to the microsecond.
            return sa.cast(sa.extract("epoch", expr) * 1_000_000, sa.BigInteger).label(name)
        return sa.type_coerce(expr, sa.String).label(name)
    if isinstance(dtype, pl.Date):
        if conn.dialect.name == "postgresql":
            return sa.cast(expr, sa.String).label(name)
        return sa.type_coerce(expr, sa.String).label(name)
    return expr.label(name)


def _wire_dtype(conn: Connection, dtype: pl.DataType) -> pl.DataType:
    if isinstance(dtype, pl.Datetime):
        return pl.Int64() if conn.dialect.name == "postgresql" else pl.String()
    if isinstance(dtype, pl.Date):
        return pl.String()
    return dtype


def _restore(conn: Connection, frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    exprs = []
    for name, dtype in schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if conn.dialect.name == "postgresql":
                parsed = col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
            else:
                parsed = col.str.to_datetime(SQLITE_DATETIME_PARSE, time_unit="us", time_zone="UTC")
            zone = dtype.time_zone or "UTC"
            exprs.append(parsed.dt.convert_time_zone(zone).cast(dtype).alias(name))
        elif isinstance(dtype, pl.Date):
            exprs.append(col.str.to_date(DATE_FORMAT).alias(name))
        else:
            exprs.append(col.cast(dtype).alias(name))
    return frame.select(exprs)


def fetch_frame(conn: Connection, stmt: sa.Select, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Run `stmt` (select-list built with `read_column`, in `schema` order) into a frame of `schema`."""
    wire = {name: _wire_dtype(conn, dtype) for name, dtype in schema.items()}
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        buffer = io.BytesIO()
        with conn.connection.dbapi_connection.cursor() as cursor:
            query = cursor.mogrify(compiled.string, compiled.params).decode()
            cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
        buffer.seek(0)
        if buffer.getbuffer().nbytes == 0:
            raw = pl.DataFrame(schema=wire)
        else:
            raw = pl.read_csv(buffer, schema=wire, has_header=True)
    else:  # batches of rows: bounded memory (a single fetchall of 1 M rows costs ~1 GB of Python objects)
        result = conn.execute(stmt.execution_options(yield_per=FETCH_ROWS))  # per statement, not per conn
        frames = [pl.DataFrame([tuple(r) for r in part], schema=wire, orient="row") for part in result.partitions()]
        raw = pl.concat(frames) if frames else pl.DataFrame(schema=wire)
    return _restore(conn, raw, schema)
