"""Held-out labelled perpetual-futures markets, written from the public definitions of each abuse.

Independent of the project's futures detectors and of its other futures generators: nothing here is taken
from them. One latent process per market drives every table, so the tables agree with each other:

  index       spot index: GARCH(1,1)-like minute returns (Student-t shocks, persistence 0.995), Poisson jumps,
              intraday volatility seasonality, plus the index paths of news moves / sell-offs / episodes
  perp last   index x (1 + basis); basis = slow organic level (+ a multi-day funding trend on some markets)
              + beta x order-flow imbalance (AR(1), correlated with index shocks) + AR(1) noise (noisier on the
              small cap's thin night hours) + the perp-vs-index paths of episodes
  klines      1-minute bars of the perp (open = previous close), intraminute range from the volatility state,
              widened to every wick and every liquidation printed in the minute; volume = activity x volatility
              x |imbalance| + episode volume + liquidations
  depth       20 levels a side each minute around the last price (last trade at the touch), sizes by level x
              liquidity (seasonal, thinner in volatile minutes, thinned by hunters / cascades), market-maker walls
  premium     Binance-style: (max(0, impact bid - index) - max(0, index - impact ask)) / index, impact prices
              walked in the depth table for the market's impact notional
  mark        median(index x (1 + last funding x time left), index + 30-min MA of (mid - index), last price)
  funding     premium averaged over the interval with weights 1..n (later minutes weigh more), plus
              clamp(interest - premium, +-0.05 %); the actual rate clamped to the market's cap. BTC / ETH /
              DOGE settle 8-hourly (00, 08, 16 UTC), ABCUSDT 4-hourly (00, 04, ..., 20 UTC)
  open int.   log random walk + daily seasonality (peak mid-afternoon UTC) + episode / look-alike changes
              - background liquidations; snapshots with 0-4 s jitter and ~0.3 % missing minutes
  liquid.     background: Poisson, intensity from the volatility state and the minute's move, side mostly
              against the move; episodes add their own bursts at their own prices

Markets: BTCUSDT (major), ETHUSDT, DOGEUSDT (mid cap), ABCUSDT (made-up thin small cap, thin nights, 4-hourly
funding). Episode sizes are drawn over wide ranges (subtle to blatant) in BTC units and scaled per market
(`move_scale` for price moves, `dev_scale` for basis deviations).

Labelled episodes (market level, user_ids ""):
  funding_rate_manipulation  perp pushed +-6..80 bps (x dev_scale) away from the index starting 8-120 min before a
                             settlement, held through it, released 1-20 min after; index follows 0-15 %
  liquidation_hunting        forceful move 0.3-2.5 % (x move_scale) into a liquidation cluster (a 1-minute wick,
                             a fast V over 1-4 min or a slower one over 4-10 min), a burst of 8-250 forced orders
                             worth 0.05-2 % of open interest at the cluster, 60-100 % reverted within 0-15 min
  forced_liquidation         2-8 waves of liquidations in one direction over 6-60 min, 1.5-8 % (x move_scale)
                             total, open interest down 2-20 %, index follows 50-95 % with 0-3 min lag, at most a
                             25 % retrace over the next 20-90 min
  basis_manipulation         perp held +-8..100 bps (x dev_scale) from the index for 4-60 min, at least an hour
                             away from any settlement, index follows 0-10 %, then released
  position_concentration     open interest +2.5..30 % within 2-30 min in 1-10 clips, and it stays; small price impact
  funding_rate_farming       on a market whose funding is trending to extremes (only at settlements where the
                             regime's expected rate is >= 0.05 % per interval), open interest +1..12 % in the 5-60
                             min before the settlement, 80-100 % of it closed within 0-55 min after

Legitimate look-alikes (no label): news moves (index and perp together, the perp a fraction of a minute ahead,
some liquidations, OI growth after), multi-day trending funding (2 markets a run; premium 5 bps dead band + 5..30
bps x sqrt(dev_scale) at the peak, so the rate is extreme), organic OI growth / decline over 3-10 h, volatile hours with extra
liquidations both ways, market-maker walls refreshed every 1-10 min, the small cap's thin nights (21-04 UTC),
and spot-led sell-offs (the index falls 2.5-7 % x move_scale first, the perp follows a fraction of a minute later
and liquidates longs, OI drops, 0-40 % rebound over 1-3 h).

Liquidations of hunts print at the cluster's price level (fixed before the move); those of cascades, news moves
and sell-offs print inside their own minute's bar. Every liquidation lies inside its kline's [low, high].
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

TS = pl.Datetime("ms", "UTC")
LABEL_DTYPE = pl.Datetime("us", "UTC")
DAY = 1440
WARMUP = 480          # minutes simulated before the data start (funding of the first settlement, GARCH burn-in)
BASELINE = 360        # no episode or look-alike in the first 6 hours of a run
MARGIN = 90           # minutes kept free between two items' effects on one market
DEPTH_LEVELS = 20
FUNDING_DEADBAND_BPS = 5.0   # clamp(interest - premium, +-0.05 %)
EXTREME_FUNDING_BPS = 5.0    # farming needs an expected funding rate of at least 0.05 % per interval
MISSING_OI_SHARE = 0.003

PATTERNS = ("funding_rate_manipulation", "liquidation_hunting", "forced_liquidation", "basis_manipulation",
            "position_concentration", "funding_rate_farming")
EPISODES_PER_RUN = {"funding_rate_manipulation": 3, "liquidation_hunting": 4, "forced_liquidation": 3,
                    "basis_manipulation": 3, "position_concentration": 3, "funding_rate_farming": 3}
LOOKALIKES_PER_RUN = {"news_move": 2, "spot_led_crash": 2, "organic_oi_growth": 2, "volatile_hours": 2,
                      "mm_walls": 2}
TRENDING_MARKETS_PER_RUN = 2
# where episodes go: small caps are abused more often
EPISODE_MARKET_WEIGHTS = {"BTCUSDT": 1.0, "ETHUSDT": 1.0, "DOGEUSDT": 1.2, "ABCUSDT": 1.5}


@dataclass(frozen=True)
class MarketSpec:
    name: str
    price: float            # starting price (jittered per seed)
    tick: float
    lot: float
    daily_vol: float
    move_scale: float       # episode price moves relative to BTC
    dev_scale: float        # episode basis deviations relative to BTC
    oi: float               # open interest, base units
    vol_per_min: float      # traded volume per minute, base units
    level_size: float       # typical depth level size, base units
    gap_ticks: int          # levels are 1..gap_ticks ticks apart
    spread_ticks: int
    impact_notional: float  # USDT walked in the book for the impact bid / ask
    funding_hours: int
    cap: float              # funding-rate cap (+-)
    basis_noise: float
    ofi_beta: float         # basis per unit of order-flow imbalance
    basis_mu: float         # ordinary premium level
    liq_per_min: float      # background liquidations per minute
    liq_median: float       # median liquidation size, base units
    oi_season: float        # daily OI seasonality amplitude (fraction)
    oi_walk: float          # OI log random-walk step per minute
    thin_nights: bool


MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("BTCUSDT", 65_000.0, 0.1, 0.001, 0.025, 1.0, 1.0, 85_000.0, 150.0, 2.5, 3, 1, 25_000.0, 8, 0.003,
               0.8e-4, 1.5e-4, 0.6e-4, 0.35, 0.05, 0.020, 1.5e-4, False),
    MarketSpec("ETHUSDT", 3_200.0, 0.01, 0.001, 0.035, 1.3, 1.3, 2.2e6, 2_500.0, 40.0, 5, 1, 25_000.0, 8, 0.003,
               1.0e-4, 2.0e-4, 0.6e-4, 0.35, 0.8, 0.025, 1.8e-4, False),
    MarketSpec("DOGEUSDT", 0.16, 1e-5, 1.0, 0.05, 1.8, 2.0, 3.5e9, 4.0e6, 1.5e5, 2, 1, 10_000.0, 8, 0.0075,
               1.5e-4, 3.0e-4, 0.5e-4, 0.25, 2.0e4, 0.030, 2.5e-4, False),
    MarketSpec("ABCUSDT", 0.85, 1e-4, 1.0, 0.08, 3.0, 4.0, 2.5e7, 4.0e4, 8_000.0, 4, 2, 4_000.0, 4, 0.02,
               3.0e-4, 6.0e-4, 0.3e-4, 0.12, 400.0, 0.040, 4.0e-4, True),
)
SPEC = {m.name: m for m in MARKETS}


# ---- small helpers ---------------------------------------------------------------------------------------

def lu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform draw in [lo, hi]."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def pick(rng: np.random.Generator, options, weights=None):
    p = None if weights is None else np.asarray(weights, float) / float(np.sum(weights))
    return options[int(rng.choice(len(options), p=p))]


def ease(n: int) -> np.ndarray:
    """n values rising smoothly from near 0 to exactly 1."""
    if n <= 0:
        return np.zeros(0)
    x = np.arange(1, n + 1) / n
    return x * x * (3 - 2 * x)


def decimals(tick: float) -> int:
    return max(0, -math.floor(math.log10(tick) + 1e-9))


def r3(x: float) -> float:
    return float(f"{x:.4g}")


def circ_dist(hours: np.ndarray, center: float) -> np.ndarray:
    return np.abs((hours - center + 12.0) % 24.0 - 12.0)


def night_share(hours: np.ndarray) -> np.ndarray:
    """1 in 21:00-04:00 UTC, 0 outside, 20-minute edges."""
    return 1.0 / (1.0 + np.exp((circ_dist(hours, 0.5) - 3.5) / 0.2))


def activity(hours: np.ndarray) -> np.ndarray:
    """Intraday activity: US open peak, European morning, quiet Asian late night."""
    return (1 + 0.5 * np.exp(-(circ_dist(hours, 14.5) / 2.0) ** 2) + 0.2 * np.exp(-(circ_dist(hours, 8.5) / 1.5) ** 2)
            - 0.35 * np.exp(-(circ_dist(hours, 3.0) / 3.0) ** 2))


# ---- items -----------------------------------------------------------------------------------------------

@dataclass
class Item:
    """One labelled episode or unlabelled look-alike. start / end: the abuse window (label) or the look-alike's
    span; effect_end: when its effects on the market have died out."""

    kind: str
    labelled: bool
    market: str
    start: datetime
    end: datetime
    params: dict
    effect_end: datetime | None = None
    meta: dict = field(default_factory=dict)
    episode_id: str = ""
    found: bool | None = None
    touched_by: list[str] = field(default_factory=list)


@dataclass
class Plan:
    market: str
    k_start: int        # label window, data minutes
    k_end: int
    r_start: int        # reserved span (effects), data minutes
    r_end: int
    params: dict
    apply: Callable[[MarketSim], None]
    reserve: bool = True
    meta: dict = field(default_factory=dict)


# ---- one market's latent process -------------------------------------------------------------------------

class MarketSim:
    """Overlays written by the items, then one simulation producing every table of the market."""

    def __init__(self, spec: MarketSpec, rng: np.random.Generator, n: int) -> None:
        self.spec, self.rng, self.n = spec, rng, n
        self.N = N = n + WARMUP
        self.hours = ((np.arange(N) - WARMUP) % DAY) / 60.0
        self.price0 = spec.price * float(np.exp(rng.normal(0, 0.12)))
        self.oi0 = spec.oi * float(np.exp(rng.normal(0, 0.15)))
        self.X_ov = np.zeros(N)      # index log-level overlay
        self.P_ov = np.zeros(N)      # perp log-level overlay (perp vs index gap = P - X)
        self.basis_ov = np.zeros(N)  # additive basis (funding regimes)
        self.ofi_ov = np.zeros(N)
        self.vol_mult = np.ones(N)
        self.vol_add = np.zeros(N)   # base units
        self.sig_mult = np.ones(N)
        self.bg_liq_mult = np.ones(N)
        self.oi_inc = np.zeros(N)    # OI increments, fraction of oi0
        self.book_mult = np.ones((N, 2))   # depth liquidity, [bid, ask]
        self.wall_level = -np.ones((N, 2), dtype=int)
        self.wall_mult = np.ones((N, 2))
        # episode liquidations: (minute, ms in minute, side +1 buy / -1 sell, amount, ref minute, rel). ref >= 0:
        # at close[ref] x exp(rel) (a price level, e.g. a liquidation cluster); ref None: inside the minute's own
        # bar, at open + rel x (close - open) (rel slightly above 1: a little beyond the close)
        self.liqs: list[tuple[int, int, int, float, int | None, float]] = []
        # (minute, ref minute or None, rel log price): the bar reaches close[ref] x exp(rel) (None: its own close)
        self.extremes: list[tuple[int, int | None, float]] = []
        self.settlements = [k for k in range(n) if (k % DAY) % (spec.funding_hours * 60) == 0]

    # --- overlays (k: data minute) ---
    def i(self, k: int) -> int:
        return k + WARMUP

    def add_path(self, k: int, P: np.ndarray, X: np.ndarray) -> None:
        """Perp and index log-level paths from minute k on; both stay at their last value (which must agree:
        no permanent basis)."""
        assert abs(P[-1] - X[-1]) < 1e-12, "a path must end with perp and index together"
        a, m = self.i(k), len(P)
        self.P_ov[a:a + m] += P
        self.P_ov[a + m:] += P[-1]
        self.X_ov[a:a + m] += X
        self.X_ov[a + m:] += X[-1]

    def seg(self, arr: np.ndarray, k: int, m: int, value, mode: str = "add") -> None:
        a = self.i(k)
        b = min(self.N, a + m)
        if b <= a:
            return
        v = value[: b - a] if isinstance(value, np.ndarray) else value
        if mode == "add":
            arr[a:b] += v
        else:
            arr[a:b] *= v

    def add_liqs(self, minutes: np.ndarray, side: int, amounts: np.ndarray, ref: int | None, rel: np.ndarray) -> None:
        ms = self.rng.integers(0, 60_000, len(minutes))
        for k, t, a, r in zip(minutes, ms, amounts, rel):
            self.liqs.append((int(k), int(t), side, float(a), ref, float(r)))

    def lots(self, amounts: np.ndarray) -> np.ndarray:
        lot = self.spec.lot
        return np.maximum(lot, np.round(np.asarray(amounts) / lot) * lot)

    # --- simulation ---
    def simulate(self, t0_ms: int) -> dict[str, pl.DataFrame]:
        spec, rng, N, W = self.spec, self.rng, self.N, WARMUP
        hours = self.hours
        act = activity(hours)
        night = night_share(hours) if spec.thin_nights else np.zeros(N)
        act_trade = act * (1 - 0.72 * night)
        sd_min = spec.daily_vol / math.sqrt(DAY)

        # index: GARCH(1,1) on normalized returns, Student-t(5) shocks, jumps, overlays feed the volatility
        a_g, b_g = 0.03, 0.965
        z = rng.standard_t(5, N) / math.sqrt(5 / 3)
        jumps = np.zeros(N)
        jump_at = rng.random(N) < 1.5 / DAY
        jumps[jump_at] = rng.choice([-1.0, 1.0], jump_at.sum()) * rng.uniform(3, 8, jump_at.sum())
        x_ret = np.diff(self.X_ov, prepend=0.0)
        scale = sd_min * np.sqrt(act) * self.sig_mult
        h = np.empty(N)
        r = np.empty(N)
        hk = 1.0
        for k in range(N):
            h[k] = hk
            shock = math.sqrt(hk) * (z[k] + jumps[k])
            r[k] = scale[k] * shock + x_ret[k]
            e = r[k] / scale[k]
            hk = (1 - a_g - b_g) + a_g * min(e * e, 50.0) + b_g * hk
        log_index = math.log(self.price0) + np.cumsum(r)
        index = np.exp(log_index)
        vol_state = np.sqrt(h) * self.sig_mult  # relative volatility

        # order-flow imbalance and basis
        ofi = np.empty(N)
        o = 0.0
        innov = rng.normal(0, 0.15, N) + 0.08 * np.clip(z, -4, 4)
        for k in range(N):
            o = 0.9 * o + innov[k]
            ofi[k] = o
        ofi = np.clip(ofi + self.ofi_ov, -1, 1)
        noise_sd = spec.basis_noise * (1 + 1.5 * night) * np.sqrt(0.5 + 0.5 * vol_state)
        eps = np.empty(N)
        e0 = 0.0
        en = rng.normal(0, 1, N)
        for k in range(N):
            e0 = 0.7 * e0 + math.sqrt(1 - 0.49) * en[k] * noise_sd[k]
            eps[k] = e0
        slow = np.cumsum(rng.normal(0, 1, N)) * spec.basis_noise * 0.02
        slow -= np.linspace(0, slow[-1], N)  # a bridge: wanders, no drift
        basis_latent = (spec.basis_mu + slow + self.basis_ov + spec.ofi_beta * ofi + eps
                        + np.expm1(self.P_ov - self.X_ov))
        tick, dec = spec.tick, decimals(spec.tick)
        close = np.round(np.round(index * (1 + basis_latent) / tick) * tick, dec)
        close = np.maximum(close, tick)
        basis = close / index - 1

        # klines
        open_ = np.empty(N)
        open_[0] = close[0]
        open_[1:] = close[:-1]
        rng_sd = sd_min * np.sqrt(act) * vol_state * close
        high = np.maximum(open_, close) + rng.exponential(0.45, N) * rng_sd
        low = np.minimum(open_, close) - rng.exponential(0.45, N) * rng_sd
        for k, ref, rel in self.extremes:
            p = close[self.i(k if ref is None else ref)] * math.exp(rel)
            high[self.i(k)] = max(high[self.i(k)], p)
            low[self.i(k)] = min(low[self.i(k)], p)

        # liquidations: background + episodes
        perp_ret = np.diff(np.log(close), prepend=math.log(close[0])) / np.maximum(scale * np.sqrt(h), 1e-12)
        lam = spec.liq_per_min * vol_state ** 1.5 * (1 + 0.5 * np.minimum(perp_ret ** 2, 40)) * self.bg_liq_mult
        counts = rng.poisson(lam)
        bk = np.repeat(np.arange(N), counts)
        p_sell = 1 / (1 + np.exp(1.5 * perp_ret[bk]))
        b_side = np.where(rng.random(len(bk)) < p_sell, -1, 1)
        b_amt = np.exp(rng.normal(math.log(spec.liq_median), 1.2, len(bk))) * np.sqrt(vol_state[bk])
        u = rng.uniform(0, 0.5, len(bk))
        span = np.maximum(high[bk] - low[bk], tick)
        b_price = np.where(b_side < 0, low[bk] + u * span, high[bk] - u * span)
        b_ms = rng.integers(0, 60_000, len(bk))
        if self.liqs:
            ek = np.array([self.i(x[0]) for x in self.liqs])
            e_ms = np.array([x[1] for x in self.liqs])
            e_side = np.array([x[2] for x in self.liqs])
            e_amt = np.array([x[3] for x in self.liqs])
            e_price = np.array([close[self.i(x[4])] * math.exp(x[5]) if x[4] is not None else
                                open_[self.i(x[0])] + x[5] * (close[self.i(x[0])] - open_[self.i(x[0])])
                                for x in self.liqs])
        else:
            ek = e_ms = e_side = np.zeros(0, dtype=int)
            e_amt = e_price = np.zeros(0)
        lk = np.concatenate([bk, ek]).astype(int)
        l_ms = np.concatenate([b_ms, e_ms]).astype(np.int64)
        l_side = np.concatenate([b_side, e_side]).astype(int)
        l_amt = self.lots(np.concatenate([b_amt, e_amt]))
        l_price = np.round(np.round(np.concatenate([b_price, e_price]) / tick) * tick, dec)
        l_price = np.maximum(l_price, tick)
        np.maximum.at(high, lk, l_price)
        np.minimum.at(low, lk, l_price)
        high = np.round(np.ceil(high / tick - 1e-9) * tick, dec)
        low = np.maximum(np.round(np.floor(low / tick + 1e-9) * tick, dec), tick)
        liq_volume = np.bincount(lk, weights=l_amt, minlength=N)

        volume = (spec.vol_per_min * act_trade * vol_state ** 0.8 * np.exp(rng.normal(0, 0.35, N))
                  * (1 + 1.5 * np.abs(ofi)) * self.vol_mult + self.vol_add + liq_volume)
        volume = self.lots(volume)

        # open interest
        walk = np.cumsum(rng.normal(0, spec.oi_walk, N))
        walk -= np.linspace(0, walk[-1], N) * 0.7
        amp = spec.oi_season * float(rng.uniform(0.7, 1.3))
        peak = 15.0 + float(rng.uniform(-2, 2))
        season = amp * np.cos(2 * math.pi * (hours - peak) / 24.0)
        bg_liq = np.bincount(bk, weights=self.lots(b_amt), minlength=N) if len(bk) else np.zeros(N)
        oi = (self.oi0 * np.exp(walk + season) + self.oi0 * np.cumsum(self.oi_inc) - 0.6 * np.cumsum(bg_liq))
        oi = oi * (1 + rng.normal(0, 2e-5, N))
        oi = self.lots(np.maximum(oi, self.oi0 * 0.05))

        # depth: last trade at the touch, levels 1..gap ticks apart
        last_buy = (ofi + rng.normal(0, 0.3, N)) > 0
        spread = spec.spread_ticks + np.round(2 * night).astype(int) + (vol_state > 2.5).astype(int)
        best_ask = np.where(last_buy, close, close + spread * tick)
        best_bid = np.where(last_buy, close - spread * tick, close)
        best_bid = np.maximum(best_bid, tick)
        L = DEPTH_LEVELS
        gaps = rng.integers(1, spec.gap_ticks + 1, (N, L - 1))
        offs = np.concatenate([np.zeros((N, 1)), np.cumsum(gaps, axis=1)], axis=1) * tick
        gaps2 = rng.integers(1, spec.gap_ticks + 1, (N, L - 1))
        offs2 = np.concatenate([np.zeros((N, 1)), np.cumsum(gaps2, axis=1)], axis=1) * tick
        bid_px = np.maximum(np.round(best_bid[:, None] - offs, dec), tick)
        ask_px = np.round(best_ask[:, None] + offs2, dec)
        liquidity = act_trade ** 0.7 / np.sqrt(np.maximum(vol_state, 0.3))
        shape = spec.level_size * (1 + 0.12 * np.arange(L))
        bid_amt = shape * np.exp(rng.normal(0, 0.7, (N, L))) * (liquidity * self.book_mult[:, 0])[:, None]
        ask_amt = shape * np.exp(rng.normal(0, 0.7, (N, L))) * (liquidity * self.book_mult[:, 1])[:, None]
        for s, amt in ((0, bid_amt), (1, ask_amt)):
            rows = np.nonzero(self.wall_level[:, s] >= 0)[0]
            amt[rows, self.wall_level[rows, s]] *= self.wall_mult[rows, s]
        bid_amt, ask_amt = self.lots(bid_amt), self.lots(ask_amt)

        # premium index from the impact prices, mark price, funding
        imp_bid = impact_price(bid_px, bid_amt, spec.impact_notional)
        imp_ask = impact_price(ask_px, ask_amt, spec.impact_notional)
        premium = (np.maximum(0, imp_bid - index) - np.maximum(0, index - imp_ask)) / index
        interval = spec.funding_hours * 60
        interest = 1e-4 * spec.funding_hours / 8
        funding_rows = []
        last_rate = np.full(N, interest)
        for s in self.settlements:
            a = self.i(s)
            w = np.arange(1, interval + 1, dtype=float)
            p_avg = float(np.sum(w * premium[a - interval:a]) / w.sum())
            theo = p_avg + float(np.clip(interest - p_avg, -5e-4, 5e-4))
            actual = float(np.clip(theo, -spec.cap, spec.cap))
            funding_rows.append((t0_ms + s * 60_000, theo, actual))
            last_rate[a:] = actual
        mid = (best_bid + best_ask) / 2
        gap = mid - index
        c = np.cumsum(np.concatenate([[0.0], gap]))
        lo_idx = np.maximum(np.arange(N) - 29, 0)
        ma30 = (c[np.arange(N) + 1] - c[lo_idx]) / (np.arange(N) + 1 - lo_idx)
        k_data = np.arange(N) - W
        to_next = interval - (k_data % interval)
        p1 = index * (1 + last_rate * to_next / interval)
        p2 = index + ma30
        mark = np.median(np.vstack([p1, p2, close]), axis=0)

        # emit the data minutes
        sl = slice(W, N)
        n = self.n
        minute_ms = t0_ms + np.arange(n, dtype=np.int64) * 60_000
        name = spec.name

        def frame(columns: dict, time_col: str = "created_at") -> pl.DataFrame:
            df = pl.DataFrame(columns)
            return df.with_columns(pl.lit(name).alias("market"), pl.lit("futures").alias("market_type"),
                                   pl.from_epoch(time_col, time_unit="ms").dt.replace_time_zone("UTC")
                                   .cast(TS).alias(time_col)).select(["market", "market_type", *columns])

        out = {
            "index": frame({"created_at": minute_ms, "index_price": np.round(index[sl], dec + 2)}),
            "mark": frame({"created_at": minute_ms, "mark_price": np.round(mark[sl], dec + 1)}),
            "premium": frame({"created_at": minute_ms, "premium_index": premium[sl]}),
            "basis": frame({"created_at": minute_ms, "basis_rate": basis[sl]}),
            "klines": frame({"created_at": minute_ms, "open": open_[sl], "high": high[sl], "low": low[sl],
                             "close": close[sl], "volume": volume[sl]}),
        }
        keep = rng.random(n) >= MISSING_OI_SHARE
        jitter = rng.integers(0, 4_000, n)
        out["open_interest"] = frame({"created_at": (minute_ms + jitter)[keep], "open_interest_volume": oi[sl][keep]})
        out["funding"] = frame({"funding_time": np.array([f[0] for f in funding_rows], dtype=np.int64),
                                "theoretical_funding_rate": np.array([f[1] for f in funding_rows]),
                                "actual_funding_rate": np.array([f[2] for f in funding_rows])}, "funding_time")
        in_data = lk >= W
        out["liquidations"] = frame({
            "created_at": (t0_ms + (lk[in_data] - W).astype(np.int64) * 60_000 + l_ms[in_data]).astype(np.int64),
            "side": pl.Series(np.where(l_side[in_data] > 0, "buy", "sell").tolist(), dtype=pl.String),
            "price": pl.Series(l_price[in_data], dtype=pl.Float64),
            "amount": pl.Series(l_amt[in_data], dtype=pl.Float64)}).sort("created_at")
        # depth: per minute the bid levels 0..19 then the ask levels 0..19
        out["depth"] = frame({
            "updated_at": np.repeat(minute_ms, 2 * L),
            "side": np.tile(np.array(["bid"] * L + ["ask"] * L), n),
            "level": np.tile(np.concatenate([np.arange(L), np.arange(L)]), n).astype(np.int64),
            "price": np.hstack([bid_px[sl], ask_px[sl]]).ravel(),
            "amount": np.hstack([bid_amt[sl], ask_amt[sl]]).ravel()}, "updated_at")
        self.settled = {int((f[0] - t0_ms) // 60_000): f[2] for f in funding_rows}
        self.close_data = close[sl]
        self.oi_data = oi[sl]
        self.index_data = index[sl]
        return out


def impact_price(prices: np.ndarray, amounts: np.ndarray, notional: float) -> np.ndarray:
    """Average fill price of a market order of `notional` USDT walking the levels (past the last level: at it)."""
    n, L = prices.shape
    notl = prices * amounts
    cum = np.cumsum(notl, axis=1)
    qty_cum = np.cumsum(amounts, axis=1)
    crossed = cum >= notional
    j = np.where(crossed.any(axis=1), np.argmax(crossed, axis=1), L - 1)
    rows = np.arange(n)
    prev_cum = np.where(j > 0, cum[rows, np.maximum(j - 1, 0)], 0.0)
    prev_qty = np.where(j > 0, qty_cum[rows, np.maximum(j - 1, 0)], 0.0)
    qty = prev_qty + (notional - prev_cum) / prices[rows, j]
    return notional / qty


# ---- the run: placement of items -------------------------------------------------------------------------

class Run:
    def __init__(self, seed: int, days: int, markets=MARKETS) -> None:
        self.seed, self.days = seed, days
        self.rng = np.random.default_rng(seed * 104_729 + 7)
        self.n = days * DAY
        self.t0 = datetime(2025, 2, 3, tzinfo=UTC) + timedelta(days=7 * (seed % 40))
        self.sims = {m.name: MarketSim(m, np.random.default_rng([seed, i, 99]), self.n) for i, m in enumerate(markets)}
        self.busy: dict[str, list[tuple[int, int]]] = {m: [] for m in self.sims}
        self.items: list[Item] = []
        self.trend: dict[str, dict] = {}   # market -> trending funding regime
        self.farm_ok: dict[str, list[int]] = {}

    def at(self, k: int) -> datetime:
        return self.t0 + timedelta(minutes=int(k))

    def free(self, market: str, a: int, b: int) -> bool:
        if a < BASELINE or b > self.n - 30:
            return False
        return not any(a < e + MARGIN and b > s - MARGIN for s, e in self.busy[market])

    def place(self, kind: str, planner, labelled: bool, tries: int = 300) -> bool:
        for _ in range(tries):
            plan = planner(self, self.rng)
            if plan is None:
                continue
            if plan.reserve and not self.free(plan.market, plan.r_start, plan.r_end):
                continue
            if plan.reserve:
                self.busy[plan.market].append((plan.r_start, plan.r_end))
            plan.apply(self.sims[plan.market])
            self.items.append(Item(kind, labelled, plan.market, self.at(plan.k_start), self.at(plan.k_end),
                                   plan.params, effect_end=self.at(plan.r_end), meta=plan.meta))
            return True
        return False

    def episode_market(self, rng) -> str:
        names = list(self.sims)
        return pick(rng, names, [EPISODE_MARKET_WEIGHTS.get(m, 1.0) for m in names])

    def random_start(self, rng, length: int) -> int:
        return int(rng.integers(BASELINE, max(BASELINE + 1, self.n - 30 - length)))


# ---- regimes and look-alikes that are part of the market ---------------------------------------------------

def setup_trending_funding(run: Run, market: str) -> None:
    """Organic demand pushes the premium (and so funding) to extremes over a day, then it stays there."""
    rng, sim, spec = run.rng, run.sims[market], SPEC[market]
    sign = 1 if rng.random() < 0.7 else -1
    # the premium level that makes funding extreme: the +-5 bps interest clamp is a dead band, so the premium
    # must clear it; expected |funding| per interval at the peak = 5..30 bps x sqrt(dev_scale) (0.05 %+)
    peak_bps = FUNDING_DEADBAND_BPS + lu(rng, 5, 30) * math.sqrt(spec.dev_scale)
    start = int(rng.uniform(6, 20) * 60)
    length = int(rng.uniform(16, 30) * 60)
    length = min(length, max(60, run.n - start - 120))
    wiggle_period = rng.uniform(6, 12) * 60
    k = np.arange(run.n - start)
    shape = np.where(k < length, ease(length + 1)[np.minimum(k, length)], 1.0)
    shape = shape * (1 + 0.2 * np.sin(2 * math.pi * k / wiggle_period + rng.uniform(0, 6.28)))
    sim.seg(sim.basis_ov, start, run.n - start, sign * peak_bps * 1e-4 * shape)
    oi_growth = rng.uniform(0.02, 0.08)
    sim.seg(sim.oi_inc, start, length, np.full(length, oi_growth / length))
    run.trend[market] = {"sign": sign, "peak_bps": peak_bps, "start": start, "length": length}
    level = np.zeros(sim.N)
    sim.seg(level, start, run.n - start, peak_bps * shape)
    interval = spec.funding_hours * 60
    w = np.arange(1, interval + 1, dtype=float)
    run.farm_ok[market] = [s for s in sim.settlements if s >= start + 0.8 * length and
                           float(np.sum(w * level[sim.i(s) - interval:sim.i(s)]) / w.sum()) - FUNDING_DEADBAND_BPS
                           >= EXTREME_FUNDING_BPS]
    run.items.append(Item("trending_funding", False, market, run.at(start), run.at(run.n), {
        "direction": "positive" if sign > 0 else "negative", "peak_premium_bps": r3(peak_bps),
        "ramp_hours": r3(length / 60), "oi_growth_pct": r3(oi_growth * 100)}, effect_end=run.at(run.n)))


def thin_night_items(run: Run) -> None:
    for market, sim in run.sims.items():
        if not sim.spec.thin_nights:
            continue
        for d in range(-1, run.days):
            a, b = max(0, d * DAY + 21 * 60), min(run.n, d * DAY + 28 * 60)
            if b > a:
                run.items.append(Item("thin_overnight", False, market, run.at(a), run.at(b),
                                      {"hours_utc": "21-04", "activity": "x0.28, spread +2 ticks, basis noise x2.5"},
                                      effect_end=run.at(b)))


# ---- labelled episodes -----------------------------------------------------------------------------------

def _wobble(rng, m: int, size: float = 0.15) -> np.ndarray:
    out, x = np.empty(m), 0.0
    for i in range(m):
        x = 0.8 * x + rng.normal(0, size * 0.6)
        out[i] = x
    return 1 + out


def plan_funding_manipulation(run: Run, rng) -> Plan | None:
    market = run.episode_market(rng)
    spec, sim = SPEC[market], run.sims[market]
    lead = round(lu(rng, 8, 120))
    release = round(lu(rng, 1, 20))
    sets = [s for s in sim.settlements if s - lead >= BASELINE and s + release + 30 <= run.n]
    if not sets:
        return None
    s = int(pick(rng, sets))
    ramp = max(1, round(lead * rng.uniform(0.1, 0.6)))
    push_bps = lu(rng, 6, 80) * spec.dev_scale
    direction = 1 if rng.random() < 0.6 else -1
    follow = float(rng.uniform(0, 0.15))
    volm = lu(rng, 1.2, 4)
    oi_add = float(rng.uniform(0, 1.5))
    k0 = s - lead
    interval = spec.funding_hours * 60
    w = np.arange(1, interval + 1, dtype=float)
    shape = np.concatenate([ease(ramp), np.ones(lead - ramp), 1 - ease(release)])
    shape[:lead] *= _wobble(rng, lead)
    dev = direction * push_bps * 1e-4 * shape
    seg_w = w[interval - lead:]
    prem_shift = float(np.sum(seg_w * (1 - follow) * dev[:lead]) / w.sum())
    params = {"market": market, "direction": "up" if direction > 0 else "down", "push_bps": r3(push_bps),
              "strength_btc_bps": r3(push_bps / spec.dev_scale), "lead_min": lead, "ramp_min": ramp,
              "release_min": release, "index_follow": r3(follow), "volume_mult": r3(volm),
              "oi_add_pct": r3(oi_add), "funding_hours": spec.funding_hours,
              "weighted_premium_shift_bps": r3(prem_shift * 1e4), "settlement": run.at(s).strftime("%d %H:%M")}

    def apply(sim: MarketSim) -> None:
        sim.add_path(k0, dev, follow * dev)
        sim.seg(sim.ofi_ov, k0, ramp, direction * rng.uniform(0.3, 0.8))
        sim.seg(sim.ofi_ov, k0 + ramp, lead - ramp, direction * 0.2)
        sim.seg(sim.ofi_ov, s, release, -direction * 0.4)
        sim.seg(sim.vol_mult, k0, lead + release, volm, "mul")
        sim.seg(sim.oi_inc, k0, ramp, oi_add / 100 / ramp)
        sim.seg(sim.oi_inc, s, release, -oi_add / 100 / release)

    return Plan(market, k0, s + release, k0, s + release + 15, params, apply, meta={"settlement": s})


def plan_liquidation_hunting(run: Run, rng) -> Plan | None:
    market = run.episode_market(rng)
    spec = SPEC[market]
    shape = pick(rng, ["wick_1min", "v_fast", "v_slow"], [0.35, 0.4, 0.25])
    push = 1 if shape == "wick_1min" else int(rng.integers(1, 5)) if shape == "v_fast" else int(rng.integers(4, 11))
    revert = (int(rng.integers(0, 3)) if shape == "wick_1min" else round(lu(rng, 1, 8)) if shape == "v_fast"
              else round(lu(rng, 3, 15)))
    dist_pct = lu(rng, 0.3, 2.5) * spec.move_scale
    overshoot = float(rng.uniform(0, 0.3))
    revert_frac = float(rng.uniform(0.6, 1.0))
    liq_pct = lu(rng, 0.05, 2.0)
    n_liq = round(lu(rng, 8, 250))
    follow = float(rng.uniform(0, 0.5))
    direction = -1 if rng.random() < 0.7 else 1
    tail = int(rng.integers(5, 16))
    length = push + revert + tail
    k0 = run.random_start(rng, length + 5)
    params = {"market": market, "shape": shape, "direction": "down (longs hunted)" if direction < 0 else "up (shorts hunted)",
              "distance_pct": r3(dist_pct), "strength_btc_pct": r3(dist_pct / spec.move_scale),
              "overshoot_share": r3(overshoot), "push_min": push, "revert_min": revert, "revert_frac": r3(revert_frac),
              "liquidated_pct_oi": r3(liq_pct), "n_liquidations": n_liq, "index_follow": r3(follow)}

    def apply(sim: MarketSim) -> None:
        d = math.log1p(dist_pct / 100)
        o = d * overshoot
        ext = direction * (d + o)
        P = np.zeros(length)
        if push > 1:
            P[:push - 1] = direction * d * ease(push)[:push - 1]
        target = ext * (1 - revert_frac)
        if shape == "wick_1min":
            bottom = target + (ext - target) * rng.uniform(0, 0.4)
        else:
            bottom = direction * (d + o * rng.uniform(0, 1))
        P[push - 1] = bottom
        if revert > 0:
            P[push:push + revert] = bottom + (target - bottom) * ease(revert)
        final = P[push + revert - 1]
        P[push + revert:] = final
        X = follow * P.copy()
        X[push + revert:] = follow * final + (final - follow * final) * ease(tail)
        P[-1] = X[-1] = final
        sim.add_path(k0, P, X)
        kb = k0 + push - 1
        sim.extremes.append((kb, k0 - 1, ext))
        amounts = sim.rng.lognormal(0, 1, n_liq)
        L = liq_pct / 100 * sim.oi0
        amounts = amounts / amounts.sum() * L
        if shape == "wick_1min" or push == 1:
            minutes = np.full(n_liq, kb)
        else:
            minutes = np.where(sim.rng.random(n_liq) < 0.8, kb, kb - 1)
        rel = direction * (d * sim.rng.uniform(0.97, 1.0, n_liq) + o * sim.rng.uniform(0, 1, n_liq))
        sim.add_liqs(minutes, 1 if direction > 0 else -1, amounts, k0 - 1, rel)
        sim.seg(sim.oi_inc, kb, 1, -L * rng.uniform(0.5, 1.0) / sim.oi0)
        sim.seg(sim.vol_add, k0, push, L * rng.uniform(1, 3) / push)
        sim.seg(sim.vol_mult, kb + 1, revert, 2.0, "mul")
        sim.seg(sim.ofi_ov, k0, push, direction * 0.7)
        sim.seg(sim.ofi_ov, kb + 1, revert, -direction * 0.5)
        side = 0 if direction < 0 else 1
        sim.seg(sim.book_mult[:, side], k0, push, rng.uniform(0.3, 0.7), "mul")

    return Plan(market, k0, k0 + push + revert, k0, k0 + length, params, apply)


def _waves(rng, total: float, waves: int, dur: int):
    """Leg lengths, pauses and sizes of a wave sequence over `dur` minutes."""
    legs = rng.integers(1, 4, waves)
    pauses_total = max(waves - 1, dur - int(legs.sum()))
    pauses = np.zeros(waves, dtype=int)
    if waves > 1:
        split = rng.dirichlet(np.ones(waves - 1) * 2) * pauses_total
        pauses[:-1] = np.maximum(1, np.round(split).astype(int))
    return legs, pauses


def plan_forced_liquidation(run: Run, rng) -> Plan | None:
    market = run.episode_market(rng)
    spec = SPEC[market]
    waves = int(rng.integers(2, 9))
    dur = round(lu(rng, 6, 60))
    move_pct = min(35.0, lu(rng, 1.5, 8) * spec.move_scale)
    oi_drop = lu(rng, 2, 20)
    liq_share = float(rng.uniform(0.5, 0.9))
    growth = float(rng.uniform(1.0, 1.8))
    follow = float(rng.uniform(0.5, 0.95))
    lag = int(rng.integers(0, 4))
    retrace = float(rng.uniform(0, 0.25))
    post = round(lu(rng, 20, 90))
    n_liq = round(lu(rng, 40, 800))
    direction = -1 if rng.random() < 0.75 else 1
    legs, pauses = _waves(rng, move_pct, waves, dur)
    dur = int(legs.sum() + pauses.sum())
    k0 = run.random_start(rng, dur + post + 5)
    params = {"market": market, "direction": "down (longs)" if direction < 0 else "up (shorts)", "waves": waves,
              "duration_min": dur, "move_pct": r3(move_pct), "strength_btc_pct": r3(move_pct / spec.move_scale),
              "oi_drop_pct": r3(oi_drop), "liq_share_of_drop": r3(liq_share), "wave_growth": r3(growth),
              "index_follow": r3(follow), "index_lag_min": lag, "retrace_frac": r3(retrace), "post_min": post,
              "n_liquidations": n_liq}

    def apply(sim: MarketSim) -> None:
        M = math.log1p(move_pct / 100)
        weights = growth ** np.arange(waves) * sim.rng.lognormal(0, 0.3, waves)
        weights /= weights.sum()
        P = np.zeros(dur)
        level, t = 0.0, 0
        leg_minutes, leg_from, leg_to, leg_wave = [], [], [], []
        for j in range(waves):
            step = direction * M * weights[j]
            for i in range(legs[j]):
                frm = level + step * i / legs[j]
                to = level + step * (i + 1) / legs[j]
                P[t] = to
                leg_minutes.append(t)
                leg_from.append(frm)
                leg_to.append(to)
                leg_wave.append(j)
                sim.extremes.append((k0 + t, None, direction * abs(step) / legs[j] * 0.1))
                t += 1
            level += step
            bounce = -step * sim.rng.uniform(0, 0.15)
            for i in range(pauses[j]):
                P[t] = level + bounce * math.sin(math.pi * (i + 1) / (pauses[j] + 1))
                t += 1
        X = follow * np.concatenate([np.zeros(lag), P])[:dur]
        final = direction * M * (1 - retrace)
        Pp = P[-1] + (final - P[-1]) * ease(post)
        Xp = X[-1] + (final - X[-1]) * ease(post)
        sim.add_path(k0, np.concatenate([P, Pp]), np.concatenate([X, Xp]))
        # liquidations: more in later waves
        lm = np.array(leg_minutes)
        wave_w = weights * growth ** np.arange(waves)
        per_leg = wave_w[leg_wave] / np.bincount(leg_wave, minlength=waves)[leg_wave]
        per_leg /= per_leg.sum()
        pick_leg = sim.rng.choice(len(lm), n_liq, p=per_leg)
        frac = sim.rng.uniform(0.2, 1.08, n_liq)
        L = oi_drop / 100 * liq_share * sim.oi0
        amounts = sim.rng.lognormal(0, 1, n_liq)
        amounts = amounts / amounts.sum() * L
        sim.add_liqs(k0 + lm[pick_leg], 1 if direction > 0 else -1, amounts, None, frac)
        drop_per_leg = np.bincount(pick_leg, weights=amounts, minlength=len(lm)) / L
        for t_leg, share in zip(lm, drop_per_leg):
            sim.seg(sim.oi_inc, k0 + int(t_leg), 1, -oi_drop / 100 * share)
            sim.seg(sim.vol_add, k0 + int(t_leg), 1, L * share * rng.uniform(1.5, 3))
            sim.seg(sim.ofi_ov, k0 + int(t_leg), 1, direction * 0.8)
        sim.seg(sim.vol_mult, k0 + dur, post, 1.5, "mul")
        sim.seg(sim.sig_mult, k0, dur + post, np.concatenate([np.full(dur, 1.0), 1 - ease(post)]) * rng.uniform(0.5, 1.5) + 1, "mul")
        sim.seg(sim.book_mult[:, 0 if direction < 0 else 1], k0, dur, rng.uniform(0.2, 0.6), "mul")

    return Plan(market, k0, k0 + dur, k0, k0 + dur + post, params, apply)


def plan_basis_manipulation(run: Run, rng) -> Plan | None:
    market = run.episode_market(rng)
    spec, sim = SPEC[market], run.sims[market]
    dev_bps = lu(rng, 8, 100) * spec.dev_scale
    hold = round(lu(rng, 4, 60))
    ramp = round(lu(rng, 1, 10))
    release = round(lu(rng, 1, 10))
    follow = float(rng.uniform(0, 0.1))
    direction = 1 if rng.random() < 0.5 else -1
    volm = lu(rng, 1.2, 4)
    oi_add = float(rng.uniform(0, 1))
    length = ramp + hold + release
    k0 = run.random_start(rng, length + 5)
    if any(k0 - 60 <= s <= k0 + length + 60 for s in sim.settlements):
        return None
    params = {"market": market, "direction": "up" if direction > 0 else "down", "deviation_bps": r3(dev_bps),
              "strength_btc_bps": r3(dev_bps / spec.dev_scale), "hold_min": hold, "ramp_min": ramp,
              "release_min": release, "index_follow": r3(follow), "volume_mult": r3(volm), "oi_add_pct": r3(oi_add)}

    def apply(sim: MarketSim) -> None:
        shape = np.concatenate([ease(ramp), np.ones(hold), 1 - ease(release)])
        shape[ramp:ramp + hold] *= _wobble(rng, hold)
        dev = direction * dev_bps * 1e-4 * shape
        sim.add_path(k0, dev, follow * dev)
        sim.seg(sim.ofi_ov, k0, ramp, direction * rng.uniform(0.3, 0.8))
        sim.seg(sim.ofi_ov, k0 + ramp, hold, direction * 0.2)
        sim.seg(sim.ofi_ov, k0 + ramp + hold, release, -direction * 0.4)
        sim.seg(sim.vol_mult, k0, length, volm, "mul")
        sim.seg(sim.oi_inc, k0, ramp, oi_add / 100 / ramp)
        sim.seg(sim.oi_inc, k0 + ramp + hold, release, -oi_add / 100 / release)

    return Plan(market, k0, k0 + length, k0, k0 + length + 10, params, apply)


def plan_position_concentration(run: Run, rng) -> Plan | None:
    market = run.episode_market(rng)
    spec = SPEC[market]
    jump = lu(rng, 2.5, 30)
    build = round(lu(rng, 2, 30))
    clips = int(rng.integers(1, min(build, 10) + 1))
    direction = 1 if rng.random() < 0.55 else -1
    impact_pct = jump * float(rng.uniform(0.02, 0.1)) * spec.move_scale
    follow = float(rng.uniform(0.3, 0.9))
    converge = round(lu(rng, 10, 40))
    k0 = run.random_start(rng, build + converge + 125)
    params = {"market": market, "side": "long" if direction > 0 else "short", "oi_jump_pct": r3(jump),
              "build_min": build, "clips": clips, "price_impact_pct": r3(impact_pct), "index_follow": r3(follow)}

    def apply(sim: MarketSim) -> None:
        at = np.sort(sim.rng.choice(build, clips, replace=False))
        sizes = sim.rng.dirichlet(np.ones(clips) * 2) * jump / 100
        for t, s in zip(at, sizes):
            sim.seg(sim.oi_inc, k0 + int(t), 1, s)
            sim.seg(sim.vol_add, k0 + int(t), 1, s * sim.oi0 * rng.uniform(1.0, 1.5))
        P = direction * math.log1p(impact_pct / 100) * np.concatenate([ease(build), np.ones(converge)])
        X = follow * P
        X[build:] = X[build - 1] + (P[-1] - X[build - 1]) * ease(converge)
        sim.add_path(k0, P, X)
        sim.seg(sim.ofi_ov, k0, build, direction * 0.6)

    return Plan(market, k0, k0 + build, k0, k0 + build + converge + 120, params, apply)


def plan_funding_rate_farming(run: Run, rng) -> Plan | None:
    markets = sorted(m for m, sets in run.farm_ok.items() if sets)
    if not markets:
        return None
    market = pick(rng, markets)
    spec = SPEC[market]
    oi_add = lu(rng, 1, 12)
    open_min = round(lu(rng, 5, 60))
    open_gap = int(rng.integers(0, 6))
    close_gap = int(rng.integers(0, 11))
    close_min = round(lu(rng, 2, 45))
    close_frac = float(rng.uniform(0.8, 1.0))
    sets = [s for s in run.farm_ok[market] if s - open_gap - open_min >= BASELINE and s + close_gap + close_min + 30 <= run.n]
    if not sets:
        return None
    s = int(pick(rng, sets))
    trend = run.trend[market]
    direction = -trend["sign"]   # short the perp when longs pay, long when shorts pay
    impact_bps = oi_add * float(rng.uniform(0.2, 1.0)) * spec.dev_scale
    k0 = s - open_gap - open_min
    k1 = s + close_gap + close_min
    params = {"market": market, "side": "short perp" if direction < 0 else "long perp", "oi_add_pct": r3(oi_add),
              "open_min": open_min, "open_ends_before_min": open_gap, "close_starts_after_min": close_gap,
              "close_min": close_min, "close_frac": r3(close_frac), "basis_impact_bps": r3(impact_bps),
              "funding_hours": spec.funding_hours, "settlement": run.at(s).strftime("%d %H:%M")}

    def apply(sim: MarketSim) -> None:
        per = sim.rng.lognormal(0, 0.5, open_min)
        sim.seg(sim.oi_inc, k0, open_min, per / per.sum() * oi_add / 100)
        per_c = sim.rng.lognormal(0, 0.5, close_min)
        sim.seg(sim.oi_inc, s + close_gap, close_min, -per_c / per_c.sum() * oi_add / 100 * close_frac)
        sim.seg(sim.vol_add, k0, open_min, oi_add / 100 * sim.oi0 * rng.uniform(1, 1.3) / open_min)
        sim.seg(sim.vol_add, s + close_gap, close_min, oi_add / 100 * sim.oi0 * close_frac * rng.uniform(1, 1.3) / close_min)
        sim.seg(sim.ofi_ov, k0, open_min, direction * 0.4)
        sim.seg(sim.ofi_ov, s + close_gap, close_min, -direction * 0.4)
        length = k1 - k0
        shape = np.concatenate([ease(open_min), np.ones(length - open_min - close_min), 1 - ease(close_min)])
        dev = direction * impact_bps * 1e-4 * shape
        sim.add_path(k0, dev, np.zeros(length))

    return Plan(market, k0, k1, k0, k1 + 10, params, apply, meta={"settlement": s})


EPISODE_PLANNERS = {
    "funding_rate_manipulation": plan_funding_manipulation, "liquidation_hunting": plan_liquidation_hunting,
    "forced_liquidation": plan_forced_liquidation, "basis_manipulation": plan_basis_manipulation,
    "position_concentration": plan_position_concentration, "funding_rate_farming": plan_funding_rate_farming,
}


# ---- look-alikes -----------------------------------------------------------------------------------------

def _any_market(run: Run, rng) -> str:
    return pick(rng, list(run.sims))


def plan_news_move(run: Run, rng) -> Plan | None:
    market = _any_market(run, rng)
    spec = SPEC[market]
    direction = 1 if rng.random() < 0.5 else -1
    jump_pct = lu(rng, 0.8, 4) * spec.move_scale
    jump_min = int(rng.integers(1, 4))
    cont = float(rng.uniform(0, 0.5))
    cont_min = round(lu(rng, 30, 90))
    lead = float(rng.uniform(0, 0.3))   # the perp leads by a fraction of a minute
    liq_pct = lu(rng, 0.05, 0.8)
    oi_rise = float(rng.uniform(0.5, 4))
    oi_min = round(lu(rng, 60, 120))
    length = jump_min + max(cont_min, oi_min)
    k0 = run.random_start(rng, length + 5)
    params = {"market": market, "direction": "up" if direction > 0 else "down", "jump_pct": r3(jump_pct),
              "jump_min": jump_min, "continuation": r3(cont), "perp_leads_min": r3(lead),
              "liquidated_pct_oi": r3(liq_pct), "oi_rise_pct": r3(oi_rise)}

    def apply(sim: MarketSim) -> None:
        J = direction * math.log1p(jump_pct / 100)
        X = np.full(length, J * (1 + cont))
        X[:jump_min] = J * ease(jump_min)
        X[jump_min:jump_min + cont_min] = J + J * cont * ease(cont_min)
        P = X + lead * (np.concatenate([X[1:], X[-1:]]) - X)
        sim.add_path(k0, P, X)
        n_liq = int(sim.rng.integers(10, 120))
        L = liq_pct / 100 * sim.oi0
        amounts = sim.rng.lognormal(0, 1, n_liq)
        amounts = amounts / amounts.sum() * L
        mins = sim.rng.integers(0, jump_min, n_liq)
        sim.add_liqs(k0 + mins, 1 if direction > 0 else -1, amounts, None, sim.rng.uniform(0.2, 1.05, n_liq))
        sim.seg(sim.oi_inc, k0, jump_min, -L / sim.oi0 / jump_min)
        sim.seg(sim.oi_inc, k0 + jump_min, oi_min, oi_rise / 100 / oi_min)
        decay = np.exp(-np.arange(length) / 25.0)
        sim.seg(sim.vol_mult, k0, length, 1 + rng.uniform(2, 7) * decay, "mul")
        sim.seg(sim.sig_mult, k0, length, 1 + rng.uniform(0.5, 2) * decay, "mul")

    return Plan(market, k0, k0 + length, k0, k0 + length, params, apply)


def plan_spot_led_crash(run: Run, rng) -> Plan | None:
    market = _any_market(run, rng)
    spec = SPEC[market]
    drop_pct = min(35.0, lu(rng, 2.5, 7) * spec.move_scale)
    legs_n = int(rng.integers(1, 5))
    dur = max(legs_n, round(lu(rng, 5, 40)))
    lag = float(rng.uniform(0, 0.6))    # the perp lags by a fraction of a minute
    rebound = float(rng.uniform(0, 0.4))
    rebound_min = round(lu(rng, 60, 180))
    liq_pct = lu(rng, 0.3, 3)
    extra_close = float(rng.uniform(0, 1))
    k0 = run.random_start(rng, dur + rebound_min + 5)
    params = {"market": market, "index_drop_pct": r3(drop_pct), "legs": legs_n, "duration_min": dur,
              "perp_lag_min": r3(lag), "rebound_frac": r3(rebound), "liquidated_pct_oi": r3(liq_pct),
              "voluntary_close_x_liq": r3(extra_close)}

    def apply(sim: MarketSim) -> None:
        D = -math.log1p(drop_pct / 100)
        cuts = np.sort(sim.rng.choice(np.arange(1, dur), legs_n - 1, replace=False)) if legs_n > 1 else np.array([], int)
        w = sim.rng.dirichlet(np.ones(legs_n) * 2)
        X = np.zeros(dur)
        bounds = np.concatenate([[0], cuts, [dur]])
        level = 0.0
        for j in range(legs_n):
            a, b = bounds[j], bounds[j + 1]
            X[a:b] = level + D * w[j] * ease(b - a)
            level += D * w[j]
        P = X - lag * (X - np.concatenate([[0.0], X[:-1]]))
        final = D * (1 - rebound)
        Xr = X[-1] + (final - X[-1]) * ease(rebound_min)
        Pr = P[-1] + (final - P[-1]) * ease(rebound_min)
        Pf, Xf = np.concatenate([P, Pr]), np.concatenate([X, Xr])
        sim.add_path(k0, Pf, Xf)
        n_liq = int(sim.rng.integers(30, 400))
        L = liq_pct / 100 * sim.oi0
        stepw = np.abs(np.diff(np.concatenate([[0.0], Pf[:dur + 1]])))
        stepw = stepw / stepw.sum() if stepw.sum() > 0 else np.full(len(stepw), 1 / len(stepw))
        mins = sim.rng.choice(len(stepw), n_liq, p=stepw)
        amounts = sim.rng.lognormal(0, 1, n_liq)
        amounts = amounts / amounts.sum() * L
        sim.add_liqs(k0 + mins, -1, amounts, None, sim.rng.uniform(0.2, 1.05, n_liq))
        drop = np.bincount(mins, weights=amounts, minlength=len(stepw)) * (1 + extra_close) / sim.oi0
        sim.seg(sim.oi_inc, k0, len(drop), -drop)
        sim.seg(sim.vol_add, k0, len(stepw), np.bincount(mins, weights=amounts, minlength=len(stepw)) * rng.uniform(2, 4))
        decay = np.exp(-np.arange(dur + rebound_min) / 40.0)
        sim.seg(sim.sig_mult, k0, dur + rebound_min, 1 + rng.uniform(0.5, 1.5) * decay, "mul")
        sim.seg(sim.ofi_ov, k0, dur, -0.5)

    return Plan(market, k0, k0 + dur + rebound_min, k0, k0 + dur + rebound_min, params, apply)


def plan_organic_oi_growth(run: Run, rng) -> Plan | None:
    market = _any_market(run, rng)
    spec = SPEC[market]
    hours = lu(rng, 3, 10)
    change = lu(rng, 4, 15) * (1 if rng.random() < 0.75 else -0.6)
    drift = float(rng.uniform(-1, 1)) * spec.move_scale
    m = int(hours * 60)
    k0 = run.random_start(rng, m + 5)
    params = {"market": market, "oi_change_pct": r3(change), "hours": r3(hours), "price_drift_pct": r3(drift)}

    def apply(sim: MarketSim) -> None:
        inc = np.diff(ease(m), prepend=0.0) * sim.rng.lognormal(0, 0.6, m)
        sim.seg(sim.oi_inc, k0, m, inc / inc.sum() * change / 100)
        path = math.log1p(drift / 100) * ease(m)
        sim.add_path(k0, path, path.copy())
        sim.seg(sim.vol_mult, k0, m, 1.15, "mul")

    return Plan(market, k0, k0 + m, k0, k0 + m, params, apply)


def plan_volatile_hours(run: Run, rng) -> Plan | None:
    market = _any_market(run, rng)
    hours = float(rng.uniform(1, 3))
    sig = float(rng.uniform(2, 4))
    liq = float(rng.uniform(1.5, 3))
    volm = float(rng.uniform(1.5, 2.5))
    m = int(hours * 60)
    k0 = run.random_start(rng, m + 5)
    params = {"market": market, "hours": r3(hours), "vol_mult": r3(sig), "liq_mult": r3(liq), "volume_mult": r3(volm)}

    def apply(sim: MarketSim) -> None:
        edge = np.minimum(1, np.minimum(np.arange(1, m + 1), np.arange(m, 0, -1)) / 10.0)
        sim.seg(sim.sig_mult, k0, m, 1 + (sig - 1) * edge, "mul")
        sim.seg(sim.bg_liq_mult, k0, m, 1 + (liq - 1) * edge, "mul")
        sim.seg(sim.vol_mult, k0, m, 1 + (volm - 1) * edge, "mul")
        sim.seg(sim.book_mult[:, 0], k0, m, 0.7, "mul")
        sim.seg(sim.book_mult[:, 1], k0, m, 0.7, "mul")

    return Plan(market, k0, k0 + m, k0, k0 + m, params, apply)


def plan_mm_walls(run: Run, rng) -> Plan | None:
    market = _any_market(run, rng)
    hours = float(rng.uniform(1, 6))
    sides = pick(rng, ["bid", "ask", "both"])
    level = int(rng.integers(3, 16))
    mult = lu(rng, 5, 30)
    refresh = lu(rng, 1, 10)
    m = int(hours * 60)
    k0 = run.random_start(rng, m + 5)
    params = {"market": market, "hours": r3(hours), "sides": sides, "level": level, "size_x_level": r3(mult),
              "refresh_min": r3(refresh)}

    def apply(sim: MarketSim) -> None:
        cols = [0, 1] if sides == "both" else [0 if sides == "bid" else 1]
        for c in cols:
            lvl, t = level, 0.0
            while t < m:
                nxt = min(m, t + refresh * sim.rng.uniform(0.7, 1.3))
                a, b = sim.i(k0 + int(t)), sim.i(k0 + int(nxt))
                if sim.rng.random() > 0.1:   # now and then pulled for one refresh
                    sim.wall_level[a:b, c] = lvl
                    sim.wall_mult[a:b, c] = mult * sim.rng.uniform(0.8, 1.2)
                lvl = int(np.clip(lvl + sim.rng.integers(-2, 3), 2, DEPTH_LEVELS - 1))
                t = nxt

    return Plan(market, k0, k0 + m, k0, k0 + m, params, apply)


LOOKALIKE_PLANNERS = {
    "news_move": plan_news_move, "spot_led_crash": plan_spot_led_crash, "organic_oi_growth": plan_organic_oi_growth,
    "volatile_hours": plan_volatile_hours, "mm_walls": plan_mm_walls,
}
LOOKALIKE_KINDS = (*LOOKALIKE_PLANNERS, "trending_funding", "thin_overnight")


# ---- the generator ---------------------------------------------------------------------------------------

@dataclass
class Generated:
    seed: int
    days: int
    clean: bool
    start: datetime
    end: datetime
    tables: dict[str, pl.DataFrame]
    labels: pl.DataFrame
    items: list[Item]
    unplaced: list[str]
    markets: tuple[str, ...]


TABLES = ("index", "mark", "premium", "basis", "open_interest", "funding", "liquidations", "klines", "depth")


def generate(seed: int, days: int = 3, clean: bool = False, episodes: dict[str, int] | None = None,
             lookalikes: dict[str, int] | None = None, trending_markets: int = TRENDING_MARKETS_PER_RUN) -> Generated:
    """One run: 4 markets x `days` days. `clean`: no labelled episode (look-alikes still there)."""
    run = Run(seed, days)
    episodes = {} if clean else dict(EPISODES_PER_RUN if episodes is None else episodes)
    lookalikes = dict(LOOKALIKES_PER_RUN if lookalikes is None else lookalikes)
    unplaced = []
    for market in sorted(run.rng.choice(sorted(run.sims), min(trending_markets, len(run.sims)), replace=False)):
        setup_trending_funding(run, str(market))
    thin_night_items(run)
    order = ["funding_rate_farming", "funding_rate_manipulation", "basis_manipulation", "forced_liquidation",
             "liquidation_hunting", "position_concentration"]
    for kind in order:
        for _ in range(episodes.get(kind, 0)):
            if not run.place(kind, EPISODE_PLANNERS[kind], True):
                unplaced.append(kind)
    for kind, count in lookalikes.items():
        for _ in range(count):
            if not run.place(kind, LOOKALIKE_PLANNERS[kind], False):
                unplaced.append(kind)
    t0_ms = int(run.t0.timestamp() * 1000)
    parts = {name: [] for name in TABLES}
    for sim in run.sims.values():
        for name, frame in sim.simulate(t0_ms).items():
            parts[name].append(frame)
    tables = {name: pl.concat(frames) for name, frames in parts.items()}
    # derived figures of farming episodes: the settled rate they farmed
    for item in run.items:
        if "settlement" in item.meta:
            item.params["settled_funding_bps"] = r3(run.sims[item.market].settled[item.meta["settlement"]] * 1e4)
    run.items.sort(key=lambda it: (it.start, it.market))
    n = 0
    for item in run.items:
        if item.labelled:
            n += 1
            item.episode_id = f"s{seed}-fh-{n:03d}"
        else:
            item.episode_id = f"s{seed}-look-{item.kind}-{item.market}-{item.start:%d%H%M}"
    labels = pl.DataFrame(
        [(it.episode_id, it.kind, it.market, "", it.start, it.end) for it in run.items if it.labelled],
        schema={"episode_id": pl.String, "pattern": pl.String, "symbol": pl.String, "user_ids": pl.String,
                "start": LABEL_DTYPE, "end": LABEL_DTYPE}, orient="row")
    return Generated(seed, days, clean, run.t0, run.at(run.n), tables, labels, run.items, unplaced,
                     tuple(run.sims))
