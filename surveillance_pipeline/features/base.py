"""What every feature calculator shares: the feature catalogue entry, the day's inputs, account fills.

A calculator is a function `(FeatureInputs) -> pl.LazyFrame` keyed by `account_id` (account features)
whose other columns are exactly the names of its `FeatureSpec`s. Calculators never loop over rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property

import polars as pl

from surveillance_pipeline.config import FeatureSettings
from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA, Order, Side, Trade

ACCOUNT = "account_id"
DATE = "date"


class Fill:
    """Columns of the per-account view of trades: each trade is two fills, the buyer's and the seller's."""

    ACCOUNT = ACCOUNT
    COUNTERPARTY = "counterparty_id"
    SYMBOL = Trade.SYMBOL
    TIMESTAMP = Trade.TIMESTAMP
    TRADE_ID = Trade.TRADE_ID
    ORDER_ID = "order_id"
    PRICE = Trade.PRICE
    QUANTITY = Trade.QUANTITY
    NOTIONAL = "notional"  # price x quantity, in the quote currency
    DIRECTION = "direction"  # +1 bought, -1 sold
    IS_TAKER = "is_taker"  # the account's order was the aggressor


@dataclass(frozen=True)
class FeatureSpec:
    """One documented feature: its column name, unit, meaning and group."""

    name: str
    unit: str
    meaning: str
    group: str


@dataclass
class FeatureInputs:
    """One UTC day of typed trades and order events, with the trades of the look-back days before it."""

    day: date
    trades: pl.LazyFrame  # TRADE_SCHEMA, the day
    orders: pl.LazyFrame = field(default_factory=lambda: pl.LazyFrame(schema=ORDER_SCHEMA))
    history: pl.LazyFrame = field(default_factory=lambda: pl.LazyFrame(schema=TRADE_SCHEMA))  # days before
    settings: FeatureSettings = field(default_factory=FeatureSettings)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(), tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    @cached_property
    def fills(self) -> pl.LazyFrame:
        """The day's fills (collected once: every calculator reads them)."""
        return account_fills(self.trades).collect().lazy()

    @cached_property
    def history_fills(self) -> pl.LazyFrame:
        """Fills of the look-back window before the day: the lookback_days - 1 days before it."""
        first = self.start - timedelta(days=self.settings.lookback_days - 1)
        stamp = pl.col(Trade.TIMESTAMP)
        return account_fills(self.history.filter((stamp >= first) & (stamp < self.start))).collect().lazy()

    @cached_property
    def order_events(self) -> pl.LazyFrame:
        """The day's order events, account ids under ACCOUNT, order ids hashed (see `hashed_id`).

        Lazy, not held in memory: each calculator scans only the columns it reads (order events are the
        largest input, 30 M rows on a big day; holding them costs gigabytes and re-reading them seconds)."""
        events = self.orders.rename({Order.USER_ID: ACCOUNT}).with_columns(
            hashed_id(Order.ORDER_ID),
            pl.col(ACCOUNT).cast(pl.Categorical),
        )
        return events


def hashed_id(column: str) -> pl.Expr:
    """An id as a 64-bit hash (nulls kept): group-bys and joins on tens of millions of order ids are several
    times faster and smaller than on strings; a collision among 30 M ids has odds of about 1 in 40,000."""
    return pl.when(pl.col(column).is_not_null()).then(pl.col(column).hash(seed=7)).alias(column)


def account_fills(trades: pl.LazyFrame) -> pl.LazyFrame:
    """Each trade as two fills, one per account: the buyer's (+1) and the seller's (-1).

    Trades without account ids (anonymous tapes) yield no fills.
    """
    notional = (pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).alias(Fill.NOTIONAL)
    common = [pl.col(Trade.SYMBOL), pl.col(Trade.TIMESTAMP), pl.col(Trade.TRADE_ID), pl.col(Trade.PRICE),
              pl.col(Trade.QUANTITY), notional]
    buys = trades.filter(pl.col(Trade.BUYER_ID).is_not_null()).select(
        pl.col(Trade.BUYER_ID).alias(Fill.ACCOUNT), pl.col(Trade.SELLER_ID).alias(Fill.COUNTERPARTY), *common,
        pl.col(Trade.BUYER_ORDER_ID).alias(Fill.ORDER_ID), pl.lit(1, pl.Int8).alias(Fill.DIRECTION),
        (pl.col(Trade.SIDE) == Side.BUY.value).alias(Fill.IS_TAKER),
    )
    sells = trades.filter(pl.col(Trade.SELLER_ID).is_not_null()).select(
        pl.col(Trade.SELLER_ID).alias(Fill.ACCOUNT), pl.col(Trade.BUYER_ID).alias(Fill.COUNTERPARTY), *common,
        pl.col(Trade.SELLER_ORDER_ID).alias(Fill.ORDER_ID), pl.lit(-1, pl.Int8).alias(Fill.DIRECTION),
        (pl.col(Trade.SIDE) == Side.SELL.value).alias(Fill.IS_TAKER),
    )
    # Grouped by account x symbol (one 64-bit key: sorting on strings is several times slower), in time
    # order within; the stable sort keeps the tape's order for fills at the same instant.
    pair = pl.struct(Fill.ACCOUNT, Fill.SYMBOL).hash(seed=0).alias("__pair")
    fills = pl.concat([buys, sells]).with_columns(
        # Compact ids: accounts as categoricals, order and trade ids as 64-bit hashes.
        *[pl.col(c).cast(pl.Categorical) for c in (Fill.ACCOUNT, Fill.COUNTERPARTY)],
        hashed_id(Fill.ORDER_ID), hashed_id(Fill.TRADE_ID),
    )
    return fills.with_columns(pair).sort("__pair", Fill.TIMESTAMP, maintain_order=True).drop("__pair")


def shannon_entropy(counts: pl.Expr) -> pl.Expr:
    """Entropy in bits of a distribution given by counts (an aggregation over the group's rows)."""
    share = counts / counts.sum()
    return -(share * share.log(2)).sum()
