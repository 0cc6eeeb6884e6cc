"""Pump-and-dump: quiet accumulation by organisers, a rush of buyers, a price spike, the dump and the collapse.

Planned in two steps: the price overlay first (every participant's prices depend on it), then the
orders and trades once all of the day's overlays are in place.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.scenarios.context import DayContext
from surveillance_pipeline.scenarios.market import US, to_grid

ORGANISERS = (3, 6)  # organisers per pump (upper bound exclusive)
ACCUMULATION_HOURS = (2.0, 5.0)
ACCUMULATION_BUYS = (15, 40)  # per organiser, each 0.5..2 median sizes
RISE_S = (60, 300)
HOLD_S = (30, 180)
COLLAPSE_MIN = (15, 45)
PEAK_GAIN = (0.25, 0.9)  # price rise at the top, as a fraction
RESIDUAL_SHARE = (0.0, 0.1)  # part of the gain left after the collapse
RUSH_ACCOUNTS = (60, 250)  # capped by the retail population
RUSH_FIRST_BUY_MEAN_S = 15.0  # most rush buyers arrive within seconds of the signal
RUSH_ORDERS_PER_ACCOUNT = 1.6
RUSH_VOLUME_MULTIPLE = 10  # rush orders: at least this many times the symbol's average 5-minute trade count
INTO_SPIKE_SHARE = 0.7  # of their holdings organisers sell through resting sells the rush lifts
PANIC_SELLER_SHARE = 0.4  # rush buyers who dump during the collapse


@dataclass(frozen=True)
class PumpPlan:
    symbol: str
    accumulation_start: int
    pump_start: int
    rise_s: int
    hold_s: int
    collapse_end: int


def plan_pump(day: DayContext) -> PumpPlan:
    """Choose the pump's symbol and timing (thin markets are likelier) and lay its price shape on the market."""
    rng = day.rng
    accumulation_us = int(rng.uniform(*ACCUMULATION_HOURS) * 3600 * US)
    rise_s, hold_s = int(rng.integers(*RISE_S)), int(rng.integers(*HOLD_S))
    collapse_s = int(rng.uniform(*COLLAPSE_MIN) * 60)
    total_us = accumulation_us + (rise_s + hold_s + collapse_s) * US
    thinness = np.array([1.0 / day.profiles[s].liquidity for s in day.symbols])
    symbol, start = day.reserve(total_us, weights=thinness / thinness.sum())
    pump_start = start + accumulation_us

    peak = np.log1p(rng.uniform(*PEAK_GAIN))
    residual = np.log1p(np.expm1(peak) * rng.uniform(*RESIDUAL_SHARE))
    rise = np.arange(rise_s) / rise_s
    collapse = np.arange(collapse_s + 1) / collapse_s
    overlay = np.concatenate([
        peak * (1 - np.cos(np.pi * rise)) / 2,
        peak * (1 - 0.03 * np.arange(hold_s) / hold_s),
        residual + (peak * 0.97 - residual) * (1 - collapse) ** 2,
    ])
    day.market.add_overlay(symbol, pump_start, overlay)
    collapse_end = pump_start + (rise_s + hold_s + collapse_s) * US
    day.fast_windows.append((symbol, pump_start - 60 * US, collapse_end, 1.0))
    return PumpPlan(symbol, start, pump_start, rise_s, hold_s, collapse_end)


def inject_pump(day: DayContext, plan: PumpPlan) -> None:
    rng, profile = day.rng, day.profiles[plan.symbol]
    organisers = day.take_abusers(int(rng.integers(*ORGANISERS)))
    ep = day.episode(Pattern.PUMP_AND_DUMP, plan.symbol, organisers)
    top_start = plan.pump_start + plan.rise_s * US
    top_end = top_start + plan.hold_s * US

    holdings = {}
    quiet_until = plan.pump_start - 5 * 60 * US
    for organiser in organisers:
        n = int(rng.integers(*ACCUMULATION_BUYS))
        ts = np.sort(rng.integers(plan.accumulation_start, quiet_until, n))
        ts[0] = plan.accumulation_start if organiser == organisers[0] else ts[0]
        qty = np.maximum(profile.lot, to_grid(profile.median_qty * rng.uniform(0.5, 2.0, n), profile.lot))
        ep.force(ts, organiser, True, qty)
        holdings[organiser] = float(np.round(qty.sum(), 9))

    eligible = np.setdiff1d(day.accounts.retail, organisers)
    rush = rng.choice(eligible, min(len(eligible), int(rng.integers(*RUSH_ACCOUNTS))), replace=False)
    first_buy = plan.pump_start + np.minimum(
        rng.exponential(RUSH_FIRST_BUY_MEAN_S, len(rush)) * US, (plan.rise_s + plan.hold_s) * US).astype(np.int64)
    share = profile.liquidity / sum(day.profiles[s].liquidity for s in day.symbols)
    baseline_5min = day.spec.trades_per_day * share * 300 / 86_400
    n_more = max(int((RUSH_ORDERS_PER_ACCOUNT - 1) * len(rush)), int(RUSH_VOLUME_MULTIPLE * baseline_5min) - len(rush))
    more = rng.choice(rush, n_more)
    more_ts = plan.pump_start + rng.integers(0, (plan.rise_s + plan.hold_s) * US, len(more))
    rush_qty = profile.median_qty * rng.lognormal(0.7, 0.8, len(rush) + len(more))
    ep.force(np.concatenate([first_buy, more_ts]), np.concatenate([rush, more]), True, rush_qty, track=False)

    for organiser, held in holdings.items():
        into_spike = _split(rng, held * INTO_SPIKE_SHARE, int(rng.integers(2, 6)), profile.lot)
        for qty in into_spike:
            filled_at = int(rng.integers(plan.pump_start + int(0.3 * plan.rise_s * US), top_end))
            placed = max(plan.pump_start, filled_at - int(rng.uniform(0.2, 20.0) * US))
            price = day.market.best_ask(plan.symbol, filled_at)
            # At the ask when lifted, and never below it before (scenarios.book).
            placed = ep.resting_since(filled_at, False, price, filled_at - placed)
            sell = ep.place(placed, organiser, False, price, qty)
            ep.fill(filled_at, sell, organiser, int(rng.choice(rush)), True, price, qty)
        rest = float(np.round(held - sum(into_spike), 9))
        dumps = _split(rng, rest, int(rng.integers(1, 4)), profile.lot)
        dump_ts = top_start + rng.integers(0, (plan.hold_s * US) + (plan.collapse_end - top_end) // 5, len(dumps))
        ep.force(dump_ts, organiser, False, np.array(dumps))

    panic = rush[rng.random(len(rush)) < PANIC_SELLER_SHARE]
    panic_ts = top_end + (rng.beta(1.5, 3.0, len(panic)) * (plan.collapse_end - top_end)).astype(np.int64)
    panic_qty = profile.median_qty * rng.lognormal(0.7, 0.8, len(panic))
    ep.force(panic_ts, panic, False, panic_qty, track=False)
    ep.close(start=plan.accumulation_start | 1, end=max(plan.collapse_end, ep.last or 0))


def _split(rng: np.random.Generator, total: float, parts: int, lot: float) -> list[float]:
    """total split into up to `parts` positive lot-grid pieces that sum to it exactly."""
    lots = int(round(total / lot))
    parts = max(1, min(parts, lots))
    cuts = np.sort(rng.choice(np.arange(1, lots), parts - 1, replace=False)) if parts > 1 else np.array([], int)
    sizes = np.diff(np.concatenate([[0], cuts, [lots]]))
    return [float(np.round(s * lot, 9)) for s in sizes]
