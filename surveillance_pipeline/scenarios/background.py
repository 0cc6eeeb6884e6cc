"""Legitimate background flow for one day, fully vectorised: retail takers, market makers, retail limit orders.

Retail accounts arrive as takers (mostly market orders) with seasonal Poisson timing, lognormal sizes
and heavy-tailed activity per account. Market makers quote both sides near the touch all day and
cancel-and-replace both quotes together on their own clock, so their cancels are symmetric and unrelated
to their fills. Taker orders decided by plans (rallies, pumps, a hyperactive account) are matched the same way:
against the best live quotes first, or against a retail limit order resting at the touch.

The book stays uncrossed (scenarios.book): a quote is priced at the touch's far edge over its life, a
retail maker is placed after the price last went through its level and its unfilled rest is cancelled before
the price goes through it again, an unfilled limit order rests well away and is pulled when the price comes
to it. Takers' orders execute in full when they arrive (market orders, or limits priced to execute).

Requote instants are even microseconds and taker arrivals odd ones, so a fill never coincides with a
requote and every fill lies strictly inside the life of the quote it hits.
"""
from __future__ import annotations

import math

import numpy as np

from surveillance_pipeline.scenarios.book import NEVER
from surveillance_pipeline.scenarios.context import DayContext
from surveillance_pipeline.scenarios.market import ACTIVITY, SECONDS_PER_DAY, US, sample_times, to_grid

MM_MAKER_SHARE = 0.7  # share of fills whose maker is a market maker (others: retail limit orders)
MARKET_ORDER_SHARE = 0.85  # retail takers using market orders (others: marketable limit orders)
RETAIL_SIZE_SIGMA = 1.0
SWEEP_MEDIANS = (4.0, 12.0)  # taker orders above these multiples of the median size sweep 2 / 3 quotes
MEAN_FILLS_PER_TAKER_ORDER = 1.12
MOMENTUM_TILT = 0.1  # takers lean slightly with the last five minutes' move
MOMENTUM_WINDOW_S = 300
MM_QUOTE_MEDIANS = 3.0  # typical market-maker quote size, in retail medians
MM_ORDERS_PER_FILL = 5  # sets the requote rate: order-to-trade ratio of a market maker
MM_MIN_REQUOTES = 1_440  # at least about one requote a minute per symbol
MM_FULL_FILL_SHARE = 0.03  # quotes that end fully filled instead of cancelled
RETAIL_MAKER_LEAD_S = 120.0  # mean time a retail limit order rests before it is hit (less if the price was through it)
RETAIL_PARTIAL_SHARE = 0.25  # retail limit orders larger than their fill, cancelled later (if the price stays away)
RETAIL_CANCEL_AFTER_S = 600.0
RETAIL_MIN_REST_S = 5.0  # a partly filled order's rest is left only if the price stays away this long
UNFILLED_LIMIT_RATE = 0.08  # unfilled retail limit orders per taker order
UNFILLED_CANCEL_SHARE = 0.7
UNFILLED_AWAY_S = 300.0  # unfilled orders rest about this many seconds' typical move away from the touch
DAY_VOLUME_SIGMA = 0.08  # day-to-day variation of activity

MM_QUOTE_WEIGHTS = np.sqrt(ACTIVITY) + 0.2


def simulate_background(day: DayContext) -> None:
    """All symbols' background for the day, including the forced takers already planned."""
    total_liquidity = sum(day.profiles[s].liquidity for s in day.symbols)
    day_factor = day.rng.lognormal(0.0, DAY_VOLUME_SIGMA)
    for symbol in day.symbols:
        target = day.spec.trades_per_day * day_factor * day.profiles[symbol].liquidity / total_liquidity
        _simulate_symbol(day, symbol, target)


