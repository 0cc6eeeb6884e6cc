"""Order-book abuse that only the order events reveal: spoofing, layering and quote stuffing.

Spoofing: one large order near the touch, a small fill on the other side, the large order cancelled
within a second. Layering: several orders at successive levels, a fill on the other side, all layers
cancelled together. Quote stuffing: bursts of hundreds of orders a second, cancelled within milliseconds.

Every such order rests on its own side of the book, at or behind the touch for its whole life (never across
it: scenarios.book). "Near the touch" is measured from the touch's far edge over that life, e.g. a fake bid
sits at (or a few ticks below) the lowest best bid of the seconds it is live.
"""
from __future__ import annotations

import numpy as np

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.scenarios.context import DayContext, Episode
from surveillance_pipeline.scenarios.market import US

SPOOF_CYCLES = (3, 7)
SPOOF_SIZE_MEDIANS = (10.0, 30.0)  # the fake order, in median retail sizes
SPOOF_AWAY_TICKS = (0, 3)  # the fake order rests this many ticks behind the touch
GENUINE_SIZE_MEDIANS = (0.3, 1.5)  # the order the abuser actually wants filled
FILL_AFTER_S = (1.0, 8.0)
CANCEL_AFTER_FILL_S = (0.05, 0.9)
CYCLE_GAP_S = (20, 120)
SIDE_SWITCH_PROBABILITY = 0.2
RESTING_GENUINE_SHARE = 0.7  # the genuine order rests and is lifted; otherwise the abuser takes

LAYERS = (3, 7)
LAYER_CYCLES = (3, 6)
LAYER_SIZE_MEDIANS = (3.0, 8.0)
LAYER_STEP_TICKS = (1, 4)
LAYER_PLACE_GAP_S = (0.02, 0.2)
LAYER_CANCEL_SPREAD_S = (0.001, 0.03)  # between consecutive layer cancels
LAYER_CYCLE_GAP_S = (15, 90)

STUFF_BURSTS = (3, 7)
STUFF_ORDERS_PER_BURST = (150, 500)
STUFF_BURST_S = (0.3, 1.0)
STUFF_CANCEL_AFTER_S = (0.0005, 0.015)
STUFF_AWAY_TICKS = 6
STUFF_FILLS_PER_BURST = (0, 3)
STUFF_SIZE_MEDIANS = (0.2, 1.0)
STUFF_BURST_GAP_S = (5, 60)


def inject_spoofing(day: DayContext) -> None:
    rng = day.rng
    cycles = int(rng.integers(*SPOOF_CYCLES))
    symbol, t = day.reserve(cycles * int(FILL_AFTER_S[1] + 1 + CYCLE_GAP_S[1]) * US)
    [spoofer] = day.take_abusers(1)
    ep = day.episode(Pattern.SPOOFING, symbol, [spoofer])
    touch = day.touch(symbol)
    fake_buy = bool(rng.random() < 0.5)
    for _ in range(cycles):
        fake_buy ^= bool(rng.random() < SIDE_SWITCH_PROBABILITY)
        filled_at = t + day.uniform_us(*FILL_AFTER_S)
        cancel_at = filled_at + day.uniform_us(*CANCEL_AFTER_FILL_S)
        away = int(rng.integers(*SPOOF_AWAY_TICKS))
        lowest_bid, highest_ask = touch.envelope(t, cancel_at)
        price = float(touch.price(lowest_bid - away if fake_buy else highest_ask + away))
        fake = ep.place(t, spoofer, fake_buy, price, day.size(symbol, *SPOOF_SIZE_MEDIANS))
        _opposite_fill(day, ep, symbol, spoofer, fake_buy, t, filled_at)
        ep.cancel(fake, cancel_at)
        t = cancel_at + day.uniform_us(*CYCLE_GAP_S)
    ep.close()


