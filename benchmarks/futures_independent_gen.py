"""Labelled perpetual-futures markets written independently of the project's futures detectors.

Used by `benchmarks/eval_futures_independent.py` (see its docstring for the parameter ranges and why) and by
`tests/market/test_futures_independent_gen.py`. Nothing here reads the detectors, their settings or the
project's own futures scenario generator; the episodes follow public descriptions of each abuse.

One latent model per market, on a one-minute grid (with an 8 h warm-up so the first settlement has a full
funding interval):

  index        log random walk, Student-t(4) shocks, intraday activity curve x slow volatility regime x
               episode multipliers (capped at x5); volatile-hour look-alikes: x2-3 the intraday curve, shocks
               clipped at 2.5 sd
  premium p    regime mean (organic demand) + Ornstein-Uhlenbeck noise (tau ~ 20 min) + episode offsets
  last price   F = index * exp(p) * (1 + tiny trade noise); the k-line closes are F
  premium_index  p + impact-price noise (bigger in thin hours)         basis_rate = F / index - 1
  mark         median(index * (1 + last funding * time-to-settlement share), index * (1 + 5-min mean of the
               premium index), F)  (the usual "fair price" marking of perpetuals)
  funding      every 8 h: P = linearly time-weighted mean of the minute premium indexes over the interval
               (later minutes weigh more), theoretical = P + clamp(0.01 % - P, -0.05 %, +0.05 %),
               actual = theoretical clamped to +-cap (0.3 % BTC/ETH, 0.75 % SOL)
  k-lines      open/close from F; high/low from a 10-step Brownian bridge inside the minute; spikes add wicks
  liquidations Poisson per minute, intensity rising with the size of the minute's move (capped at x8),
               `side` = the forced order's side (a long liquidated is a "sell"), price inside the minute's
               [low, high] and biased towards the extreme in the move's direction
  open interest log random walk with mean reversion + episode / look-alike offsets (forced closes, builds)
  depth        20 levels a side every `depth_every` minutes around F, spread and sizes varying; look-alike walls

Timestamps of the ticker-like tables (index, mark, premium, basis, open_interest) and of the book snapshots
carry a 0.1-2.5 s collection jitter after the minute; k-lines are stamped at the minute start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from scipy.signal import lfilter

TS = pl.Datetime("ms", "UTC")
START = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday; the data starts at 00:00 UTC
WARMUP = 480  # minutes simulated before the data so the first funding interval is complete
FUNDING_EVERY = 480
INTEREST = 0.0001
LEVELS = 20
SUB_STEPS = 10
BASELINE_MIN = 6 * 60  # no labelled episode in the first 6 hours
MARGIN = 60  # minutes kept free between items on a market
KAPPA_HUNT = 1.2  # OI falls by about this multiple of the liquidated amount in a hunt (some close voluntarily)


@dataclass(frozen=True)
class Profile:
    price: float
    tick: float
    daily_vol: float
    oi: float  # open interest, base units
    volume: float  # base units traded per minute on an ordinary minute
    liq_rate: float  # forced orders per minute on a quiet minute
    liq_median: float  # median forced order, base units
    premium_sd: float  # stationary sd of the OU premium
    premium_noise: float  # minute-to-minute impact-price noise of the premium index
    spread_ticks: float
    gap_ticks: float  # mean distance between book levels
    level_size: float  # median size at the best level
    move_scale: float  # how much larger moves are than on BTC
    funding_cap: float


PROFILES = {
    "BTCUSDT": Profile(64_000.0, 0.1, 0.028, 80_000.0, 120.0, 0.4, 0.1, 0.00015, 0.00005, 1.5, 2.5, 2.0, 1.0, 0.003),
    "ETHUSDT": Profile(3_100.0, 0.01, 0.035, 1_000_000.0, 1_500.0, 0.35, 2.0, 0.0002, 0.00007, 3.0, 3.0, 30.0, 1.3,
                       0.003),
    "SOLUSDT": Profile(150.0, 0.01, 0.05, 9_000_000.0, 20_000.0, 0.3, 40.0, 0.0003, 0.0001, 1.5, 1.5, 400.0, 1.8,
                       0.0075),
}

PATTERNS = ("funding_rate_manipulation", "liquidation_hunting", "forced_liquidation", "basis_manipulation",
            "position_concentration", "funding_rate_farming")
EPISODES_PER_3_DAYS = {"funding_rate_manipulation": 4, "liquidation_hunting": 5, "forced_liquidation": 3,
                       "basis_manipulation": 4, "position_concentration": 4, "funding_rate_farming": 2}
LOOKALIKES_PER_3_DAYS = {"news_move": 3, "organic_oi_growth": 3, "volatile_hour": 4, "mm_walls": 3}
# plus, always: one `trending_funding` market and one `thin_hours` stretch per market-day
REGIMES = ("trending_funding", "farming_day_funding")


@dataclass
class Item:
    """One injected episode (labelled) or look-alike (no label); times in data minutes (0 = data start)."""

    kind: str
    labelled: bool
    market: str
    start: int
    end: int
    params: dict
    episode_id: str = ""
    group: str = ""  # farming cycles of one day share a group
    found: bool | None = None
    touched_by: list[str] = field(default_factory=list)

    @property
    def start_dt(self) -> datetime:
        return START + timedelta(minutes=self.start)

    @property
    def end_dt(self) -> datetime:
        return START + timedelta(minutes=self.end)

    @property
    def regime(self) -> bool:
        return self.kind in REGIMES


@dataclass
class Generated:
    tables: dict[str, pl.DataFrame]
    labels: pl.DataFrame
    items: list[Item]
    days: int
    markets: tuple[str, ...]
    unplaced: list[str] = field(default_factory=list)  # requested items that found no free slot


# ---- helpers ----------------------------------------------------------------------------------------------

def lu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform draw."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def ui(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(rng.integers(lo, hi + 1))


def ou(rng: np.random.Generator, n: int, tau: float, sd: float) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck path sampled each minute."""
    a = math.exp(-1.0 / tau)
    shocks = rng.standard_normal(n) * sd * math.sqrt(1 - a * a)
    shocks[0] = rng.standard_normal() * sd
    return lfilter([1.0], [1.0, -a], shocks)


