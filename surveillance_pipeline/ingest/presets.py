"""Column presets for real venues' files, detected from the header when that is unambiguous.

A preset maps the contract's columns to the file's columns and derives what the file lacks
(side from a buyer-is-maker flag or the tick rule, the symbol from the file name, market type
from the exchange name). Trade ids a file lacks are generated after timestamps are parsed
(see ``validation.assign_generated_trade_ids``).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from surveillance_pipeline.contract import (
    ORDER_REQUIRED,
    ORDER_SCHEMA,
    TRADE_REQUIRED,
    TRADE_SCHEMA,
    MarketType,
    Side,
    Trade,
)
from surveillance_pipeline.ingest.readers import InputFileError

TRADES = "trades"
ORDERS = "orders"


@dataclass
class DeriveState:
    """What a derivation carries from one chunk to the next (the tick rule's last price and side)."""

    last_price: float | None = None
    last_side: str | None = None


Derive = Callable[[pl.DataFrame, Path, DeriveState], pl.DataFrame]


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str  # TRADES or ORDERS
    description: str
    signature: frozenset[str]  # header columns that identify the preset (all must be present)
    columns: dict[str, str]  # contract column -> source column
    derive: tuple[Derive, ...] = ()
    generate_trade_ids: bool = False
    headerless_columns: tuple[str, ...] | None = None  # for files without a header line
    normalise_symbol: bool = False  # "XRP/ETH" -> "XRPETH", "BTC/USDT:USDT" -> "BTCUSDT"
    detectable: bool = True

    @property
    def has_header(self) -> bool:
        return self.headerless_columns is None


# A market name is a base asset followed by a quote currency venues list markets in.
_QUOTE = re.compile(r"USDT|USDC|FDUSD|BUSD|TUSD|USD|EUR|GBP|JPY|TRY|BRL|BTC|XBT|ETH|BNB|DAI")
_MARKET = re.compile(rf"[A-Z][A-Z0-9]{{1,14}}({_QUOTE.pattern})")


def symbol_from_filename(path: Path) -> str | None:
    """The market a single-symbol file is named after: binance_btcusdt-trades.parquet -> BTCUSDT."""
    stem = path.name.split(".")[0]
    stem = re.sub(r"(?i)[-_]?(trades?|aggtrades|deals)$", "", stem)
    tokens = [t.upper() for t in re.split(r"[_\-. ]", stem) if t]
    markets = [t for t in tokens if _MARKET.fullmatch(t)]
    if not markets:  # "BTC-USDT": one market in two tokens
        markets = [a + b for a, b in zip(tokens, tokens[1:])
                   if _QUOTE.fullmatch(b) and re.fullmatch(r"[A-Z][A-Z0-9]{1,9}", a)]
    return markets[-1] if markets else None


def _side_from_buyer_maker(flag_column: str) -> Derive:
    def derive(frame: pl.DataFrame, path: Path, state: DeriveState) -> pl.DataFrame:
        flag = pl.col(flag_column).str.strip_chars().str.to_lowercase()
        # The taker sells when the buyer is the maker.
        side = (
            pl.when(flag.is_in(["true", "1", "t"]))
            .then(pl.lit(Side.SELL.value))
            .when(flag.is_in(["false", "0", "f"]))
            .then(pl.lit(Side.BUY.value))
            .otherwise(pl.col(flag_column))
        )
        return frame.with_columns(side.alias(Trade.SIDE))

    return derive


def _symbol_from_file(frame: pl.DataFrame, path: Path, state: DeriveState) -> pl.DataFrame:
    if Trade.SYMBOL in frame.columns:
        return frame
    symbol = symbol_from_filename(path)
    if symbol is None:
        raise InputFileError(f"{path}: the file has no symbol column and its name names no market; pass --symbol")
    return frame.with_columns(pl.lit(symbol).alias(Trade.SYMBOL))


def _market_type_from_exchange(frame: pl.DataFrame, path: Path, state: DeriveState) -> pl.DataFrame:
    exchange = pl.col("exchange").str.to_lowercase()
    futures = exchange.str.contains("futures|swap|perp|deriv|delivery")
    market = pl.when(futures).then(pl.lit(MarketType.FUTURES.value)).otherwise(pl.lit(MarketType.SPOT.value))
    return frame.with_columns(market.alias(Trade.MARKET_TYPE))


def _side_by_tick_rule(frame: pl.DataFrame, path: Path, state: DeriveState) -> pl.DataFrame:
    # Files without an aggressor flag (Kraken's CSV): the tick rule classifies an up-tick as a buy and a
    # down-tick as a sell, a zero tick keeps the previous class (Lee & Ready 1991). The first trade of a
    # file has no previous tick and is classed as a buy.
    price = pl.col(Trade.PRICE).cast(pl.Float64, strict=False)
    previous = price.shift(1, fill_value=state.last_price)
    tick = (
        pl.when(price > previous).then(pl.lit(Side.BUY.value)).when(price < previous).then(pl.lit(Side.SELL.value))
    )
    sides = frame.select(tick.alias("s")).to_series().fill_null(strategy="forward")
    sides = sides.fill_null(state.last_side or Side.BUY.value)
    if frame.height:
        prices = frame.select(price).to_series().drop_nulls()
        state.last_price = prices[-1] if prices.len() else state.last_price
        state.last_side = sides[-1]
    return frame.with_columns(sides.alias(Trade.SIDE))


def _identity(schema: dict[str, pl.DataType]) -> dict[str, str]:
    return {column: column for column in schema}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in [
        Preset(
            name="contract_trades",
            kind=TRADES,
            description="the project's own trade columns (DESIGN.md data contract)",
            signature=frozenset(TRADE_REQUIRED),
            columns=_identity(TRADE_SCHEMA),
        ),
        Preset(
            name="contract_orders",
            kind=ORDERS,
            description="the project's own order-event columns (DESIGN.md data contract)",
            signature=frozenset(ORDER_REQUIRED),
            columns=_identity(ORDER_SCHEMA),
        ),
        Preset(
            name="tardis_trades",
            kind=TRADES,
            description="tardis.dev trades CSV (exchange,symbol,timestamp µs,local_timestamp,id,side,price,amount)",
            signature=frozenset({"exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"}),
            columns={
                Trade.TRADE_ID: "id",
                Trade.TIMESTAMP: "timestamp",
                Trade.SYMBOL: "symbol",
                Trade.SIDE: "side",
                Trade.PRICE: "price",
                Trade.QUANTITY: "amount",
            },
            derive=(_market_type_from_exchange,),
        ),
        Preset(
            name="binance_trades",
            kind=TRADES,
            description="Binance trades with a buyer_maker flag instead of a side (symbol from the file name)",
            signature=frozenset({"trade_id", "timestamp", "price", "quantity", "buyer_maker"}),
            columns={
                Trade.TRADE_ID: "trade_id",
                Trade.TIMESTAMP: "timestamp",
                Trade.PRICE: "price",
                Trade.QUANTITY: "quantity",
            },
            derive=(_side_from_buyer_maker("buyer_maker"), _symbol_from_file),
        ),
        Preset(
            name="binance_public_trades",
            kind=TRADES,
            description="Binance public-data trades CSV (id,price,qty,quote_qty,time,is_buyer_maker)",
            signature=frozenset({"id", "price", "qty", "time", "is_buyer_maker"}),
            columns={
                Trade.TRADE_ID: "id",
                Trade.TIMESTAMP: "time",
                Trade.PRICE: "price",
                Trade.QUANTITY: "qty",
                Trade.QUOTE_QUANTITY: "quote_qty",
            },
            derive=(_side_from_buyer_maker("is_buyer_maker"), _symbol_from_file),
        ),
        Preset(
            name="ccxt_trades",
            kind=TRADES,
            description="ccxt unified trades (JSON array): id, timestamp ms, symbol BASE/QUOTE, side, price, amount",
            signature=frozenset({"id", "timestamp", "datetime", "symbol", "side", "price", "amount", "cost"}),
            columns={
                Trade.TRADE_ID: "id",
                Trade.TIMESTAMP: "timestamp",
                Trade.SYMBOL: "symbol",
                Trade.SIDE: "side",
                Trade.PRICE: "price",
                Trade.QUANTITY: "amount",
                Trade.QUOTE_QUANTITY: "cost",
                Trade.FEE: "fee.cost",
            },
            normalise_symbol=True,
        ),
        Preset(
            name="kraken_trades_csv",
            kind=TRADES,
            description="Kraken trade history CSV without header (epoch s, price, volume); symbol from the file "
            "name, side by the tick rule, trade ids generated",
            signature=frozenset(),
            columns={Trade.TIMESTAMP: "time", Trade.PRICE: "price", Trade.QUANTITY: "volume"},
            derive=(_symbol_from_file, _side_by_tick_rule),
            generate_trade_ids=True,
            headerless_columns=("time", "price", "volume"),
        ),
        Preset(
            name="pump_tape",
            kind=TRADES,
            description="anonymous Binance pump tape (symbol,timestamp ms,datetime,side,price,amount,btc_volume); "
            "trade ids generated",
            signature=frozenset({"symbol", "timestamp", "side", "price", "amount", "btc_volume"}),
            columns={
                Trade.TIMESTAMP: "timestamp",
                Trade.SYMBOL: "symbol",
                Trade.SIDE: "side",
                Trade.PRICE: "price",
                Trade.QUANTITY: "amount",
                Trade.QUOTE_QUANTITY: "btc_volume",
            },
            generate_trade_ids=True,
            normalise_symbol=True,
        ),
    ]
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputFileError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def detect_preset(header: list[str], path: Path, kind: str | None = None) -> Preset | None:
    """The one preset whose signature the header carries; None when no preset matches.

    When several match, the most specific (largest signature) wins if it is a strict superset of
    every other match; otherwise the choice is ambiguous and the caller must name a preset.
    """
    columns = {name.lower() for name in header}
    matches = [
        p for p in PRESETS.values()
        if p.detectable and p.has_header and p.signature and {c.lower() for c in p.signature} <= columns
        and (kind is None or p.kind == kind)
    ]
    if not matches:
        return None
    matches.sort(key=lambda p: len(p.signature), reverse=True)
    best = matches[0]
    if all(other.signature < best.signature for other in matches[1:]):
        return best
    names = ", ".join(p.name for p in matches)
    raise InputFileError(f"{path}: the header matches several presets ({names}); pass --preset")


def looks_headerless(first_row: list[str]) -> bool:
    """A first CSV row of numbers only is data, not a header."""
    return bool(first_row) and all(re.fullmatch(r"\s*-?[\d.eE+\-:TZ ]+\s*", value or "") for value in first_row)


def detect_headerless_preset(field_count: int, path: Path) -> Preset | None:
    matches = [p for p in PRESETS.values() if p.headerless_columns and len(p.headerless_columns) == field_count]
    return matches[0] if len(matches) == 1 else None