def _simulate_symbol(day: DayContext, symbol: str, target_trades: float) -> None:
    rng, market, profile, sym, accounts = day.rng, day.market, day.profiles[symbol], day.sym(symbol), day.accounts
    ts, taker, buy, qty, mm_share = _taker_orders(day, symbol, target_trades)
    n = len(ts)
    if n == 0:
        return

    # Fills: large orders sweep several market makers' quotes.
    n_mm = len(accounts.market_makers)
    k = 1 + (qty > SWEEP_MEDIANS[0] * profile.median_qty) + (qty > SWEEP_MEDIANS[1] * profile.median_qty)
    k = np.minimum(k, n_mm).astype(np.int64)
    o_idx = np.repeat(np.arange(n), k)
    first = np.cumsum(k) - k
    pos = np.arange(len(o_idx)) - first[o_idx]
    fill_qty = _split_fills(rng, qty, k, o_idx, first, profile.lot)
    f_ts, f_buy, f_taker = ts[o_idx], buy[o_idx], taker[o_idx]
    nf = len(o_idx)

    # Market-maker quotes and which quote each fill hits.
    quote_ts, quote_mm, quote_bid, quote_ask, quote_next = _mm_quotes(day, symbol, target_trades)
    is_mm = (k[o_idx] > 1) | (rng.random(nf) < mm_share[o_idx])
    # Price priority among the makers: a taker order meets the best live quote first, a sweep the next ones.
    live = np.full((n, n_mm), -1, dtype=np.int64)  # each maker's live quote at each taker arrival
    for m in range(n_mm):
        own = np.flatnonzero(quote_mm == m)
        j = np.searchsorted(quote_ts[own], ts) - 1
        live[:, m] = np.where(j >= 0, own[np.maximum(j, 0)], -1)
    cost = np.where(buy[:, None], quote_ask[live], -quote_bid[live])
    cost[live < 0] = np.inf
    best_first = np.lexsort((rng.random((n, n_mm)), cost), axis=-1)
    quote = np.where(is_mm, live[o_idx, best_first[o_idx, pos]], -1)
    is_mm = quote >= 0
    bid_now, ask_now = market.touch(symbol, f_ts)
    price = np.where(f_buy, ask_now, bid_now)
    price[is_mm] = np.where(f_buy[is_mm], quote_ask[quote[is_mm]], quote_bid[quote[is_mm]])

    maker = np.empty(nf, dtype=np.int64)
    maker_oid = np.empty(nf, dtype=np.int64)
    _emit_mm_orders(day, sym, profile, quote_ts, quote_mm, quote_bid, quote_ask, quote_next,
                    quote[is_mm], f_buy[is_mm], fill_qty[is_mm], maker, maker_oid, is_mm)
    _emit_retail_makers(day, sym, profile, f_ts, f_buy, f_taker, price, fill_qty, maker, maker_oid, ~is_mm)

    # Taker orders (one per arrival, however many fills) and the trades.
    taker_oid = day.tape.reserve_order_ids(n)
    market_order = rng.random(n) < MARKET_ORDER_SHARE
    worst = np.where(buy, np.maximum.reduceat(price, first), np.minimum.reduceat(price, first))
    day.tape.add_orders(oid=taker_oid, ts=ts, user=taker, sym=sym, buy=buy,
                        price=np.where(market_order, np.nan, worst), qty=qty, cancel=False, market=market_order)
    t_oid = taker_oid[o_idx]
    day.tape.add_trades(ts=f_ts, sym=sym, taker_buy=f_buy, price=price, qty=fill_qty,
                        buyer=np.where(f_buy, f_taker, maker), seller=np.where(f_buy, maker, f_taker),
                        buyer_oid=np.where(f_buy, t_oid, maker_oid), seller_oid=np.where(f_buy, maker_oid, t_oid))
    _emit_unfilled_limits(day, symbol, n)


