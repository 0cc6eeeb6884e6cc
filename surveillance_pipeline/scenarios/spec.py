"""What a scenario is asked for (ScenarioSpec), what it yields (Scenario) and each symbol's market profile."""
from __future__ import annotations

import datetime
import math
import zlib
from dataclasses import dataclass

import polars as pl

# Order type of resting (non-market) orders; the contract names only the market order type.
LIMIT_ORDER_TYPE = "limit"

MIN_ACCOUNTS = 20


@dataclass(frozen=True)
class ScenarioSpec:
    """Parameters of a synthetic, labelled market scenario (all times UTC)."""

    days: int = 1
    seed: int = 0
    accounts: int = 200  # background accounts (retail + market makers)
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    start_date: datetime.date = datetime.date(2026, 3, 2)
    clean: bool = False  # background only, no episodes
    trades_per_day: int = 20_000  # approximate background trade count per day (all symbols)

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", tuple(self.symbols))  # a list from a CLI stays hashable
        if self.days < 1:
            raise ValueError(f"ScenarioSpec.days must be >= 1, got {self.days}")
        if self.accounts < MIN_ACCOUNTS:
            raise ValueError(f"ScenarioSpec.accounts must be >= {MIN_ACCOUNTS}, got {self.accounts}")
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"ScenarioSpec.symbols must be non-empty and distinct, got {self.symbols!r}")
        if self.trades_per_day < 100:
            raise ValueError(f"ScenarioSpec.trades_per_day must be >= 100, got {self.trades_per_day}")


@dataclass(frozen=True)
class Scenario:
    """A generated scenario: frames in the contract's schemas, each sorted by timestamp."""

    trades: pl.DataFrame  # TRADE_SCHEMA
    orders: pl.DataFrame  # ORDER_SCHEMA
    labels: pl.DataFrame  # LABEL_SCHEMA


@dataclass(frozen=True)
class SymbolProfile:
    """How a symbol trades: price level, grids, typical retail size, volatility and share of activity."""

    base_price: float
    tick: float  # price grid
    lot: float  # quantity grid
    median_qty: float  # median retail order size
    daily_vol: float  # daily log-price volatility
    liquidity: float  # relative share of the day's trades
    half_spread_ticks: int  # half the quoted spread, in ticks


KNOWN_PROFILES: dict[str, SymbolProfile] = {
    "BTCUSDT": SymbolProfile(60_000.0, 0.1, 1e-5, 0.004, 0.03, 0.45, 2),
    "ETHUSDT": SymbolProfile(3_000.0, 0.01, 1e-4, 0.08, 0.04, 0.35, 2),
    "SOLUSDT": SymbolProfile(150.0, 0.001, 1e-3, 1.6, 0.05, 0.20, 3),
}

# Median retail order notional used for unknown symbols, in quote currency.
DEFAULT_MEDIAN_NOTIONAL = 250.0


def profile_for(symbol: str) -> SymbolProfile:
    """The symbol's profile; unknown symbols get a stable pseudo-random price with ~5 significant digits."""
    if symbol in KNOWN_PROFILES:
        return KNOWN_PROFILES[symbol]
    # crc32, not hash(): stable across processes.
    base_price = 10 ** (zlib.crc32(symbol.encode()) % 10_000 / 10_000 * 4 - 1)  # 0.1 .. 1000
    tick = 10.0 ** (math.floor(math.log10(base_price)) - 4)
    base_price = round(base_price / tick) * tick
    median_notional_qty = DEFAULT_MEDIAN_NOTIONAL / base_price
    lot = 10.0 ** (math.floor(math.log10(median_notional_qty)) - 2)
    median_qty = round(median_notional_qty / lot) * lot
    return SymbolProfile(base_price, tick, lot, median_qty, 0.06, 0.15, 2)