def smooth_step(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def trapezoid(n: int, start: float, ramp: float, hold: float, release: float) -> np.ndarray:
    """0 -> 1 over `ramp` minutes from `start`, 1 for `hold`, back to 0 over `release` (grid of n+1 points)."""
    t = np.arange(n + 1, dtype=float)
    up = smooth_step((t - start) / max(ramp, 1e-9))
    down = 1 - smooth_step((t - start - ramp - hold) / max(release, 1e-9))
    return np.minimum(up, down)


def settlements(days: int) -> list[int]:
    """Funding settlement minutes inside the data (00:00, 08:00, 16:00 UTC)."""
    return list(range(0, days * 1440, FUNDING_EVERY))


# ---- scheduling -------------------------------------------------------------------------------------------

class Schedule:
    """Busy intervals per market so items of different kinds never overlap (with MARGIN between)."""

    def __init__(self, markets, n: int) -> None:
        self.busy: dict[str, list[tuple[int, int]]] = {m: [] for m in markets}
        self.n = n

    def free(self, market: str, a: int, b: int, margin: int = MARGIN) -> bool:
        return a >= 0 and b < self.n and all(b + margin <= s or a >= e + margin for s, e in self.busy[market])

    def take(self, market: str, a: int, b: int) -> None:
        self.busy[market].append((a, b))


# ---- one market's latent state and its episode hooks ------------------------------------------------------

class MarketModel:
    """Arrays on the extended grid: index g = data minute + WARMUP; point arrays have L + 1 entries."""

    def __init__(self, market: str, days: int, rng: np.random.Generator) -> None:
        self.market, self.p, self.rng = market, PROFILES[market], rng
        self.n = days * 1440
        self.L = self.n + WARMUP
        L = self.L
        minutes = (np.arange(L) - WARMUP) % 1440
        hours = minutes / 60.0
        # intraday activity: quiet around 03-05 UTC, busiest 13-16 UTC
        self.activity = 1.0 + 0.35 * np.cos((hours - 14.5) / 24 * 2 * np.pi)
        self.vol_regime = np.exp(ou(rng, L, 360.0, 0.3))
        self.vol_mult = np.ones(L)  # episodes / look-alikes
        self.volume_mult = np.ones(L)
        self.volume_add = np.zeros(L)
        self.liq_mult = np.ones(L)
        self.thin_tails = np.zeros(L, dtype=bool)  # minutes whose shocks are clipped (turbulent, no outlier)
        self.vol_override = np.full(L, np.nan)  # volatility multiple replacing regime x episodes there
        self.index_shape = np.zeros(L + 1)  # log offsets
        self.prem_add = np.zeros(L + 1)
        self.regime_mean = np.zeros(L + 1)
        self.prem_noise_mult = np.ones(L + 1)
        self.oi_shape = np.zeros(L + 1)  # log offsets
        self.spread_mult = np.ones(L)
        self.depth_mult = {"bid": np.ones(L), "ask": np.ones(L)}
        self.walls: list[tuple[int, int, str, int, float]] = []  # g0, g1, side, level, factor
        self.wicks: list[tuple[int, int, float]] = []  # g minute, direction, extreme log offset vs open
        self.extra_liqs: list[dict] = []  # minute g, side, count, size_x, bias, tag

    def g(self, k: int) -> int:
        return k + WARMUP

    def shape(self, start: float, ramp: float, hold: float, release: float) -> np.ndarray:
        return trapezoid(self.L, start + WARMUP, ramp, hold, release)

    def step_to(self, start: float, ramp: float) -> np.ndarray:
        t = np.arange(self.L + 1, dtype=float)
        return smooth_step((t - start - WARMUP) / max(ramp, 1e-9))

    # ---- build everything ----------------------------------------------------------------------------------
    def build(self, depth_every: int) -> dict[str, pl.DataFrame]:
        rng, p, L = self.rng, self.p, self.L
        sigma = p.daily_vol / math.sqrt(1440)
        act = self.activity * np.where(np.isnan(self.vol_override), np.minimum(self.vol_regime * self.vol_mult, 5.0),
                                       self.vol_override)
        shocks = rng.standard_t(4, L) / math.sqrt(2.0)  # unit variance
        shocks[self.thin_tails] = np.clip(shocks[self.thin_tails], -2.5, 2.5)
        log_index = np.concatenate([[0.0], np.cumsum(shocks * sigma * act)]) + self.index_shape
        index = p.price * np.exp(log_index - log_index[WARMUP])
        mu0 = rng.uniform(-0.00005, 0.00015)
        prem = mu0 + self.regime_mean + ou(rng, L + 1, 20.0, p.premium_sd) + self.prem_add
        premium_index = prem + rng.standard_normal(L + 1) * p.premium_noise * self.prem_noise_mult
        last = index * np.exp(prem) * (1 + rng.standard_normal(L + 1) * 0.00003)
        last = np.round(last / p.tick) * p.tick
        basis = last / index - 1

        # funding: settle at every multiple of 480 on the extended grid after the warm-up
        weights = np.arange(1, FUNDING_EVERY + 1, dtype=float)
        funding_rows = []
        last_rate = np.full(L + 1, INTEREST)
        prev = INTEREST
        for gs in range(WARMUP, L + 1, FUNDING_EVERY):
            window = premium_index[gs - FUNDING_EVERY:gs]
            P = float(np.dot(window, weights) / weights.sum())
            theo = P + float(np.clip(INTEREST - P, -0.0005, 0.0005))
            actual = float(np.clip(theo, -p.funding_cap, p.funding_cap))
            last_rate[gs - FUNDING_EVERY:gs] = prev
            prev = actual
            if gs < L:
                funding_rows.append((gs - WARMUP, round(theo, 8), round(actual, 8)))
        last_rate[L] = prev
        self.funding_rows = funding_rows
        t = np.arange(L + 1)
        to_settle = (FUNDING_EVERY - ((t - WARMUP) % FUNDING_EVERY)) / FUNDING_EVERY
        price1 = index * (1 + last_rate * to_settle)
        ma5 = np.convolve(premium_index, np.ones(5) / 5, mode="full")[:L + 1]
        ma5[:4] = premium_index[:4]
        price2 = index * (1 + ma5)
        mark = np.median(np.vstack([price1, price2, last]), axis=0)

        # k-lines: open = last[g], close = last[g + 1]; high / low from a bridge inside the minute
        o, c = last[:-1], last[1:]
        sub_sd = sigma * act / math.sqrt(SUB_STEPS)
        steps = rng.standard_normal((L, SUB_STEPS)) * sub_sd[:, None]
        walk = np.cumsum(steps, axis=1)
        frac = np.arange(1, SUB_STEPS + 1) / SUB_STEPS
        bridge = walk - frac[None, :] * walk[:, -1:]
        path = o[:, None] * np.exp(np.log(c / o)[:, None] * frac[None, :] + bridge)
        high = np.maximum(np.maximum(o, c), path.max(axis=1))
        low = np.minimum(np.minimum(o, c), path.min(axis=1))
        for gm, direction, ext in self.wicks:
            extreme = o[gm] * math.exp(ext)
            if direction > 0:
                high[gm] = max(high[gm], extreme)
            else:
                low[gm] = min(low[gm], extreme)
        high = np.ceil(high / p.tick - 1e-9) * p.tick
        low = np.floor(low / p.tick + 1e-9) * p.tick
        high, low = np.maximum(high, np.maximum(o, c)), np.minimum(low, np.minimum(o, c))
        ret = np.log(c / o)
        z = ret / (sigma * self.activity)
        volume = p.volume * act * self.volume_mult * (1 + 0.25 * np.minimum(np.abs(z), 20)) \
            * np.exp(rng.normal(0, 0.35, L)) + self.volume_add

        # liquidations: background (intensity grows with the move, capped) plus episode bursts
        base = p.liq_rate / 2 * self.activity * self.liq_mult
        lam_sell = base * np.minimum(8.0, np.exp(0.35 * np.maximum(0.0, -z - 1.0)))
        lam_buy = base * np.minimum(8.0, np.exp(0.35 * np.maximum(0.0, z - 1.0)))
        liq_rows: list[tuple] = []  # g, second, side, price, amount, tag
        for side, lam in (("sell", lam_sell), ("buy", lam_buy)):
            counts = rng.poisson(lam)
            gms = np.repeat(np.arange(L), counts)
            bias = (1.5, 3.0) if side == "sell" else (3.0, 1.5)
            u = rng.beta(*bias, gms.size)
            prices = low[gms] + (high[gms] - low[gms]) * u
            amounts = p.liq_median * np.exp(rng.normal(0, 1.3, gms.size))
            secs = rng.uniform(0, 60, gms.size)
            liq_rows += [(int(a), float(b), side, float(cc), float(d), "") for a, b, cc, d in
                         zip(gms, secs, prices, amounts)]
        oi_liq = np.zeros(L + 1)
        for x in self.extra_liqs:
            gm, side, count = x["g"], x["side"], x["count"]
            if count <= 0:
                continue
            if side == "sell":  # lower end of the bar
                u = rng.beta(1.0, x["bias"], count)
            else:
                u = 1 - rng.beta(1.0, x["bias"], count)
            prices = low[gm] + (high[gm] - low[gm]) * u
            amounts = x["amounts"] if "amounts" in x else \
                p.liq_median * x["size_x"] * np.exp(rng.normal(0, 1.3, count))
            lo_s, hi_s = x.get("seconds", (0.0, 60.0))
            secs = rng.uniform(lo_s, hi_s, count)
            liq_rows += [(gm, float(s), side, float(pp), float(a), x["tag"]) for s, pp, a in
                         zip(secs, prices, amounts)]
            if x.get("oi_kappa"):
                oi_liq[gm + 1:] += x["oi_kappa"] * float(np.sum(amounts))
        self.liq_rows = liq_rows

        oi = p.oi * np.exp(ou(rng, L + 1, 1440.0, 0.03) + self.oi_shape) - oi_liq
        oi = oi * (1 + rng.standard_normal(L + 1) * 0.0002)

        # depth
        depth = self._depth(last, depth_every)

        # ---- frames (data minutes only) -------------------------------------------------------------------
        n = self.n
        sl = slice(WARMUP, WARMUP + n)
        base_ms = int(START.timestamp() * 1000)
        minute_ms = base_ms + np.arange(n, dtype=np.int64) * 60_000
        jitter = (rng.uniform(0.1, 2.5, n) * 1000).astype(np.int64)
        snap_ms = minute_ms + jitter

        def ticker(name: str, values: np.ndarray) -> pl.DataFrame:
            return pl.DataFrame({"market": self.market, "market_type": "futures",
                                 "created_at": snap_ms, name: values[sl].astype(float)}).with_columns(
                pl.col("created_at").cast(pl.Int64).cast(TS))

        tables = {
            "index": ticker("index_price", np.round(index, 6)),
            "mark": ticker("mark_price", np.round(mark, 6)),
            "premium": ticker("premium_index", np.round(premium_index, 8)),
            "basis": ticker("basis_rate", np.round(basis, 8)),
            "open_interest": ticker("open_interest_volume", np.round(oi, 4)),
        }
        tables["klines"] = pl.DataFrame({
            "market": self.market, "market_type": "futures", "created_at": minute_ms,
            "open": o[sl], "high": high[sl], "low": low[sl], "close": c[sl], "volume": np.round(volume[sl], 4),
        }).with_columns(pl.col("created_at").cast(TS))
        tables["funding"] = pl.DataFrame(
            {"market": self.market, "market_type": "futures",
             "funding_time": [base_ms + k * 60_000 for k, _, _ in funding_rows],
             "theoretical_funding_rate": [t for _, t, _ in funding_rows],
             "actual_funding_rate": [a for _, _, a in funding_rows]},
            schema={"market": pl.String, "market_type": pl.String, "funding_time": pl.Int64,
                    "theoretical_funding_rate": pl.Float64, "actual_funding_rate": pl.Float64},
        ).with_columns(pl.col("funding_time").cast(TS))
        rows = [r for r in liq_rows if WARMUP <= r[0] < WARMUP + n]
        rows.sort(key=lambda r: (r[0], r[1]))
        tables["liquidations"] = pl.DataFrame(
            {"market": self.market, "market_type": "futures",
             "created_at": [base_ms + (r[0] - WARMUP) * 60_000 + int(r[1] * 1000) for r in rows],
             "side": [r[2] for r in rows], "price": [r[3] for r in rows], "amount": [round(r[4], 6) for r in rows]},
            schema={"market": pl.String, "market_type": pl.String, "created_at": pl.Int64, "side": pl.String,
                    "price": pl.Float64, "amount": pl.Float64},
        ).with_columns(pl.col("created_at").cast(TS))
        tables["depth"] = depth
        self.series = {"index": index, "last": last, "mark": mark, "premium": premium_index, "oi": oi,
                       "high": high, "low": low}
        return tables

    def _depth(self, last: np.ndarray, every: int) -> pl.DataFrame:
        rng, p = self.rng, self.p
        snaps = np.arange(WARMUP, WARMUP + self.n, every)
        S = snaps.size
        mid = last[snaps]
        spread = np.maximum(1, np.round(p.spread_ticks * self.spread_mult[snaps]
                                        * np.exp(rng.normal(0, 0.35, S)))).astype(float)
        gaps = 1 + rng.poisson(max(p.gap_ticks - 1, 0.01) * np.sqrt(self.spread_mult[snaps])[:, None],
                               (S, LEVELS - 1))
        offs = np.concatenate([np.zeros((S, 1)), np.cumsum(gaps, axis=1)], axis=1)
        best_bid = np.floor((mid - spread * p.tick / 2) / p.tick) * p.tick
        best_ask = best_bid + spread * p.tick
        level_shape = (1 + 0.08 * np.arange(LEVELS))[None, :]
        out = []
        base_ms = int(START.timestamp() * 1000)
        stamp = base_ms + (snaps - WARMUP).astype(np.int64) * 60_000 + (rng.uniform(0.1, 2.5, S) * 1000).astype(np.int64)
        for side in ("bid", "ask"):
            prices = best_bid[:, None] - offs * p.tick if side == "bid" else best_ask[:, None] + offs * p.tick
            sizes = p.level_size * level_shape * np.exp(rng.normal(0, 0.7, (S, LEVELS))) \
                * self.depth_mult[side][snaps][:, None]
            for g0, g1, wside, level, factor in self.walls:
                if wside == side:
                    hit = (snaps >= g0) & (snaps < g1)
                    sizes[hit, level] *= factor
            out.append(pl.DataFrame({
                "market": self.market, "market_type": "futures",
                "updated_at": np.repeat(stamp, LEVELS), "side": side,
                "level": np.tile(np.arange(LEVELS), S).astype(np.int64),
                "price": np.round(prices.ravel(), 8), "amount": np.round(sizes.ravel(), 6)}))
        return pl.concat(out).with_columns(pl.col("updated_at").cast(TS)).sort("updated_at", "side", "level")

    # ---- episodes --------------------------------------------------------------------------------------
    def funding_manipulation(self, k_settle: int, par: dict) -> tuple[int, int]:
        d, disp = par["direction"], par["displacement_bps"] / 1e4
        ramp, push = par["ramp_minutes"], par["push_minutes"]
        start = k_settle - push - ramp
        hold = push + par["release_delay_minutes"]
        shp = self.shape(start, ramp, hold, par["release_minutes"])
        noise = 1 + 0.15 * self.rng.standard_normal(self.L + 1)
        mine = d * disp * (1 - par["index_follow"]) * shp * noise
        self.prem_add += mine
        self.index_shape += d * disp * par["index_follow"] * shp
        g0, g1 = self.g(start), self.g(k_settle + par["release_delay_minutes"] + par["release_minutes"])
        self.volume_mult[g0:g1] *= par["volume_mult"]
        self.oi_shape += par["oi_change_pct"] / 100 * self.step_to(start, ramp + push)
        if par["book_support"]:
            self.depth_mult["bid" if d > 0 else "ask"][g0:g1] *= 2.5
        # how far the settled rate moves: the share of the interval's weights times the offset
        weights = np.arange(1, FUNDING_EVERY + 1, dtype=float)
        gs = self.g(k_settle)
        add = mine[gs - FUNDING_EVERY:gs]
        par["funding_shift_bps"] = round(abs(float(np.dot(add, weights) / weights.sum())) * 1e4, 2)
        return start, k_settle + par["release_delay_minutes"] + par["release_minutes"]

    def liquidation_hunt(self, k: int, par: dict, tag: str) -> tuple[int, int]:
        rng = self.rng
        d, move = par["direction"], par["move_pct"] / 100
        rise, rev = par["rise_minutes"], par["revert_minutes"]
        side = "sell" if d < 0 else "buy"
        beta = par["index_follow"]
        if par["form"] == "wick":
            # the spike happens inside minute k: its close keeps (1 - in_minute_revert) of it, then reverts
            kept = move * (1 - par["in_minute_revert"])
            residual = min(kept, move * (1 - par["revert_share"]))
            t = np.arange(self.L + 1, dtype=float) - self.g(k) - 1
            path = np.where(t < 0, 0.0, kept + (residual - kept) * smooth_step(t / rev))
            peak_g = [self.g(k)]
        else:
            t = np.arange(self.L + 1, dtype=float) - self.g(k)
            up = smooth_step(t / rise) * move * 0.85  # the extreme itself is intra-minute (a wick)
            down = move * 0.85 + (move * (1 - par["revert_share"]) - move * 0.85) * smooth_step((t - rise) / rev)
            path = np.where(t <= rise, up, down)
            path[t < 0] = 0.0
            peak_g = [self.g(k) + i for i in range(rise)]
        # the index takes `index_follow` of the move at once and, by the end of the reversion, whatever part
        # of it was not reverted (the market re-priced); the premium carries the rest and goes back to normal
        after_peak = np.arange(self.L + 1, dtype=float) - (peak_g[-1] + 1)
        residual_end = float(path[-1])
        index_part = beta * path + (1 - beta) * residual_end * smooth_step(after_peak / rev)
        self.prem_add += d * (path - index_part)
        self.index_shape += d * index_part
        # the extreme, relative to the extreme minute's open, becomes that minute's wick (applied in build)
        ext_g = peak_g[-1]
        self.wicks.append((ext_g, d, d * (move - path[ext_g])))
        # liquidation burst at the spike minutes (mostly the last one = the extreme)
        total = par["liquidations"]
        share = np.array([0.5 ** (len(peak_g) - 1 - i) for i in range(len(peak_g))])
        share = share / share.sum()
        counts = rng.multinomial(total, share)
        counter = round(total * par["counter_side_share"])
        for gm, cnt in zip(peak_g, counts):
            secs = (20.0, 50.0) if par["form"] == "wick" else (0.0, 60.0)
            self.extra_liqs.append({"g": gm, "side": side, "count": int(cnt), "size_x": par["liq_size_x"],
                                    "bias": 5.0, "tag": tag, "seconds": secs, "oi_kappa": KAPPA_HUNT})
        self.extra_liqs.append({"g": peak_g[-1] + 1, "side": "buy" if side == "sell" else "sell", "count": counter,
                                "size_x": 1.0, "bias": 2.0, "tag": tag})
        g0, g1 = peak_g[0], peak_g[-1] + 1
        self.volume_mult[g0:g1 + 1] *= par["volume_mult"]
        self.vol_mult[g1:g1 + rev] *= 1.5
        if par["book_pull"]:
            hunted = "bid" if d < 0 else "ask"
            self.depth_mult[hunted][g0 - 3:g1] *= par["pull_factor"]
            self.spread_mult[g0:g1 + 2] *= 3.0
        return k - 1, k + rise + rev

    def cascade(self, k: int, par: dict, tag: str) -> tuple[int, int]:
        rng, p = self.rng, self.p
        d, move, dur = par["direction"], par["move_pct"] / 100, par["duration_minutes"]
        t = np.arange(self.L + 1, dtype=float) - self.g(k)
        prog = np.clip(t / dur, 0, 1) ** par["acceleration"]
        retr = smooth_step((t - dur) / par["retrace_minutes"]) * par["retrace_share"]
        total_path = move * (prog - retr)
        alpha = par["index_follow"]
        # the perp leads; arbitrage closes the gap within 3-20 min after the cascade
        gap = (1 - alpha) * move * prog * (1 - smooth_step((t - dur) / rng.uniform(3, 20)))
        self.index_shape += d * (total_path - gap)
        self.prem_add += d * gap
        g0, g1 = self.g(k), self.g(k + dur)
        after = ui(rng, 60, 120)
        self.vol_mult[g1:g1 + after] *= par["after_vol_mult"]
        self.volume_mult[g0:g1] *= par["volume_mult"]
        self.volume_mult[g1:g1 + after] *= 1 + (par["volume_mult"] - 1) * 0.3
        hit = "bid" if d < 0 else "ask"
        self.depth_mult[hit][g0:g1] *= par["book_thinning"]
        self.spread_mult[g0:g1] *= par["spread_mult"]
        # OI falls by oi_drop along the cascade; a `liquidated_share` of it is forced (rows below)
        drop = par["oi_drop_pct"] / 100
        self.oi_shape += math.log(1 - drop) * prog
        liq_total = drop * p.oi * par["liquidated_share"]
        inc = np.diff(prog[g0:g1 + 1])
        weight = inc / inc.sum()
        counts = rng.multinomial(par["liquidations"], weight)
        amounts_all = np.exp(rng.normal(0, 1.2, par["liquidations"]))
        amounts_all = amounts_all / amounts_all.sum() * liq_total
        side = "sell" if d < 0 else "buy"
        pos = 0
        for i, cnt in enumerate(counts):
            if cnt:
                self.extra_liqs.append({"g": g0 + i, "side": side, "count": int(cnt), "bias": 2.5, "tag": tag,
                                        "amounts": amounts_all[pos:pos + cnt]})
                pos += cnt
        self.liq_mult[g1:g1 + after] *= 2.0  # stragglers after
        return k, k + dur

    def basis_manipulation(self, k: int, par: dict) -> tuple[int, int]:
        d, disp = par["direction"], par["displacement_bps"] / 1e4
        ramp, hold, rel = par["ramp_minutes"], par["hold_minutes"], par["release_minutes"]
        shp = self.shape(k, ramp, hold, rel)
        wobble = 1 + par["hold_noise"] * ou(self.rng, self.L + 1, 4.0, 1.0)
        self.prem_add += d * disp * shp * wobble
        g0, g1 = self.g(k), self.g(k + ramp + hold + rel)
        self.volume_mult[g0:g0 + ramp + 1] *= par["volume_mult"]
        self.volume_mult[g0 + ramp + hold:g1 + 1] *= par["volume_mult"]
        self.oi_shape += par["oi_change_pct"] / 100 * self.shape(k, ramp, hold + rel + 30, 60)
        if par["book_support"]:
            self.depth_mult["bid" if d > 0 else "ask"][g0:g1] *= par["book_factor"]
        return k, k + ramp + hold + rel

    def concentration(self, k: int, par: dict) -> tuple[int, int]:
        rng, p = self.rng, self.p
        b = par["build_minutes"]
        jump = math.log(1 + par["oi_jump_pct"] / 100)
        t = np.arange(self.L + 1, dtype=float) - self.g(k)
        built = np.clip(t / b, 0, 1)
        decay_len = rng.uniform(120, 480)
        kept = 1 - (1 - par["retained_share"]) * smooth_step((t - b) / decay_len)
        self.oi_shape += jump * built * kept
        d = par["direction"]
        push = par["premium_push_bps"] / 1e4
        self.prem_add += d * push * built * (1 - smooth_step((t - b) / rng.uniform(10, 30)))
        self.index_shape += d * par["index_push_pct"] / 100 * built
        g0 = self.g(k)
        self.volume_add[g0:g0 + b] += par["oi_jump_pct"] / 100 * p.oi * par["volume_x_position"] / b
        return k, k + b

    def farming_cycle(self, k_settle: int, par: dict) -> tuple[int, int]:
        p = self.p
        ob, om = par["open_before_minutes"], par["open_minutes"]
        ca, cm = par["close_after_minutes"], par["close_minutes"]
        start = k_settle - ob
        shp = self.shape(start, om, ob - om + ca, cm)
        self.oi_shape += math.log(1 + par["position_pct"] / 100) * shp
        # the farmer takes the side that receives funding: it leans against the premium a little
        self.prem_add += -par["funding_sign"] * par["premium_push_bps"] / 1e4 * shp
        g0 = self.g(start)
        size = par["position_pct"] / 100 * p.oi
        self.volume_add[g0:g0 + om] += size / om
        gc = self.g(k_settle + ca)
        self.volume_add[gc:gc + cm] += size / cm
        return start, k_settle + ca + cm

    # ---- look-alikes -------------------------------------------------------------------------------------
    def news_move(self, k: int, par: dict) -> tuple[int, int]:
        rng = self.rng
        d, move, m = par["direction"], par["move_pct"] / 100, par["minutes"]
        t = np.arange(self.L + 1, dtype=float) - self.g(k)
        jump = smooth_step(t / m) * move
        drift = (par["retained_share"] - 1) * move * smooth_step((t - m) / rng.uniform(30, 180))
        self.index_shape += d * (jump + drift)
        blip = par["premium_blip_bps"] / 1e4
        self.prem_add += d * blip * self.shape(k, 1, m, rng.uniform(3, 10))
        g0 = self.g(k)
        after = ui(rng, 60, 180)
        self.vol_mult[g0 + m:g0 + m + after] *= par["after_vol_mult"]
        self.volume_mult[g0:g0 + m + 10] *= par["volume_mult"]
        self.oi_shape += par["oi_change_pct"] / 100 * self.step_to(k, m + 30)
        return k, k + m + 30

    def trending_funding(self, k: int, par: dict) -> tuple[int, int]:
        mean = par["direction"] * par["premium_mean_bps"] / 1e4
        self.regime_mean += mean * self.step_to(k, par["ramp_hours"] * 60)
        return k, self.n - 1

    def farming_day_funding(self, k: int, end: int, par: dict) -> tuple[int, int]:
        mean = par["funding_sign"] * (par["funding_level_pct"] / 100 + 0.0005)
        ramp = par["ramp_hours"] * 60
        self.regime_mean += mean * self.shape(k, ramp, end - k - ramp, 180)
        return k, min(end + 180, self.n - 1)

    def organic_oi(self, k: int, par: dict) -> tuple[int, int]:
        mins = int(par["hours"] * 60)
        t = np.arange(self.L + 1, dtype=float) - self.g(k)
        logistic = 1 / (1 + np.exp(-(t / mins - 0.5) * 10))
        self.oi_shape += math.log(1 + par["oi_growth_pct"] / 100) * logistic
        g0 = self.g(k)
        self.volume_mult[g0:g0 + mins] *= 1.2
        self.regime_mean += par["premium_lean_bps"] / 1e4 * self.shape(k, mins / 3, mins / 3, mins / 3)
        return k, k + mins

    def volatile_hour(self, k: int, par: dict) -> tuple[int, int]:
        m = par["minutes"]
        g0 = self.g(k)
        # an ordinary turbulent hour: x2-3 the usual volatility (whatever the regime), no outsized minute
        self.vol_override[g0:g0 + m] = par["vol_mult"]
        self.thin_tails[g0:g0 + m] = True
        self.liq_mult[g0:g0 + m] *= par["liq_mult"]
        self.volume_mult[g0:g0 + m] *= 1 + (par["vol_mult"] - 1) * 0.5
        return k, k + m

    def mm_walls(self, k: int, par: dict) -> tuple[int, int]:
        rng = self.rng
        mins = int(par["hours"] * 60)
        g = self.g(k)
        while g < self.g(k + mins):
            for _ in range(ui(rng, 1, par["max_concurrent"])):
                life = ui(rng, 1, par["max_life_minutes"])
                self.walls.append((g, g + life, str(rng.choice(["bid", "ask"])), ui(rng, 1, 15),
                                   par["wall_x"] * rng.uniform(0.7, 1.3)))
            g += ui(rng, 1, par["max_life_minutes"])
        return k, k + mins

    def thin_hours(self, k: int, par: dict) -> tuple[int, int]:
        mins = int(par["hours"] * 60)
        g0, g1 = self.g(k), self.g(k + mins)
        self.spread_mult[g0:g1] *= par["spread_mult"]
        for side in ("bid", "ask"):
            self.depth_mult[side][g0:g1] *= par["depth_mult"]
        self.prem_noise_mult[g0:g1] *= par["premium_noise_mult"]
        self.volume_mult[g0:g1] *= par["volume_mult"]
        return k, k + mins


# ---- parameter draws (ranges: see benchmarks/eval_futures_independent.py) -----------------------------------

def draw(kind: str, rng: np.random.Generator, profile: Profile) -> dict:
    sign = int(rng.choice([-1, 1]))
    if kind == "funding_rate_manipulation":
        return {"displacement_bps": round(lu(rng, 8, 150), 1), "push_minutes": round(lu(rng, 3, 60)), "ramp_minutes": ui(rng, 1, 5), "release_delay_minutes": ui(rng, 0, 3),
                "release_minutes": ui(rng, 1, 10), "direction": sign, "index_follow": round(rng.uniform(0, 0.1), 3),
                "volume_mult": round(rng.uniform(1.3, 4), 2), "oi_change_pct": round(rng.uniform(0, 3), 2),
                "book_support": bool(rng.random() < 0.5)}
    if kind == "liquidation_hunting":
        form = "wick" if rng.random() < 0.5 else "multi_minute"
        return {"move_pct": round(lu(rng, 0.5, 5) * profile.move_scale, 2), "form": form,
                "rise_minutes": 0 if form == "wick" else ui(rng, 1, 4), "in_minute_revert": round(rng.uniform(0.5, 1.0), 2),
                "revert_share": round(rng.uniform(0.6, 1.0), 2), "revert_minutes": ui(rng, 1, 15),
                "liquidations": round(lu(rng, 8, 200)), "liq_size_x": round(rng.uniform(1.5, 6), 2),
                "counter_side_share": round(rng.uniform(0, 0.1), 3), "index_follow": round(rng.uniform(0, 0.3), 2),
                "book_pull": bool(rng.random() < 0.5), "pull_factor": round(rng.uniform(0.2, 0.7), 2),
                "direction": -1 if rng.random() < 0.6 else 1, "volume_mult": round(rng.uniform(3, 12), 1)}
    if kind == "forced_liquidation":
        return {"move_pct": round(min(25.0, lu(rng, 1.5, 10) * profile.move_scale), 2),
                "duration_minutes": round(lu(rng, 3, 30)), "liquidations": round(lu(rng, 40, 800)),
                "oi_drop_pct": round(lu(rng, 2, 15), 2), "liquidated_share": round(rng.uniform(0.3, 0.9), 2),
                "index_follow": round(rng.uniform(0.7, 0.95), 2), "retrace_share": round(rng.uniform(0, 0.3), 2),
                "retrace_minutes": ui(rng, 30, 120), "direction": -1 if rng.random() < 0.7 else 1,
                "acceleration": round(rng.uniform(1.2, 2.5), 2), "after_vol_mult": round(rng.uniform(1.3, 2.5), 2),
                "volume_mult": round(rng.uniform(3, 10), 1), "book_thinning": round(rng.uniform(0.3, 0.7), 2),
                "spread_mult": round(rng.uniform(1.5, 4), 2)}
    if kind == "basis_manipulation":
        return {"displacement_bps": round(lu(rng, 10, 150), 1), "hold_minutes": round(lu(rng, 5, 60)),
                "ramp_minutes": ui(rng, 1, 10), "release_minutes": ui(rng, 1, 10), "direction": sign,
                "hold_noise": round(rng.uniform(0.05, 0.25), 2), "volume_mult": round(rng.uniform(1.2, 3), 2),
                "oi_change_pct": round(rng.uniform(0, 3), 2), "book_support": bool(rng.random() < 0.5),
                "book_factor": round(rng.uniform(2, 8), 1)}
    if kind == "position_concentration":
        return {"oi_jump_pct": round(lu(rng, 3, 25), 2), "build_minutes": round(lu(rng, 2, 20)),
                "retained_share": round(rng.uniform(0.7, 1.0), 2), "direction": sign,
                "premium_push_bps": round(rng.uniform(0, 8), 1), "index_push_pct": round(rng.uniform(0, 0.3), 3),
                "volume_x_position": round(rng.uniform(1, 2), 2)}
    if kind == "funding_rate_farming":
        before = ui(rng, 5, 45)
        return {"funding_level_pct": round(lu(rng, 0.05, 0.3), 3), "funding_sign": 1 if rng.random() < 0.8 else -1,
                "cycles": ui(rng, 2, 3), "position_pct": round(lu(rng, 1, 10), 2),
                "open_before_minutes": before, "open_minutes": ui(rng, 1, min(8, before)),
                "close_after_minutes": ui(rng, 0, 15), "close_minutes": ui(rng, 1, 8),
                "premium_push_bps": round(rng.uniform(0, 3), 1), "ramp_hours": round(rng.uniform(1, 3), 1)}
    if kind == "news_move":
        return {"move_pct": round(lu(rng, 1.5, 8) * profile.move_scale, 2), "minutes": ui(rng, 1, 5),
                "direction": sign, "premium_blip_bps": round(rng.uniform(0, 8), 1),
                "retained_share": round(rng.uniform(0.6, 1.1), 2), "oi_change_pct": round(rng.uniform(-3, 3), 2),
                "after_vol_mult": round(rng.uniform(1.5, 3), 2), "volume_mult": round(rng.uniform(3, 10), 1)}
    if kind == "trending_funding":
        return {"premium_mean_bps": round(lu(rng, 5, 30), 1), "direction": 1 if rng.random() < 0.8 else -1,
                "ramp_hours": round(rng.uniform(2, 8), 1)}
    if kind == "organic_oi_growth":
        return {"oi_growth_pct": round(rng.uniform(5, 20), 1), "hours": round(rng.uniform(2, 6), 1),
                "premium_lean_bps": round(rng.uniform(0, 4), 1)}
    if kind == "volatile_hour":
        return {"minutes": ui(rng, 45, 90), "vol_mult": round(rng.uniform(2, 3), 2),
                "liq_mult": round(rng.uniform(2, 4), 2)}
    if kind == "mm_walls":
        return {"hours": round(rng.uniform(1, 3), 1), "wall_x": round(rng.uniform(8, 40), 1),
                "max_life_minutes": ui(rng, 1, 8), "max_concurrent": ui(rng, 1, 3)}
    if kind == "thin_hours":
        return {"hours": round(rng.uniform(1, 3), 1), "spread_mult": round(rng.uniform(3, 8), 1),
                "depth_mult": round(rng.uniform(0.2, 0.5), 2), "premium_noise_mult": round(rng.uniform(1.5, 2.5), 2),
                "volume_mult": round(rng.uniform(0.3, 0.6), 2)}
    raise ValueError(kind)


HOOKS = {"basis_manipulation": "basis_manipulation", "position_concentration": "concentration",
         "news_move": "news_move", "organic_oi_growth": "organic_oi", "volatile_hour": "volatile_hour",
         "mm_walls": "mm_walls"}


def _duration(kind: str, par: dict) -> int:
    """Minutes an item occupies (for scheduling), from its parameters."""
    return {
        "liquidation_hunting": lambda: par["rise_minutes"] + par["revert_minutes"] + 2,
        "forced_liquidation": lambda: par["duration_minutes"],
        "basis_manipulation": lambda: par["ramp_minutes"] + par["hold_minutes"] + par["release_minutes"],
        "position_concentration": lambda: par["build_minutes"],
        "news_move": lambda: par["minutes"] + 30,
        "organic_oi_growth": lambda: int(par["hours"] * 60),
        "volatile_hour": lambda: par["minutes"],
        "mm_walls": lambda: int(par["hours"] * 60),
        "thin_hours": lambda: int(par["hours"] * 60),
    }[kind]()


# ---- one set of markets --------------------------------------------------------------------------------------

def generate(seed: int, days: int = 3, markets: tuple[str, ...] = tuple(PROFILES), clean: bool = False,
             depth_every: int = 1, episode_scale: float = 1.0) -> Generated:
    """Tables for `markets` over `days` days, their labels and the injected items.

    clean=True: no episode at all (look-alikes and regimes still there, as on any ordinary market-day)."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    models = {m: MarketModel(m, days, np.random.default_rng(rng.integers(2**63))) for m in markets}
    sched = Schedule(markets, n)
    items: list[Item] = []
    unplaced: list[str] = []
    settle = settlements(days)
    scale = days / 3 * episode_scale

    def count(base: int) -> int:
        return max(1, round(base * scale))

    def add(kind, labelled, market, a, b, par, group="") -> Item:
        item = Item(kind, labelled, market, int(a), int(b), par, group=group)
        items.append(item)
        if not item.regime:
            sched.take(market, int(a), int(b))
        return item

    # regimes: a market where funding stays elevated for days because of organic demand
    trend_market = str(rng.choice(markets))
    par = draw("trending_funding", rng, PROFILES[trend_market])
    k = ui(rng, 2 * 60, int(n * 0.35))
    a, b = models[trend_market].trending_funding(k, par)
    add("trending_funding", False, trend_market, a, b, par)

    # funding farming: a day of extreme funding on one market, 2-3 settlements farmed in a row
    if not clean:
        for i in range(count(EPISODES_PER_3_DAYS["funding_rate_farming"])):
            for _ in range(200):
                market = str(rng.choice(markets))
                par = draw("funding_rate_farming", rng, PROFILES[market])
                first = int(rng.choice([s for s in settle if s >= BASELINE_MIN + 600]))
                cycles = [first + j * FUNDING_EVERY for j in range(par["cycles"])]
                if cycles[-1] + 30 >= n:
                    continue
                spans = [(s - par["open_before_minutes"], s + par["close_after_minutes"] + par["close_minutes"])
                         for s in cycles]
                if not all(sched.free(market, a, b) for a, b in spans):
                    continue
                if any(it.kind == "farming_day_funding" and it.market == market for it in items):
                    continue
                group = f"farm{i}"
                regime_start = max(0, first - int(rng.uniform(6, 12) * 60))
                models[market].farming_day_funding(regime_start, cycles[-1] + 60, par)
                add("farming_day_funding", False, market, regime_start, min(cycles[-1] + 240, n - 1),
                    {"funding_level_pct": par["funding_level_pct"], "funding_sign": par["funding_sign"],
                     "ramp_hours": par["ramp_hours"], "release_from_minute": cycles[-1] + 60}, group)
                for j, s in enumerate(cycles):
                    a, b = models[market].farming_cycle(s, par)
                    add("funding_rate_farming", True, market, a, b, {**par, "cycle": j + 1}, group)
                break
            else:
                unplaced.append("funding_rate_farming")

        # funding-rate manipulation: before a settlement
        for _ in range(count(EPISODES_PER_3_DAYS["funding_rate_manipulation"])):
            for _ in range(200):
                market = str(rng.choice(markets))
                par = draw("funding_rate_manipulation", rng, PROFILES[market])
                s = int(rng.choice(settle))
                a = s - par["push_minutes"] - par["ramp_minutes"]
                b = s + par["release_delay_minutes"] + par["release_minutes"]
                if a < BASELINE_MIN or not sched.free(market, a, b):
                    continue
                a, b = models[market].funding_manipulation(s, par)
                add("funding_rate_manipulation", True, market, a, b, par)
                break
            else:
                unplaced.append("funding_rate_manipulation")

    # look-alikes that run for hours first (thin hours: one a market-day, at night)
    for market in markets:
        for day in range(days):
            par = draw("thin_hours", rng, PROFILES[market])
            dur = _duration("thin_hours", par)
            for _ in range(200):
                a = day * 1440 + ui(rng, 0, 7 * 60)
                if sched.free(market, a, a + dur, 30):
                    add("thin_hours", False, market, *models[market].thin_hours(a, par), par)
                    break
            else:
                unplaced.append("thin_hours")

    def place(kind: str, labelled: bool, lo: int) -> None:
        for _ in range(300):
            market = str(rng.choice(markets))
            par = draw(kind, rng, PROFILES[market])
            dur = _duration(kind, par)
            a = ui(rng, lo, n - dur - 30)
            b = a + dur
            if kind == "basis_manipulation" and any(s - 45 < b and a < s + 45 for s in settle + [n]):
                continue
            if not sched.free(market, a, b):
                continue
            model = models[market]
            if kind == "liquidation_hunting":
                s, e = model.liquidation_hunt(a + 1, par, f"hunt{len(items)}")
            elif kind == "forced_liquidation":
                s, e = model.cascade(a, par, f"casc{len(items)}")
            else:
                s, e = getattr(model, HOOKS[kind])(a, par)
            add(kind, labelled, market, s, e, par)
            return
        unplaced.append(kind)

    for kind in ("organic_oi_growth", "mm_walls"):
        for _ in range(count(LOOKALIKES_PER_3_DAYS[kind])):
            place(kind, False, 60)
    if not clean:
        for kind in ("forced_liquidation", "liquidation_hunting", "basis_manipulation", "position_concentration"):
            for _ in range(count(EPISODES_PER_3_DAYS[kind])):
                place(kind, True, BASELINE_MIN)
    for kind in ("news_move", "volatile_hour"):
        for _ in range(count(LOOKALIKES_PER_3_DAYS[kind])):
            place(kind, False, 120)

    per_market = [models[m].build(depth_every) for m in markets]
    tables = {name: pl.concat([t[name] for t in per_market]).sort(
        "market", "updated_at" if name == "depth" else "funding_time" if name == "funding" else "created_at")
        for name in per_market[0]}
    items.sort(key=lambda it: (it.start, it.market))
    n_lab = 0
    for it in items:
        if it.labelled:
            n_lab += 1
            it.episode_id = f"fx{seed}-{n_lab:03d}"
        else:
            it.episode_id = f"fx{seed}-look-{it.kind}-{it.market}-{it.start}"
    labels = pl.DataFrame(
        [(it.episode_id, it.kind, it.market, "", it.start_dt, it.end_dt) for it in items if it.labelled],
        schema={"episode_id": pl.String, "pattern": pl.String, "symbol": pl.String, "user_ids": pl.String,
                "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")}, orient="row")
    return Generated(tables, labels, items, days, tuple(markets), unplaced)
