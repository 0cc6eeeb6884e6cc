"""Generated futures markets with labelled abuse: minute series of index, mark, premium, basis, open interest,
trades, liquidations and 8-hourly funding, as replay tables, with the episode labels (market-level: no
accounts). Legitimate look-alikes are on every day: trends that move index and futures together, ordinary
funding swings, steady open-interest growth.

Episodes, from the public descriptions of each abuse:
- funding_rate_manipulation: the perpetual pushed away from the index in the hour before a funding settlement
  (the premium that sets the rate), released just after it;
- liquidation_hunting: a sudden move of the perpetual (spot follows a part of it) that runs through clustered
  liquidation levels (a burst of liquidations),
  then retraces most of the move within minutes, or within the same minute (a wick in the trades' k-line
  that the minute closes of mark and last never show);
- forced_liquidation: a cascade on the perpetual, liquidations feeding further liquidations in one direction, no
  retracement (spot follows a part of it, and catches up within the hour);
- basis_manipulation: the futures price held far from the index away from any settlement, then released;
- position_concentration: open interest jumping by a large share within minutes and staying (one actor);
- funding_rate_farming: positions opened just before each settlement of a day with extreme funding and
  closed just after (open interest up before, down after), repeatedly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from surveillance_pipeline.contract import LABEL_SCHEMA
from surveillance_pipeline.market.replay import UTC_MS, ReplayStore

PATTERNS = ("funding_rate_manipulation", "liquidation_hunting", "forced_liquidation", "basis_manipulation",
            "position_concentration", "funding_rate_farming")
MINUTES_PER_DAY = 1440
SETTLEMENT_MINUTES = (0, 480, 960)  # 00:00, 08:00, 16:00 UTC
BASE_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0}


@dataclass
class FuturesScenario:
    store: ReplayStore
    labels: pl.DataFrame


def generate_futures(days: int = 3, seed: int = 0, markets: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                     start: date = date(2026, 3, 2), clean: bool = False) -> FuturesScenario:
    rng = np.random.default_rng(seed)
    t0 = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    n = days * MINUTES_PER_DAY
    minutes = np.arange(n)
    stamps = [t0 + timedelta(minutes=int(m)) for m in minutes]
    tables = {k: [] for k in ("mark", "index", "premium", "basis", "open_interest", "funding", "liquidations",
                              "deals")}
    labels = []
    for market in markets:
        base = BASE_PRICES.get(market, 100.0)
        # index: a random walk with news-like trends (legitimate look-alikes: index and futures move together)
        steps = rng.normal(0, 0.0006, n)
        for _ in range(days):
            at, length = rng.integers(0, n - 240), rng.integers(60, 240)
            steps[at:at + length] += rng.choice([-1, 1]) * rng.uniform(0.03, 0.08) / length
        index = base * np.exp(np.cumsum(steps))
        premium = rng.normal(0.0001, 0.00008, n)            # futures over index, ordinary
        oi = base * 1e3 * np.exp(np.cumsum(rng.normal(0.00002, 0.0008, n)))  # steady growth, small noise
        liq_rate = np.full(n, 0.05)                         # liquidations per minute, ordinary
        liq_side = np.where(rng.random(n) < 0.5, "sell", "buy")
        push = np.zeros(n)                                   # extra futures-vs-index displacement
        move = np.zeros(n)                                   # the perpetual's own move (hunting, cascades) ...
        index_move = np.zeros(n)                             # ... of which spot follows a part (and catches up)
        farm = np.zeros(n)                                   # open-interest excursions (farming)
        wick = np.zeros(n)                                   # a spike of the trades within one minute
        used = np.zeros(n, dtype=bool)

        def free(a: int, b: int) -> bool:  # after the first 6 hours (a baseline) and 2.5 before the end (what
            # follows decides some patterns); 3 hours after
            # the episode before (a cascade's aftermath lasts an hour, and a push must follow ordinary hours)
            return 360 <= a and b + 150 < n and not used[max(0, a - 180):b + 60].any()

        def place(pattern: str, a: int, b: int) -> None:
            used[a:b + 1] = True
            labels.append((pattern, market, stamps[a], stamps[min(b, n - 1)]))

        if not clean:
            for pattern in sorted(PATTERNS, key=lambda p: p != "funding_rate_farming"):  # the longest first
                for _ in range(200):
                    if pattern in ("funding_rate_manipulation",):
                        day = rng.integers(0, days)
                        settle = day * MINUTES_PER_DAY + rng.choice(SETTLEMENT_MINUTES[1:])
                        a, b = settle - int(rng.integers(30, 60)), settle + int(rng.integers(5, 15))
                        if not free(a, b):
                            continue
                        size = rng.uniform(0.006, 0.02) * rng.choice([-1, 1])
                        push[a:settle] += size
                        push[settle:b] += np.linspace(size, 0, b - settle)
                        place(pattern, a, b)
                    elif pattern == "liquidation_hunting":
                        a = int(rng.integers(60, n - 60))
                        down, back = int(rng.integers(1, 4)), int(rng.integers(3, 12))
                        if not free(a, a + down + back) or _near_settlement(a, 90):
                            continue
                        size = rng.uniform(0.03, 0.07) * rng.choice([-1, 1])
                        if rng.random() < 0.5:  # a wick: through the levels and back within one minute
                            wick[a] = size
                            liq_rate[a] += rng.uniform(15, 40)
                            liq_side[a] = "sell" if size < 0 else "buy"
                            place(pattern, a, a + 2)
                            break
                        follow = rng.uniform(0.0, 0.4)
                        move[a:a + down] += np.linspace(0, size, down)
                        move[a + down:a + down + back] += np.linspace(size, size * rng.uniform(0.0, 0.35), back)
                        index_move[a:a + down + back] += follow * move[a:a + down + back]
                        liq_rate[a:a + down + 1] += rng.uniform(15, 40)
                        liq_side[a:a + down + 1] = "sell" if size < 0 else "buy"
                        place(pattern, a, a + down + back)
                    elif pattern == "forced_liquidation":
                        a, length = int(rng.integers(60, n - 240)), int(rng.integers(5, 15))
                        if not free(a, a + length + 60) or _near_settlement(a, 90):
                            continue
                        size = rng.uniform(0.05, 0.12) * rng.choice([-1, 1])
                        follow = rng.uniform(0.0, 0.4)
                        move[a:a + length] += np.linspace(0, size, length)
                        move[a + length:] += size
                        index_move[a:a + length] += follow * np.linspace(0, size, length)
                        index_move[a + length:a + length + 60] += np.linspace(follow * size, size, 60)[
                            :max(0, min(60, n - a - length))]
                        index_move[a + length + 60:] += size
                        liq_rate[a:a + length] += rng.uniform(8, 25)
                        liq_side[a:a + length] = "sell" if size < 0 else "buy"
                        place(pattern, a, a + length)
                    elif pattern == "basis_manipulation":
                        a, length = int(rng.integers(60, n - 120)), int(rng.integers(10, 60))
                        if not free(a, a + length) or _near_settlement(a, 120) or _near_settlement(a + length, 120):
                            continue
                        size = rng.uniform(0.008, 0.025) * rng.choice([-1, 1])
                        push[a:a + length] += size
                        place(pattern, a, a + length)
                    elif pattern == "position_concentration":
                        a, length = int(rng.integers(60, n - 120)), int(rng.integers(5, 15))
                        if not free(a, a + length + 30):
                            continue
                        jump = rng.uniform(0.15, 0.4)
                        oi[a:a + length] *= np.exp(np.linspace(0, np.log1p(jump), length))
                        oi[a + length:] *= 1 + jump
                        place(pattern, a, a + length)
                    elif pattern == "funding_rate_farming":
                        day = int(rng.integers(0, days))
                        settles = [day * MINUTES_PER_DAY + s for s in SETTLEMENT_MINUTES[1:]]
                        a, b = settles[0] - 30, settles[-1] + 30
                        # the extreme-funding day it feeds on: the premium raised over both funding intervals
                        if not free(settles[0] - 480, b):
                            continue
                        used[settles[0] - 480:b + 1] = True
                        size = rng.uniform(0.06, 0.15)
                        sign = rng.choice([-1, 1])
                        for s in settles:
                            farm[s - 30:s] += np.linspace(0, size, 30)
                            farm[s:s + 30] += np.linspace(size, 0, 30)
                            premium[s - 480 + 60:s] += sign * 0.0009  # an extreme funding day that draws farmers
                        place(pattern, a, b)
                    break
        price_index = index * np.exp(index_move)
        mark = index * np.exp(move) * (1 + premium + push)
        last = mark * (1 + rng.normal(0, 0.0002, n))
        oi_series = oi * (1 + farm)
        base_rows = {"market": market, "market_type": "futures"}
        tables["index"].append(pl.DataFrame({**_col(base_rows, n), "created_at": stamps, "index_price": price_index}))
        tables["mark"].append(pl.DataFrame({**_col(base_rows, n), "created_at": stamps, "mark_price": mark}))
        tables["premium"].append(pl.DataFrame({**_col(base_rows, n), "created_at": stamps,
                                               "premium_index": mark / price_index - 1}))
        tables["basis"].append(pl.DataFrame({**_col(base_rows, n), "created_at": stamps,
                                             "basis_rate": last / price_index - 1}))
        tables["open_interest"].append(pl.DataFrame({**_col(base_rows, n), "created_at": stamps,
                                                     "open_interest_volume": oi_series}))
        # funding: the mean premium of the 8 hours before each settlement, plus interest, clamped
        settle_at = [m for m in minutes if m % MINUTES_PER_DAY in SETTLEMENT_MINUTES and m >= 480]
        rates = [float(np.clip((mark[m - 480:m] / price_index[m - 480:m] - 1).mean() + 0.0001, -0.0075, 0.0075))
                 for m in settle_at]
        tables["funding"].append(pl.DataFrame({**_col(base_rows, len(settle_at)),
                                               "funding_time": [stamps[m] for m in settle_at],
                                               "theoretical_funding_rate": rates, "actual_funding_rate": rates}))
        counts = rng.poisson(liq_rate)
        at = np.repeat(minutes, counts)
        seconds = rng.integers(0, 60, at.size)
        tables["liquidations"].append(pl.DataFrame({
            **_col(base_rows, at.size), "created_at": [stamps[m] + timedelta(seconds=int(s)) for m, s in zip(at, seconds)],
            "side": liq_side[at], "price": last[at], "amount": rng.lognormal(0, 1, at.size) * 1e4 / base}))
        per_minute = 3
        deal_at = np.repeat(minutes, per_minute)
        tables["deals"].append(pl.DataFrame({
            **_col(base_rows, deal_at.size), "created_at": [stamps[m] + timedelta(seconds=int(20 * i % 60))
                                                            for i, m in enumerate(deal_at)],
            "deal_id": [f"{market}-{i}" for i in range(deal_at.size)],
            "side": np.where(rng.random(deal_at.size) < 0.5, "buy", "sell"),
            "price": last[deal_at] * (1 + rng.normal(0, 0.0001, deal_at.size))
            * np.exp(np.where(np.arange(deal_at.size) % per_minute == 1, wick[deal_at], 0.0)),
            "amount": rng.lognormal(0, 1, deal_at.size) * 1e3 / base}))
    store = ReplayStore({name: pl.concat(frames).with_columns(
        pl.col(c).cast(UTC_MS) for c in ("created_at", "funding_time") if c in frames[0].columns)
        for name, frames in tables.items()})
    ordered = sorted(labels, key=lambda x: (x[2], x[0], x[1]))
    label_frame = pl.DataFrame({
        "episode_id": [f"fut-{i:04d}" for i in range(1, len(ordered) + 1)],
        "pattern": [x[0] for x in ordered], "symbol": [x[1] for x in ordered], "user_ids": [""] * len(ordered),
        "start": [x[2] for x in ordered], "end": [x[3] for x in ordered]}, schema=LABEL_SCHEMA)
    return FuturesScenario(store, label_frame)


def _col(base: dict, n: int) -> dict:
    return {k: [v] * n for k, v in base.items()}


def _near_settlement(minute: int, window: int) -> bool:
    offset = minute % MINUTES_PER_DAY
    return any(abs(offset - s) < window or abs(offset - s - MINUTES_PER_DAY) < window for s in SETTLEMENT_MINUTES)