def inject_layering(day: DayContext) -> None:
    rng = day.rng
    cycles, layers = int(rng.integers(*LAYER_CYCLES)), int(rng.integers(*LAYERS))
    symbol, t = day.reserve(cycles * int(LAYER_CYCLE_GAP_S[1] + FILL_AFTER_S[1] + 3) * US)
    [layerer] = day.take_abusers(1)
    ep = day.episode(Pattern.LAYERING, symbol, [layerer])
    touch = day.touch(symbol)
    layer_buy = bool(rng.random() < 0.5)
    for _ in range(cycles):
        layer_buy ^= bool(rng.random() < SIDE_SWITCH_PROBABILITY)
        step = int(rng.integers(*LAYER_STEP_TICKS))
        placed = [t]
        for _ in range(layers - 1):
            placed.append(placed[-1] + day.uniform_us(*LAYER_PLACE_GAP_S))
        filled_at = placed[-1] + day.uniform_us(*LAYER_PLACE_GAP_S) + day.uniform_us(*FILL_AFTER_S)
        cancels = [filled_at + day.uniform_us(*CANCEL_AFTER_FILL_S)]
        for _ in range(layers - 1):
            cancels.append(cancels[-1] + day.uniform_us(*LAYER_CANCEL_SPREAD_S))
        # The first layer at the touch's far edge over the cycle, the others successive steps behind it.
        lowest_bid, highest_ask = touch.envelope(t, cancels[-1])
        oids = []
        for level, at in enumerate(placed):
            price = float(touch.price(lowest_bid - level * step if layer_buy else highest_ask + level * step))
            oids.append(ep.place(at, layerer, layer_buy, price, day.size(symbol, *LAYER_SIZE_MEDIANS)))
        _opposite_fill(day, ep, symbol, layerer, layer_buy, placed[-1], filled_at)
        for oid, at in zip(oids, cancels):
            ep.cancel(oid, at)
        t = cancels[-1] + day.uniform_us(*LAYER_CYCLE_GAP_S)
    ep.close()


def inject_quote_stuffing(day: DayContext) -> None:
    rng = day.rng
    bursts = int(rng.integers(*STUFF_BURSTS))
    symbol, t = day.reserve(bursts * int(STUFF_BURST_S[1] + STUFF_BURST_GAP_S[1] + 1) * US)
    [stuffer] = day.take_abusers(1)
    ep = day.episode(Pattern.QUOTE_STUFFING, symbol, [stuffer])
    touch = day.touch(symbol)
    for _ in range(bursts):
        n = int(rng.integers(*STUFF_ORDERS_PER_BURST))
        length = day.uniform_us(*STUFF_BURST_S)
        times = np.sort(rng.integers(t, t + length, n))
        filled = set(int(i) for i in rng.choice(n, int(rng.integers(*STUFF_FILLS_PER_BURST)), replace=False))
        buy = rng.random(n) < 0.5
        away = np.array([0 if i in filled else int(rng.integers(0, STUFF_AWAY_TICKS)) for i in range(n)])
        qty = [day.size(symbol, *STUFF_SIZE_MEDIANS) for _ in range(n)]
        lifetime = np.array([day.uniform_us(*STUFF_CANCEL_AFTER_S) + 1 for _ in range(n)])
        lowest_bid, highest_ask = touch.envelope(times, times + lifetime)
        prices = touch.price(np.where(buy, lowest_bid - away, highest_ask + away))
        for i, placed in enumerate(times.tolist()):
            price, life = float(prices[i]), int(lifetime[i])
            oid = ep.place(placed, stuffer, bool(buy[i]), price, qty[i])
            if i in filled:  # the rare fill: someone hits the order before it is pulled
                ep.fill(placed + max(1, life // 2), oid, stuffer, day.counterparty([stuffer]), not buy[i], price,
                        qty[i])
            else:
                ep.cancel(oid, placed + life)
        t += length + day.uniform_us(*STUFF_BURST_GAP_S)
    ep.close()


def _opposite_fill(day: DayContext, ep: Episode, symbol: str, abuser: int, fake_buy: bool,
                   after: int, filled_at: int) -> None:
    """A small genuine trade with the abuser on the side opposite its fake orders."""
    rng = day.rng
    qty = day.size(symbol, *GENUINE_SIZE_MEDIANS)
    bid, ask = day.market.touch(symbol, filled_at)
    counterparty = day.counterparty([abuser])
    if rng.random() < RESTING_GENUINE_SHARE:
        # Fake bids: the abuser's genuine sell rests at the ask and a buyer lifts it (and vice versa).
        price = round(float(ask if fake_buy else bid), 9)
        lead = int((filled_at - after) * rng.uniform(0.1, 0.9))
        genuine = ep.place(ep.resting_since(filled_at, not fake_buy, price, lead), abuser, not fake_buy, price, qty)
        ep.fill(filled_at, genuine, abuser, counterparty, fake_buy, price, qty)
    else:
        price = round(float(bid if fake_buy else ask), 9)
        lead = int((filled_at - after) * rng.uniform(0.1, 0.9))  # the counterparty's order rests at the touch
        ep.cross(filled_at, counterparty, abuser, not fake_buy, price, qty, lead)
