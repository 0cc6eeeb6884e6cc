"""Spot-market monitoring over an exchange's MCP server: the public tape of a spot market, polled, and the
pump-and-dump detector on it.

An exchange's public data has no accounts, so on a spot market what surveillance can see is what the pump
detector reads from an anonymous tape (`detectors.pump`: a crowd's rush of market buys, the price pushed up and
collapsing). `get_deals` answers only the latest trades (at most 1000 on CoinEx's server), so the tape is the
union of what was polled: the monitoring loop stores each poll as a `deals` snapshot (`market_snapshots`), and a
check reads its window plus the detector's baseline from them, de-duplicated by deal id. A check says how much
of that span the stored tape covers; below the detector's least baseline it is not assessable. A poll that
returns a full page of trades none of which was seen before may have missed trades in between: counted as a
possible gap, never filled in.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
import sqlalchemy as sa

from surveillance_pipeline.contract import TRADE_SCHEMA, Trade
from surveillance_pipeline.detectors.alerts import merged_alerts
from surveillance_pipeline.detectors.base import DetectionInputs, Finding, empty_findings
from surveillance_pipeline.detectors.pump import PumpAndDumpSettings, detect_pump_and_dump
from surveillance_pipeline.market.client import MarketDataClient
from surveillance_pipeline.market.tools import DEFAULT_QUOTE, base_of
from surveillance_pipeline.storage.models import snapshots_table

DEALS_PAGE = 1000


def deals_to_trades(deals: pl.DataFrame, market: str) -> pl.DataFrame:
    """Polled deals as contract trades of an anonymous spot tape (trade id = the exchange's deal id)."""
    if deals.is_empty():
        return pl.DataFrame(schema=TRADE_SCHEMA)
    frame = deals.select(
        pl.col("deal_id").cast(pl.String).alias(Trade.TRADE_ID),
        pl.col("created_at").cast(TRADE_SCHEMA[Trade.TIMESTAMP]).alias(Trade.TIMESTAMP),
        pl.lit(market).alias(Trade.SYMBOL), pl.col("side").alias(Trade.SIDE),
        pl.col("price").cast(pl.Float64).alias(Trade.PRICE), pl.col("amount").cast(pl.Float64).alias(Trade.QUANTITY))
    return frame.with_columns(*[pl.lit(None, dtype).alias(name) for name, dtype in TRADE_SCHEMA.items()
                                if name not in frame.columns]).select(list(TRADE_SCHEMA)).with_columns(
        pl.lit("spot").alias(Trade.MARKET_TYPE))


def deals_snapshot(client: MarketDataClient, market: str, quote: str = DEFAULT_QUOTE,
                   taken: datetime | None = None) -> dict:
    """The market's latest deals as a `deals` snapshot row (what the loop stores on every poll)."""
    deals = latest_deals(client, market, quote)
    return {"market": market, "market_type": "spot", "kind": "deals", "taken_at": taken or datetime.now(UTC),
            "data": json.loads(deals.write_json()), "source": client.source}


def stored_tape(db, market: str, start: datetime, end: datetime) -> tuple[pl.DataFrame, int]:
    """The market's stored deals with trade times in [start, end], de-duplicated, and the number of polls that
    came back full of unseen deals (possible gaps in the tape)."""
    query = sa.select(snapshots_table.c.taken_at, snapshots_table.c.data).where(
        (snapshots_table.c.market == market) & (snapshots_table.c.kind == "deals")
        & (snapshots_table.c.taken_at >= start)).order_by(snapshots_table.c.taken_at)
    with db.transaction() as conn:
        polls = [r.data or [] for r in conn.execute(query)]
    seen: set[str] = set()
    gaps = 0
    rows = []
    for poll in polls:
        ids = {str(d["deal_id"]) for d in poll}
        if seen and len(poll) >= DEALS_PAGE and not ids & seen:
            gaps += 1
        rows += [d for d in poll if str(d["deal_id"]) not in seen]
        seen |= ids
    if not rows:
        return pl.DataFrame(schema=TRADE_SCHEMA), gaps
    deals = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("created_at").str.to_datetime(time_zone="UTC") if isinstance(rows[0]["created_at"], str)
        else pl.col("created_at").cast(pl.Datetime("ms", "UTC")))
    trades = deals_to_trades(deals, market)
    lo, hi = pl.lit(start).cast(TRADE_SCHEMA[Trade.TIMESTAMP]), pl.lit(end).cast(TRADE_SCHEMA[Trade.TIMESTAMP])
    return trades.filter(pl.col(Trade.TIMESTAMP).is_between(lo, hi)).sort(Trade.TIMESTAMP), gaps


