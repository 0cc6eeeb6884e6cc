"""Held-out labelled spot-market days for the trade-level rule detectors (used by benchmarks/eval_heldout.py).

Written from the public definitions of each abuse, independently of the project's detectors, scenario
generators and configuration:

* wash trading - trades without a change of beneficial ownership (CEA s.4c(a)(2)(A), FINRA Rule 6140(b), SEC
  enforcement descriptions; crypto: Cong, Li, Tang & Yang 2023): one account trading with itself, or two
  colluding accounts trading back and forth with little net position change, often inside the spread, at
  round or repeated sizes, sometimes at bot-regular intervals, with cover trades against real counterparties;
* circular trading - a ring of 3+ accounts passing the same quantity round (A->B->C->A), repeated (SEBI/ESMA
  MAR Annex I "arrangements ... without change of interest");
* pump and dump - Kamps & Kleinberg 2018, Xu & Livshits 2019, La Morgia et al. 2020/2021: organisers accumulate
  a thin small-cap in the hours before, a crowd's burst of market buys at an on-the-hour signal, the price
  peaks within seconds to minutes, organisers sell into the crowd (pre-placed asks) and dump, the price
  collapses back (often below the start) within minutes to an hour;
* spoofing - CEA s.4c(a)(5)(C), CFTC v. Sarao / U.S. v. Coscia: one or two large orders on one side, not
  intended to execute, a genuine (small) order on the other side gets filled, the large ones are cancelled
  shortly after; repeated in cycles, sometimes alternating sides, sometimes "flickered" (modified);
* layering - FINRA/SEC (Trillium, Biremis), ESMA MAR Annex II: several orders at successive price levels on one
  side, an execution on the other side, then the layers are cancelled within seconds;
* quote stuffing - CFTC 2013 disruptive-practices guidance, Egginton, Van Ness & Van Ness 2016: bursts of
  hundreds to thousands of new/cancel (and modify) messages within seconds, orders living milliseconds, almost
  never executed;
* excessive trading - churning-like (FINRA Rule 2111 quantitative suitability): one account trading many times
  its own and its peers' norm over a sustained period, mostly round trips.

Background and look-alikes, in every day (labelled or clean): several symbols (majors and small caps), hundreds
of retail accounts with heavy-tailed activity, market makers quoting 1-3 levels on both sides and cancelling /
requoting nearly all of their orders (cancel rates > 90 %), HFT market makers modifying quotes every few seconds
with bursts of tens of messages, arbitrageurs in and out within seconds against many counterparties, execution
algos slicing parent orders (TWAP/VWAP, passive child orders posted and cancelled), retail grid bots trading
hundreds of times a day every day, intraday seasonality with busy hours, plus unlabelled look-alike items:
a news-driven rally (thousands of independent buyers, no collapse), a large order cancelled after the market
moved away, two accounts who trade with each other a lot through the book while one builds a net position, and
an extra busy hour on a symbol.

Book consistency: no resting order is crossed by the market while it rests. Maker orders are placed after the
last moment they would have been marketable before their fill; unfilled resting orders (retail limit orders,
algo child orders, spoof/layer orders) rest at or behind the worst touch of their life; market makers refresh a
quote the market moved away from just before it is hit (so prints stay at the touch); while a spoof/layer cycle
waits for its genuine execution the price moves only by the spoof's own pressure (capped at 1.6x the half
spread when the genuine order is passive, so the market comes up to it rather than through it).

Order / trade linkage: every trade has a taker order (`new` event 0.5-40 ms before the trade) and a maker order
(a resting limit order whose `new` event is before the fill; market makers' quotes come from their quote
streams). Fills are reported as `fill` order events on odd seeds and only as trades on even seeds (the choice
is `World.fill_events`). Cancels carry no price/quantity; market orders carry no price.

Labels: one row per episode (LABEL_SCHEMA); pump_and_dump labels have user_ids "" (market level; the organisers
are in the episode's item) and span signal -> end of the collapse; the other labels name the abusing accounts
and span the first to the last abusive event (order or trade).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from surveillance_pipeline.contract import LABEL_SCHEMA, ORDER_SCHEMA, TRADE_SCHEMA

US = 1_000_000
MIN_US = 60 * US
DAY_S = 86_400
DAY_US = DAY_S * US
BUY, SELL = 1, -1
NEW, CANCEL, MODIFY, FILL = 0, 1, 2, 3
EVENTS = ("new", "cancel", "modify", "fill")
LIMIT, MARKET = 0, 1
ORDER_TYPES = ("limit", "market")

PATTERNS = ("wash_trading", "circular_trading", "pump_and_dump", "spoofing", "layering", "quote_stuffing",
            "excessive_trading")
# episodes per labelled day (pumps: one per small cap in the run, up to this many)
EPISODES_PER_DAY = {"wash_trading": 2, "circular_trading": 2, "pump_and_dump": 2, "spoofing": 2, "layering": 2,
                    "quote_stuffing": 2, "excessive_trading": 2}
LOOKALIKE_KINDS = ("news_rally", "large_order_cancelled", "frequent_pair", "busy_hour")


@dataclass(frozen=True)
class Spec:
    symbol: str
    tier: str             # "major" | "small"
    price: float          # starting price (quote currency)
    tick: float
    lot: float
    daily_vol: float      # std of the daily log return
    trades: int           # background taker orders per day at scale 1
    half_spread_bps: float
    retail_usd: float     # median retail order notional
    book_usd: float       # a market maker's level-1 quote notional


UNIVERSE = (
    Spec("BTCUSDT", "major", 64_250.0, 0.01, 0.00001, 0.028, 16_000, 0.3, 180.0, 60_000.0),
    Spec("ETHUSDT", "major", 3_130.0, 0.01, 0.0001, 0.034, 12_000, 0.5, 150.0, 40_000.0),
    Spec("SOLUSDT", "major", 146.3, 0.01, 0.001, 0.05, 9_000, 1.0, 120.0, 20_000.0),
    Spec("KLVRUSDT", "small", 0.08342, 0.00001, 1.0, 0.09, 2_600, 10.0, 70.0, 2_500.0),
    Spec("ZEPHUSDT", "small", 1.2741, 0.0001, 0.1, 0.075, 3_200, 7.0, 80.0, 3_500.0),
    Spec("MOXUSDT", "small", 0.004213, 0.000001, 10.0, 0.12, 2_000, 18.0, 60.0, 1_500.0),
)


def _lu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform draw."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _decimals(step: float) -> int:
    return max(0, round(-math.log10(step))) + 2


@dataclass
class Item:
    """A labelled episode or an unlabelled look-alike: what happened, where, who, when, with which parameters."""

    episode_id: str
    kind: str
    labelled: bool
    symbol: str
    accounts: list[str]
    start: datetime
    end: datetime
    params: dict
    day: date
    meta: dict = field(default_factory=dict)   # ids for tests (spoof order ids, ...)
    found: bool | None = None
    alerts_on_it: list[str] = field(default_factory=list)


@dataclass
class Day:
    day: date
    history_only: bool
    trades: pl.DataFrame
    orders: pl.DataFrame
    labels: pl.DataFrame
    items: list[Item]
    unplaced: list[str] = field(default_factory=list)


@dataclass
class Quoter:
    acct: int
    hft: bool
    interval_s: float
    levels: int
    hs_bps: float
    step_bps: float
    qty_usd: float
    reset_p: float       # HFT: share of requotes that cancel/replace instead of modify
    bursts: float        # HFT: message bursts per day
    weight: float        # share of maker fills among quoters of the symbol


# ---------------------------------------------------------------------------------------------------------
# the world of one seed: symbols, accounts, carried prices, id counters
# ---------------------------------------------------------------------------------------------------------

class World:
    def __init__(self, seed: int, *, clean: bool = False, scale: float = 1.0, msg_scale: float = 1.0,
                 fill_events: bool | None = None, n_symbols: int | None = None, start: date | None = None):
        self.seed, self.clean, self.scale, self.msg_scale = seed, clean, scale, msg_scale
        rng = self.rng = np.random.default_rng(seed)
        self.fill_events = bool(seed % 2) if fill_events is None else fill_events
        majors = [s for s in UNIVERSE if s.tier == "major"]
        smalls = [s for s in UNIVERSE if s.tier == "small"]
        n_sym = n_symbols or int(rng.integers(4, 6))
        pick_m = list(rng.choice(len(majors), 2, replace=False))
        pick_s = list(rng.choice(len(smalls), 2, replace=False))
        chosen = [majors[i] for i in pick_m] + [smalls[i] for i in pick_s]
        rest = [s for s in UNIVERSE if s not in chosen]
        if n_sym >= 5:
            chosen.append(rest[int(rng.integers(len(rest)))])
        elif n_sym == 3:
            chosen = chosen[:1] + chosen[2:]
        self.specs: list[Spec] = chosen
        self.S = len(chosen)
        self.start = start or (date(2024, 1, 1) + timedelta(days=int(seed % 97) * 9 + int(rng.integers(0, 5))))
        self.log_price = np.array([math.log(s.price * math.exp(rng.normal(0, 0.1))) for s in chosen])
        self.tick = np.array([s.tick for s in chosen])
        self.lot = np.array([s.lot for s in chosen])
        self.hs = np.array([s.half_spread_bps for s in chosen]) * 1e-4
        # account ids: random 7-digit numbers, no role in the name
        pool = rng.choice(9_000_000, size=80_000, replace=False) + 1_000_000
        self._names = np.array([f"u{x}" for x in pool])
        self._next = 0
        self.roles: list[str] = []
        self.is_quoter = np.zeros(len(pool), bool)
        # retail: heavy-tailed activity, per-account symbol preferences
        n_retail = int(rng.integers(800, 1500))
        self.retail = self.new_accounts(n_retail, "retail")
        act = np.minimum(np.exp(rng.normal(0, 1.0, n_retail)), 20.0)
        pref = rng.dirichlet(np.full(self.S, 0.7), size=n_retail)
        share = np.array([1.0 if s.tier == "major" else 0.6 for s in chosen])
        w = act[:, None] * pref * share[None, :]
        self.retail_w = (w / w.sum(axis=0, keepdims=True)).T          # [symbol, account]
        self.retail_size = np.exp(rng.normal(0, 0.7, n_retail))      # personal order-size factor
        # market makers and HFT market makers
        mms = self.new_accounts(3, "market_maker")
        hfts = self.new_accounts(int(rng.integers(1, 3)), "hft_market_maker")
        self.is_quoter[mms] = True
        self.is_quoter[hfts] = True
        self.quoters: list[list[Quoter]] = []
        self.maker_mix: list[tuple[float, float]] = []               # (P(quoter), P(retail)) of a first fill
        for spec in chosen:
            qs = []
            own = rng.choice(mms, int(rng.integers(2, 4)), replace=False)
            wts = rng.dirichlet(np.full(len(own), 2.0))
            hs = spec.half_spread_bps
            for acct, wt in zip(own, wts):
                qs.append(Quoter(int(acct), False, rng.uniform(12, 40), int(rng.integers(1, 4)), hs * rng.uniform(1.0, 1.5),
                                 hs * rng.uniform(0.8, 2.0) + (0.5 if spec.tier == "major" else 5.0),
                                 spec.book_usd * rng.uniform(0.6, 1.4), 1.0, 0.0, float(wt) * (0.7 if spec.tier == "major" else 1.0)))
            if spec.tier == "major":
                for acct in hfts:
                    qs.append(Quoter(int(acct), True, rng.uniform(3, 8), 1, hs * rng.uniform(0.9, 1.1), 0.0,
                                     spec.book_usd * rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.2),
                                     rng.uniform(10, 30), 0.3 / len(hfts)))
            self.quoters.append(qs)
            self.maker_mix.append((0.8, 0.2) if spec.tier == "major" else (0.7, 0.3))
        self.arbs = self.new_accounts(int(rng.integers(2, 5)), "arbitrageur")
        self.arb_rt = rng.uniform(80, 300, len(self.arbs))
        self.algos = self.new_accounts(int(rng.integers(2, 5)), "execution_algo")
        self.algo_passive = rng.uniform(0.3, 0.7, len(self.algos))
        self.bots = self.new_accounts(int(rng.integers(2, 4)), "grid_bot")
        self.bot_w = rng.dirichlet(np.full(len(self.bots), 3.0))
        # the frequent pair look-alike: the same two accounts every day
        self.pair_p = int(self.new_accounts(1, "otc_desk")[0])
        self.pair_q = int(self.new_accounts(1, "accumulating_fund")[0])
        # expected trades per retail account per symbol per day (taker + maker fills)
        per_sym = np.array([s.trades * scale * (0.91 + 1.15 * mix[1]) for s, mix in zip(chosen, self.maker_mix)])
        self.expected = self.retail_w * per_sym[:, None]             # [symbol, account]
        order = rng.permutation(n_retail)
        top_sym = self.expected.argmax(axis=0)
        top_e = self.expected.max(axis=0)
        self._unused = [int(i) for i in order]          # retail accounts not yet given an abusive role
        self._top_e = top_e
        self._top_sym = top_sym
        self.trade_seq = np.zeros(self.S, np.int64) + rng.integers(10_000_000, 90_000_000, self.S)
        self.next_oid = int(rng.integers(10**9, 2 * 10**9))
        self.episode_no = 0

    # ---- accounts ----------------------------------------------------------------------------------------
    def new_accounts(self, n: int, role: str) -> np.ndarray:
        ids = np.arange(self._next, self._next + n, dtype=np.int64)
        self._next += n
        self.roles.extend([role] * n)
        return ids

    def name(self, acct) -> str:
        return str(self._names[int(acct)])

    def names(self, accts) -> list[str]:
        return [self.name(a) for a in accts]

    def role_of(self, name: str) -> str:
        idx = np.nonzero(self._names[: self._next] == name)[0]
        return self.roles[int(idx[0])] if len(idx) else "unknown"

    def sample_retail(self, s: int, n: int, exclude=()) -> np.ndarray:
        out = self.retail[self.rng.choice(len(self.retail), n, p=self.retail_w[s])]
        if len(exclude):
            bad = np.isin(out, np.asarray(list(exclude)))
            while bad.any():
                out[bad] = self.retail[self.rng.choice(len(self.retail), int(bad.sum()), p=self.retail_w[s])]
                bad = np.isin(out, np.asarray(list(exclude)))
        return out

    def take_abuser(self) -> int:
        """A retail account picked at random (not yet used for an episode)."""
        return int(self.retail[self._unused.pop()])

    def take_excessive(self) -> tuple[int, int, float]:
        """A random retail account with a moderate norm (4-60 expected trades a day on its main symbol)."""
        pick = next((j for j in range(len(self._unused) - 1, -1, -1) if 4 <= self._top_e[self._unused[j]] <= 60),
                    len(self._unused) - 1)
        i = self._unused.pop(pick)
        s = int(self._top_sym[i])
        return int(self.retail[i]), s, float(self.expected[s, i])

    def oids(self, n: int) -> np.ndarray:
        out = np.arange(self.next_oid, self.next_oid + n, dtype=np.int64)
        self.next_oid += n
        return out

    # ---- days ----------------------------------------------------------------------------------------------
    def generate(self, n_days: int) -> list[Day]:
        """A history-only warm-up day, then `n_days` days with episodes (none when clean) and look-alikes."""
        return [self.make_day(self.start + timedelta(days=d), history_only=(d == 0)) for d in range(n_days + 1)]

    def make_day(self, day: date, history_only: bool) -> Day:
        b = DayBuilder(self, day)
        sched = Scheduler(self.S)
        plans: list[Plan] = []
        labelled = not (history_only or self.clean)
        # pumps first (they need the small caps' long quiet spans), then look-alikes, then the rest
        if labelled:
            smalls = [s for s in range(self.S) if self.specs[s].tier == "small"]
            for s in list(self.rng.permutation(smalls))[: EPISODES_PER_DAY["pump_and_dump"]]:
                plans.append(PumpPlan(self, b, int(s)))
        plans.append(NewsRallyPlan(self, b))
        for _ in range(int(self.rng.integers(1, 3))):
            plans.append(BigCancelPlan(self, b))
        plans.append(FrequentPairPlan(self, b))
        for _ in range(int(self.rng.integers(1, 3))):
            plans.append(BusyHourPlan(self, b))
        if labelled:
            kinds = []
            for kind, n in EPISODES_PER_DAY.items():
                if kind != "pump_and_dump":
                    kinds += [kind] * n
            for kind in kinds:
                plans.append(PLAN_CLASSES[kind](self, b))
        placed = []
        for p in plans:
            if p.place(sched):
                placed.append(p)
            else:
                b.unplaced.append(p.kind)
        for p in placed:
            p.prepare(b)
        b.build_mid()
        background(b)
        items = [p.emit(b) for p in placed]
        trades, orders = b.finalize()
        labels = [it for it in items if it.labelled]
        label_frame = pl.DataFrame(
            {"episode_id": [it.episode_id for it in labels], "pattern": [it.kind for it in labels],
             "symbol": [it.symbol for it in labels],
             "user_ids": ["" if it.kind == "pump_and_dump" else ";".join(it.accounts) for it in labels],
             "start": [it.start for it in labels], "end": [it.end for it in labels]},
            schema=LABEL_SCHEMA)
        return Day(day, history_only, trades, orders, label_frame, items, list(b.unplaced))


class Scheduler:
    """Per-symbol busy spans (seconds of the day), so exclusive items never overlap on a symbol."""

    def __init__(self, n_symbols: int):
        self.busy: list[list[tuple[float, float]]] = [[] for _ in range(n_symbols)]

    def free(self, s: int, a: float, b: float, gap: float) -> bool:
        return all(b + gap <= x0 or a - gap >= x1 for x0, x1 in self.busy[s])

    def place(self, rng, symbols, length: float, lo: float, hi: float, gap: float = 1200.0,
              exclusive: bool = True) -> tuple[int, float] | None:
        symbols = list(symbols)
        for _ in range(400):
            s = int(symbols[int(rng.integers(len(symbols)))])
            if hi - length <= lo:
                return None
            t0 = float(rng.uniform(lo, hi - length))
            if not exclusive or self.free(s, t0, t0 + length, gap):
                if exclusive:
                    self.busy[s].append((t0, t0 + length))
                return s, t0
        return None


# ---------------------------------------------------------------------------------------------------------
# one day's tape under construction
# ---------------------------------------------------------------------------------------------------------

FILL_COLS = {"ts": np.int64, "s": np.int16, "side": np.int8, "price": np.float64, "qty": np.float64,
             "taker": np.int64, "maker": np.int64, "toid": np.int64, "moid": np.int64, "t_auto": bool,
             "t_type": np.int8, "t_lead": np.int64, "m_auto": bool, "m_lead": np.int64}
ORDER_COLS = {"oid": np.int64, "ts": np.int64, "user": np.int64, "s": np.int16, "side": np.int8,
              "price": np.float64, "qty": np.float64, "event": np.int8, "otype": np.int8}


class DayBuilder:
    def __init__(self, w: World, day: date):
        self.w, self.rng, self.day = w, w.rng, day
        self.d0 = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * US
        S = w.S
        self.F: dict[str, list[np.ndarray]] = {k: [] for k in FILL_COLS}
        self.O: dict[str, list[np.ndarray]] = {k: [] for k in ORDER_COLS}
        self.overlay = np.zeros((S, DAY_S))
        self.vol_boost = np.ones((S, DAY_S))
        self.boost = np.ones((S, 1440))          # extra activity (episodes, look-alikes)
        self.unplaced: list[str] = []
        hours = np.arange(1440) / 60.0

        def bump(c, width):
            d = np.minimum(np.abs(hours - c), 24 - np.abs(hours - c))
            return np.exp(-0.5 * (d / width) ** 2)

        season = (1.0 + 0.35 * bump(1.0, 1.2) + 0.3 * bump(9.0, 1.5) + 1.3 * bump(14.75, 1.1)
                  + 0.4 * bump(18.5, 2.0) - 0.4 * bump(5.5, 1.5))
        self.act = np.empty((S, 1440))
        for s in range(S):
            e = np.empty(1440)
            x, phi, sig = 0.0, 0.97, 0.35
            xi = self.rng.normal(0, 1, 1440)
            for i in range(1440):
                x = phi * x + sig * math.sqrt(1 - phi * phi) * xi[i]
                e[i] = x
            self.act[s] = season * np.exp(e - sig * sig / 2) * self.rng.uniform(0.85, 1.15)
        self.mid = None
        self.freeze = np.zeros((S, DAY_S), bool)   # seconds without random-walk noise (spoof cycles)
        self._sparse: dict = {}

    def spec(self, s: int) -> Spec:
        return self.w.specs[s]

    def us(self, seconds) -> np.ndarray | int:
        if np.ndim(seconds):
            return self.d0 + (np.asarray(seconds) * US).astype(np.int64)
        return self.d0 + int(seconds * US)

    def act_eff(self, s: int) -> np.ndarray:
        return self.act[s] * self.boost[s]

    def build_mid(self) -> None:
        w, rng = self.w, self.rng
        self.mid = np.empty((w.S, DAY_S))
        for s in range(w.S):
            spec = w.specs[s]
            a = np.repeat(self.act_eff(s), 60) * self.vol_boost[s]
            sig = spec.daily_vol / math.sqrt(DAY_S) * np.sqrt(a / self.act[s].mean())
            z = rng.standard_t(5, DAY_S) / math.sqrt(5 / 3)
            r = sig * z
            nj = rng.poisson(2)
            r[rng.integers(0, DAY_S, nj)] += rng.normal(0, spec.daily_vol * 0.08, nj)
            r[self.freeze[s]] = 0.0
            path = w.log_price[s] + np.cumsum(r) + self.overlay[s]
            self.mid[s] = np.exp(path)
            w.log_price[s] = path[-1]

    # ---- prices and sizes -------------------------------------------------------------------------------
    def _tables(self, s: int):
        if s not in self._sparse:
            lo, hi = [self.mid[s]], [self.mid[s]]
            k = 1
            while 2 * k <= DAY_S:
                lo.append(np.minimum(lo[-1][:-k], lo[-1][k:]))
                hi.append(np.maximum(hi[-1][:-k], hi[-1][k:]))
                k *= 2
            self._sparse[s] = (lo, hi)
        return self._sparse[s]

    def mid_range(self, s: int, a_sec, b_sec):
        """Min and max of the mid over the seconds [a_sec, b_sec] (arrays, inclusive)."""
        a = np.clip(np.asarray(a_sec, np.int64), 0, DAY_S - 1)
        b = np.clip(np.asarray(b_sec, np.int64), 0, DAY_S - 1)
        a, b = np.minimum(a, b), np.maximum(a, b)
        lo, hi = self._tables(s)
        n = b - a + 1
        lvl = np.floor(np.log2(n)).astype(np.int64)
        out_lo, out_hi = np.empty(len(np.atleast_1d(a))), np.empty(len(np.atleast_1d(a)))
        a1, b1, l1 = np.atleast_1d(a), np.atleast_1d(b), np.atleast_1d(lvl)
        for L in np.unique(l1):
            m = l1 == L
            w = 1 << int(L)
            out_lo[m] = np.minimum(lo[L][a1[m]], lo[L][b1[m] - w + 1])
            out_hi[m] = np.maximum(hi[L][a1[m]], hi[L][b1[m] - w + 1])
        return out_lo, out_hi

    def worst_touch(self, s: int, t0, t1, side):
        """For an order resting on `side` from t0 to t1 (us): the lowest bid (buy) / highest ask (sell) of the span,
        so an order priced at or behind it is never crossed by the market while it rests."""
        t0, t1 = np.atleast_1d(np.asarray(t0, np.int64)), np.atleast_1d(np.asarray(t1, np.int64))
        side = np.broadcast_to(np.asarray(side), t0.shape)
        lo, hi = self.mid_range(s, (t0 - self.d0) // US, (t1 - self.d0) // US)
        tick, hs = self.w.tick[s], self.w.hs[s]
        bid = np.floor(lo * (1 - hs) / tick) * tick
        ask = np.ceil(hi * (1 + hs) / tick) * tick
        return self.rnd_price(s, np.where(side > 0, bid, ask))

    def behind(self, s: int, t0, t1, side, bps):
        """A price `bps` behind the worst touch of the span (see worst_touch)."""
        wt = self.worst_touch(s, t0, t1, side)
        side = np.broadcast_to(np.asarray(side), wt.shape)
        return self.rnd_price(s, np.where(side > 0, wt * (1 - np.asarray(bps) * 1e-4), wt * (1 + np.asarray(bps) * 1e-4)))

    def safe_leads(self, s_arr, side, price, ts, lead):
        """Resting (maker) orders: the placement is moved after the last moment the order would have been
        marketable (a buy at or above the ask, a sell at or below the bid) before its fill."""
        lead = lead.astype(np.int64).copy()
        for s in np.unique(s_arr):
            m = np.nonzero(s_arr == s)[0]
            hs = self.w.hs[s]
            sec = (ts[m] - self.d0) // US
            lo_s = np.maximum((ts[m] - lead[m] - self.d0) // US, 0)
            hi_s = sec - 1
            buy = side[m] > 0
            # a buy at P is marketable when ask <= P <=> mid <= P / (1 + hs); a sell when mid >= P / (1 - hs)
            thr = np.where(buy, price[m] / (1 + hs), price[m] / (1 - hs))

            def crosses(a, b, idx, s=s, buy=buy, thr=thr):
                mn, mx = self.mid_range(s, a, b)
                return np.where(buy[idx], mn <= thr[idx] + 1e-12 * thr[idx], mx >= thr[idx] - 1e-12 * thr[idx])

            idx = np.nonzero(hi_s >= lo_s)[0]
            if not len(idx):
                continue
            hit = crosses(lo_s[idx], hi_s[idx], idx)
            idx = idx[hit]
            if not len(idx):
                continue
            L, R = lo_s[idx].copy(), hi_s[idx].copy()
            while True:
                open_ = L < R
                if not open_.any():
                    break
                mid_ = (L + R + 1) // 2
                c = crosses(np.where(open_, mid_, L), R, idx)
                L = np.where(open_ & c, mid_, L)
                R = np.where(open_ & ~c, mid_ - 1, R)
            placed = self.d0 + (L + 1) * US
            lead[m[idx]] = np.maximum(ts[m[idx]] - placed, 1000)
        return lead

    def mid_at(self, s, ts):
        sec = np.clip((np.asarray(ts) - self.d0) // US, 0, DAY_S - 1)
        return self.mid[s, sec]

    def rnd_price(self, s, p):
        s_arr = np.broadcast_to(np.asarray(s), np.shape(p))
        tick = self.w.tick[s_arr]
        out = np.maximum(np.round(np.asarray(p) / tick) * tick, tick)
        return np.round(out, 10)

    def touch(self, s, ts, side, step=0):
        """The price a taker on `side` gets at `ts` (ask for a buy, bid for a sell), `step` levels deeper."""
        s = np.asarray(s)
        mid = self.mid_at(s, ts)
        tick, hs = self.w.tick[s], self.w.hs[s]
        stepsize = np.maximum(tick, mid * 0.5e-4)
        ask = np.ceil(mid * (1 + hs) / tick) * tick + step * stepsize
        bid = np.floor(mid * (1 - hs) / tick) * tick - step * stepsize
        return self.rnd_price(s, np.where(np.asarray(side) > 0, ask, bid))

    def away(self, s, ts, side, bps):
        """A resting price on `side` `bps` behind the touch (below the bid for a buy, above the ask for a sell)."""
        s = np.asarray(s)
        touch = self.touch(s, ts, -np.asarray(side))
        return self.rnd_price(s, np.where(np.asarray(side) > 0, touch * (1 - np.asarray(bps) * 1e-4),
                                          touch * (1 + np.asarray(bps) * 1e-4)))

    def qty(self, s, usd, ts):
        s = np.asarray(s)
        lot = self.w.lot[s]
        q = np.asarray(usd) / self.mid_at(s, ts)
        return np.round(np.maximum(lot, np.round(q / lot) * lot), 8)

    def pick_makers(self, s: int, n: int, p_retail: float | None = None, exclude=()) -> np.ndarray:
        """Maker accounts for n fills on symbol s: its quoters (by weight) or retail limit orders."""
        rng = self.rng
        qs = self.w.quoters[s]
        _pq, pr = self.w.maker_mix[s]
        if p_retail is not None:
            pr = p_retail
        wq = np.array([q.weight for q in qs])
        out = np.array([q.acct for q in qs])[rng.choice(len(qs), n, p=wq / wq.sum())]
        retail = rng.random(n) < pr
        if retail.any():
            out[retail] = self.w.sample_retail(s, int(retail.sum()), exclude=exclude)
        return out

    # ---- recording ----------------------------------------------------------------------------------------
    def add_orders(self, oid, ts, user, s, side, price, qty, event, otype=LIMIT) -> None:
        ts = np.atleast_1d(np.asarray(ts, np.int64))
        n = len(ts)
        vals = {"oid": oid, "ts": ts, "user": user, "s": s, "side": side, "price": price, "qty": qty,
                "event": event, "otype": otype}
        for k, dt in ORDER_COLS.items():
            self.O[k].append(np.broadcast_to(np.asarray(vals[k], dtype=dt), (n,)).copy())

    def add_fills(self, ts, s, side, qty, taker, maker, *, price=None, toid=None, moid=None, t_type=LIMIT,
                  t_lead=None, m_lead=None, t_auto=True, step=0) -> None:
        """Trades. A taker order is made (new 0.5-40 ms before) unless `toid` is given with t_auto False
        (the caller made it); fills sharing a `toid` with t_auto form one taker order. A maker order is made
        (new `m_lead` before) unless `moid` is given; quoters' fills without a price link to their quote stream."""
        rng = self.rng
        ts = np.atleast_1d(np.asarray(ts, np.int64))
        n = len(ts)
        if n == 0:
            return

        def bc(x, dt):
            return np.broadcast_to(np.asarray(x, dtype=dt), (n,)).copy()

        s_a, side_a, qty_a = bc(s, np.int16), bc(side, np.int8), bc(qty, np.float64)
        taker_a, maker_a = bc(taker, np.int64), bc(maker, np.int64)
        price_a = np.full(n, np.nan) if price is None else bc(price, np.float64)
        quoter = self.w.is_quoter[maker_a]
        auto_price = np.isnan(price_a) & ~quoter
        if auto_price.any():
            price_a[auto_price] = self.touch(s_a[auto_price].astype(np.int64), ts[auto_price], side_a[auto_price],
                                             bc(step, np.int64)[auto_price])
        if toid is None:
            toid_a, t_auto_a = self.w.oids(n), np.ones(n, bool)
        else:
            toid_a, t_auto_a = bc(toid, np.int64), bc(t_auto, bool)
        if moid is None:
            stream = quoter & np.isnan(price_a)
            moid_a = np.where(stream, -1, self.w.oids(n))
            m_auto_a = ~stream
        else:
            moid_a, m_auto_a = bc(moid, np.int64), np.zeros(n, bool)
        t_lead_a = rng.integers(500, 40_000, n) if t_lead is None else bc(t_lead, np.int64)
        if m_lead is None:
            m_lead_a = np.exp(rng.normal(math.log(90.0), 1.6, n)) * US
        else:
            m_lead_a = bc(m_lead, np.float64)
        vals = {"ts": ts, "s": s_a, "side": side_a, "price": price_a, "qty": qty_a, "taker": taker_a,
                "maker": maker_a, "toid": toid_a, "moid": moid_a, "t_auto": t_auto_a, "t_type": bc(t_type, np.int8),
                "t_lead": t_lead_a, "m_auto": m_auto_a, "m_lead": np.maximum(m_lead_a, 1000).astype(np.int64)}
        for k, dt in FILL_COLS.items():
            self.F[k].append(np.asarray(vals[k], dtype=dt))

    def taker_trades(self, ts, s: int, side, usd, taker, *, nfill_p=0.0, p_retail=None, t_type=MARKET,
                     exclude=()) -> None:
        """Taker orders (one per element) hitting makers picked for the symbol, some sweeping 2-3 levels."""
        rng = self.rng
        ts = np.atleast_1d(np.asarray(ts, np.int64))
        n = len(ts)
        if n == 0:
            return
        side = np.broadcast_to(np.asarray(side, np.int8), (n,))
        taker = np.broadcast_to(np.asarray(taker, np.int64), (n,))
        usd = np.broadcast_to(np.asarray(usd, np.float64), (n,))
        nf = 1 + (rng.random(n) < nfill_p) * rng.integers(1, 3, n)
        idx = np.repeat(np.arange(n), nf)
        j = np.arange(len(idx)) - np.repeat(np.cumsum(nf) - nf, nf)
        toid = self.w.oids(n)[idx]
        makers = self.pick_makers(s, len(idx), p_retail=p_retail, exclude=set(np.unique(taker).tolist()))
        deeper = j > 0
        if deeper.any():
            makers[deeper] = self.w.sample_retail(s, int(deeper.sum()), exclude=set(np.unique(taker).tolist()))
        same = makers == taker[idx]
        if same.any():
            makers[same] = self.w.sample_retail(s, int(same.sum()), exclude=set(np.unique(taker).tolist()))
        q = self.qty(s, usd[idx] / nf[idx] * rng.uniform(0.6, 1.4, len(idx)), ts[idx])
        self.add_fills(ts[idx], s, side[idx], q, taker[idx], makers, toid=toid, t_auto=True, t_type=t_type,
                       t_lead=np.repeat(rng.integers(500, 40_000, n), nf), step=j)

    # ---- finishing ----------------------------------------------------------------------------------------
    def finalize(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        w = self.w
        F = {k: (np.concatenate(v) if v else np.zeros(0, FILL_COLS[k])) for k, v in self.F.items()}
        ok = (F["ts"] > self.d0) & (F["ts"] < self.d0 + DAY_US)
        F = {k: v[ok] for k, v in F.items()}
        self._quote_streams(F)
        self._retail_noise()
        n = len(F["ts"])
        # taker orders made here: one per toid, new before its first fill
        ta = np.nonzero(F["t_auto"])[0]
        if len(ta):
            t = pl.DataFrame({"oid": F["toid"][ta], "ts": F["ts"][ta], "lead": F["t_lead"][ta],
                              "user": F["taker"][ta], "s": F["s"][ta], "side": F["side"][ta], "price": F["price"][ta],
                              "qty": F["qty"][ta], "otype": F["t_type"][ta]})
            g = t.group_by("oid").agg(pl.col("ts").min(), pl.col("lead").first(), pl.col("user").first(),
                                      pl.col("s").first(), pl.col("side").first(), pl.col("otype").first(),
                                      pl.col("qty").sum(), pl.col("price").max().alias("pmax"),
                                      pl.col("price").min().alias("pmin"))
            lead = np.minimum(g["lead"].to_numpy(), (g["ts"].to_numpy() - self.d0) // 2)
            price = np.where(g["side"].to_numpy() > 0, g["pmax"].to_numpy(), g["pmin"].to_numpy())
            price = np.where(g["otype"].to_numpy() == MARKET, np.nan, price)
            self.add_orders(g["oid"].to_numpy(), g["ts"].to_numpy() - lead, g["user"].to_numpy(), g["s"].to_numpy(),
                            g["side"].to_numpy(), price, np.round(g["qty"].to_numpy(), 8), NEW, g["otype"].to_numpy())
        ma = np.nonzero(F["m_auto"])[0]
        if len(ma):
            t = pl.DataFrame({"oid": F["moid"][ma], "ts": F["ts"][ma], "lead": F["m_lead"][ma],
                              "user": F["maker"][ma], "s": F["s"][ma], "side": -F["side"][ma], "price": F["price"][ma],
                              "qty": F["qty"][ma]})
            g = t.group_by("oid").agg(pl.col("ts").min(), pl.col("lead").first(), pl.col("user").first(),
                                      pl.col("s").first(), pl.col("side").first(), pl.col("price").first(),
                                      pl.col("qty").sum())
            lead = np.minimum(g["lead"].to_numpy(), (g["ts"].to_numpy() - self.d0) // 2)
            lead = self.safe_leads(g["s"].to_numpy().astype(np.int64), g["side"].to_numpy(), g["price"].to_numpy(),
                                   g["ts"].to_numpy(), lead)
            self.add_orders(g["oid"].to_numpy(), g["ts"].to_numpy() - lead, g["user"].to_numpy(), g["s"].to_numpy(),
                            g["side"].to_numpy(), g["price"].to_numpy(), np.round(g["qty"].to_numpy(), 8), NEW, LIMIT)
        if w.fill_events and n:
            buyer_oid = np.where(F["side"] > 0, F["toid"], F["moid"])
            seller_oid = np.where(F["side"] > 0, F["moid"], F["toid"])
            buyer = np.where(F["side"] > 0, F["taker"], F["maker"])
            seller = np.where(F["side"] > 0, F["maker"], F["taker"])
            taker_buys = F["side"] > 0
            buyer_type = np.where(taker_buys, F["t_type"], LIMIT)
            seller_type = np.where(taker_buys, LIMIT, F["t_type"])
            for oid, user, side, otype in ((buyer_oid, buyer, BUY, buyer_type), (seller_oid, seller, SELL, seller_type)):
                self.add_orders(oid, F["ts"], user, F["s"], side, F["price"], F["qty"], FILL, otype)
        trades = self._trade_frame(F)
        orders = self._order_frame()
        return trades, orders

    def _quote_streams(self, F) -> None:
        """Market makers' quote streams: requotes on a base clock (faster when busy), right after their fills
        and, for HFT makers, in bursts; every requote cancels/replaces (HFT: mostly modifies) all levels.
        Fills on a quoter without a price take the price and order id of the quote live at the fill."""
        w, rng = self.w, self.rng
        for s in range(w.S):
            spec = w.specs[s]
            act = self.act_eff(s)
            for q in w.quoters[s]:
                sel = np.nonzero((F["s"] == s) & (F["maker"] == q.acct) & (F["moid"] == -1))[0]
                counts = rng.poisson(60.0 / q.interval_s * np.sqrt(act) * w.msg_scale)
                base = np.repeat(np.arange(1440, dtype=np.int64) * MIN_US, counts) + rng.integers(0, MIN_US, counts.sum())
                trig = F["ts"][sel] + rng.integers(1_000, 80_000, len(sel))
                trig = trig[rng.random(len(sel)) < 0.8]
                parts = [np.array([self.d0]), self.d0 + base, trig]
                if q.hft:
                    nb = rng.poisson(q.bursts * w.msg_scale)
                    p = act / act.sum()
                    centres = self.d0 + rng.choice(1440, nb, p=p) * MIN_US + rng.integers(0, MIN_US, nb)
                    for c in centres:
                        m = int(rng.integers(10, 60))
                        parts.append(c + np.cumsum(rng.exponential(50_000, m)).astype(np.int64))
                R = np.unique(np.concatenate(parts))
                R = R[R < self.d0 + DAY_US]
                if len(sel):
                    # a quote the market moved away from is refreshed just before the fill (never a stale print)
                    k0 = np.searchsorted(R, F["ts"][sel], "left") - 1
                    moved = np.abs(self.mid_at(s, F["ts"][sel]) / self.mid_at(s, R[k0]) - 1) > 0.5 * q.hs_bps * 1e-4
                    gap = F["ts"][sel] - R[k0]
                    ins = F["ts"][sel][moved] - np.minimum(rng.integers(1_000, 200_000, int(moved.sum())), gap[moved] // 2)
                    R = np.unique(np.concatenate([R, ins]))
                K = len(R)
                L = q.levels
                midR = self.mid_at(s, R)
                offs = (q.hs_bps + np.arange(L) * q.step_bps) * 1e-4             # [L]
                tick = spec.tick
                bid = np.maximum(np.floor(midR[:, None] * (1 - offs[None, :]) / tick) * tick, tick)
                ask = np.ceil(midR[:, None] * (1 + offs[None, :]) / tick) * tick
                bid, ask = np.round(bid, 10), np.round(ask, 10)
                newflag = np.ones(K, bool) if not q.hft else rng.random(K) < q.reset_p
                newflag[0] = True
                chain = np.cumsum(newflag) - 1
                C = int(chain[-1]) + 1
                base_oid = w.oids(C * 2 * L)[0]

                def oid(k, side_idx, lvl, base_oid=base_oid, chain=chain, L=L):
                    return base_oid + (chain[k] * 2 + side_idx) * L + lvl

                qty = np.empty((K, 2, L))
                for lvl in range(L):
                    qty[:, :, lvl] = (q.qty_usd * 1.5 ** lvl / midR)[:, None] * np.exp(rng.normal(0, 0.15, (K, 2)))
                if len(sel):
                    k = np.searchsorted(R, F["ts"][sel], "left") - 1
                    side_idx = (F["side"][sel] > 0).astype(np.int64)   # taker buy -> ask (1), sell -> bid (0)
                    F["price"][sel] = np.where(side_idx == 1, ask[k, 0], bid[k, 0])
                    F["moid"][sel] = oid(k, side_idx, 0)
                    filled = np.zeros((K, 2))
                    np.add.at(filled, (k, side_idx), F["qty"][sel])
                    qty[:, :, 0] = np.maximum(qty[:, :, 0], filled * 1.15)
                lot = spec.lot
                qty = np.round(np.maximum(lot, np.round(qty / lot) * lot), 8)
                ks = np.arange(K)
                for side_idx, side, px in ((0, BUY, bid), (1, SELL, ask)):
                    for lvl in range(L):
                        nk = ks[newflag]
                        self.add_orders(oid(nk, side_idx, lvl), R[nk], q.acct, s, side, px[nk, lvl], qty[nk, side_idx, lvl], NEW)
                        ck = nk[nk > 0]
                        self.add_orders(oid(ck - 1, side_idx, lvl), R[ck], q.acct, s, side, np.nan, np.nan, CANCEL)
                        mk = ks[~newflag]
                        if len(mk):
                            self.add_orders(oid(mk, side_idx, lvl), R[mk], q.acct, s, side, px[mk, lvl],
                                            qty[mk, side_idx, lvl], MODIFY)

    def _retail_noise(self) -> None:
        """Retail limit orders that never fill: most cancelled after minutes, some left open."""
        w, rng = self.w, self.rng
        for s in range(w.S):
            spec = w.specs[s]
            n = rng.poisson(spec.trades * w.scale * 0.5)
            act = self.act_eff(s)
            ts = self.d0 + rng.choice(1440, n, p=act / act.sum()) * MIN_US + rng.integers(0, MIN_US, n)
            ts = np.clip(ts, self.d0 + US, self.d0 + DAY_US - US)
            side = np.where(rng.random(n) < 0.5, BUY, SELL).astype(np.int8)
            users = w.sample_retail(s, n)
            usd = np.exp(rng.normal(math.log(spec.retail_usd), 1.2, n))
            q = self.qty(s, usd, ts)
            oid = w.oids(n)
            life = np.exp(rng.normal(math.log(240.0), 1.5, n)) * US
            tc = ts + life.astype(np.int64)
            cancel = (rng.random(n) < 0.7) & (tc < self.d0 + DAY_US)
            until = np.where(cancel, tc, self.d0 + DAY_US - 1)
            bps = rng.uniform(2, 300, n) if spec.tier == "small" else rng.uniform(2, 150, n)
            price = self.behind(s, ts, until, side, bps)
            self.add_orders(oid, ts, users, s, side, price, q, NEW)
            self.add_orders(oid[cancel], tc[cancel], users[cancel], s, side[cancel], np.nan, np.nan, CANCEL)

    def _trade_frame(self, F) -> pl.DataFrame:
        w = self.w
        n = len(F["ts"])
        order = np.lexsort((np.arange(n), F["ts"]))
        F = {k: v[order] for k, v in F.items()}
        tid = np.empty(n, np.int64)
        for s in range(w.S):
            m = F["s"] == s
            c = int(m.sum())
            tid[m] = w.trade_seq[s] + np.arange(c)
            w.trade_seq[s] += c
        buy = F["side"] > 0
        price = np.round(F["price"], 10)
        qty = np.round(F["qty"], 8)
        quote = price * qty
        names = pl.Series(w._names)
        syms = pl.Series([sp.symbol for sp in w.specs])
        return pl.DataFrame({
            "trade_id": pl.Series(tid).cast(pl.String),
            "timestamp": pl.Series(F["ts"]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "symbol": syms.gather(F["s"].astype(np.int64)),
            "side": np.where(buy, "buy", "sell"),
            "price": price, "quantity": qty,
            "buyer_id": names.gather(np.where(buy, F["taker"], F["maker"])),
            "seller_id": names.gather(np.where(buy, F["maker"], F["taker"])),
            "buyer_order_id": pl.Series(np.where(buy, F["toid"], F["moid"])).cast(pl.String),
            "seller_order_id": pl.Series(np.where(buy, F["moid"], F["toid"])).cast(pl.String),
            "market_type": "spot", "quote_quantity": np.round(quote, 8), "fee": np.round(quote * 0.001, 8),
        }).cast(TRADE_SCHEMA).select(list(TRADE_SCHEMA))

    def _order_frame(self) -> pl.DataFrame:
        w = self.w
        O = {k: (np.concatenate(v) if v else np.zeros(0, ORDER_COLS[k])) for k, v in self.O.items()}
        n = len(O["ts"])
        order = np.lexsort((np.arange(n), O["ts"]))
        O = {k: v[order] for k, v in O.items()}
        names = pl.Series(w._names)
        syms = pl.Series([sp.symbol for sp in w.specs])
        return pl.DataFrame({
            "order_id": pl.Series(O["oid"]).cast(pl.String),
            "timestamp": pl.Series(O["ts"]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "user_id": names.gather(O["user"]),
            "symbol": syms.gather(O["s"].astype(np.int64)),
            "side": np.where(O["side"] > 0, "buy", "sell"),
            "price": pl.Series(np.round(O["price"], 10)).fill_nan(None),
            "quantity": pl.Series(np.round(O["qty"], 8)).fill_nan(None),
            "event": pl.Series(EVENTS).gather(O["event"].astype(np.int64)),
            "order_type": pl.Series(ORDER_TYPES).gather(O["otype"].astype(np.int64)),
            "market_type": "spot",
        }).cast(ORDER_SCHEMA).select(list(ORDER_SCHEMA))


# ---------------------------------------------------------------------------------------------------------
# background: retail / bot / market-maker taker flow, arbitrageurs, execution algos
# ---------------------------------------------------------------------------------------------------------

def background(b: DayBuilder) -> None:
    w, rng = b.w, b.rng
    for s in range(w.S):
        spec = w.specs[s]
        act = b.act_eff(s)
        lam = spec.trades * w.scale * rng.uniform(0.85, 1.15) * act / b.act[s].sum()
        counts = rng.poisson(lam)
        n = int(counts.sum())
        ts = b.d0 + np.repeat(np.arange(1440, dtype=np.int64) * MIN_US, counts) + rng.integers(0, MIN_US, n)
        ts = np.sort(np.clip(ts, b.d0 + US, b.d0 + DAY_US - US))
        mid0 = b.mid_at(s, ts)
        ret = np.log(b.mid_at(s, ts + 60 * US) / mid0)
        sig60 = spec.daily_vol * math.sqrt(60 / DAY_S)
        side = np.where(rng.random(n) < 0.5 + 0.3 * np.tanh(ret / (1.5 * sig60)), BUY, SELL).astype(np.int8)
        u = rng.random(n)
        cat = np.where(u < 0.06, 1, np.where(u < 0.09, 2, 0))           # 0 retail, 1 grid bot, 2 quoter
        taker = np.empty(n, np.int64)
        ridx = rng.choice(len(w.retail), n, p=w.retail_w[s])
        taker[:] = w.retail[ridx]
        usd = np.exp(rng.normal(math.log(spec.retail_usd), 1.25, n)) * w.retail_size[ridx]
        m = cat == 1
        taker[m] = w.bots[rng.choice(len(w.bots), int(m.sum()), p=w.bot_w)]
        usd[m] = np.exp(rng.normal(math.log(spec.retail_usd * 2.5), 0.4, int(m.sum())))
        m = cat == 2
        qs = w.quoters[s]
        taker[m] = np.array([q.acct for q in qs])[rng.integers(0, len(qs), int(m.sum()))]
        usd[m] = spec.book_usd * rng.uniform(0.05, 0.3, int(m.sum()))
        t_type = np.where((cat == 0) & (rng.random(n) < 0.65), MARKET, LIMIT)
        nf = 1 + (rng.random(n) < np.clip(0.04 + 0.08 * np.log1p(usd / spec.retail_usd), 0, 0.45)) * rng.geometric(0.55, n)
        nf = np.minimum(nf, 5)
        idx = np.repeat(np.arange(n), nf)
        j = np.arange(len(idx)) - np.repeat(np.cumsum(nf) - nf, nf)
        makers = b.pick_makers(s, len(idx))
        deeper = j > 0
        makers[deeper] = w.sample_retail(s, int(deeper.sum()))
        clash = (makers == taker[idx]) | (w.is_quoter[makers] & w.is_quoter[taker[idx]])
        while clash.any():
            makers[clash] = w.sample_retail(s, int(clash.sum()))
            clash = makers == taker[idx]
        q = b.qty(s, usd[idx] / nf[idx] * rng.uniform(0.6, 1.4, len(idx)), ts[idx])
        toid = w.oids(n)[idx]
        b.add_fills(ts[idx], s, side[idx], q, taker[idx], makers, toid=toid, t_auto=True, t_type=t_type[idx],
                    t_lead=np.repeat(rng.integers(500, 40_000, n), nf), step=j)
    arbitrage(b)
    algos(b)


def arbitrage(b: DayBuilder) -> None:
    """Cross-venue arbitrageurs: in and out within seconds (two taker legs), many counterparties, flat."""
    w, rng = b.w, b.rng
    sym_w = np.array([1.0 if s.tier == "major" else 0.35 for s in w.specs])
    sym_w /= sym_w.sum()
    for a, rt in zip(w.arbs, w.arb_rt):
        n = rng.poisson(rt * w.scale)
        syms = rng.choice(w.S, n, p=sym_w)
        for s in range(w.S):
            k = int((syms == s).sum())
            if not k:
                continue
            spec = w.specs[s]
            act = b.act_eff(s)
            t1 = b.d0 + rng.choice(1440, k, p=act / act.sum()) * MIN_US + rng.integers(0, MIN_US, k)
            t1 = np.clip(t1, b.d0 + US, b.d0 + DAY_US - 30 * US)
            t2 = t1 + (np.clip(np.exp(rng.normal(math.log(2.0), 0.8, k)), 0.2, 20) * US).astype(np.int64)
            side = np.where(rng.random(k) < 0.5, BUY, SELL).astype(np.int8)
            usd = np.exp(rng.normal(math.log(spec.book_usd * 0.08), 0.8, k))
            q = b.qty(s, usd, t1)
            for tt, sd, qq in ((t1, side, q), (t2, -side, q * rng.uniform(0.995, 1.005, k))):
                b.taker_trades(tt, s, sd, qq * b.mid_at(s, tt), a, nfill_p=0.3, t_type=LIMIT, p_retail=0.25)


def algos(b: DayBuilder) -> None:
    """TWAP/VWAP execution algos: parent orders sliced over 20-240 min; some children posted passively and
    cancelled after seconds, then sent as marketable orders."""
    w, rng = b.w, b.rng
    sym_w = np.array([1.0 if s.tier == "major" else 0.15 for s in w.specs])
    sym_w /= sym_w.sum()
    for a, p_passive in zip(w.algos, w.algo_passive):
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.choice(w.S, p=sym_w))
            spec = w.specs[s]
            dur = rng.uniform(20, 240) * 60
            start = rng.uniform(600, DAY_S - dur - 600)
            interval = rng.uniform(15, 120)
            k = int(dur / interval)
            times = start + np.arange(k) * interval + rng.uniform(-0.15, 0.15, k) * interval
            ts = b.us(times)
            side = BUY if rng.random() < 0.5 else SELL
            vwap = rng.random() < 0.5
            slice_usd = rng.uniform(500, 8000) * (1 if spec.tier == "major" else 0.15)
            minute = np.clip((ts - b.d0) // MIN_US, 0, 1439)
            usd = slice_usd * (b.act_eff(s)[minute] / b.act_eff(s).mean() if vwap else np.ones(k))
            usd = usd * rng.uniform(0.9, 1.1, k)
            passive = rng.random(k) < p_passive
            if passive.any():
                pt = ts[passive]
                life = (rng.uniform(2, 30, int(passive.sum())) * US).astype(np.int64)
                oid = w.oids(len(pt))
                px = b.worst_touch(s, pt, pt + life, side)
                b.add_orders(oid, pt, a, s, side, px, b.qty(s, usd[passive], pt), NEW)
                b.add_orders(oid, pt + life, a, s, side, np.nan, np.nan, CANCEL)
                ts = ts.copy()
                ts[passive] = pt + life + rng.integers(1_000, 200_000, len(pt))
            ok = ts < b.d0 + DAY_US - US
            b.taker_trades(ts[ok], s, side, usd[ok], a, nfill_p=0.2, t_type=LIMIT)


# ---------------------------------------------------------------------------------------------------------
# plans: episodes and look-alikes. draw params -> place -> prepare (price overlay / activity) -> emit
# ---------------------------------------------------------------------------------------------------------

class Plan(ABC):
    kind = ""
    labelled = True
    exclusive = True
    gap = 1200.0

    def __init__(self, w: World, b: DayBuilder):
        self.w, self.b, self.rng = w, b, w.rng
        self.params: dict = {}
        self.meta: dict = {}
        self.s: int = -1
        self.t0: float = 0.0
        self.length: float = 600.0
        self.lo, self.hi = 1800.0, DAY_S - 1800.0
        self.symbols = list(range(w.S))

    def place(self, sched: Scheduler) -> bool:
        got = sched.place(self.rng, self.symbols, self.length, self.lo, self.hi, self.gap, self.exclusive)
        if got is None:
            return False
        self.s, self.t0 = got
        self.params["symbol"] = self.w.specs[self.s].symbol
        self.after_place()
        return True

    def after_place(self) -> None:
        """Hook once the plan has its symbol and start: draws that depend on them (none by default)."""

    def prepare(self, b: DayBuilder) -> None:
        """Hook before any plan emits: price overlays or activity the day's background must see (none by default)."""

    @abstractmethod
    def emit(self, b: DayBuilder) -> Item:
        """Write the plan's orders and trades into the day; the labelled (or look-alike) item."""

    def item(self, accounts, start_us: int, end_us: int) -> Item:
        self.w.episode_no += 1
        prefix = "ep" if self.labelled else "la"
        eid = f"s{self.w.seed}-{self.b.day:%m%d}-{prefix}{self.w.episode_no:03d}-{self.kind}"
        to_dt = lambda x: datetime.fromtimestamp(x // US, tz=UTC).replace(microsecond=int(x % US))
        params = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.params.items()}
        return Item(eid, self.kind, self.labelled, self.w.specs[self.s].symbol, list(accounts), to_dt(int(start_us)),
                    to_dt(int(end_us)), params, self.b.day, self.meta)

    def cover_trades(self, b: DayBuilder, accts, start_s: float, end_s: float, n: int) -> None:
        """The abusers' ordinary trades against other accounts in the episode window."""
        if n <= 0:
            return
        rng = self.rng
        spec = self.w.specs[self.s]
        ts = b.us(np.sort(rng.uniform(start_s, end_s, n)))
        who = np.asarray(accts)[rng.integers(0, len(accts), n)]
        side = np.where(rng.random(n) < 0.5, BUY, SELL)
        usd = np.exp(rng.normal(math.log(spec.retail_usd * 2), 1.0, n))
        b.taker_trades(ts, self.s, side, usd, who, exclude=set(accts))


class WashPlan(Plan):
    kind = "wash_trading"

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.variant = "self" if rng.random() < 0.3 else "pair"
        self.params = {
            "variant": self.variant,
            "n_trades": round(_lu(rng, 4, 160)),
            "duration_min": _lu(rng, 2, 240),
            "size_x_retail": _lu(rng, 0.3, 30),
            "round_sizes": bool(rng.random() < 0.4),
            "regular_timing": bool(rng.random() < 0.5),
            "maker_lead_s": _lu(rng, 0.02, 30),
            "price_mode": "inside_spread" if rng.random() < 0.6 else "at_touch",
            "net_imbalance": float(rng.uniform(0, 0.1)),
            "cover_frac": float(rng.uniform(0, 0.4)),
        }
        self.length = self.params["duration_min"] * 60

    def emit(self, b):
        p, rng, s = self.params, self.rng, self.s
        spec = self.w.specs[s]
        accts = [self.w.take_abuser()] if self.variant == "self" else [self.w.take_abuser(), self.w.take_abuser()]
        n = p["n_trades"]
        if p["regular_timing"]:
            rel = np.linspace(0, self.length, n) + rng.normal(0, 0.03 * self.length / max(n, 1), n)
            rel = np.sort(np.clip(rel, 0, self.length))
        else:
            rel = np.sort(rng.uniform(0, self.length, n))
            rel[0], rel[-1] = 0.0, self.length
        ts = b.us(self.t0 + rel) + np.arange(n)
        mid = b.mid_at(s, ts[0])
        base = spec.retail_usd * p["size_x_retail"] / mid
        if p["round_sizes"]:
            mag = 10 ** math.floor(math.log10(base))
            base = round(base / mag) * mag
            qty = np.full(n, base)
        else:
            qty = base * rng.uniform(0.97, 1.03, n)
        # direction: accts[0] buys on even trades, sells on odd; sells a little smaller (net imbalance)
        a_buys = np.arange(n) % 2 == 0
        qty = np.where(a_buys, qty, qty * (1 - p["net_imbalance"]))
        qty = b.qty(s, qty * b.mid_at(s, ts), ts)
        if self.variant == "self":
            buyer = seller = np.full(n, accts[0])
        else:
            buyer = np.where(a_buys, accts[0], accts[1])
            seller = np.where(a_buys, accts[1], accts[0])
        taker_is_buyer = rng.random(n) < 0.5
        side = np.where(taker_is_buyer, BUY, SELL)
        taker = np.where(taker_is_buyer, buyer, seller)
        maker = np.where(taker_is_buyer, seller, buyer)
        if p["price_mode"] == "inside_spread":
            price = b.rnd_price(s, b.mid_at(s, ts))
        else:
            price = b.touch(s, ts, side)
        lead = p["maker_lead_s"] * np.exp(rng.normal(0, 0.3, n)) * US
        b.add_fills(ts, s, side, qty, taker, maker, price=price, m_lead=lead, t_type=LIMIT)
        self.cover_trades(b, accts, self.t0, self.t0 + self.length, round(p["cover_frac"] * n))
        return self.item(self.w.names(accts), ts[0], ts[-1])


class CircularPlan(Plan):
    kind = "circular_trading"

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "ring_size": int(rng.integers(3, 7)),
            "n_cycles": round(_lu(rng, 1, 25)),
            "hop_delay_s": _lu(rng, 0.5, 600),
            "cycle_gap_s": _lu(rng, 5, 1800),
            "size_x_retail": _lu(rng, 0.5, 30),
            "qty_jitter": float(rng.uniform(0, 0.01)),
            "maker_lead_s": _lu(rng, 0.05, 60),
            "cover_frac": float(rng.uniform(0, 0.3)),
        }
        p = self.params
        cyc = p["ring_size"] * p["hop_delay_s"]
        if p["n_cycles"] * (cyc + p["cycle_gap_s"]) > 6 * 3600:
            p["cycle_gap_s"] = max(5.0, 6 * 3600 / p["n_cycles"] - cyc)
        self.length = p["n_cycles"] * (cyc * 1.3 + p["cycle_gap_s"]) + 60

    def emit(self, b):
        p, rng, s = self.params, self.rng, self.s
        spec = self.w.specs[s]
        k = p["ring_size"]
        accts = [self.w.take_abuser() for _ in range(k)]
        t = self.t0
        ts, seller, buyer = [], [], []
        for c in range(p["n_cycles"]):
            for h in range(k):
                ts.append(t)
                seller.append(accts[h])
                buyer.append(accts[(h + 1) % k])
                t += p["hop_delay_s"] * math.exp(rng.normal(0, 0.3))
            t += p["cycle_gap_s"] * math.exp(rng.normal(0, 0.3))
        n = len(ts)
        ts = b.us(np.array(ts)) + np.arange(n)
        ts = np.minimum(ts, b.d0 + DAY_US - US)
        base = spec.retail_usd * p["size_x_retail"] / b.mid_at(s, ts[0])
        qty = b.qty(s, base * (1 + rng.uniform(-p["qty_jitter"], p["qty_jitter"], n)) * b.mid_at(s, ts[0]), ts[0])
        seller, buyer = np.array(seller), np.array(buyer)
        taker_is_buyer = rng.random(n) < 0.5
        side = np.where(taker_is_buyer, BUY, SELL)
        price = b.rnd_price(s, b.mid_at(s, ts) * (1 + rng.uniform(-0.5, 0.5, n) * self.w.hs[s]))
        lead = p["maker_lead_s"] * np.exp(rng.normal(0, 0.3, n)) * US
        b.add_fills(ts, s, side, qty, np.where(taker_is_buyer, buyer, seller), np.where(taker_is_buyer, seller, buyer),
                    price=price, m_lead=lead, t_type=LIMIT)
        end_s = (ts[-1] - b.d0) / US
        self.cover_trades(b, accts, self.t0, end_s, round(p["cover_frac"] * n))
        return self.item(self.w.names(accts), ts[0], ts[-1])


class PumpPlan(Plan):
    kind = "pump_and_dump"

    def __init__(self, w, b, s: int):
        super().__init__(w, b)
        rng = self.rng
        self.symbols = [s]
        self.params = {
            "n_organisers": int(rng.integers(1, 4)),
            "accumulation_h": float(rng.uniform(1, 10)),
            "accumulation_frac_daily_volume": _lu(rng, 0.03, 0.4),
            "accumulation_drift": float(rng.uniform(0, 0.06)),
            "crowd": round(_lu(rng, 25, 1500)),
            "peak_gain": _lu(rng, 0.06, 2.0),
            "time_to_peak_s": _lu(rng, 20, 900),
            "collapse_s": _lu(rng, 180, 3600),
            "retrace": float(rng.uniform(0.75, 1.1)),
            "buys_per_member": float(rng.uniform(1.0, 2.5)),
            "crowd_order_usd": _lu(rng, 80, 600),
            "organiser_ladder_share": float(rng.uniform(0.3, 0.8)),
            "panic_sellers": float(rng.uniform(0.3, 0.8)),
        }
        p = self.params
        hour = int(rng.integers(max(12, math.ceil(p["accumulation_h"]) + 1), 22))
        self.T = hour * 3600.0
        self.length = p["time_to_peak_s"] + p["collapse_s"] + 3600
        self.lo, self.hi = self.T - 1800, self.T - 1800 + self.length + 1

    def place(self, sched):
        got = sched.place(self.rng, self.symbols, self.length, self.lo, self.hi, 0.0, True)
        if got is None:
            return False
        self.s, _ = got
        self.params["symbol"] = self.w.specs[self.s].symbol
        self.params["signal_utc"] = f"{int(self.T // 3600):02d}:00"
        return True

    def prepare(self, b):
        p, s, T = self.params, self.s, self.T
        tp, tc = p["time_to_peak_s"], p["collapse_s"]
        x = np.arange(DAY_S, dtype=float)
        ov = np.zeros(DAY_S)
        a0 = T - p["accumulation_h"] * 3600
        acc = np.clip((x - a0) / (T - a0), 0, 1) * p["accumulation_drift"]
        g = math.log(1 + p["peak_gain"])
        rise = np.clip((x - T) / tp, 0, 1)
        rise = (1 - np.exp(-3 * rise)) / (1 - math.exp(-3)) * g
        end = g * (1 - p["retrace"])
        y = np.clip((x - T - tp) / tc, 0, 1)
        fall = (end - g) * (1 - np.exp(-4 * y)) / (1 - math.exp(-4))
        ov = acc + np.where(x < T + tp, rise, g + fall)
        b.overlay[s] += ov
        m0, m1 = int(T // 60), int(min(1439, (T + tp + tc) // 60 + 1))
        boost = min(8.0, 2.0 + p["crowd"] / 150)
        b.boost[s, m0:m1 + 1] *= boost
        b.boost[s, m1 + 1:min(1440, m1 + 60)] *= 1.5

    def emit(self, b):
        p, rng, s, T = self.params, self.rng, self.s, self.T
        w = self.w
        spec = w.specs[s]
        tp, tc = p["time_to_peak_s"], p["collapse_s"]
        orgs = [w.take_abuser() for _ in range(p["n_organisers"])]
        daily_usd = spec.trades * w.scale * spec.retail_usd * 2.5
        acc_usd = p["accumulation_frac_daily_volume"] * daily_usd
        # accumulation: organisers buy in small pieces over the hours before the signal
        n_acc = int(rng.integers(10, 60)) * len(orgs)
        t_acc = np.sort(rng.uniform(T - p["accumulation_h"] * 3600, T - 120, n_acc))
        who = np.array(orgs)[rng.integers(0, len(orgs), n_acc)]
        usd = acc_usd / n_acc * rng.uniform(0.5, 1.5, n_acc)
        as_maker = rng.random(n_acc) < 0.4
        ts = b.us(t_acc)
        if (~as_maker).any():
            b.taker_trades(ts[~as_maker], s, BUY, usd[~as_maker], who[~as_maker], t_type=LIMIT, exclude=set(orgs))
        if as_maker.any():
            m = int(as_maker.sum())
            takers = w.sample_retail(s, m, exclude=orgs)
            b.add_fills(ts[as_maker], s, SELL, b.qty(s, usd[as_maker], ts[as_maker]), takers, who[as_maker],
                        m_lead=np.exp(rng.normal(math.log(120), 1.0, m)) * US)
        acc_qty = acc_usd / b.mid_at(s, b.us(T - 60))
        # the crowd: existing retail and accounts that only show up for pumps
        n_old = int(p["crowd"] * 0.3)
        crowd = np.concatenate([w.sample_retail(s, n_old, exclude=orgs), w.new_accounts(p["crowd"] - n_old, "pump_crowd")])
        crowd = np.unique(crowd)
        k = 1 + rng.poisson(p["buys_per_member"] - 1, len(crowd))
        member = np.repeat(np.arange(len(crowd)), k)
        first = tp * rng.gamma(1.3, 0.45, len(crowd))
        extra = np.concatenate([np.cumsum(rng.exponential(tp * 0.3 + 2, kk)) - 0 for kk in k]) if len(k) else np.zeros(0)
        within = np.arange(len(member)) - np.repeat(np.cumsum(k) - k, k)
        rel = first[member] + np.where(within > 0, extra, 0.0)
        rel = np.minimum(rel, tp + 0.5 * tc) + rng.uniform(0.05, 3.0, len(rel))
        order = np.argsort(rel)
        rel, member = rel[order], member[order]
        ts = b.us(T + rel)
        n = len(ts)
        usd = np.exp(rng.normal(math.log(p["crowd_order_usd"]), 0.9, n))
        nf = 1 + (rng.random(n) < 0.5) * rng.integers(1, 3, n)
        idx = np.repeat(np.arange(n), nf)
        j = np.arange(len(idx)) - np.repeat(np.cumsum(nf) - nf, nf)
        fq = b.qty(s, usd[idx] / nf[idx] * rng.uniform(0.7, 1.3, len(idx)), ts[idx])
        makers = b.pick_makers(s, len(idx), p_retail=0.4, exclude=set(crowd.tolist()) | set(orgs))
        target = acc_qty * rng.uniform(0.85, 1.0)
        ladder_target = target * p["organiser_ladder_share"]
        rising = (ts[idx] - b.d0) / US < T + tp * 1.2
        pick = rising & (rng.random(len(idx)) < 0.55)
        cum = np.cumsum(np.where(pick, fq, 0.0))
        pick &= cum <= ladder_target
        org_maker = np.array(orgs)[rng.integers(0, len(orgs), len(idx))]
        makers = np.where(pick, org_maker, makers)
        ladder_sold = float(fq[pick].sum())
        placed_at = b.us(T - rng.uniform(60, 1800, len(idx)))
        m_lead = np.where(pick, ts[idx] - placed_at, np.exp(rng.normal(math.log(30), 1.0, len(idx))) * US)
        b.add_fills(ts[idx], s, BUY, fq, crowd[member][idx], makers, toid=w.oids(n)[idx], t_auto=True,
                    t_type=MARKET, step=j, m_lead=m_lead)
        # organisers dump the rest with market sells after the peak
        rest = max(target - ladder_sold, 0.0)
        n_d = int(rng.integers(5, 40))
        td = b.us(T + tp + np.sort(rng.uniform(0, 0.5 * tc, n_d)))
        mids = b.mid_at(s, td)
        b.taker_trades(td, s, SELL, rest / n_d * mids * rng.uniform(0.7, 1.3, n_d),
                       np.array(orgs)[rng.integers(0, len(orgs), n_d)], nfill_p=0.6, t_type=MARKET,
                       exclude=set(orgs))
        # panic: part of the crowd sells during the collapse
        bought = np.bincount(member, weights=usd, minlength=len(crowd)) / b.mid_at(s, b.us(T + tp))
        sellers = np.nonzero(rng.random(len(crowd)) < p["panic_sellers"])[0]
        tsell = b.us(T + tp + tc * rng.beta(1.2, 2.0, len(sellers)))
        usd_s = bought[sellers] * rng.uniform(0.6, 1.0, len(sellers)) * b.mid_at(s, tsell)
        b.taker_trades(tsell, s, SELL, usd_s, crowd[sellers], nfill_p=0.3, t_type=MARKET)
        self.meta = {"organisers": w.names(orgs), "signal_s": T, "peak_s": T + tp, "end_s": T + tp + tc}
        self.params["crowd_accounts"] = len(crowd)
        return self.item(w.names(orgs), b.us(T), b.us(T + tp + tc))


class _SpoofBase(Plan):
    """Spoofing / layering: cycles of (genuine order on one side, large non-bona-fide order(s) on the other,
    genuine executed, large ones cancelled). While a cycle waits for its genuine execution the price moves only
    by the spoof's own pressure (no random-walk noise, and not past the genuine order), and the large orders
    rest `distance_bps` behind the worst touch of their life, so they are never crossed by the market."""

    layers = False

    def draw_common(self, p):
        n_c = p["n_cycles"]
        per = p["place_span_s"] + p["time_to_fill_s"] + p["cancel_after_fill_s"] + 5
        if n_c * (per + p["gap_s"]) > 3 * 3600:
            p["gap_s"] = max(3.0, 3 * 3600 / n_c - per)
        self.length = n_c * (per * 1.5 + p["gap_s"] * 1.3) + 60

    def after_place(self):
        p, rng = self.params, self.rng
        small = self.w.specs[self.s].tier == "small"
        p["distance_bps"] = float(rng.uniform(0, 60 if small else 10))
        p["impact_bps"] = float(rng.uniform(0, 20 if small else 4))
        if not p["genuine_aggressive"]:
            # the pressure brings the price up to the genuine order, not through it
            p["impact_bps"] = min(p["impact_bps"], 1.6 * self.w.specs[self.s].half_spread_bps)
        if self.layers:
            p["level_step_bps"] = float(rng.uniform(5, 40) if small else rng.uniform(0.5, 5))
        cycles, t = [], self.t0 + 1
        S = BUY if rng.random() < 0.5 else SELL
        for c in range(p["n_cycles"]):
            ttf = p["time_to_fill_s"] * math.exp(rng.normal(0, 0.3))
            caf = p["cancel_after_fill_s"] * math.exp(rng.normal(0, 0.3))
            cycles.append((t, ttf, caf, S))
            t += p["place_span_s"] + ttf + caf + 2 + p["gap_s"] * math.exp(rng.normal(0, 0.3))
            if p["alternate_sides"]:
                S = -S
        self.cycles = cycles

    def prepare(self, b):
        p, s = self.params, self.s
        for (t, ttf, caf, S) in self.cycles:
            a = int(t)
            f = int(t + p["place_span_s"] + ttf) + 2
            e = int(t + p["place_span_s"] + ttf + caf) + 30
            b.freeze[s, a:min(f + 1, DAY_S)] = True
            ramp = np.linspace(0, 1, max(f - a, 1))
            b.overlay[s, a:a + len(ramp)] += S * p["impact_bps"] * 1e-4 * ramp[: DAY_S - a]
            if e > f:
                decay = np.linspace(1, 0, e - f)
                b.overlay[s, f:f + len(decay)] += S * p["impact_bps"] * 1e-4 * decay[: DAY_S - f]

    def emit(self, b):
        p, rng, s, w = self.params, self.rng, self.s, self.w
        spec = w.specs[s]
        acct = w.take_abuser()
        first, last = None, None
        spoof_ids, genuine_ids = [], []
        n_layers = p["n_levels"] if self.layers else p["n_spoof_orders"]
        for (t, ttf, caf, S) in self.cycles:
            G = -S
            t_g = b.us(t)
            book_q = spec.book_usd / b.mid_at(s, t_g)
            gq = float(b.qty(s, p["genuine_x_book"] * spec.book_usd, t_g))
            offs = np.sort(rng.uniform(0, 1, n_layers)) * p["place_span_s"]
            tp = t_g + 1000 + (offs * US).astype(np.int64)
            t_fill = int(tp[-1] + ttf * US)
            # the genuine side executes (a passive order filled by others, or the spoofer's own marketable order)
            g_oid, frac = None, 1.0
            if not p["genuine_aggressive"]:
                g_oid = int(w.oids(1)[0])
                g_price = float(b.touch(s, t_g, -G))
                b.add_orders(g_oid, t_g, acct, s, G, g_price, gq, NEW)
                genuine_ids.append(g_oid)
                lot = w.lot[s]
                frac = 1.0 if rng.random() < 0.7 else float(rng.uniform(0.5, 0.95))
                nfl = int(max(1, min(int(rng.integers(1, 4)), gq * frac // lot)))
                parts = rng.dirichlet(np.ones(nfl)) * gq * frac
                parts = np.round(np.maximum(lot, np.floor(parts / lot) * lot), 8)
                if parts.sum() > gq:
                    parts, frac = np.array([gq]), 1.0
                tf = t_fill + np.cumsum(rng.integers(1_000, 400_000, nfl))
                takers = w.sample_retail(s, nfl, exclude=[acct])
                b.add_fills(tf, s, S, parts, takers, acct, price=g_price, moid=g_oid)
                t_fill_end = int(tf[-1])
            else:
                b.taker_trades(t_fill, s, G, gq * b.mid_at(s, t_fill), acct, nfill_p=0.3, t_type=LIMIT,
                               exclude={acct})
                t_fill_end = t_fill
            tcx = t_fill_end + int(caf * US) + np.sort(rng.integers(0, max(2, int(p["cancel_span_s"] * US)), n_layers))
            # the large orders, placed one after another (layers: deeper levels, growing sizes)
            if self.layers:
                bps = p["distance_bps"] + np.arange(n_layers) * p["level_step_bps"]
                size = p["layer_x_book"] * p["size_growth"] ** np.arange(n_layers)
            else:
                bps = p["distance_bps"] + np.arange(n_layers) * (w.tick[s] / b.mid_at(s, t_g) * 1e4)
                size = np.full(n_layers, p["size_x_book"])
            prices = b.behind(s, tp, tcx + 1000, S, bps)
            qty = b.qty(s, size * book_q * rng.uniform(0.95, 1.05, n_layers) * b.mid_at(s, t_g), t_g)
            oids = w.oids(n_layers)
            b.add_orders(oids, tp, acct, s, S, prices, qty, NEW)
            spoof_ids += oids.tolist()
            if p["flicker"]:
                for i in range(n_layers):
                    for tm in np.sort(rng.uniform(tp[i], min(t_fill, tcx[i]), int(rng.integers(1, 4)))).astype(np.int64):
                        b.add_orders(oids[i], tm, acct, s, S, float(b.behind(s, tm, tcx[i] + 1000, S, bps[i])[0]),
                                     qty[i], MODIFY)
            b.add_orders(oids, tcx, acct, s, S, np.nan, np.nan, CANCEL)
            if g_oid is not None and frac < 1.0:
                b.add_orders(g_oid, int(tcx[-1]) + 500, acct, s, G, np.nan, np.nan, CANCEL)
            first = t_g if first is None else first
            last = max(int(tcx[-1]) + 500, last or 0)
        self.meta = {"spoof_order_ids": [str(x) for x in spoof_ids], "genuine_order_ids": [str(x) for x in genuine_ids],
                     "account": w.name(acct)}
        return self.item([w.name(acct)], first, last)


class SpoofPlan(_SpoofBase):
    kind = "spoofing"

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "n_cycles": round(_lu(rng, 1, 25)),
            "n_spoof_orders": int(rng.integers(1, 3)),
            "size_x_book": _lu(rng, 2, 40),
            "genuine_x_book": _lu(rng, 0.05, 1.5),
            "genuine_aggressive": bool(rng.random() < 0.25),
            "place_span_s": _lu(rng, 0.01, 2),
            "time_to_fill_s": _lu(rng, 0.2, 45),
            "cancel_after_fill_s": _lu(rng, 0.02, 8),
            "cancel_span_s": _lu(rng, 0.001, 0.5),
            "gap_s": _lu(rng, 3, 900),
            "alternate_sides": bool(rng.random() < 0.4),
            "flicker": bool(rng.random() < 0.3),
        }
        self.draw_common(self.params)


class LayeringPlan(_SpoofBase):
    kind = "layering"
    layers = True

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "n_cycles": round(_lu(rng, 1, 20)),
            "n_levels": int(rng.integers(3, 11)),
            "layer_x_book": _lu(rng, 0.5, 12),
            "size_growth": float(rng.uniform(1.0, 1.5)),
            "genuine_x_book": _lu(rng, 0.1, 2),
            "genuine_aggressive": bool(rng.random() < 0.3),
            "place_span_s": _lu(rng, 0.05, 8),
            "time_to_fill_s": _lu(rng, 0.3, 60),
            "cancel_after_fill_s": _lu(rng, 0.02, 10),
            "cancel_span_s": _lu(rng, 0.001, 3),
            "gap_s": _lu(rng, 5, 900),
            "alternate_sides": bool(rng.random() < 0.5),
            "flicker": bool(rng.random() < 0.2),
        }
        self.draw_common(self.params)


class StuffingPlan(Plan):
    kind = "quote_stuffing"

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "n_bursts": round(_lu(rng, 1, 15)),
            "msgs_per_burst": round(_lu(rng, 150, 6000)),
            "burst_s": _lu(rng, 0.3, 20),
            "order_life_ms": _lu(rng, 1, 300),
            "distance_bps": _lu(rng, 0.5, 300),
            "modify_frac": float(rng.uniform(0, 0.5)),
            "gap_s": _lu(rng, 2, 600),
            "both_sides": bool(rng.random() < 0.5),
            "size_x_retail": _lu(rng, 0.05, 2),
        }
        p = self.params
        if p["n_bursts"] * p["msgs_per_burst"] > 40_000:
            p["n_bursts"] = max(1, 40_000 // p["msgs_per_burst"])
        if p["n_bursts"] * (p["burst_s"] + p["gap_s"]) > 3600:
            p["gap_s"] = max(2.0, 3600 / p["n_bursts"] - p["burst_s"])
        self.length = p["n_bursts"] * (p["burst_s"] + p["gap_s"] * 1.3) + 60

    def emit(self, b):
        p, rng, s, w = self.params, self.rng, self.s, self.w
        spec = w.specs[s]
        acct = w.take_abuser()
        t = self.t0 + 1
        first, last = None, 0
        side0 = BUY if rng.random() < 0.5 else SELL
        for _ in range(p["n_bursts"]):
            n_mod = p["modify_frac"]
            n_orders = max(2, int(p["msgs_per_burst"] / (2 + n_mod)))
            tn = b.us(t) + np.sort(rng.integers(0, max(1, int(p["burst_s"] * US)), n_orders))
            life = np.maximum(200, (p["order_life_ms"] * 1000 * np.exp(rng.normal(0, 0.5, n_orders)))).astype(np.int64)
            side = np.where(rng.random(n_orders) < 0.5, BUY, SELL) if p["both_sides"] else np.full(n_orders, side0)
            bps = p["distance_bps"] * rng.uniform(0.5, 1.5, n_orders)
            price = b.away(s, tn, side, bps)
            q = b.qty(s, spec.retail_usd * p["size_x_retail"] * rng.uniform(0.8, 1.2, n_orders), tn)
            oid = w.oids(n_orders)
            b.add_orders(oid, tn, acct, s, side, price, q, NEW)
            mod = rng.random(n_orders) < n_mod
            if mod.any():
                tm = tn[mod] + life[mod] // 2
                b.add_orders(oid[mod], tm, acct, s, side[mod], b.away(s, tm, side[mod], bps[mod] * 1.1), q[mod], MODIFY)
            b.add_orders(oid, tn + life, acct, s, side, np.nan, np.nan, CANCEL)
            first = int(tn[0]) if first is None else first
            last = max(last, int((tn + life).max()))
            t += p["burst_s"] + p["gap_s"] * math.exp(rng.normal(0, 0.3))
        self.meta = {"account": w.name(acct)}
        return self.item([w.name(acct)], first, last)


class ExcessivePlan(Plan):
    kind = "excessive_trading"
    exclusive = False

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.acct, s, self.norm = w.take_excessive()
        self.symbols = [s]
        self.params = {
            "multiple_of_own_norm": _lu(rng, 5, 100),
            "duration_h": _lu(rng, 0.5, 8),
            "size_x_own": _lu(rng, 0.5, 5),
            "maker_frac": float(rng.uniform(0, 0.5)),
            "net_bias": float(rng.uniform(-0.2, 0.2)),
            "own_norm_trades_per_day": round(self.norm, 1),
        }
        self.length = self.params["duration_h"] * 3600
        self.lo, self.hi = 600.0, DAY_S - 600.0

    def emit(self, b):
        p, rng, s, w = self.params, self.rng, self.s, self.w
        spec = w.specs[s]
        n = int(min(4000, max(20, round(p["multiple_of_own_norm"] * self.norm))))
        p["extra_trades"] = n
        act = b.act_eff(s)
        m0, m1 = int(self.t0 // 60), int(min(1439, (self.t0 + self.length) // 60))
        pw = act[m0:m1 + 1] / act[m0:m1 + 1].sum()
        ts = b.d0 + (m0 + rng.choice(m1 - m0 + 1, n, p=pw)) * MIN_US + rng.integers(0, MIN_US, n)
        ts = np.sort(np.clip(ts, b.d0 + US, b.d0 + DAY_US - US))
        side = np.where(rng.random(n) < 0.5 + p["net_bias"] / 2, BUY, SELL)
        ridx = int(np.nonzero(w.retail == self.acct)[0][0])
        usd = np.exp(rng.normal(math.log(spec.retail_usd), 0.8, n)) * w.retail_size[ridx] * p["size_x_own"]
        maker = rng.random(n) < p["maker_frac"]
        if (~maker).any():
            b.taker_trades(ts[~maker], s, side[~maker], usd[~maker], self.acct, nfill_p=0.15,
                           t_type=MARKET, exclude={self.acct})
        if maker.any():
            m = int(maker.sum())
            b.add_fills(ts[maker], s, -side[maker], b.qty(s, usd[maker], ts[maker]),
                        w.sample_retail(s, m, exclude=[self.acct]), self.acct,
                        m_lead=np.exp(rng.normal(math.log(20), 1.0, m)) * US)
        return self.item([w.name(self.acct)], ts[0], ts[-1])


# ---- look-alikes (no labels) ----------------------------------------------------------------------------

class NewsRallyPlan(Plan):
    kind = "news_rally"
    labelled = False
    gap = 3 * 3600.0

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "gain": _lu(rng, 0.04, 0.25),
            "rise_min": _lu(rng, 5, 45),
            "retrace_by_day_end": float(rng.uniform(0, 0.3)),
            "buyers": round(_lu(rng, 1000, 3000)),
            "volume_boost": float(rng.uniform(3, 8)),
            "boost_decay_min": float(rng.uniform(30, 120)),
        }
        self.length = 2 * 3600.0
        self.lo, self.hi = 3 * 3600.0, 22 * 3600.0

    def after_place(self):
        if self.w.specs[self.s].tier == "major":
            self.params["gain"] /= 2

    def prepare(self, b):
        p, s = self.params, self.s
        x = np.arange(DAY_S, dtype=float)
        T, rise = self.t0, p["rise_min"] * 60
        g = math.log(1 + p["gain"])
        up = g / (1 + np.exp(np.clip(-(x - T - rise / 2) / (rise / 8), -50, 50)))
        after = np.clip((x - T - rise) / max(DAY_S - T - rise, 1), 0, 1)
        b.overlay[s] += up * (1 - p["retrace_by_day_end"] * after)
        mins = np.arange(1440) * 60.0
        dt = np.maximum(mins - T, 0)
        b.boost[s] *= 1 + np.where(mins >= T - 60, (p["volume_boost"] - 1) * np.exp(-dt / (p["boost_decay_min"] * 60)), 0)

    def emit(self, b):
        p, rng, s, w = self.params, self.rng, self.s, self.w
        spec = w.specs[s]
        n_new = int(p["buyers"] * 0.7)
        buyers = np.concatenate([w.sample_retail(s, p["buyers"] - n_new), w.new_accounts(n_new, "news_buyer")])
        buyers = np.unique(buyers)
        k = 1 + (rng.random(len(buyers)) < 0.4)
        who = np.repeat(buyers, k)
        rise = p["rise_min"] * 60
        rel = np.where(rng.random(len(who)) < 0.6, rise * rng.gamma(2.0, 0.4, len(who)),
                       rng.exponential(p["boost_decay_min"] * 60, len(who)))
        rel = self.t0 + rel + rng.uniform(0, 5, len(who))
        inside = rel < DAY_S - 1                       # buyers arriving after midnight are not in this day
        ts = b.us(rel[inside])
        who = who[inside]
        order = np.argsort(ts)
        usd = np.exp(rng.normal(math.log(spec.retail_usd * 1.2), 1.1, len(who)))
        b.taker_trades(ts[order], s, BUY, usd[order], who[order], nfill_p=0.3, t_type=MARKET)
        return self.item([], b.us(self.t0), b.us(min(self.t0 + rise + p["boost_decay_min"] * 60, DAY_S - 1)))


class BigCancelPlan(Plan):
    kind = "large_order_cancelled"
    labelled = False

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "size_x_book": _lu(rng, 3, 30),
            "rest_max_min": _lu(rng, 10, 90),
            "move_trigger_pct": float(rng.uniform(0.3, 1.0)),
            "opposite_trade": bool(rng.random() < 0.5),
        }
        self.length = self.params["rest_max_min"] * 60 + 120

    def after_place(self):
        small = self.w.specs[self.s].tier == "small"
        self.params["distance_bps"] = float(self.rng.uniform(100, 400) if small else self.rng.uniform(30, 150))

    def emit(self, b):
        p, rng, s, w = self.params, self.rng, self.s, self.w
        spec = w.specs[s]
        acct = int(w.sample_retail(s, 1)[0])
        side = BUY if rng.random() < 0.5 else SELL
        t0 = b.us(self.t0)
        a, e = int(self.t0), int(min(DAY_S - 1, self.t0 + p["rest_max_min"] * 60))
        path = b.mid[s, a:e + 1]
        price = float(b.away(s, t0, side, p["distance_bps"]))
        # keep it unfilled: behind the worst mid of its resting span
        if side == BUY:
            price = min(price, float(b.rnd_price(s, path.min() * (1 - 2 * w.hs[s] - 0.002))))
        else:
            price = max(price, float(b.rnd_price(s, path.max() * (1 + 2 * w.hs[s] + 0.002))))
        q = float(b.qty(s, p["size_x_book"] * spec.book_usd, t0))
        oid = int(w.oids(1)[0])
        b.add_orders(oid, t0, acct, s, side, price, q, NEW)
        moved = np.abs(np.log(path / path[0])) >= p["move_trigger_pct"] / 100
        moved[: 300] = False
        hit = np.nonzero(moved)[0]
        tc = (a + int(hit[0]) + float(rng.uniform(5, 60))) if len(hit) else float(e)
        tc_us = b.us(min(tc, DAY_S - 1))
        b.add_orders(oid, tc_us, acct, s, side, np.nan, np.nan, CANCEL)
        p["cancelled_after_min"] = round((tc_us - t0) / US / 60, 1)
        p["market_moved"] = bool(len(hit))
        if p["opposite_trade"]:
            to = b.us(self.t0 + rng.uniform(0.2, 0.8) * (tc - self.t0))
            b.taker_trades(to, s, -side, spec.retail_usd * rng.uniform(1, 5), acct, t_type=MARKET, exclude={acct})
        self.meta = {"order_id": str(oid)}
        return self.item([w.name(acct)], t0, tc_us)


class FrequentPairPlan(Plan):
    kind = "frequent_pair"
    labelled = False
    exclusive = False

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {
            "hours": float(rng.uniform(3, 10)),
            "q_buys": round(_lu(rng, 40, 200)),
            "share_against_p": float(rng.uniform(0.3, 0.7)),
            "p_other_sells": int(rng.integers(20, 80)),
        }
        self.length = self.params["hours"] * 3600
        self.lo, self.hi = 600.0, DAY_S - 600.0

    def emit(self, b):
        p, rng, s, w = self.params, self.rng, self.s, self.w
        spec = w.specs[s]
        P, Q = w.pair_p, w.pair_q
        n = p["q_buys"]
        ts = b.us(np.sort(rng.uniform(self.t0, self.t0 + self.length, n)))
        usd = np.exp(rng.normal(math.log(spec.book_usd * 0.05), 0.6, n))
        vs_p = rng.random(n) < p["share_against_p"]
        if vs_p.any():
            m = int(vs_p.sum())
            b.add_fills(ts[vs_p], s, BUY, b.qty(s, usd[vs_p], ts[vs_p]), Q, P,
                        m_lead=rng.uniform(1, 120, m) * US)
        if (~vs_p).any():
            b.taker_trades(ts[~vs_p], s, BUY, usd[~vs_p], Q, t_type=LIMIT, exclude={P, Q})
        # Q's occasional sells to others, P's sells to others
        n_qs = max(1, int(n * 0.04))
        tq = b.us(np.sort(rng.uniform(self.t0, self.t0 + self.length, n_qs)))
        b.taker_trades(tq, s, SELL, usd[:n_qs] * 0.5, Q, t_type=LIMIT, exclude={P, Q})
        k = p["p_other_sells"]
        tp = b.us(np.sort(rng.uniform(self.t0, self.t0 + self.length, k)))
        b.add_fills(tp, s, BUY, b.qty(s, np.exp(rng.normal(math.log(spec.retail_usd * 2), 1.0, k)), tp),
                    w.sample_retail(s, k), P, m_lead=rng.uniform(1, 120, k) * US)
        self.meta = {"pair": [w.name(P), w.name(Q)]}
        return self.item([w.name(P), w.name(Q)], ts[0], ts[-1])


class BusyHourPlan(Plan):
    kind = "busy_hour"
    labelled = False
    exclusive = False

    def __init__(self, w, b):
        super().__init__(w, b)
        rng = self.rng
        self.params = {"activity_x": float(rng.uniform(2, 4)), "minutes": float(rng.uniform(30, 120)),
                       "vol_x": float(rng.uniform(1.0, 1.8))}
        self.length = self.params["minutes"] * 60

    def prepare(self, b):
        p = self.params
        m0, m1 = int(self.t0 // 60), int((self.t0 + self.length) // 60)
        b.boost[self.s, m0:m1] *= p["activity_x"]
        b.vol_boost[self.s, int(self.t0):int(self.t0 + self.length)] *= p["vol_x"] ** 2

    def emit(self, b):
        return self.item([], b.us(self.t0), b.us(self.t0 + self.length))


PLAN_CLASSES = {"wash_trading": WashPlan, "circular_trading": CircularPlan, "spoofing": SpoofPlan,
                "layering": LayeringPlan, "quote_stuffing": StuffingPlan, "excessive_trading": ExcessivePlan}


def generate(seed: int, n_days: int = 2, *, clean: bool = False, scale: float = 1.0, msg_scale: float = 1.0,
             fill_events: bool | None = None, n_symbols: int | None = None) -> tuple[World, list[Day]]:
    """A seed's days: day 0 is history only (no episodes), days 1..n_days carry episodes unless `clean`."""
    w = World(seed, clean=clean, scale=scale, msg_scale=msg_scale, fill_events=fill_events, n_symbols=n_symbols)
    return w, w.generate(n_days)
