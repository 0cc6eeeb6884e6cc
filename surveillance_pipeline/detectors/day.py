"""The rule detectors on one day read from lazy frames (the warehouse's Parquet), in symbol batches when the
day is large: memory is bounded by `detectors.batch_rows` rows of a few symbols instead of the whole day."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import polars as pl

from surveillance_pipeline.contract import Trade
from surveillance_pipeline.detectors.base import DetectionInputs
from surveillance_pipeline.detectors.rules import RuleBasedDetector, RuleRun, symbol_batches


def detect_day(detector: RuleBasedDetector, day: date, trades: pl.LazyFrame, orders: pl.LazyFrame) -> RuleRun:
    """`trades` may hold the days before `day` (history); only `day`'s orders are read."""
    settings = detector.settings
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    first = day - timedelta(days=settings.history_days)
    day_trades, day_orders = trades.filter(stamp == day), orders.filter(stamp == day)
    history = trades.filter((stamp >= first) & (stamp < day))
    sizes = dict(pl.concat([day_trades.select(Trade.SYMBOL), day_orders.select(Trade.SYMBOL)])
                 .group_by(Trade.SYMBOL).len().collect().iter_rows())
    if sum(sizes.values()) <= settings.batch_rows:
        return detector.run(DetectionInputs(trades=day_trades.collect(), orders=day_orders.collect(),
                                            history=history.collect(), day=day))

    def batches() -> Iterator[DetectionInputs]:
        for symbols in symbol_batches(sizes, settings.batch_rows):
            mine = pl.col(Trade.SYMBOL).is_in(symbols)
            yield DetectionInputs(trades=day_trades.filter(mine).collect(), orders=day_orders.filter(mine).collect(),
                                  history=history.filter(mine).collect(), day=day)

    # the cross-symbol detectors (excessive trading) read the day's trades only
    return detector.run_in_batches(batches(), lambda: DetectionInputs(trades=day_trades.collect(), day=day))
