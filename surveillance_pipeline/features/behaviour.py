"""Behaviour features: FIFO round trips (holding time, win rate), diversity and activity velocity.

Round trips are matched per account x symbol over the day, FIFO by units: the k-th unit bought is matched
with the k-th unit sold, whichever came first (a short sale opens a round trip too). The day starts flat:
positions carried from earlier days are not known. Without loops: the cumulative bought and cumulative
sold quantities cut the quantity axis into segments; each segment lies inside exactly one buy fill and one
sell fill, the first of each side whose cumulative quantity reaches the segment's end. Cumulative quantities
are rounded to 1e-9 units so that float summation slivers do not become matches. Fills at the same time queue
in trade id order. Holding time and win rate are quantity-weighted (per unit matched), so they do not depend
on how an order happened to be split into fills.

Implementation: `FeatureInputs.fills` come grouped by account x symbol, in time order within (fills in any
other order are sorted first), so a pair is a run of rows, numbered without a sort or a hash, and each
side's cumulative quantities are running sums along the runs (only the rare fills at the same instant are
reordered, by trade id). Ends starting at or past the other side's total can match nothing and are dropped
first (most of a day's). Every segment ends at a buy end or a sell end: a buy end takes the first sell whose
cumulative quantity reaches it, a sell end the first buy whose cumulative quantity passes it, each an as-of
join within the pair of two frames already in order; the segment starts at the larger of the two fills'
previous ends. Linear apart from the as-of joins' searches and the per-account sorts of holding times.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from surveillance_pipeline.features.base import ACCOUNT, FeatureInputs, FeatureSpec, Fill

GROUP = "behaviour"
FEATURES = [
    FeatureSpec("holding_time_median_s", "s", "quantity-weighted (lower) median holding time of the day's FIFO "
                "round trips over all the account's symbols: the smallest h such that at least half the matched "
                "quantity was held <= h; holding = |sell time - buy time| of the matched units; null without "
                "round trips", GROUP),
    FeatureSpec("round_trip_win_rate", "share", "share of the FIFO round-trip quantity whose sell price is above "
                "its buy price (ties are not wins); null without round trips", GROUP),
    FeatureSpec("symbols_traded", "symbols", "distinct symbols the account had fills in during the day", GROUP),
    FeatureSpec("activity_velocity", "ratio", "(fills on the day - mean daily fills) / (mean daily fills + 1), "
                "the mean over the days of the look-back window before the day (features.lookback_days - 1 "
                "days) that hold account-attributed fills, days without this account's fills counting 0; with "
                "no such day the mean is 0, i.e. fills on the day / 1", GROUP),
]

_QUANTITY_DECIMALS = 9
_PAIR, _CUM, _ROW = "_pair", "cum", "_row"
_COLUMNS = [ACCOUNT, Fill.SYMBOL, Fill.TIMESTAMP, Fill.TRADE_ID, Fill.PRICE, Fill.QUANTITY, Fill.DIRECTION]


def _starts(*columns: str) -> pl.Expr:
    """True on the first row of each run of equal values of the columns (and on the first row)."""
    changed = pl.lit(False)
    for column in columns:
        changed = changed | (pl.col(column) != pl.col(column).shift(1)).fill_null(True)
    return changed


def numbered_pairs(fills: pl.LazyFrame, columns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fills' `columns` (account and symbol among them), each fill with `_pair`, the number (from 1) of its
    account x symbol; and the pairs: `_pair`, account, symbol and `fills`, their number of fills.

    Fills grouped by account x symbol (as `FeatureInputs.fills` are) number their pairs as runs of rows, with
    neither a sort nor a hash; fills in any other order are sorted by account and symbol first (stably, and
    by time within when `columns` hold the timestamp: pairs then also come in time order)."""
    fills = fills.select(columns)
    timed = Fill.TIMESTAMP in columns
    for _ in range(2):
        starts = _starts(ACCOUNT, Fill.SYMBOL)
        frame = fills.with_columns(starts.cum_sum().cast(pl.UInt32).alias(_PAIR)).collect()
        pairs = (
            frame.lazy().select(ACCOUNT, Fill.SYMBOL, _PAIR).with_row_index(_ROW).filter(starts)
            .select(_PAIR, ACCOUNT, Fill.SYMBOL,
                    (pl.col(_ROW).shift(-1).fill_null(frame.height) - pl.col(_ROW)).alias("fills"))
            .collect()
        )
        later_before = (pl.col(_PAIR) == pl.col(_PAIR).shift(1)) & (
            pl.col(Fill.TIMESTAMP) < pl.col(Fill.TIMESTAMP).shift(1))
        in_order = pairs.select(pl.struct(ACCOUNT, Fill.SYMBOL).is_unique().all()).item() and not (
            timed and frame.lazy().select(later_before.any()).collect().item())
        if in_order:
            break
        fills = frame.lazy().drop(_PAIR).sort(pl.col(ACCOUNT).cast(pl.String), Fill.SYMBOL,
                                              *([Fill.TIMESTAMP] if timed else []), maintain_order=True)
    return frame, pairs


