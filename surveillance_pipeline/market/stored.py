"""The collected futures market data read back from the database in the replay tables' shape (what the
futures detectors and features take), including open-interest and mark series from the ticker snapshots."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import sqlalchemy as sa

from surveillance_pipeline.market.replay import UTC_MS
from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.models import (
    basis_table,
    funding_rates_table,
    liquidations_table,
    premium_table,
    snapshots_table,
)


def _read(db: Database, table: sa.Table, column: str, start: datetime, end: datetime, columns: list[str]) -> pl.DataFrame:
    query = sa.select(table.c.market, table.c[column], *[table.c[c] for c in columns]).where(
        (table.c[column] >= start) & (table.c[column] < end)).order_by(table.c[column])
    with db.transaction() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return pl.DataFrame()
    frame = pl.DataFrame(rows, infer_schema_length=None)
    moment = pl.col(column)
    moment = moment.dt.replace_time_zone("UTC") if frame.schema[column].time_zone is None else moment
    return frame.with_columns(moment.cast(UTC_MS), pl.lit("futures").alias("market_type"))


def stored_market_tables(db: Database, first: date, last: date) -> dict[str, pl.DataFrame]:
    """Funding, premium, basis and liquidations of [first, last], and from the ticker snapshots taken then the
    mark-price and open-interest series (as dense as the snapshots were taken)."""
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last, time(), tzinfo=UTC) + timedelta(days=1)
    tables = {
        "funding": _read(db, funding_rates_table, "funding_time", start, end,
                         ["theoretical_funding_rate", "actual_funding_rate"]),
        "premium": _read(db, premium_table, "created_at", start, end, ["premium_index"]),
        "basis": _read(db, basis_table, "created_at", start, end, ["basis_rate"]),
        "liquidations": _read(db, liquidations_table, "created_at", start, end, ["side", "price", "amount"]),
    }
    tables.update(snapshot_tables(db, start, end, kinds=("ticker", "kline_1min", "orderbook")))
    return {name: frame for name, frame in tables.items() if frame.height}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def snapshot_tables(db: Database, start: datetime, end: datetime, markets: list[str] | None = None,
                    kinds: tuple[str, ...] = ("ticker", "orderbook")) -> dict[str, pl.DataFrame]:
    """The snapshots taken in [start, end) as tables: from the tickers the mark-price and open-interest series
    (as dense as the snapshots were taken), from the day's 1-minute k-lines the bars and their closes, from the
    order books `depth` (one snapshot per row group, `updated_at` the book's own time)."""
    query = sa.select(snapshots_table.c.market, snapshots_table.c.kind, snapshots_table.c.taken_at,
                      snapshots_table.c.data).where(
        snapshots_table.c.kind.in_(kinds) & (snapshots_table.c.taken_at >= start) & (snapshots_table.c.taken_at < end))
    if markets is not None:
        query = query.where(snapshots_table.c.market.in_(markets))
    with db.transaction() as conn:
        snaps = [dict(r._mapping) for r in conn.execute(query)]
    rows, bars, levels = [], [], []
    for snap in snaps:
        market, taken = snap["market"], _aware(snap["taken_at"])
        for record in snap["data"] or []:
            if snap["kind"] == "kline_1min":  # the minute closes: the price path
                moment = _moment(record.get("created_at"))
                rows.append({"market": market, "created_at": moment, "mark_price": record.get("close"),
                             "open_interest_volume": None})
                bars.append({"market": market, "market_type": "futures", "created_at": moment,
                             **{k: record.get(k) for k in ("open", "high", "low", "close", "volume")}})
            elif snap["kind"] == "ticker":
                rows.append({"market": market, "created_at": taken, "mark_price": record.get("mark_price"),
                             "open_interest_volume": record.get("open_interest_volume")})
            elif snap["kind"] == "orderbook":
                stamp = record.get("updated_at")
                levels.append({"market": market, "market_type": "futures",
                               "updated_at": _moment(stamp) if stamp is not None else taken,
                               **{k: record.get(k) for k in ("side", "level", "price", "amount")}})
    tables: dict[str, pl.DataFrame] = {}
    if bars:
        tables["klines"] = pl.DataFrame(bars, infer_schema_length=None).with_columns(pl.col("created_at").cast(UTC_MS))
    if levels:
        tables["depth"] = pl.DataFrame(levels, infer_schema_length=None).with_columns(
            pl.col("updated_at").cast(UTC_MS), pl.col("level").cast(pl.Int32),
            pl.col("price", "amount").cast(pl.Float64))
    if rows:
        series = pl.DataFrame(rows, infer_schema_length=None).with_columns(
            pl.col("created_at").cast(UTC_MS), pl.lit("futures").alias("market_type"),
            pl.col("mark_price", "open_interest_volume").cast(pl.Float64))
        tables["mark"] = series.select("market", "market_type", "created_at", "mark_price").drop_nulls("mark_price")
        tables["open_interest"] = series.select("market", "market_type", "created_at",
                                                "open_interest_volume").drop_nulls("open_interest_volume")
    return {name: frame for name, frame in tables.items() if frame.height}


def _moment(stamp) -> datetime:
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp / 1000, UTC)
    return _aware(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")))