def _taker_orders(day: DayContext, symbol: str, target_trades: float):
    """Organic retail arrivals plus the planned (forced) takers, in time order: ts, taker, buy, qty, mm_share."""
    rng, market, profile, accounts = day.rng, day.market, day.profiles[symbol], day.accounts
    n = int(rng.poisson(target_trades / MEAN_FILLS_PER_TAKER_ORDER))
    ts = day.day_start + sample_times(rng, ACTIVITY, n)
    taker = accounts.retail[rng.choice(len(accounts.retail), n, p=accounts.retail_weights)]
    move = market.log_mid(symbol, ts) - market.log_mid(symbol, ts - MOMENTUM_WINDOW_S * US)
    z = move / (profile.daily_vol * math.sqrt(MOMENTUM_WINDOW_S / SECONDS_PER_DAY))
    buy = rng.random(n) < 0.5 + MOMENTUM_TILT * np.tanh(z)
    qty = profile.median_qty * rng.lognormal(0.0, RETAIL_SIZE_SIGMA, n)
    f_ts, f_acct, f_buy, f_qty, f_mm_share = day.forced.for_symbol(day.sym(symbol))
    # Odd instants, before the scenario's last quotes are pulled (day_end - 2 on its last day).
    ts = np.minimum(np.concatenate([ts, f_ts]), day.day_end - 3) | 1
    taker = np.concatenate([taker, f_acct])
    buy = np.concatenate([buy, f_buy])
    qty = np.maximum(profile.lot, to_grid(np.concatenate([qty, f_qty]), profile.lot))
    mm_share = np.concatenate([np.full(n, MM_MAKER_SHARE), np.where(np.isnan(f_mm_share), MM_MAKER_SHARE, f_mm_share)])
    order = np.argsort(ts, kind="stable")
    return ts[order], taker[order], buy[order], qty[order], mm_share[order]


def _split_fills(rng: np.random.Generator, qty: np.ndarray, k: np.ndarray, o_idx: np.ndarray, first: np.ndarray,
                 lot: float) -> np.ndarray:
    """Each order's quantity split into its k fills on the lot grid; the last fill takes the remainder."""
    weights = rng.uniform(0.5, 1.5, len(o_idx))
    fill_qty = to_grid(qty[o_idx] * weights / np.bincount(o_idx, weights)[o_idx], lot, "floor")
    last = first + k - 1
    fill_qty[last] = np.round(fill_qty[last] + qty - np.bincount(o_idx, fill_qty, minlength=len(qty)), 9)
    return fill_qty


def _mm_quotes(day: DayContext, symbol: str, target_trades: float):
    """Requote instants and prices of every market maker: arrays over all quotes, grouped by maker.

    A quote lives from its requote to the maker's next one (the day's last into the next day's first seconds,
    or until just before the scenario ends) and is priced at the far edge of the touch over that life
    (lowest bid, highest ask; plus the maker's own offset), so it follows the mid yet never rests through
    the touch (scenarios.book)."""
    rng, n_mm = day.rng, len(day.accounts.market_makers)
    touch = day.touch(symbol)
    # The day's last quotes stay up over midnight until about the next day's first ones (before the end).
    last_pull = day.day_end - 2
    if day.day_end < day.scenario_end:
        last_pull = day.day_end + 2 + (int(rng.integers(0, 2 * US)) & ~1)
    expected_fills = target_trades * MM_MAKER_SHARE / n_mm
    requotes = max(MM_MIN_REQUOTES, int(MM_ORDERS_PER_FILL * expected_fills / 2))
    all_ts, all_mm, all_bid, all_ask, all_next = [], [], [], [], []
    for m in range(n_mm):
        parts = [day.day_start + sample_times(rng, MM_QUOTE_WEIGHTS, requotes),
                 np.array([day.day_start + int(rng.integers(0, 2 * US))])]
        for w_symbol, start, end, interval_s in day.fast_windows:
            if w_symbol == symbol:  # fast markets: makers requote about every interval_s
                grid = np.arange(start, end, int(interval_s * US), dtype=np.int64)
                parts.append(grid + rng.integers(0, int(interval_s * US), len(grid)))
        q = np.sort(np.concatenate(parts) & ~np.int64(1))  # even instants; sort+diff, np.unique is slow
        q = q[np.append(True, np.diff(q) > 0) & (q >= day.day_start) & (q < last_pull)]
        nxt = np.append(q[1:], last_pull)
        extra = int(rng.integers(0, 2))
        lowest_bid, highest_ask = touch.envelope(q, nxt - 1)
        bid, ask = touch.price(lowest_bid - extra), touch.price(highest_ask + extra)
        all_ts.append(q), all_mm.append(np.full(len(q), m)), all_bid.append(bid), all_ask.append(ask)
        all_next.append(nxt)
    return tuple(np.concatenate(a) for a in (all_ts, all_mm, all_bid, all_ask, all_next))