def _same_instant(frame: pl.DataFrame) -> pl.DataFrame:
    """The fills sharing their pair and instant with a neighbouring fill (few), with their `_row`."""
    pair, timestamp = pl.col(_PAIR), pl.col(Fill.TIMESTAMP)
    same = ((pair == pair.shift(1)) & (timestamp == timestamp.shift(1))).fill_null(False)
    rows = frame.lazy().select(pl.arg_where(same | same.shift(-1).fill_null(False))).collect().to_series()
    return frame[rows].with_columns(rows.alias(_ROW))


def _ends(frame: pl.DataFrame, same_instant: pl.DataFrame, direction: int, prefix: str) -> pl.DataFrame:
    """One side's ends on the quantity axis, per pair in increasing order: `_pair`, `cum` (the cumulative
    quantity after the fill, rounded), `{prefix}_previous`, the pair's previous end (0 for the first), and
    `_row`, the fill's row in `frame` (or its time and price, `{prefix}_time` and `{prefix}_price`)."""
    pair, cum = pl.col(_PAIR), pl.col(_CUM)
    on_side = (pl.col(Fill.DIRECTION) == direction) & (pl.col(Fill.QUANTITY) > 0)
    rows = frame.lazy().select(pl.arg_where(on_side)).collect().to_series()
    tied = same_instant.filter(on_side)
    if tied.height:  # the side's fills at one instant of a pair queue by trade id, not in the tape's order
        rows = rows.scatter(rows.search_sorted(tied[_ROW]), tied.sort(_PAIR, Fill.TIMESTAMP, Fill.TRADE_ID)[_ROW])
    ends = (  # the running sums along each pair's run (sorted keys: polars slices the runs)
        frame.select(_PAIR, Fill.QUANTITY)[rows].with_columns(rows.alias(_ROW)).lazy()
        .group_by(pl.col(_PAIR).set_sorted(), maintain_order=True)
        .agg(pl.col(Fill.QUANTITY).cum_sum().round(_QUANTITY_DECIMALS).alias(_CUM), _ROW)
        .explode(_CUM, _ROW).collect()
    )
    if ends.lazy().select(((pair == pair.shift(1)) & (cum == cum.shift(1))).any()).collect().item():
        # fills too small to move the rounded sum end where the one before them does: one end, the latest
        # time and the highest price
        ends = _with_fills(ends, frame, prefix).group_by(_PAIR, _CUM, maintain_order=True).agg(pl.all().max())
    return ends.lazy().with_columns(pl.when(pair == pair.shift(1)).then(cum.shift(1)).otherwise(0.0)
                                    .alias(f"{prefix}_previous")).collect()


