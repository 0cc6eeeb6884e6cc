"""Collecting a day of futures market data through the MCP client into the database (idempotent per day and
market), and the latest snapshot per market in Redis when REDIS_URL is set."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import sqlalchemy as sa

from surveillance_pipeline.log import get_logger
from surveillance_pipeline.market import envelope as env
from surveillance_pipeline.market.client import MarketDataClient, MarketDataError
from surveillance_pipeline.market.tools import DEFAULT_QUOTE, base_of
from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.models import (
    basis_table,
    funding_rates_table,
    liquidations_table,
    premium_table,
    snapshots_table,
)

log = get_logger(__name__)
HISTORY_LIMIT = 1000
FAILED = "failed: "  # an unavailable entry that was a failure (timeout, outage), not a tool the market lacks


@dataclass
class MarketBatch:
    day: date
    source: str
    funding: list[pl.DataFrame] = field(default_factory=list)
    premium: list[pl.DataFrame] = field(default_factory=list)
    basis: list[pl.DataFrame] = field(default_factory=list)
    liquidations: list[pl.DataFrame] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    markets: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # "tool market" -> the source's message

    def frame(self, name: str) -> pl.DataFrame:
        frames = [f for f in getattr(self, name) if f.height]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def day_bounds_ms(day: date) -> tuple[int, int]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000) - 1


def futures_markets(client: MarketDataClient, quote: str = DEFAULT_QUOTE) -> list[str]:
    return client.list_markets("futures", quote=quote).get_column("market").to_list()


def collect_day(client: MarketDataClient, markets: list[str], day: date, quote: str = DEFAULT_QUOTE,
                snapshots: bool = True) -> MarketBatch:
    """Funding, premium index, basis and liquidations of `day` for each market (history tools), and a ticker
    and order-book snapshot taken now. A tool the source does not provide is recorded as unavailable."""
    start, end = day_bounds_ms(day)
    batch = MarketBatch(day, client.source, markets=list(markets))
    taken = datetime.now(UTC)
    for market in markets:
        base = base_of(market, quote)
        batch.funding.append(client.get_funding_rate_history(base, quote, start, end, HISTORY_LIMIT))
        batch.premium.append(client.get_premium_index_history(base, quote, start, end, HISTORY_LIMIT))
        batch.basis.append(client.get_basis_history(base, quote, start, end, HISTORY_LIMIT))
        try:
            batch.liquidations.append(client.get_liquidation_history(base, quote, start, end, HISTORY_LIMIT))
        except env.Unavailable as reason:
            batch.unavailable[f"get_liquidation_history {market}"] = reason.message
        try:  # the day's 1-minute k-lines: the price path the liquidation detectors read
            bars = client.get_kline(base, quote, "1min", 1440, "futures")
            bars = bars.filter(pl.col("created_at").dt.date() == day)
            if bars.height:
                batch.snapshots.append({"market": market, "market_type": "futures", "kind": "kline_1min",
                                        "taken_at": datetime.combine(day, time(), tzinfo=UTC),
                                        "data": json.loads(bars.write_json()), "source": client.source})
        except env.ExchangeToolError as reason:
            batch.unavailable[f"kline {market}"] = reason.message
    if snapshots:
        taken_now, missing = take_snapshots(client, markets, quote, taken)
        batch.snapshots += taken_now
        batch.unavailable.update(missing)
    if batch.unavailable:
        log.info("market data not provided by the source", source=client.source, unavailable=batch.unavailable)
    return batch


def take_snapshots(client: MarketDataClient, markets: list[str], quote: str = DEFAULT_QUOTE,
                   taken: datetime | None = None) -> tuple[list[dict], dict[str, str]]:
    """A ticker (open interest, mark and index price) and a 20-level order-book snapshot of each market, taken
    now: taken every minute or so (the futures sensor's ticks, the monitoring loop), they are the open-interest
    and order-book history that no MCP tool provides. A tool a market lacks is said, not fatal."""
    taken = taken or datetime.now(UTC)
    snapshots: list[dict] = []
    unavailable: dict[str, str] = {}
    for market in markets:
        base = base_of(market, quote)
        for kind, fetch in (("ticker", lambda: client.get_futures_ticker(base, quote)),
                            ("orderbook", lambda: client.get_futures_orderbook(base, quote, 20))):
            try:
                frame = fetch()
            except env.ExchangeToolError as reason:  # e.g. no order book for the market
                unavailable[f"{kind} {market}"] = reason.message
                continue
            except MarketDataError as reason:  # this market timed out: the others' snapshots are kept
                unavailable[f"{kind} {market}"] = f"{FAILED}{reason}"
                continue
            snapshots.append({"market": market, "market_type": "futures", "kind": kind, "taken_at": taken,
                              "data": json.loads(frame.write_json()), "source": client.source})
    return snapshots, unavailable


def save_snapshots(db: Database, snapshots: list[dict]) -> int:
    """Append snapshots (one transaction)."""
    if snapshots:
        with db.transaction() as conn:
            conn.execute(sa.insert(snapshots_table), snapshots)
    return len(snapshots)


def _records(frame: pl.DataFrame, time_column: str, columns: tuple[str, ...], source: str) -> list[dict]:
    if frame.is_empty():
        return []
    return [{"market": r["market"], time_column: r[time_column], **{c: r.get(c) for c in columns}, "source": source}
            for r in frame.iter_rows(named=True)]


def save_market_day(db: Database, batch: MarketBatch) -> dict[str, int]:
    """Replace the day's rows of the batch's markets from its source (one transaction); append snapshots."""
    start = datetime.combine(batch.day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    plan = (
        (funding_rates_table, "funding_time", batch.frame("funding"),
         ("theoretical_funding_rate", "actual_funding_rate")),
        (premium_table, "created_at", batch.frame("premium"), ("premium_index",)),
        (basis_table, "created_at", batch.frame("basis"), ("basis_rate",)),
        (liquidations_table, "created_at", batch.frame("liquidations"), ("side", "price", "amount")),
    )
    counts = {}
    with db.transaction() as conn:
        for table, time_column, frame, columns in plan:
            moment = table.c[time_column]
            # a market whose data the source did not provide keeps what was stored before
            fetched = [m for m in batch.markets if not (table is liquidations_table
                                                        and f"get_liquidation_history {m}" in batch.unavailable)]
            conn.execute(sa.delete(table).where(table.c.market.in_(fetched) & (table.c.source == batch.source)
                                                & (moment >= start) & (moment < end)))
            rows = [r for r in _records(frame, time_column, columns, batch.source) if start <= r[time_column] < end]
            if rows:
                conn.execute(sa.insert(table), rows)
            counts[table.name] = len(rows)
        conn.execute(sa.delete(snapshots_table).where(
            snapshots_table.c.market.in_(batch.markets) & (snapshots_table.c.kind == "kline_1min")
            & (snapshots_table.c.source == batch.source) & (snapshots_table.c.taken_at == start)))
        if batch.snapshots:
            conn.execute(sa.insert(snapshots_table), batch.snapshots)
        counts[snapshots_table.name] = len(batch.snapshots)
    return counts


class SnapshotCache:
    """The latest ticker per market in Redis (`market:<market>:ticker`, JSON, with a time to live). Without a
    Redis URL the cache is off, and `enabled` / `reason` say so."""

    def __init__(self, url: str | None, ttl_seconds: int = 300) -> None:
        self.url, self.ttl = url, ttl_seconds
        self.reason = "" if url else "REDIS_URL is not set: snapshot caching is off"
        self._redis = None
        if url:
            import redis

            self._redis = redis.Redis.from_url(url, socket_timeout=2)

    @property
    def enabled(self) -> bool:
        return self._redis is not None

    def put(self, snapshots: MarketBatch | list[dict]) -> int:
        """Cache the tickers among the snapshots (a collection's batch, or what a sensor tick took)."""
        if not self.enabled:
            return 0
        written = 0
        for snap in snapshots.snapshots if isinstance(snapshots, MarketBatch) else snapshots:
            if snap["kind"] == "ticker":
                self._redis.set(f"market:{snap['market']}:ticker", json.dumps(
                    {"taken_at": snap["taken_at"].isoformat(), "source": snap["source"], "data": snap["data"]}),
                    ex=self.ttl)
                written += 1
        return written

    def get(self, market: str) -> dict | None:
        if not self.enabled:
            return None
        raw = self._redis.get(f"market:{market}:ticker")
        return json.loads(raw) if raw else None
