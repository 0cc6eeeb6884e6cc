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
    query = sa.select(snapshots_table.c.market, snapshots_table.c.kind, snapshots_table.c.taken_at,
                      snapshots_table.c.data).where(
        snapshots_table.c.kind.in_(["ticker", "kline_1min"]) & (snapshots_table.c.taken_at >= start)
        & (snapshots_table.c.taken_at < end))
    with db.transaction() as conn:
        snaps = [dict(r._mapping) for r in conn.execute(query)]
    rows = []
    bars = []
    for snap in [s for s in snaps if s["kind"] == "kline_1min"]:
        for bar in snap["data"] or []:  # the minute closes: the price path
            stamp = bar.get("created_at")
            moment = datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else \
                datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            rows.append({"market": snap["market"], "created_at": moment, "mark_price": bar.get("close"),
                         "open_interest_volume": None})
            bars.append({"market": snap["market"], "market_type": "futures", "created_at": moment,
                         **{k: bar.get(k) for k in ("open", "high", "low", "close", "volume")}})
    if bars:
        tables["klines"] = pl.DataFrame(bars, infer_schema_length=None).with_columns(pl.col("created_at").cast(UTC_MS))
    for snap in [s for s in snaps if s["kind"] == "ticker"]:
        for ticker in snap["data"] or []:
            taken = snap["taken_at"] if snap["taken_at"].tzinfo else snap["taken_at"].replace(tzinfo=UTC)
            rows.append({"market": snap["market"], "created_at": taken, "mark_price": ticker.get("mark_price"),
                         "open_interest_volume": ticker.get("open_interest_volume")})
    if rows:
        series = pl.DataFrame(rows, infer_schema_length=None).with_columns(
            pl.col("created_at").cast(UTC_MS), pl.lit("futures").alias("market_type"))
        tables["mark"] = series.select("market", "market_type", "created_at", "mark_price").drop_nulls("mark_price")
        tables["open_interest"] = series.select("market", "market_type", "created_at",
                                                "open_interest_volume").drop_nulls("open_interest_volume")
    return {name: frame for name, frame in tables.items() if frame.height}
