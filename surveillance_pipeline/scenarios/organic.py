"""Legitimate, unlabelled activity that looks busy: news-driven rallies and ordinary round trips.

Both appear on clean days too, so detectors learn that a crowd buying at once, or one account buying
and later selling the same size at another price, is not abuse by itself.
"""
from __future__ import annotations

import numpy as np

from surveillance_pipeline.scenarios.context import DayContext
from surveillance_pipeline.scenarios.market import US

RALLIES_PER_DAY = 1
RALLY_BUYERS = (150, 350)  # independent accounts (capped by the retail population)
RALLY_BUYING_MIN = (15, 40)  # the crowd buys over this many minutes
RALLY_GAIN = (0.04, 0.10)  # log-price rise over the buying window
RALLY_RETRACE_SHARE = (0.3, 0.6)  # part of the gain given back ...
RALLY_RETRACE_HOURS = (1.0, 3.0)  # ... with this time constant
RALLY_PROFIT_TAKERS = 0.3  # participants who sell again during the retrace
RALLY_ORDERS_PER_BUYER = 1.6
RALLY_VOLUME_MULTIPLE = 3  # rally buys: at least this many times the symbol's average trade count over the window
ROUND_TRIPS_PER_ACCOUNTS = 20  # one legit round trip per this many accounts per day
ROUND_TRIP_HOLD_MIN = (20, 180)


def plan_rallies(day: DayContext) -> None:
    for _ in range(RALLIES_PER_DAY):
        _plan_rally(day)


def _plan_rally(day: DayContext) -> None:
    rng, retail = day.rng, day.accounts.retail
    buying_s = int(rng.uniform(*RALLY_BUYING_MIN) * 60)
    retrace_s = rng.uniform(*RALLY_RETRACE_HOURS) * 3600
    # The buying window plus an hour of retrace is kept clear of labelled episodes on that symbol.
    symbol, start = day.reserve(buying_s * US + 3600 * US, earliest_us=6 * 3600 * US)
    sym, profile = day.sym(symbol), day.profiles[symbol]

    gain = rng.uniform(*RALLY_GAIN)
    keep = 1.0 - rng.uniform(*RALLY_RETRACE_SHARE)
    rise = np.arange(buying_s) / buying_s
    after = np.arange(int(4 * retrace_s))
    overlay = np.concatenate([
        gain * (1 - np.exp(-3 * rise)) / (1 - np.exp(-3)),
        gain * (keep + (1 - keep) * np.exp(-after / retrace_s)),
    ])
    day.market.add_overlay(symbol, start, overlay)
    day.fast_windows.append((symbol, start, start + buying_s * US, 3.0))

    n_buyers = min(len(retail), int(rng.integers(*RALLY_BUYERS)))
    buyers = rng.choice(retail, n_buyers, replace=False)
    # Every participant buys at least once; in busy markets the crowd also buys more often.
    share = profile.liquidity / sum(day.profiles[s].liquidity for s in day.symbols)
    baseline = day.spec.trades_per_day * share * buying_s / 86_400
    n_more = max(int((RALLY_ORDERS_PER_BUYER - 1) * n_buyers), int(RALLY_VOLUME_MULTIPLE * baseline) - n_buyers)
    account = np.concatenate([buyers, rng.choice(buyers, n_more)])
    ts = start + (rng.beta(1.0, 2.5, len(account)) * buying_s * US).astype(np.int64)
    qty = profile.median_qty * rng.lognormal(0.3, 0.9, len(account))
    day.forced.add(sym, ts, account, True, qty)

    sellers = buyers[rng.random(n_buyers) < RALLY_PROFIT_TAKERS]
    sell_ts = start + buying_s * US + (rng.exponential(3600, len(sellers)) * US).astype(np.int64)
    keep_in_day = sell_ts < day.day_end
    qty = profile.median_qty * rng.lognormal(0.3, 0.9, len(sellers))
    day.forced.add(sym, sell_ts[keep_in_day], sellers[keep_in_day], False, qty[keep_in_day])


def plan_round_trips(day: DayContext) -> None:
    """Accounts that buy and later sell the same size (or the reverse) at the market, with real counterparties."""
    rng, accounts = day.rng, day.accounts
    n = max(3, day.spec.accounts // ROUND_TRIPS_PER_ACCOUNTS)
    for _ in range(n):
        symbol = str(rng.choice(day.symbols))
        account = int(rng.choice(accounts.retail, p=accounts.retail_weights))
        first = day.day_start + int(rng.uniform(1, 20) * 3600 * US)
        second = first + int(rng.uniform(*ROUND_TRIP_HOLD_MIN) * 60 * US)
        if second >= day.day_end:
            continue
        qty = day.size(symbol, 2.0, 10.0)
        buy_first = bool(rng.random() < 0.7)
        day.forced.add(day.sym(symbol), [first, second], account, [buy_first, not buy_first], qty)