@dataclass
class SpotCheck:
    alerts: pl.DataFrame
    market: str
    window: tuple[datetime, datetime]
    trades: int = 0
    covered_hours: float = 0.0
    possible_gaps: int = 0
    not_assessed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def spot_check(client: MarketDataClient, market: str, start: datetime, end: datetime, db=None,
               quote: str = DEFAULT_QUOTE, settings: PumpAndDumpSettings = PumpAndDumpSettings()) -> SpotCheck:
    """Pump-and-dump on the market's tape of [start, end] (the stored polls, with a fresh one), each UTC day
    with the day before as the detector's history."""
    began = time.perf_counter()
    history_start = start - timedelta(hours=settings.baseline_hours)
    fresh = deals_to_trades(latest_deals(client, market, quote), market)
    stored, gaps = stored_tape(db, market, history_start, end) if db is not None else (
        pl.DataFrame(schema=TRADE_SCHEMA), 0)
    tape = pl.concat([stored, fresh]).unique(Trade.TRADE_ID, keep="first").sort(Trade.TIMESTAMP)
    lo = pl.lit(history_start).cast(TRADE_SCHEMA[Trade.TIMESTAMP])
    tape = tape.filter(pl.col(Trade.TIMESTAMP) >= lo)
    covered = ((end - tape[Trade.TIMESTAMP].min()).total_seconds() / 3600) if tape.height else 0.0
    if covered < settings.min_baseline_hours:
        return SpotCheck(_alerts(empty_findings(), settings), market, (start, end), tape.height, covered, gaps,
                         ["pump_and_dump"], time.perf_counter() - began)
    found = []
    day = start.date()
    while day <= end.date():
        day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        in_day = pl.col(Trade.TIMESTAMP).is_between(pl.lit(day_start).cast(TRADE_SCHEMA[Trade.TIMESTAMP]),
                                                    pl.lit(day_start + timedelta(days=1)).cast(
                                                        TRADE_SCHEMA[Trade.TIMESTAMP]), closed="left")
        trades = tape.filter(in_day)
        if trades.height:
            history = tape.filter(pl.col(Trade.TIMESTAMP) < pl.lit(day_start).cast(TRADE_SCHEMA[Trade.TIMESTAMP]))
            found.append(detect_pump_and_dump(DetectionInputs(trades=trades, history=history, day=day), settings))
        day += timedelta(days=1)
    findings = pl.concat(found) if found else empty_findings()
    findings = findings.filter(pl.col(Finding.WINDOW_END) >= pl.lit(start).cast(findings.schema[Finding.WINDOW_END]))
    return SpotCheck(_alerts(findings, settings), market, (start, end), tape.height, covered, gaps, [],
                     time.perf_counter() - began)


def latest_deals(client: MarketDataClient, market: str, quote: str = DEFAULT_QUOTE) -> pl.DataFrame:
    return client.get_deals(base_of(market, quote), quote, "spot", limit=DEALS_PAGE)


def _alerts(findings: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    return merged_alerts(findings, {"pump_and_dump": settings.model_dump()}, 300.0, high=0.8, medium=0.5,
                         max_evidence=100, model_version="spot tape rules")
