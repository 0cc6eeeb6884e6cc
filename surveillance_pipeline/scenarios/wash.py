"""Wash trading (self-trades, or two colluding accounts) and circular trading (a ring passing the same size on).

No beneficial ownership changes: the same quantity goes back and forth (or round the ring) at about one
price within minutes. Each trade is a resting limit order of one party filled by the other's order. The
resting side is one that the market has not run through (its price may sit inside the spread, never across
it: scenarios.book), so when the price has drifted off the episode's anchor the resting side is the one
left behind by the move.
"""
from __future__ import annotations

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.scenarios.context import DayContext
from surveillance_pipeline.scenarios.market import US, to_grid

SELF_TRADES = (5, 16)
PAIR_ROUNDS = (3, 9)  # A sells to B then B sells back, this many times
WASH_GAP_S = (10, 90)  # between consecutive wash trades
WASH_SIZE_MEDIANS = (2.0, 8.0)
MAKER_LEAD_S = (0.05, 3.0)  # the resting side is placed this long before the cross
RING_SIZE = (3, 6)  # upper bound exclusive
RING_ROUNDS = (2, 5)
RING_HOP_S = (5, 60)
RING_PAUSE_S = (30, 300)
RING_SIZE_JITTER = 0.002  # "about" the same size: within 0.2 %
PRICE_JITTER_TICKS = 1


def inject_self_wash(day: DayContext) -> None:
    """One account repeatedly trading with itself: its own resting order filled by its own opposite order."""
    rng = day.rng
    n = int(rng.integers(*SELF_TRADES))
    symbol, t = day.reserve(n * (WASH_GAP_S[1] + 5) * US)
    [account] = day.take_abusers(1)
    ep = day.episode(Pattern.WASH_TRADING, symbol, [account])
    t += 5 * US
    anchor, qty = day.market.mid(symbol, t), day.size(symbol, *WASH_SIZE_MEDIANS)
    for _ in range(n):
        price = _near(day, symbol, anchor)
        taker_buy = bool(rng.random() < 0.5)
        if not ep.rests_at(t, not taker_buy, price, inside=True):
            taker_buy = not taker_buy
        ep.cross(t, account, account, taker_buy, price, qty, day.uniform_us(*MAKER_LEAD_S), inside=True)
        t += day.uniform_us(*WASH_GAP_S)
    ep.close()


def inject_pair_wash(day: DayContext) -> None:
    """Two accounts trading the same size back and forth at one price: no net position change."""
    rng = day.rng
    rounds = int(rng.integers(*PAIR_ROUNDS))
    symbol, t = day.reserve(2 * rounds * (WASH_GAP_S[1] + 5) * US)
    a, b = day.take_abusers(2)
    ep = day.episode(Pattern.WASH_TRADING, symbol, [a, b])
    t += 5 * US
    anchor, qty = day.market.mid(symbol, t), day.size(symbol, *WASH_SIZE_MEDIANS)
    for _ in range(rounds):
        for seller, buyer in ((a, b), (b, a)):
            _transfer(day, ep, symbol, t, seller, buyer, _near(day, symbol, anchor), qty)
            t += day.uniform_us(*WASH_GAP_S)
    ep.close()


def inject_circular(day: DayContext) -> None:
    """A ring A→B→C(→…)→A passing about the same quantity on at about the same price, a few times over."""
    rng = day.rng
    ring_size, rounds = int(rng.integers(*RING_SIZE)), int(rng.integers(*RING_ROUNDS))
    longest = rounds * (ring_size * RING_HOP_S[1] + RING_PAUSE_S[1]) + 5
    symbol, t = day.reserve(longest * US)
    ring = day.take_abusers(ring_size)
    ep = day.episode(Pattern.CIRCULAR_TRADING, symbol, ring)
    t += 5 * US
    anchor, qty = day.market.mid(symbol, t), day.size(symbol, *WASH_SIZE_MEDIANS)
    lot = day.profiles[symbol].lot
    for _ in range(rounds):
        for hop in range(ring_size):
            hop_qty = float(max(lot, to_grid(qty * (1 + rng.uniform(-1, 1) * RING_SIZE_JITTER), lot)))
            _transfer(day, ep, symbol, t, ring[hop], ring[(hop + 1) % ring_size], _near(day, symbol, anchor), hop_qty)
            t += day.uniform_us(*RING_HOP_S)
        t += day.uniform_us(*RING_PAUSE_S)
    ep.close()


def _transfer(day: DayContext, ep, symbol: str, ts: int, seller: int, buyer: int, price: float, qty: float) -> None:
    """seller delivers qty to buyer; either of them may be the resting side."""
    seller_rests = bool(day.rng.random() < 0.5)
    if not ep.rests_at(ts, not seller_rests, price, inside=True):
        seller_rests = not seller_rests
    maker, taker = (seller, buyer) if seller_rests else (buyer, seller)
    ep.cross(ts, maker, taker, seller_rests, price, qty, day.uniform_us(*MAKER_LEAD_S), inside=True)


def _near(day: DayContext, symbol: str, anchor: float) -> float:
    """The anchor price on the tick grid, give or take a tick."""
    tick = day.profiles[symbol].tick
    ticks = round(float(anchor) / tick) + int(day.rng.integers(-PRICE_JITTER_TICKS, PRICE_JITTER_TICKS + 1))
    return round(ticks * tick, 9)
