"""Counterparty features: who an account trades with, and whether its trading changes its position at all.

The wash / circular-trading signals. One group_by of the day's fills (each trade is a buy fill of the buyer
and a sell fill of the seller, `base.account_fills`) into account x counterparty x symbol legs, then small
group_bys of the legs: no pairwise comparison of trades.
A self-trade (buyer = seller) gives the account two fills, a buy and a sell, whose counterparty is the
account itself. Fills whose counterparty is unknown (a trade with one account id missing) count in the
account's notional but can be nobody's top or round-trip counterparty.

Keys are integers: the fills come grouped by account x symbol, so a leg is (the number of its account x
symbol run, `behaviour.numbered_pairs`; the counterparty's categorical code) packed in one 64-bit key, and
the legs' account is looked up by that number: the group_bys hash no string.
"""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.contract import Order
from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill
from surveillance_pipeline.features.behaviour import numbered_pairs

GROUP = "counterparty"
FEATURES = [
    FeatureSpec("self_trade_count", "trades", "the day's trades where the account is both buyer and seller "
                "(each counted once, not as two fills); null without fills", GROUP),
    FeatureSpec("top_counterparty_share", "share", "largest share of the account's notional done with one "
                "counterparty (a self-trade's two fills count with the account itself as the counterparty; "
                "fills with an unknown counterparty count only in the denominator); null without fills",
                GROUP),
    FeatureSpec("round_trip_counterparty_share", "share",
                "notional traded back and forth with the same counterparty at ~the same price / the account's "
                "gross notional: per account x counterparty x symbol, matched quantity = min(quantity bought "
                "from them, quantity sold to them), kept when |VWAP bought - VWAP sold| / mid <= "
                "features.round_trip_tolerance_bps (mid = mean of the two VWAPs); both legs of the kept "
                "matched quantity, 2 x matched x mid, summed over counterparties and symbols, divided by the "
                "account's gross notional (buys + sells), so 1 = every fill is half of a same-price round "
                "trip with one counterparty (self-trades are such round trips); null without fills", GROUP),
    FeatureSpec("net_position_ratio", "ratio", "per symbol |sum of signed quantity| / sum of quantity (0 = the "
                "day left the position unchanged, 1 = only bought or only sold), averaged over the account's "
                "symbols weighted by their notional; null without fills", GROUP),
]

BUY_QTY, SELL_QTY, BUY_NOTIONAL, SELL_NOTIONAL = "buy_qty", "sell_qty", "buy_notional", "sell_notional"
SELF_TRADES, NOTIONAL = "self_trades", "notional"
_PAIR, _LEG, _ACCOUNT_CODE, _COUNTERPARTY_CODE = "_pair", "_leg", "_account", "_counterparty"
_NO_COUNTERPARTY = 2**32 - 1  # the code of an unknown counterparty (categorical codes are 32-bit)


def _accounts(inputs: FeatureInputs) -> pl.LazyFrame:
    """Every account with a fill or an order event on the day (the events' ids made categorical once
    unique, not event by event)."""
    ordering = inputs.orders.select(pl.col(Order.USER_ID).alias(ACCOUNT)).unique()
    return pl.concat([inputs.fills.select(ACCOUNT),
                      ordering.select(pl.col(ACCOUNT).cast(pl.Categorical))]).drop_nulls().unique()