def _with_fills(ends: pl.DataFrame, frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """The ends with their fill's time and price in place of its row."""
    if _ROW not in ends.columns:
        return ends
    return ends.with_columns(frame[Fill.TIMESTAMP].gather(ends[_ROW]).alias(f"{prefix}_time"),
                             frame[Fill.PRICE].gather(ends[_ROW]).alias(f"{prefix}_price")).drop(_ROW)


def _within_other_side(ends: pl.DataFrame, other: pl.DataFrame, prefix: str, pairs: int) -> pl.DataFrame:
    """The ends a segment can use: those starting below the other side's total in the pair, i.e. the ends
    within min(bought, sold) and the first one past it (the fill the other side's last ends fall in)."""
    pair = pl.col(_PAIR)
    last = other.filter((pair != pair.shift(-1)).fill_null(True))
    totals = pl.Series([None], dtype=pl.Float64).extend_constant(None, pairs).scatter(last[_PAIR], last[_CUM])
    return ends.filter(pl.col(f"{prefix}_previous") < totals.gather(ends[_PAIR]))


def _segments(frame: pl.DataFrame) -> pl.LazyFrame:
    """The matched segments: `_pair`, matched quantity, buy/sell time and price, holding_s, win."""
    same_instant = _same_instant(frame)
    buys, sells = _ends(frame, same_instant, 1, "buy"), _ends(frame, same_instant, -1, "sell")
    pairs = frame[_PAIR].max() or 0
    buys, sells = (_with_fills(_within_other_side(buys, sells, "buy", pairs), frame, "buy").lazy(),
                   _with_fills(_within_other_side(sells, buys, "sell", pairs), frame, "sell").lazy())
    cum = pl.col(_CUM)
    asof = {"on": _CUM, "by": _PAIR, "strategy": "forward", "check_sortedness": False}
    # A segment ends at each buy end within the sells' total: its sell is the first one reaching that end.
    at_buys = buys.join_asof(sells, **asof).filter(pl.col("sell_time").is_not_null())
    # And at each sell end within the buys' total that is no buy end: its buy is the first one passing it
    # (when a buy ends exactly there, the buy after it starts there: its previous end is not below).
    at_sells = sells.join_asof(buys, allow_exact_matches=False, **asof).filter(pl.col("buy_previous") < cum)
    columns = [_PAIR, _CUM, "buy_previous", "sell_previous", "buy_time", "buy_price", "sell_time", "sell_price"]
    return pl.concat([at_buys.select(columns), at_sells.select(columns)]).select(
        _PAIR, (cum - pl.max_horizontal("buy_previous", "sell_previous")).alias("quantity"),
        "buy_time", "buy_price", "sell_time", "sell_price",
        ((pl.col("sell_time") - pl.col("buy_time")).dt.total_microseconds().abs() / 1e6).alias("holding_s"),
        (pl.col("sell_price") > pl.col("buy_price")).alias("win"),
    )


def round_trips(fills: pl.LazyFrame) -> pl.LazyFrame:
    """FIFO matches: account, symbol, matched quantity, buy/sell time and price, holding_s, win.

    The cumulative quantities of both sides are the segment ends; a segment ending at x belongs to the first
    buy and the first sell whose cumulative quantity is >= x, and only segments up to min(bought, sold) are
    matched.
    """
    frame, pairs = numbered_pairs(fills, _COLUMNS)
    return _segments(frame).join(pairs.lazy().select(_PAIR, ACCOUNT, Fill.SYMBOL), on=_PAIR, how="left").select(
        ACCOUNT, Fill.SYMBOL, "quantity", "buy_time", "buy_price", "sell_time", "sell_price", "holding_s", "win")


def _round_trip_features(frame: pl.DataFrame, pairs: pl.DataFrame) -> pl.LazyFrame:
    quantity, holding = pl.col("quantity"), pl.col("holding_s")
    by_holding = quantity.sort_by(holding)
    reached_half = by_holding.cum_sum() >= quantity.sum() * (0.5 - 1e-12)
    segments = _segments(frame).select(_PAIR, "quantity", "holding_s", "win").collect()
    accounts = pairs[ACCOUNT].gather(segments[_PAIR] - 1)  # pairs are numbered 1, 2, ... in row order
    return (
        segments.with_columns(accounts).lazy()
        .group_by(ACCOUNT).agg(
            holding.sort().filter(reached_half).first().alias("holding_time_median_s"),
            ((quantity * pl.col("win")).sum() / quantity.sum()).alias("round_trip_win_rate"))
    )


def _velocity(inputs: FeatureInputs, day: pl.LazyFrame) -> pl.LazyFrame:
    window_start = inputs.start - timedelta(days=inputs.settings.lookback_days - 1)
    timestamp = pl.col(Fill.TIMESTAMP)
    history = inputs.history_fills.filter((timestamp >= window_start) & (timestamp < inputs.start))
    days = history.select(timestamp.dt.date().n_unique().alias("history_days"))
    counts = history.group_by(ACCOUNT).agg(pl.len().alias("history_fills"))
    mean = (pl.col("history_fills").fill_null(0) / pl.col("history_days")).fill_nan(0.0).fill_null(0.0)
    return (
        day.join(counts, on=ACCOUNT, how="left").join(days, how="cross")
        .select(ACCOUNT, ((pl.col("fills_day") - mean) / (mean + 1)).alias("activity_velocity"))
    )


def behaviour_features(inputs: FeatureInputs) -> pl.LazyFrame:
    frame, pairs = numbered_pairs(inputs.fills, _COLUMNS)
    # one row per pair: an account's fills and symbols are sums and counts of its pairs
    day = pairs.lazy().group_by(ACCOUNT).agg(pl.col("fills").sum().alias("fills_day"),
                                             pl.len().alias("symbols_traded"))
    result = (
        day.join(_round_trip_features(frame, pairs), on=ACCOUNT, how="left")
        .join(_velocity(inputs, day.select(ACCOUNT, "fills_day")), on=ACCOUNT, how="left")
    )
    return result.select(ACCOUNT, *[feature.name for feature in FEATURES])
