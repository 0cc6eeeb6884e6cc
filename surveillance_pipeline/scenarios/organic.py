"""Legitimate, unlabelled activity that looks busy: news-driven rallies, ordinary round trips and
frequent counterparties.

All appear on clean days too, so detectors learn that a crowd buying at once, one account buying and later
selling the same size at another price, or two accounts meeting through the book dozens of times a day, is
not abuse by itself.
"""
from __future__ import annotations

import numpy as np

from surveillance_pipeline.scenarios.background import MARKET_ORDER_SHARE, RETAIL_MAKER_LEAD_S
from surveillance_pipeline.scenarios.context import DAY_EDGE_US, DayContext
from surveillance_pipeline.scenarios.market import DAY_US, US, to_grid

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
# Frequent counterparties: an active account working a position over hours whose orders keep meeting the
# same market maker (or another active trader working the other way) through the book.
COUNTERPARTY_PAIRS_PER_DAY = (2, 5)  # upper bound exclusive
COUNTERPARTY_TRADES = (15, 61)  # trades between the pair over its session (upper bound exclusive)
COUNTERPARTY_SESSION_HOURS = (2.0, 10.0)
COUNTERPARTY_MM_SHARE = 0.6  # pairs whose other side is a market maker (others: an active retail trader)
COUNTERPARTY_ONE_WAY = (0.75, 0.95)  # chance that a trade goes the account's way (it builds a position)
COUNTERPARTY_SIZE_MEDIANS = 2.0  # typical trade size, in the symbol's median retail size ...
COUNTERPARTY_SIZE_SIGMA = 0.6  # ... with this lognormal spread: no two trades need share a size
COUNTERPARTY_TRIM_SIZE = 0.5  # trades against its own direction (trimming the position) are this much smaller
COUNTERPARTY_TAKER_SHARE_VS_MM = 0.85  # the account hits the market maker's quote (else the maker hits its bid)
COUNTERPARTY_MM_LEAD_S = 20.0  # mean time the market maker's order rests before it is filled


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


def plan_frequent_counterparties(day: DayContext) -> None:
    """Pairs of accounts that meet through the book many times a day, at the market's changing prices.

    One account (a busy retail trader) works a position over a session of hours: most of its trades go one
    way, in varying sizes, each at the touch of its moment; its counterparty on these trades is always the
    same market maker, or another active trader working the opposite way. Every trade is a resting limit
    order of one side, placed at the touch and never through it (scenarios.book), filled in full by the other
    side's market or marketable order. Unlabelled: the pair's net position change is large and its prices
    follow the market, unlike a wash pair handing one size back and forth at one price.

    Draws from its own stream (spawned from the day's), so the rest of the day is the same with or without it.
    """
    rng = day.rng.spawn(1)[0]
    accounts = day.accounts
    for _ in range(int(rng.integers(*COUNTERPARTY_PAIRS_PER_DAY))):
        symbol = str(rng.choice(day.symbols))
        account = int(rng.choice(accounts.retail, p=accounts.retail_weights))
        with_mm = bool(rng.random() < COUNTERPARTY_MM_SHARE)
        if with_mm:
            other = int(rng.choice(accounts.market_makers))
        else:
            other = account
            while other == account:
                other = int(rng.choice(accounts.retail, p=accounts.retail_weights))
        _emit_counterparty_pair(day, rng, symbol, account, other, with_mm)


def _emit_counterparty_pair(day: DayContext, rng: np.random.Generator, symbol: str, account: int, other: int,
                            with_mm: bool) -> None:
    profile, sym, touch = day.profiles[symbol], day.sym(symbol), day.touch(symbol)
    n = int(rng.integers(*COUNTERPARTY_TRADES))
    session = int(rng.uniform(*COUNTERPARTY_SESSION_HOURS) * 3600 * US)
    start = day.day_start + DAY_EDGE_US + int(rng.integers(0, DAY_US - 2 * DAY_EDGE_US - session))
    ts = np.sort(start + (rng.random(n) * session).astype(np.int64)) | 1  # odd: never on a requote instant

    # Its side on each trade: mostly the way it is building its position, sometimes back a little.
    builds_long = bool(rng.random() < 0.5)
    one_way = rng.random(n) < rng.uniform(*COUNTERPARTY_ONE_WAY)
    account_buys = np.where(one_way, builds_long, not builds_long)
    takes = rng.random(n) < (COUNTERPARTY_TAKER_SHARE_VS_MM if with_mm else 0.5)
    taker = np.where(takes, account, other)
    maker = np.where(takes, other, account)
    taker_buy = account_buys == takes
    typical = profile.median_qty * COUNTERPARTY_SIZE_MEDIANS * np.where(one_way, 1.0, COUNTERPARTY_TRIM_SIZE)
    qty = typical * rng.lognormal(0.0, COUNTERPARTY_SIZE_SIGMA, n)
    qty = np.maximum(profile.lot, to_grid(qty, profile.lot))

    # The maker rests at the touch of the trade's moment (a sell at the ask, a buy at the bid), placed a
    # while before, but never while the price was through its level.
    bid, ask = day.market.touch(symbol, ts)
    price = np.where(taker_buy, ask, bid)
    mean_lead = np.where(maker == other, COUNTERPARTY_MM_LEAD_S if with_mm else RETAIL_MAKER_LEAD_S,
                         RETAIL_MAKER_LEAD_S)
    placed = ts - (rng.exponential(mean_lead) * US).astype(np.int64) - 1_000
    since = touch.safe_since(ts, ~taker_buy, price)
    late = placed < since
    placed[late] = since[late] + (rng.random(int(late.sum())) * (ts[late] - since[late])).astype(np.int64)

    maker_oid, taker_oid = day.tape.reserve_order_ids(n), day.tape.reserve_order_ids(n)
    market_order = rng.random(n) < MARKET_ORDER_SHARE
    day.tape.add_orders(oid=maker_oid, ts=placed, user=maker, sym=sym, buy=~taker_buy, price=price, qty=qty,
                        cancel=False, market=False)
    day.tape.add_orders(oid=taker_oid, ts=ts, user=taker, sym=sym, buy=taker_buy,
                        price=np.where(market_order, np.nan, price), qty=qty, cancel=False, market=market_order)
    day.tape.add_trades(ts=ts, sym=sym, taker_buy=taker_buy, price=price, qty=qty,
                        buyer=np.where(taker_buy, taker, maker), seller=np.where(taker_buy, maker, taker),
                        buyer_oid=np.where(taker_buy, taker_oid, maker_oid),
                        seller_oid=np.where(taker_buy, maker_oid, taker_oid))