def _legs(fills: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The one pass over the fills: per account x counterparty x symbol (`_pair`, the account x symbol's
    number, and `_counterparty`, the counterparty's categorical code, `_NO_COUNTERPARTY` when unknown: a group
    of its own), quantity and notional bought and sold and the number of self-trades, with `_account`, the
    account's code. Every feature below is a group_by of this smaller table. Also the accounts and codes."""
    frame, pairs = numbered_pairs(fills, [ACCOUNT, Fill.COUNTERPARTY, Fill.SYMBOL, Fill.DIRECTION, Fill.QUANTITY,
                                          Fill.NOTIONAL])
    bought = pl.col(Fill.DIRECTION) == 1
    is_self = (pl.col(Fill.COUNTERPARTY) == pl.col(Fill.ACCOUNT)).fill_null(False)
    counterparty = pl.col(Fill.COUNTERPARTY).to_physical().cast(pl.UInt64).fill_null(_NO_COUNTERPARTY)
    legs = frame.lazy().group_by((pl.col(_PAIR).cast(pl.UInt64) * 2**32 + counterparty).alias(_LEG)).agg(
        pl.when(bought).then(pl.col(Fill.QUANTITY)).otherwise(0.0).sum().alias(BUY_QTY),
        pl.when(bought).then(0.0).otherwise(pl.col(Fill.QUANTITY)).sum().alias(SELL_QTY),
        pl.when(bought).then(pl.col(Fill.NOTIONAL)).otherwise(0.0).sum().alias(BUY_NOTIONAL),
        pl.when(bought).then(0.0).otherwise(pl.col(Fill.NOTIONAL)).sum().alias(SELL_NOTIONAL),
        # the buy fill of a self-trade stands for the trade (its sell fill is the same trade)
        (is_self & bought).sum().alias(SELF_TRADES),
    ).collect()
    pair = (legs[_LEG] // 2**32).cast(pl.UInt32).alias(_PAIR)
    codes = pairs[ACCOUNT].to_physical()
    legs = legs.with_columns(  # pairs are numbered 1, 2, ... in row order
        pair, codes.gather(pair - 1).alias(_ACCOUNT_CODE),
        (legs[_LEG] % 2**32).cast(pl.UInt32).alias(_COUNTERPARTY_CODE),
    ).with_columns((pl.col(BUY_NOTIONAL) + pl.col(SELL_NOTIONAL)).alias(NOTIONAL))
    return legs.drop(_LEG), pairs.select(ACCOUNT, codes.alias(_ACCOUNT_CODE)).unique(_ACCOUNT_CODE)


def _known_counterparty() -> pl.Expr:
    return pl.col(_COUNTERPARTY_CODE) != _NO_COUNTERPARTY


def _per_account(legs: pl.LazyFrame) -> pl.LazyFrame:
    return legs.group_by(_ACCOUNT_CODE).agg(
        pl.col(SELF_TRADES).sum().cast(pl.Int64).alias("self_trade_count"),
        pl.col(NOTIONAL).sum().alias("gross_notional"),
    )


def _top_counterparty(legs: pl.LazyFrame) -> pl.LazyFrame:
    account_counterparty = pl.col(_ACCOUNT_CODE).cast(pl.UInt64) * 2**32 + pl.col(_COUNTERPARTY_CODE)
    return (
        legs.filter(_known_counterparty())
        .group_by(account_counterparty.alias("_key")).agg(pl.col(NOTIONAL).sum())
        .group_by((pl.col("_key") // 2**32).cast(pl.UInt32).alias(_ACCOUNT_CODE))
        .agg(pl.col(NOTIONAL).max().alias("top_counterparty_notional"))
    )


def _round_trips(legs: pl.LazyFrame, tolerance_bps: float) -> pl.LazyFrame:
    vwap_bought = pl.col(BUY_NOTIONAL) / pl.col(BUY_QTY)
    vwap_sold = pl.col(SELL_NOTIONAL) / pl.col(SELL_QTY)
    mid = (vwap_bought + vwap_sold) / 2
    same_price = (vwap_bought - vwap_sold).abs() / mid * 10_000 <= tolerance_bps
    matched = pl.min_horizontal(BUY_QTY, SELL_QTY)
    return (
        legs.filter(_known_counterparty() & (pl.col(BUY_QTY) > 0) & (pl.col(SELL_QTY) > 0))
        .filter(same_price)
        .group_by(_ACCOUNT_CODE).agg((2 * matched * mid).sum().alias("round_trip_notional"))
    )


def _net_position(legs: pl.LazyFrame) -> pl.LazyFrame:
    per_symbol = legs.group_by(_PAIR).agg(  # a pair is one account x symbol
        pl.col(_ACCOUNT_CODE).first(),
        ((pl.col(BUY_QTY) - pl.col(SELL_QTY)).sum().abs() / (pl.col(BUY_QTY) + pl.col(SELL_QTY)).sum())
        .alias("ratio"),
        pl.col(NOTIONAL).sum().alias("weight"),
    )
    return per_symbol.group_by(_ACCOUNT_CODE).agg(
        ((pl.col("ratio") * pl.col("weight")).sum() / pl.col("weight").sum()).alias("net_position_ratio"))


def counterparty_features(inputs: FeatureInputs) -> pl.LazyFrame:
    legs, accounts = _legs(inputs.fills)
    legs = legs.lazy()
    per_account = (
        accounts.lazy().join(_per_account(legs), on=_ACCOUNT_CODE, how="left")
        .join(_top_counterparty(legs), on=_ACCOUNT_CODE, how="left")
        .join(_round_trips(legs, inputs.settings.round_trip_tolerance_bps), on=_ACCOUNT_CODE, how="left")
        .join(_net_position(legs), on=_ACCOUNT_CODE, how="left")
    )
    gross = pl.col("gross_notional")
    has_fills = gross.is_not_null()
    return _accounts(inputs).join(per_account, on=ACCOUNT, how="left").select(
        ACCOUNT,
        pl.col("self_trade_count"),
        pl.when(has_fills).then(pl.col("top_counterparty_notional").fill_null(0.0) / gross)
        .alias("top_counterparty_share"),
        pl.when(has_fills).then(pl.col("round_trip_notional").fill_null(0.0) / gross)
        .alias("round_trip_counterparty_share"),
        pl.col("net_position_ratio"),
    )
