"""Order-book abuse that only the order events reveal: spoofing, layering and quote stuffing.

Spoofing: one large order near the touch, a small fill on the other side, the large order cancelled
within a second. Layering: several orders at successive levels, a fill on the other side, all layers
cancelled together. Quote stuffing: bursts of hundreds of orders a second, cancelled within milliseconds.
"""
from __future__ import annotations

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
    tick = day.profiles[symbol].tick
    fake_buy = bool(rng.random() < 0.5)
    for _ in range(cycles):
        fake_buy ^= bool(rng.random() < SIDE_SWITCH_PROBABILITY)
        bid, ask = day.market.touch(symbol, t)
        away = int(rng.integers(*SPOOF_AWAY_TICKS)) * tick
        price = round(float(bid - away if fake_buy else ask + away), 9)
        fake = ep.place(t, spoofer, fake_buy, price, day.size(symbol, *SPOOF_SIZE_MEDIANS))
        filled_at = t + day.uniform_us(*FILL_AFTER_S)
        _opposite_fill(day, ep, symbol, spoofer, fake_buy, t, filled_at)
        cancel_at = filled_at + day.uniform_us(*CANCEL_AFTER_FILL_S)
        ep.cancel(fake, cancel_at)
        t = cancel_at + day.uniform_us(*CYCLE_GAP_S)
    ep.close()


def inject_layering(day: DayContext) -> None:
    rng = day.rng
    cycles, layers = int(rng.integers(*LAYER_CYCLES)), int(rng.integers(*LAYERS))
    symbol, t = day.reserve(cycles * int(LAYER_CYCLE_GAP_S[1] + FILL_AFTER_S[1] + 3) * US)
    [layerer] = day.take_abusers(1)
    ep = day.episode(Pattern.LAYERING, symbol, [layerer])
    tick = day.profiles[symbol].tick
    layer_buy = bool(rng.random() < 0.5)
    for _ in range(cycles):
        layer_buy ^= bool(rng.random() < SIDE_SWITCH_PROBABILITY)
        bid, ask = day.market.touch(symbol, t)
        step = int(rng.integers(*LAYER_STEP_TICKS)) * tick
        placed, oids = t, []
        for level in range(layers):
            price = round(float(bid - level * step if layer_buy else ask + level * step), 9)
            oids.append(ep.place(placed, layerer, layer_buy, price, day.size(symbol, *LAYER_SIZE_MEDIANS)))
            placed += day.uniform_us(*LAYER_PLACE_GAP_S)
        filled_at = placed + day.uniform_us(*FILL_AFTER_S)
        _opposite_fill(day, ep, symbol, layerer, layer_buy, placed, filled_at)
        cancel_at = filled_at + day.uniform_us(*CANCEL_AFTER_FILL_S)
        for oid in oids:
            ep.cancel(oid, cancel_at)
            cancel_at += day.uniform_us(*LAYER_CANCEL_SPREAD_S)
        t = cancel_at + day.uniform_us(*LAYER_CYCLE_GAP_S)
    ep.close()


def inject_quote_stuffing(day: DayContext) -> None:
    rng = day.rng
    bursts = int(rng.integers(*STUFF_BURSTS))
    symbol, t = day.reserve(bursts * int(STUFF_BURST_S[1] + STUFF_BURST_GAP_S[1] + 1) * US)
    [stuffer] = day.take_abusers(1)
    ep = day.episode(Pattern.QUOTE_STUFFING, symbol, [stuffer])
    tick = day.profiles[symbol].tick
    for _ in range(bursts):
        n = int(rng.integers(*STUFF_ORDERS_PER_BURST))
        length = day.uniform_us(*STUFF_BURST_S)
        times = sorted(int(x) for x in rng.integers(t, t + length, n))
        filled = set(int(i) for i in rng.choice(n, int(rng.integers(*STUFF_FILLS_PER_BURST)), replace=False))
        bid, ask = day.market.touch(symbol, t)
        for i, placed in enumerate(times):
            buy = bool(rng.random() < 0.5)
            away = 0 if i in filled else int(rng.integers(0, STUFF_AWAY_TICKS)) * tick
            price = round(float(bid - away if buy else ask + away), 9)
            qty = day.size(symbol, *STUFF_SIZE_MEDIANS)
            oid = ep.place(placed, stuffer, buy, price, qty)
            lifetime = day.uniform_us(*STUFF_CANCEL_AFTER_S) + 1
            if i in filled:  # the rare fill: someone hits the order before it is pulled
                ep.fill(placed + max(1, lifetime // 2), oid, stuffer, day.counterparty([stuffer]), not buy, price, qty)
            else:
                ep.cancel(oid, placed + lifetime)
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
        placed = after + int((filled_at - after) * rng.uniform(0.1, 0.9))
        genuine = ep.place(placed, abuser, not fake_buy, price, qty)
        ep.fill(filled_at, genuine, abuser, counterparty, fake_buy, price, qty)
    else:
        price = round(float(bid if fake_buy else ask), 9)
        lead = int((filled_at - after) * rng.uniform(0.1, 0.9))
        ep.cross(filled_at, counterparty, abuser, not fake_buy, price, qty, lead)
