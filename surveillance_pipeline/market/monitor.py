"""One monitoring pass over an exchange's MCP server (`surveillance monitor run --once`): the history tools
over a window for every futures market, the futures detectors on them, alerts in the contract.

Open interest has no history tool on CoinEx's server (only the current ticker). Its history is the ticker
snapshots the futures sensor and the monitoring loop store about once a minute (`collect.take_snapshots`):
given the database, a pass reads those of its window (and the order-book snapshots, which corroborate funding
and basis findings) and judges the open-interest patterns (position concentration, funding farming) where the
snapshots cover at least `min_oi_coverage` of the window's minutes; otherwise it reports them as not
assessable, with the coverage, rather than guessing. Liquidations are used when the source provides them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from surveillance_pipeline.market import envelope as env
from surveillance_pipeline.market.client import MarketDataClient
from surveillance_pipeline.market.futures_detectors import FuturesSettings, futures_alerts
from surveillance_pipeline.market.replay import UTC_MS
from surveillance_pipeline.market.tools import DEFAULT_QUOTE, base_of

PAGE = 1000
KLINE_LIMIT = 1000  # CoinEx's k-line limit: the latest 1000 bars (its MCP tool takes no time range), ~16.7 h
OI_PATTERNS = ["position_concentration", "funding_rate_farming"]


@dataclass
class MonitorPass:
    alerts: pl.DataFrame
    markets: list[str]
    window: tuple[datetime, datetime]
    unavailable: dict[str, str] = field(default_factory=dict)
    not_assessed: list[str] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0
    seconds: float = 0.0
    oi_coverage: dict[str, float] = field(default_factory=dict)  # market -> share of minutes with open interest


def monitor_once(client: MarketDataClient, markets: list[str] | None = None, start: datetime | None = None,
                 end: datetime | None = None, quote: str = DEFAULT_QUOTE,
                 settings: FuturesSettings = FuturesSettings(), db=None,
                 min_oi_coverage: float = 0.8, kline_limit: int = KLINE_LIMIT) -> MonitorPass:
    began = time.perf_counter()
    markets = markets or client.list_markets("futures", quote=quote).get_column("market").to_list()
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=1)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    tables: dict[str, list[pl.DataFrame]] = {k: [] for k in ("premium", "basis", "funding", "mark", "klines",
                                                             "liquidations")}
    unavailable: dict[str, str] = {}
    minutes = int((end - start).total_seconds() // 60) + 1
    for market in markets:
        base = base_of(market, quote)
        tag = {"market": market, "market_type": "futures"}
        tables["premium"].append(client.get_premium_index_history(base, quote, start_ms, end_ms, PAGE)
                                 .with_columns(**{k: pl.lit(v) for k, v in tag.items()}))
        tables["basis"].append(client.get_basis_history(base, quote, start_ms, end_ms, PAGE)
                               .with_columns(**{k: pl.lit(v) for k, v in tag.items()}))
        tables["funding"].append(client.get_funding_rate_history(base, quote, start_ms, end_ms, PAGE)
                                 .with_columns(**{k: pl.lit(v) for k, v in tag.items()}))
        bars = client.get_kline(base, quote, "1min", min(minutes, kline_limit), "futures").filter(
            pl.col("created_at").is_between(start, end)).with_columns(**{k: pl.lit(v) for k, v in tag.items()})
        tables["mark"].append(bars.select("market", "market_type", "created_at", pl.col("close").alias("mark_price")))
        tables["klines"].append(bars.select("market", "market_type", "created_at", "open", "high", "low", "close",
                                            "volume"))  # the highs and lows: wicks the closes do not show
        try:
            tables["liquidations"].append(client.get_liquidation_history(base, quote, start_ms, end_ms, PAGE)
                                          .with_columns(pl.lit(market).alias("market")))
        except env.Unavailable as reason:
            unavailable[f"get_liquidation_history {market}"] = reason.message
    frames = {name: pl.concat([f for f in parts if f.height], how="diagonal_relaxed").with_columns(
        pl.col(c).cast(UTC_MS) for c in ("created_at", "funding_time") if any(c in f.columns for f in parts))
        for name, parts in tables.items() if any(f.height for f in parts)}
    coverage: dict[str, float] = {}
    if db is not None:
        from surveillance_pipeline.market.stored import snapshot_tables

        stored = snapshot_tables(db, start, end + timedelta(minutes=1), markets)
        for name in ("open_interest", "depth"):
            if name in stored:
                frames[name] = stored[name]
        coverage = oi_coverage(stored.get("open_interest"), markets, start, end, settings.oi_fill_minutes)
    alerts = futures_alerts(frames, settings)
    not_assessed = []
    if not coverage or min(coverage.values()) < min_oi_coverage:
        not_assessed += OI_PATTERNS  # no (dense enough) open-interest history
        thin = [m for m in markets if coverage.get(m, 0.0) < min_oi_coverage]
        alerts = alerts.filter(~(pl.col("pattern").is_in(OI_PATTERNS) & pl.col("symbol").is_in(thin)))
    if "liquidations" not in frames:
        not_assessed += ["liquidation_hunting", "forced_liquidation"]
        alerts = alerts.filter(~pl.col("pattern").is_in(["liquidation_hunting", "forced_liquidation"]))
    return MonitorPass(alerts, markets, (start, end), unavailable, not_assessed, client.calls, client.failed_calls,
                       time.perf_counter() - began, coverage)


def oi_coverage(oi: pl.DataFrame | None, markets: list[str], start: datetime, end: datetime,
                fill_minutes: int) -> dict[str, float]:
    """Per market, the share of the window's minutes with an open-interest value (a snapshot that minute or at
    most `fill_minutes` before, as the detectors carry it)."""
    grid = pl.DataFrame({"minute": pl.datetime_range(start.replace(second=0, microsecond=0), end, "1m",
                                                     time_unit="ms", time_zone="UTC", eager=True)})
    result = {}
    for market in markets:
        mine = (oi.filter(pl.col("market") == market) if oi is not None and oi.height else pl.DataFrame(
            schema={"created_at": UTC_MS}))
        seen = mine.select(pl.col("created_at").dt.truncate("1m").alias("minute"), pl.lit(True).alias("seen")).unique()
        filled = grid.join(seen, on="minute", how="left").sort("minute").get_column("seen").fill_null(
            strategy="forward", limit=fill_minutes)
        result[market] = float(filled.fill_null(False).mean()) if grid.height else 0.0
    return result