def _emit_mm_orders(day, sym, profile, quote_ts, quote_mm, quote_bid, quote_ask, quote_next,
                    fill_quote, fill_buy, fill_qty, maker, maker_oid, mm_mask) -> None:
    """Both sides of every quote: new at the requote, cancel of the unfilled rest at the next requote (or at
    the day's last pull, around midnight)."""
    rng, n_quotes = day.rng, len(quote_ts)
    key = fill_quote * 2 + fill_buy  # a taker buy hits the ask (side 1)
    filled = np.round(np.bincount(key, fill_qty, minlength=2 * n_quotes), 9)
    base = to_grid(profile.median_qty * MM_QUOTE_MEDIANS * rng.lognormal(0.0, 0.35, 2 * n_quotes), profile.lot, "ceil")
    grown = to_grid(filled * rng.uniform(1.1, 1.8, 2 * n_quotes), profile.lot, "ceil")
    size = np.where(filled > 0, np.maximum(base, grown), np.maximum(base, profile.lot))
    full = (filled > 0) & (rng.random(2 * n_quotes) < MM_FULL_FILL_SHARE)
    size[full] = filled[full]
    oids = day.tape.reserve_order_ids(2 * n_quotes)
    q = np.repeat(np.arange(n_quotes), 2)
    is_ask = np.tile([False, True], n_quotes)
    users = day.accounts.market_makers[quote_mm[q]]
    prices = np.where(is_ask, quote_ask[q], quote_bid[q])
    day.tape.add_orders(oid=oids, ts=quote_ts[q], user=users, sym=sym, buy=~is_ask, price=prices,
                        qty=size, cancel=False, market=False)
    cancel = ~full
    day.tape.add_orders(oid=oids[cancel], ts=quote_next[q][cancel], user=users[cancel], sym=sym,
                        buy=~is_ask[cancel], price=prices[cancel], qty=np.round(size - filled, 9)[cancel],
                        cancel=True, market=False)
    maker[mm_mask] = users[key]
    maker_oid[mm_mask] = oids[key]


def _emit_retail_makers(day, sym, profile, f_ts, f_buy, f_taker, price, fill_qty, maker, maker_oid, mask) -> None:
    """Resting retail limit orders that the fills in `mask` hit, at the touch; some were larger and are
    cancelled later. Each rests on its own side of the touch all its life (scenarios.book): it is placed
    after the price last went through its level and its rest is cancelled before the price goes through it."""
    rng, retail = day.rng, day.accounts.retail
    touch = day.touch(day.spec.symbols[sym])
    n = int(mask.sum())
    pos = rng.choice(len(retail), n, p=day.accounts.retail_weights)
    account = retail[pos]
    clash = account == f_taker[mask]  # no self-matching in the background
    account[clash] = retail[(pos[clash] + 1) % len(retail)]
    ts, price, rests_sell = f_ts[mask], price[mask], f_buy[mask]
    lead = (rng.exponential(RETAIL_MAKER_LEAD_S, n) * US).astype(np.int64) + 1_000
    placed = ts - lead
    early = placed < day.day_start
    placed[early] = day.day_start + ((ts[early] - day.day_start) * rng.random(int(early.sum()))).astype(np.int64)
    # It sits at the touch when hit; placed after the price last went through its level, it waits less.
    since = touch.safe_since(ts, ~rests_sell, price)  # <= the start of the fill's (odd) microsecond's second
    late = placed < since
    placed[late] = since[late] + (rng.random(int(late.sum())) * (ts[late] - since[late])).astype(np.int64)
    qty = fill_qty[mask]
    cancel_at = ts + (rng.exponential(RETAIL_CANCEL_AFTER_S, n) * US).astype(np.int64) + 1_000
    until = touch.safe_until(ts, ~rests_sell, price)
    # A rest that the price would go through within seconds of the fill is not left behind: fully filled.
    partial = (rng.random(n) < RETAIL_PARTIAL_SHARE) & (until - ts > RETAIL_MIN_REST_S * US)
    size = np.where(partial, to_grid(qty * rng.uniform(1.2, 3.0, n), profile.lot, "ceil"), qty)
    oids = day.tape.reserve_order_ids(n)
    day.tape.add_orders(oid=oids, ts=placed, user=account, sym=sym, buy=~rests_sell, price=price,
                        qty=size, cancel=False, market=False)
    cancel_at = _pulled_before(cancel_at, until, day.day_end)
    cancel = partial & (cancel_at >= 0)
    day.tape.add_orders(oid=oids[cancel], ts=cancel_at[cancel], user=account[cancel], sym=sym,
                        buy=~rests_sell[cancel], price=price[cancel],
                        qty=np.round(size - qty, 9)[cancel], cancel=True, market=False)
    maker[mask] = account
    maker_oid[mask] = oids


