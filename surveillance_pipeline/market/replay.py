"""Our MCP server: the CoinEx server's tool names, arguments and envelopes, answered from recorded data.

A `ReplayStore` holds the recorded tables (Parquet files in a folder, one per table, or built from the real
samples in ../shared/data/real_samples). The server answers "as of" its replay clock (`now`, default the
newest record): current-state tools (ticker, order book, funding rate) give the latest record at or before
it, history tools the records in [start_time, end_time]. Numbers go out as strings, times as epoch ms, like
CoinEx. Liquidations are answered when recorded; otherwise `code=-1`, as CoinEx's server always does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from surveillance_pipeline.market.tools import (DEFAULT_QUOTE, KLINE_PERIODS, PERIOD_SECONDS, TICKER_WITHOUT_BASE,
                                                base_of, market_name)

UTC_MS = pl.Datetime("ms", "UTC")
# table -> (time column, columns); every table has `market` and `market_type` (spot|futures)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "deals": ("created_at", ("deal_id", "side", "price", "amount")),
    "depth": ("updated_at", ("side", "level", "price", "amount")),
    "funding": ("funding_time", ("theoretical_funding_rate", "actual_funding_rate")),
    "mark": ("created_at", ("mark_price",)),
    "index": ("created_at", ("index_price",)),
    "premium": ("created_at", ("premium_index",)),
    "basis": ("created_at", ("basis_rate",)),
    "open_interest": ("created_at", ("open_interest_volume",)),
    "liquidations": ("created_at", ("side", "price", "amount")),
    "tiers": ("", ("tier", "amount", "leverage", "maintenance_margin_rate", "min_initial_margin_rate")),
}
OK = {"code": 0, "message": "OK"}


def _empty(name: str) -> pl.DataFrame:
    time_col, columns = TABLES[name]
    schema = {"market": pl.String, "market_type": pl.String}
    if time_col:
        schema[time_col] = UTC_MS
    for column in columns:
        schema[column] = pl.String if column in ("deal_id", "side") else (
            pl.Int32 if column in ("level", "tier") else pl.Float64)
    return pl.DataFrame(schema=schema)


@dataclass
class ReplayStore:
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    now: datetime | None = None

    def table(self, name: str) -> pl.DataFrame:
        return self.tables.get(name, _empty(name))

    @classmethod
    def load(cls, folder: Path) -> ReplayStore:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no replay data folder")
        tables = {}
        for name in TABLES:
            path = folder / f"{name}.parquet"
            if path.exists():
                tables[name] = pl.read_parquet(path)
        if not tables:
            raise FileNotFoundError(f"{folder}: no replay tables ({', '.join(f'{t}.parquet' for t in TABLES)})")
        return cls(tables)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.tables.items():
            tmp = folder / f".{name}.parquet.tmp"
            frame.write_parquet(tmp)
            tmp.replace(folder / f"{name}.parquet")

    @property
    def clock(self) -> datetime:
        if self.now is not None:
            return self.now
        latest = [f.get_column(TABLES[n][0]).max() for n, f in self.tables.items() if TABLES[n][0] and f.height]
        return max(latest)

    def markets(self, market_type: str) -> list[str]:
        names = set()
        for frame in self.tables.values():
            names |= set(frame.filter(pl.col("market_type") == market_type).get_column("market").unique())
        return sorted(names)

    def upto(self, name: str, market: str, market_type: str | None = None) -> pl.DataFrame:
        time_col = TABLES[name][0]
        frame = self.table(name).filter(pl.col("market") == market)
        if market_type:
            frame = frame.filter(pl.col("market_type") == market_type)
        return frame.filter(pl.col(time_col) <= self.clock) if time_col else frame


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _s(value) -> str | None:
    """A plain decimal string, as CoinEx sends numbers: no exponent, full precision ("0.00003", "123456789012.5")."""
    import numpy as np

    return None if value is None else np.format_float_positional(float(value), trim="-")


def build_server(store: ReplayStore, name: str = "surveillance-replay"):
    """An MCP server (mcp 2.x) with CoinEx's public tool names, arguments and envelopes."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name, instructions="Replays recorded exchange market data with CoinEx's tool names "
                                          "and {code, message, data} envelopes.", log_level="WARNING")

    def unknown(market: str, market_type: str) -> dict:
        return {"code": 3639, "message": f"market {market} ({market_type}) not found in the replay data", "data": None}

    def latest(table: str, market: str, column: str):
        recorded = store.upto(table, market)
        return recorded.sort(TABLES[table][0])[column][-1] if recorded.height else None

    def ticker_row(market: str, market_type: str) -> dict | None:
        """24 h statistics up to the market's newest deal (at or before the clock); a perpetual without
        recorded deals still has its mark price."""
        deals = store.upto("deals", market, market_type)
        row: dict = {"market": market, "period": 86400}
        if deals.height:
            deals = deals.sort("created_at")
            end = deals["created_at"][-1]
            day = deals.filter(pl.col("created_at") > end - pl.duration(days=1))
            row.update({"last": _s(day["price"][-1]), "open": _s(day["price"][0]), "close": _s(day["price"][-1]),
                        "high": _s(day["price"].max()), "low": _s(day["price"].min()),
                        "volume": _s(day["amount"].sum()), "value": _s((day["price"] * day["amount"]).sum()),
                        "volume_buy": _s(day.filter(pl.col("side") == "buy")["amount"].sum()),
                        "volume_sell": _s(day.filter(pl.col("side") == "sell")["amount"].sum())})
        if market_type == "futures":
            row.update({"mark_price": _s(latest("mark", market, "mark_price")),
                        "index_price": _s(latest("index", market, "index_price")),
                        "open_interest_volume": _s(latest("open_interest", market, "open_interest_volume"))})
            row.setdefault("last", row["mark_price"])
        return row if row.get("last") is not None else None

    @server.tool()
    async def get_ticker(base: str | None = None, quote: str = DEFAULT_QUOTE, market_type: str = "spot") -> dict[str, Any]:
        """Recent price, 24 h price and volume of a market (all markets' first 5 without `base`, as CoinEx)."""
        markets = [market_name(base, quote)] if base else store.markets(market_type)[:TICKER_WITHOUT_BASE]
        rows = [r for m in markets if (r := ticker_row(m, market_type)) is not None]
        if base and not rows:
            return unknown(markets[0], market_type)
        return {**OK, "data": rows}

    @server.tool()
    async def get_orderbook(base: str, quote: str = DEFAULT_QUOTE, limit: int | None = 20, market_type: str = "spot",
                            interval: str | None = "0") -> dict[str, Any]:
        """The latest recorded order-book snapshot (limit 5/10/20/50 levels a side)."""
        market = market_name(base, quote)
        depth = store.upto("depth", market, market_type)
        if depth.is_empty():
            return unknown(market, market_type)
        latest = depth.filter(pl.col("updated_at") == pl.col("updated_at").max()).sort("side", "level")
        side = lambda s: [[_s(r["price"]), _s(r["amount"])] for r in  # noqa: E731
                          latest.filter(pl.col("side") == s).head(limit or 20).iter_rows(named=True)]
        stamp = latest["updated_at"][0]
        trades = store.upto("deals", market, market_type)
        last = _s(trades.sort("created_at")["price"][-1]) if trades.height else None  # the last trade, not a level
        return {**OK, "data": {"market": market, "is_full": True, "depth": {
            "asks": side("ask"), "bids": side("bid"), "last": last, "updated_at": _ms(stamp)}}}

    @server.tool()
    async def get_kline(base: str, quote: str = DEFAULT_QUOTE, period: str = "1hour", limit: int | None = 100,
                        market_type: str = "spot") -> dict[str, Any]:
        """K-lines built from the recorded deals (periods 1min ... 1week)."""
        if period not in KLINE_PERIODS:
            return {"code": -1, "message": f"Unsupported time period: {period}."}
        market = market_name(base, quote)
        deals = store.upto("deals", market, market_type)
        if deals.is_empty():
            return unknown(market, market_type)
        bars = (deals.sort("created_at").group_by_dynamic("created_at", every=f"{PERIOD_SECONDS[period]}s")
                .agg(pl.col("price").first().alias("open"), pl.col("price").last().alias("close"),
                     pl.col("price").max().alias("high"), pl.col("price").min().alias("low"),
                     pl.col("amount").sum().alias("volume"), (pl.col("price") * pl.col("amount")).sum().alias("value"))
                .tail(limit or 100))
        return {**OK, "data": [{"market": market, "created_at": _ms(r["created_at"]),
                                **{k: _s(r[k]) for k in ("open", "close", "high", "low", "volume", "value")}}
                               for r in bars.iter_rows(named=True)]}

    @server.tool()
    async def list_markets(market_type: str = "spot", base: str | None = None, quote: str = DEFAULT_QUOTE) -> dict[str, Any]:
        """The recorded markets of a type."""
        rows = [{"market": m, "base_ccy": base_of(m, quote), "quote_ccy": quote,
                 "status": "online"} for m in store.markets(market_type)
                if m.endswith(quote) and (not base or m == market_name(base, quote))]
        return {**OK, "data": rows}

    @server.tool()
    async def get_deals(base: str, quote: str = DEFAULT_QUOTE, market_type: str = "spot",
                        limit: int | None = 100) -> dict[str, Any]:
        """The latest recorded trades, newest first."""
        market = market_name(base, quote)
        deals = store.upto("deals", market, market_type)
        if deals.is_empty():
            return unknown(market, market_type)
        rows = deals.sort("created_at", descending=True).head(min(limit or 100, 1000))
        return {**OK, "data": [{"deal_id": str(r["deal_id"]), "created_at": _ms(r["created_at"]), "side": r["side"],
                                "price": _s(r["price"]), "amount": _s(r["amount"])} for r in rows.iter_rows(named=True)]}

    @server.tool()
    async def get_index_price(market_type: str = "spot", base: str | None = None, quote: str = DEFAULT_QUOTE,
                              top_n: int | None = 5) -> dict[str, Any]:
        """The latest recorded index price (top_n markets without `base`)."""
        markets = [market_name(base, quote)] if base else store.markets(market_type)[: top_n or 5]
        rows = []
        for market in markets:
            index = store.upto("index", market)
            if index.height:
                last = index.sort("created_at").row(-1, named=True)
                rows.append({"market": market, "created_at": _ms(last["created_at"]), "price": _s(last["index_price"])})
        return {**OK, "data": rows}

    @server.tool()
    async def get_funding_rate(base: str, quote: str = DEFAULT_QUOTE) -> dict[str, Any]:
        """The current funding rate of a perpetual: the latest settled and the next (futures only)."""
        market = market_name(base, quote)
        funding = store.upto("funding", market, "futures").sort("funding_time")
        if funding.is_empty():
            return unknown(market, "futures")
        last = funding.row(-1, named=True)
        mark = store.upto("mark", market)
        return {**OK, "data": [{"market": market, "latest_funding_rate": _s(last["actual_funding_rate"]),
                                "next_funding_rate": _s(last["theoretical_funding_rate"]),
                                "latest_funding_time": _ms(last["funding_time"]),
                                "mark_price": _s(mark.sort("created_at")["mark_price"][-1]) if mark.height else None}]}

    def history(table: str, market: str, start_time: int | None, end_time: int | None, page: int | None,
                limit: int | None, row) -> dict[str, Any]:
        time_col = TABLES[table][0]
        frame = store.upto(table, market)
        if start_time is not None:
            frame = frame.filter(pl.col(time_col) >= pl.lit(start_time).cast(UTC_MS))
        if end_time is not None:
            frame = frame.filter(pl.col(time_col) <= pl.lit(end_time).cast(UTC_MS))
        size = limit or 100
        chunk = frame.sort(time_col, descending=True).slice(((page or 1) - 1) * size, size)
        return {**OK, "data": [row(r) for r in chunk.iter_rows(named=True)],
                "pagination": {"has_next": frame.height > (page or 1) * size}}

    @server.tool()
    async def get_funding_rate_history(base: str, quote: str = DEFAULT_QUOTE, start_time: int | None = None,
                                       end_time: int | None = None, page: int | None = 1,
                                       limit: int | None = 100) -> dict[str, Any]:
        """Settled funding rates, newest first (times in epoch ms)."""
        market = market_name(base, quote)
        return history("funding", market, start_time, end_time, page, limit, lambda r: {
            "market": market, "funding_time": _ms(r["funding_time"]),
            "theoretical_funding_rate": _s(r["theoretical_funding_rate"]),
            "actual_funding_rate": _s(r["actual_funding_rate"])})

    @server.tool()
    async def get_premium_index_history(base: str, quote: str = DEFAULT_QUOTE, start_time: int | None = None,
                                        end_time: int | None = None, page: int | None = 1,
                                        limit: int | None = 100) -> dict[str, Any]:
        """Premium index history, newest first."""
        market = market_name(base, quote)
        return history("premium", market, start_time, end_time, page, limit, lambda r: {
            "market": market, "created_at": _ms(r["created_at"]), "premium_index": _s(r["premium_index"])})

    @server.tool()
    async def get_basis_history(base: str, quote: str = DEFAULT_QUOTE, start_time: int | None = None,
                                end_time: int | None = None, page: int | None = 1,
                                limit: int | None = 100) -> dict[str, Any]:
        """Basis (futures vs index) history, newest first."""
        market = market_name(base, quote)
        return history("basis", market, start_time, end_time, page, limit, lambda r: {
            "market": market, "created_at": _ms(r["created_at"]), "basis_rate": _s(r["basis_rate"])})

    @server.tool()
    async def get_margin_tiers(base: str, quote: str = DEFAULT_QUOTE) -> dict[str, Any]:
        """Position tiers of a perpetual: position ceiling, maximum leverage and margin rates per tier."""
        market = market_name(base, quote)
        tiers = store.upto("tiers", market).sort("tier")
        if tiers.is_empty():
            return unknown(market, "futures")
        return {**OK, "data": [{"market": market, "level": [
            {k: _s(r[k]) for k in ("amount", "leverage", "maintenance_margin_rate", "min_initial_margin_rate")}
            for r in tiers.iter_rows(named=True)]}]}

    @server.tool()
    async def get_liquidation_history(base: str, quote: str = DEFAULT_QUOTE, start_time: int | None = None,
                                      end_time: int | None = None, page: int | None = 1,
                                      limit: int | None = 100) -> dict[str, Any]:
        """Recorded liquidations; code -1 when none were recorded (CoinEx's own server always answers -1)."""
        market = market_name(base, quote)
        if store.table("liquidations").filter(pl.col("market") == market).is_empty():
            return {"code": -1, "message": "Liquidation history not available in the replay data", "data": []}
        return history("liquidations", market, start_time, end_time, page, limit, lambda r: {
            "market": market, "created_at": _ms(r["created_at"]), "side": r["side"], "price": _s(r["price"]),
            "amount": _s(r["amount"])})

    return server
