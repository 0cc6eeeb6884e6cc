"""Excessive trading: one account trading far more often than anyone else, in small sizes, with real counterparties."""
from __future__ import annotations

import numpy as np

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.scenarios.context import DayContext
from surveillance_pipeline.scenarios.market import US

MIN_TRADES = 2_000
SHARE_OF_DAY = 0.2  # trades of the episode relative to the day's background trade count
WINDOW_HOURS = (0.75, 2.5)
# Small orders mostly meet small resting retail orders, so no single counterparty shares the count.
MARKET_MAKER_COUNTERPARTY_SHARE = 0.3
SIZE_MEDIANS = (0.1, 0.5)


def inject_excessive_trading(day: DayContext) -> None:
    rng = day.rng
    n = max(MIN_TRADES, int(SHARE_OF_DAY * day.spec.trades_per_day))
    window_us = int(rng.uniform(*WINDOW_HOURS) * 3600 * US)
    symbol, start = day.reserve(window_us)
    [trader] = day.take_abusers(1)
    ep = day.episode(Pattern.EXCESSIVE_TRADING, symbol, [trader])
    ts = np.sort(rng.integers(start, start + window_us, n))
    ts[0], ts[-1] = start, start + window_us
    qty = day.profiles[symbol].median_qty * rng.uniform(*SIZE_MEDIANS, n)
    # Market orders both ways; the background matches them with market makers and resting retail orders.
    ep.force(ts, trader, rng.random(n) < 0.5, qty, mm_share=MARKET_MAKER_COUNTERPARTY_SHARE)
    ep.close()