def _pulled_before(cancel_at: np.ndarray, until: np.ndarray, day_end: int) -> np.ndarray:
    """When an order that wants to be cancelled at cancel_at is cancelled, given that the price goes through
    it at `until` (book.NEVER: not before the scenario ends): the earlier of the two, or -1 (never cancelled)
    when it would rest past midnight and the price never reaches it."""
    pulled = np.minimum(cancel_at, until - 1)
    return np.where((until == NEVER) & (cancel_at >= day_end), -1, pulled)


def _emit_unfilled_limits(day: DayContext, symbol: str, n_takers: int) -> None:
    """Retail limit orders resting away from the touch that never trade: most are cancelled after a while,
    any of them as soon as the price is about to reach it; the others stay while the price never does."""
    rng, profile, accounts = day.rng, day.profiles[symbol], day.accounts
    touch = day.touch(symbol)
    n = int(rng.poisson(UNFILLED_LIMIT_RATE * n_takers))
    ts = day.day_start + sample_times(rng, ACTIVITY, n)
    account = accounts.retail[rng.choice(len(accounts.retail), n, p=accounts.retail_weights)]
    buy = rng.random(n) < 0.5
    bid, ask = day.market.touch(symbol, ts)
    # Away from the touch by a few ticks plus a few minutes' worth of price moves.
    typical_move = profile.daily_vol * math.sqrt(UNFILLED_AWAY_S / SECONDS_PER_DAY)
    move_ticks = day.market.mid(symbol, ts) * typical_move / profile.tick
    away = (rng.geometric(0.15, n) + np.round(move_ticks * rng.exponential(1.0, n))) * profile.tick
    price = np.round(np.where(buy, bid - away, ask + away), 9)
    price = np.where(buy, np.maximum(price, profile.tick), price)
    qty = np.maximum(profile.lot, to_grid(profile.median_qty * rng.lognormal(0.0, RETAIL_SIZE_SIGMA, n), profile.lot))
    until = touch.safe_until(ts, buy, price)
    keep = until - ts > 1_000  # placed at least a millisecond before the price reaches it
    cancel_at = ts + (rng.exponential(300.0, n) * US).astype(np.int64) + 1_000
    wants = rng.random(n) < UNFILLED_CANCEL_SHARE
    cancel_at = _pulled_before(np.where(wants, cancel_at, NEVER), until, day.day_end)
    ts, account, buy, price, qty, cancel_at = (a[keep] for a in (ts, account, buy, price, qty, cancel_at))
    oids = day.tape.reserve_order_ids(len(ts))
    day.tape.add_orders(oid=oids, ts=ts, user=account, sym=day.sym(symbol), buy=buy, price=price, qty=qty,
                        cancel=False, market=False)
    cancel = cancel_at >= 0
    day.tape.add_orders(oid=oids[cancel], ts=cancel_at[cancel], user=account[cancel], sym=day.sym(symbol),
                        buy=buy[cancel], price=price[cancel], qty=qty[cancel], cancel=True, market=False)
