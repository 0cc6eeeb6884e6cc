"""Rule detectors against abuse episodes written independently of our scenario generator.

Background: a clean day from `surveillance_pipeline.scenarios` (market makers, retail, organic rallies,
ordinary round trips) on BTC/ETH/SOL and two small caps. On top of it this script writes its OWN abuse
episodes, from the public definitions (CFTC/SEC/FINRA, ESMA MAR Annex I-II, the pump-and-dump literature),
each with parameters drawn over wide plausible ranges, and legitimate look-alikes with no label. Every trade
links to its orders (resting limit + market order, with `new` / `cancel` events) unless a variant says
otherwise; counterparties are background market makers and retail accounts, never the taker itself.

  wash_trading       self-trades, or two colluding accounts trading back and forth (3-30 rounds, equal or split
                     legs, same or random account starting each round, 0-8 bps apart, legs 1 s - 5 min apart),
                     through the book or as trades only (order ids without events, or no order ids at all)
  circular_trading   rings of 3-6 accounts, quantity passed on less a fee, sometimes in pieces, 2-10 laps, hops
                     2 s - 3 min, laps 5 s - 15 min apart, sometimes reversing direction every other lap
  pump_and_dump      organisers accumulate 1-10 h before; 20-400 buyers sweep the asks with market orders for
                     1-15 min, +5 % .. +300 %; organisers and buyers sell, the price collapses over 10-120 min
                     (the symbol's whole background follows the price path)
  spoofing           1-3 large orders 5-50x the median trade size, resting 0.2-30 s, a small genuine order filled
                     on the other side, the large ones cancelled right after the fill, at the end of their rest,
                     or just before the fill; sometimes partly hit; 2-20 repetitions 3 s - 10 min apart
  layering           3-10 orders at successive levels, an execution on the other side (passive or aggressive),
                     layers cancelled together 0.05-10 s later; 1-5 cycles
  quote_stuffing     100-2000 order messages/s for 1-60 s from 1-3 accounts, 95-100 % cancelled in 0.5-50 ms
  excessive_trading  one account with 1000-6000 taker trades per hour for 15-120 min, in 1-3 symbols
  look-alikes        a market maker requoting both sides (>90 % cancelled); a news rally with 1000-3000
                     independent buyers and no collapse; two accounts meeting through the book at changing prices
                     with a net position building; an HFT market maker with high steady message rates (paired or
                     independent bid / ask quotes); a trader cancelling one large order after the market moved
                     (with a small fill on the other side); an arbitrageur in and out within seconds with many
                     counterparties; an algorithm taking liquidity in one fixed clip size, mostly from one market
                     maker

Part 1 runs `RuleBasedDetector` day by day on several seeds and scores with
`surveillance_pipeline.evaluation.evaluate`: the table per seed and pooled, every missed episode with its
parameters and any other alerts on it, every false alert with its explanation and what it landed on (a
look-alike, another pattern's episode, or the background), recall per parameter value / third, and which
look-alikes were flagged. Part 2 starts from an easily detected base episode per pattern (and a base per
look-alike) and changes one parameter at a time (a few replicates each, timing jitter reduced), so each
detector's boundaries show. Everything is also written as JSON. Asserts nothing; changes no threshold.

Usage: .venv/bin/python benchmarks/eval_independent.py [--seeds 101 ... 110] [--trades-per-day 25000]
       [--episodes-scale 1.5] [--no-sweeps] [--quiet] [--out data/eval/independent.json]
About a minute on 2 cores with the defaults.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl

from surveillance_pipeline.config import load_settings
from surveillance_pipeline.contract import (
    LABEL_SCHEMA,
    ORDER_SCHEMA,
    TRADE_SCHEMA,
    Order,
    Trade,
)
from surveillance_pipeline.detectors.base import DetectionInputs
from surveillance_pipeline.detectors.rules import RuleBasedDetector
from surveillance_pipeline.evaluation import evaluate
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, profile_for

US = 1_000_000  # microseconds per second
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "PEPEUSDT", "WIFUSDT")
SMALL_CAPS = ("PEPEUSDT", "WIFUSDT")
EPISODES = {  # per seed (times --episodes-scale)
    "wash_trading": 5, "circular_trading": 4, "pump_and_dump": 2, "spoofing": 5, "layering": 4,
    "quote_stuffing": 3, "excessive_trading": 2,
}
LOOKALIKES = {
    "mm_quoting": 1, "news_rally": 1, "net_position_pair": 2, "hft_market_maker": 1, "cancel_after_move": 3,
    "arbitrage_in_out": 1, "fixed_clip_taker": 2,
}
MARGIN = 12 * 60 * US  # episodes of one symbol are kept this far apart (evaluation slack 5 min + merge gap)
MAX_STUFF_MESSAGES = 60_000
MAX_HFT_MESSAGES = 150_000


# ---- small helpers ---------------------------------------------------------------------------------------

def lu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform draw in [lo, hi]."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def pick(rng: np.random.Generator, options, weights=None):
    weights = None if weights is None else np.asarray(weights, float) / sum(weights)
    return options[int(rng.choice(len(options), p=weights))]


def iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / US, UTC).strftime("%H:%M:%S.%f")[:-3]


def sec(seconds: float) -> int:
    return round(seconds * US)


@dataclass
class PricePath:
    """A log-price multiplier on one symbol: rises from `start` to `peak_t`, moves to `log_final` by `end`."""

    start: int
    peak_t: int
    end: int
    log_peak: float
    log_final: float
    a: float = 1.0  # rise shape (<1: fast early)
    b: float = 1.0  # fall shape

    def logm(self, ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, dtype=np.int64)
        out = np.zeros(ts.shape, dtype=float)
        up = (ts >= self.start) & (ts < self.peak_t)
        out[up] = self.log_peak * ((ts[up] - self.start) / max(1, self.peak_t - self.start)) ** self.a
        down = (ts >= self.peak_t) & (ts < self.end)
        frac = ((ts[down] - self.peak_t) / max(1, self.end - self.peak_t)) ** self.b
        out[down] = self.log_peak + (self.log_final - self.log_peak) * frac
        out[ts >= self.end] = self.log_final
        return out


@dataclass
class Injected:
    """One injected episode (labelled) or look-alike (not labelled)."""

    kind: str  # pattern, or look-alike name
    labelled: bool
    symbol: str
    users: list[str]
    start: int
    end: int
    params: dict
    episode_id: str = ""
    sweep: str = ""  # the sweep point it belongs to ("" for the random episodes)
    found: bool | None = None
    touched_by: list[str] = field(default_factory=list)  # alerts landing on it: "pattern(users)"


# ---- the tape being written ------------------------------------------------------------------------------

class Tape:
    """Trades and order events of one injected item; orders are tracked so fills and cancels stay consistent.

    books: "orders" (order events written), "ids_no_events" (trades carry order ids, no events), "no_ids"."""

    def __init__(self, cx: Context, books: str = "orders") -> None:
        self.cx, self.books = cx, books
        self.trades: list[tuple] = []
        self.orders: list[tuple] = []
        self.bulk_orders: list[pl.DataFrame] = []
        self.live: dict[str, list] = {}

    @property
    def log(self) -> bool:
        return self.books == "orders"

    def new(self, ts: int, user: str, sym: str, side: str, price: float | None, qty: float,
            otype: str = "limit") -> str:
        oid = self.cx.next_oid()
        self.live[oid] = [user, sym, side, price, qty]
        if self.log:
            self.orders.append((oid, ts, user, sym, side, None if otype == "market" else price, qty, "new", otype))
        return oid

    def cancel(self, ts: int, oid: str) -> None:
        user, sym, side, price, remaining = self.live.pop(oid)
        if self.log and remaining > 1e-12:
            self.orders.append((oid, ts, user, sym, side, price, remaining, "cancel", "limit"))

    def _trade(self, ts, sym, price, qty, buyer, seller, taker_side, boid, soid) -> None:
        if self.books == "no_ids":
            boid = soid = None
        self.trades.append((self.cx.next_tid(sym), ts, sym, taker_side, price, qty, buyer, seller, boid, soid))

    def take(self, ts: int, taker: str, fills: list[tuple[str, float]]) -> None:
        """A market order of `taker` filling resting orders [(order id, qty)] (one sweep: same timestamp)."""
        first = self.live[fills[0][0]]
        sym, taker_side = first[1], "sell" if first[2] == "buy" else "buy"
        toid = self.cx.next_oid()
        if self.log:
            self.orders.append((toid, ts, taker, sym, taker_side, None, sum(q for _, q in fills), "new", "market"))
        for oid, qty in fills:
            maker, _, side, price, remaining = self.live[oid]
            qty = min(qty, remaining)
            if side == "buy":
                self._trade(ts, sym, price, qty, maker, taker, taker_side, oid, toid)
            else:
                self._trade(ts, sym, price, qty, taker, maker, taker_side, toid, oid)
            self.live[oid][4] = remaining - qty
            if self.live[oid][4] <= 1e-12:
                del self.live[oid]

    def leg(self, t_fill: int, sym: str, buyer: str, seller: str, price: float, qty: float, taker_is_buyer: bool,
            rest_s: float) -> None:
        """buyer buys qty from seller: the maker's limit order rests `rest_s`, the taker's market order fills it."""
        maker, taker = (seller, buyer) if taker_is_buyer else (buyer, seller)
        oid = self.new(t_fill - max(1000, sec(rest_s)), maker, sym, "sell" if taker_is_buyer else "buy", price, qty)
        self.take(t_fill, taker, [(oid, qty)])

    def bounds(self, sym: str | None = None) -> tuple[int, int]:
        stamps = [r[1] for r in self.trades if sym in (None, r[2])] + [r[1] for r in self.orders if sym in (None, r[3])]
        for frame in self.bulk_orders:
            stamps += [frame["timestamp"].min(), frame["timestamp"].max()]
        return min(stamps), max(stamps)


class Context:
    """One seed: background, market reference, accounts, ids, symbol-time reservations, price paths."""

    def __init__(self, seed: int, trades: pl.DataFrame, orders: pl.DataFrame) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed * 7919 + 17)
        self.bg_trades, self.bg_orders = trades, orders
        self.day_start = int(trades["timestamp"].min().replace(hour=0, minute=0, second=0, microsecond=0)
                             .timestamp() * US)
        self.day_end = self.day_start + 86_400 * US
        counts = orders.group_by(Order.USER_ID).len()
        cut = counts["len"].median() * 10
        self.mm = sorted(counts.filter(pl.col("len") > cut)[Order.USER_ID].to_list())
        accounts = set(trades[Trade.BUYER_ID].to_list()) | set(trades[Trade.SELLER_ID].to_list())
        self.retail = sorted(accounts - set(self.mm))
        self.used_accounts = set(accounts)
        self.n_oid = 0
        self.n_tid: dict[str, int] = defaultdict(int)
        self.busy: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.paths: dict[str, list[PricePath]] = defaultdict(list)
        self.prof = {s: profile_for(s) for s in SYMBOLS}
        self.med = dict(trades.group_by(Trade.SYMBOL).agg(pl.col(Trade.QUANTITY).median()).iter_rows())
        mm_orders = orders.filter(pl.col(Order.USER_ID).is_in(self.mm) & (pl.col(Order.EVENT) == "new"))
        self.mm_q = dict(mm_orders.group_by(Order.SYMBOL).agg(pl.col(Order.QUANTITY).median()).iter_rows())
        self.abusers_from_background: set[str] = set()
        self._ref: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.tapes: list[Tape] = []
        self.ov: dict = {}  # parameter overrides of the episode being written (sweeps)

    # ids and accounts
    def next_oid(self) -> str:
        self.n_oid += 1
        return f"ix{self.seed}-{self.n_oid:07d}"

    def next_tid(self, sym: str) -> str:
        self.n_tid[sym] += 1
        return f"{sym}-ix{self.n_tid[sym]}"

    def new_account(self) -> str:
        while True:
            style = int(self.rng.integers(0, 3))
            if style == 0:
                name = f"acct_{int(self.rng.integers(2000, 10000)):04d}"
            elif style == 1:
                name = f"u{int(self.rng.integers(1_000_000, 9_999_999))}"
            else:
                name = "0x" + "".join(self.rng.choice(list("0123456789abcdef"), 10))
            if name not in self.used_accounts:
                self.used_accounts.add(name)
                return name

    def abuser(self, p_background: float = 0.35) -> str:
        """A fresh account, or (sometimes) an ordinary retail account of the background that also abuses."""
        if self.rng.random() < p_background:
            free = [a for a in self.retail if a not in self.abusers_from_background]
            name = free[int(self.rng.integers(len(free)))]
            self.abusers_from_background.add(name)
            return name
        return self.new_account()

    def some_retail(self, exclude=()) -> str:
        while True:
            name = self.retail[int(self.rng.integers(len(self.retail)))]
            if name not in exclude:
                return name

    def some_mm(self, exclude=()) -> str:
        while True:
            name = self.mm[int(self.rng.integers(len(self.mm)))]
            if name not in exclude:
                return name

    def liquidity(self, exclude=()) -> str:
        """Whoever rests the other side: a background market maker mostly, else a retail account (never one of
        `exclude`: no accidental self-trade)."""
        return self.some_mm(exclude) if self.rng.random() < 0.7 else self.some_retail(exclude)

    # market reference
    def build_reference(self) -> None:
        frame = self.bg_trades.select(Trade.SYMBOL, pl.col(Trade.TIMESTAMP).dt.epoch("us").alias("t"), Trade.PRICE)
        for sym in SYMBOLS:
            part = frame.filter(pl.col(Trade.SYMBOL) == sym).sort("t")
            self._ref[sym] = (part["t"].to_numpy(), part[Trade.PRICE].to_numpy())

    def px(self, sym: str, ts: int) -> float:
        t, p = self._ref[sym]
        i = int(np.searchsorted(t, ts, side="right")) - 1
        return float(p[max(i, 0)])

    def px_many(self, sym: str, ts: np.ndarray) -> np.ndarray:
        t, p = self._ref[sym]
        return p[np.maximum(np.searchsorted(t, ts, side="right") - 1, 0)]

    def touch(self, sym: str, ts: int) -> tuple[float, float]:
        mid, tick = self.px(sym, ts), self.prof[sym].tick
        half = self.prof[sym].half_spread_ticks * tick
        return self.rt(sym, mid - half), self.rt(sym, mid + half)

    def rt(self, sym: str, price: float) -> float:
        tick = self.prof[sym].tick
        return round(round(price / tick) * tick, 10)

    def rq(self, sym: str, qty: float) -> float:
        lot = self.prof[sym].lot
        return max(lot, round(round(qty / lot) * lot, 10))

    def free(self, sym: str, start: int, end: int) -> bool:
        if start < self.day_start + 5 * 60 * US or end > self.day_end - 5 * 60 * US:
            return False
        return not any(start < e + MARGIN and end > s - MARGIN for s, e in self.busy[sym])

    def reserve(self, sym: str, start: int, end: int) -> bool:
        if not self.free(sym, start, end):
            return False
        self.busy[sym].append((start, end))
        return True

    def random_start(self, latest_margin_s: float = 3600) -> int:
        lo = self.day_start + 15 * 60 * US
        hi = self.day_end - sec(latest_margin_s)
        return int(self.rng.integers(lo, max(lo + 1, hi)))


# ---- abuse episodes --------------------------------------------------------------------------------------

JITTER = {"scale": 1.0}  # sweeps shrink the timing / size jitter around the nominal parameters


def jitter(rng, scale: float, sigma: float = 0.5) -> float:
    return scale * float(np.exp(rng.normal(0, sigma * JITTER["scale"])))


def params(cx: Context, p: dict) -> dict:
    """An episode's drawn parameters with the current sweep's overrides applied."""
    p.update(cx.ov)
    return p


def emit_wash(cx: Context, sym: str, t0: int):
    rng = cx.rng
    variant = pick(rng, ["self_trade", "pair_equal_legs", "pair_split_legs"], [0.25, 0.45, 0.30])
    books = pick(rng, ["orders", "ids_no_events", "no_ids"], [0.6, 0.2, 0.2])
    p = params(cx, {
        "variant": variant, "books": books, "rounds": int(rng.integers(3, 31)),
        "size_x_median": round(lu(rng, 0.3, 30), 2), "size_varies": bool(rng.random() < 0.65),
        "price_diff_bps": 0.0 if rng.random() < 0.25 else round(float(rng.uniform(0.5, 8)), 2),
        "leg_gap_s": round(lu(rng, 1, 300), 1), "round_gap_s": round(lu(rng, 5, 600), 1),
        "maker_rest_s": round(lu(rng, 0.05, 20), 2), "taker": pick(rng, ["alternate", "random", "always_first"]),
        "round_initiator": pick(rng, ["same_account", "random_account"]),
    })
    variant = p["variant"]
    tp = Tape(cx, p["books"])
    users = [cx.abuser()] if variant == "self_trade" else [cx.abuser(), cx.abuser()]
    med, t = cx.med[sym], t0
    base_q = med * p["size_x_median"]
    for r in range(p["rounds"]):
        q = cx.rq(sym, jitter(rng, base_q, 0.6) if p["size_varies"] else base_q)
        p1 = cx.rt(sym, cx.px(sym, t) * (1 + rng.uniform(-3, 3) * 1e-4))
        taker_first = {"alternate": r % 2 == 0, "random": rng.random() < 0.5, "always_first": True}[p["taker"]]
        rest = jitter(rng, p["maker_rest_s"], 0.4)
        if variant == "self_trade":
            tp.leg(t, sym, users[0], users[0], p1, q, taker_first, rest)
            t += sec(jitter(rng, p["round_gap_s"], 0.7))
            continue
        a, b = users if p["round_initiator"] == "same_account" or rng.random() < 0.5 else users[::-1]
        tp.leg(t, sym, a, b, p1, q, taker_first, rest)  # a buys from b
        t += sec(jitter(rng, p["leg_gap_s"], 0.5))
        p2 = cx.rt(sym, p1 * (1 + rng.uniform(-p["price_diff_bps"], p["price_diff_bps"]) * 1e-4))
        if variant == "pair_split_legs":
            k = int(rng.integers(2, 5))
            parts = [cx.rq(sym, x) for x in q * rng.dirichlet(np.ones(k) * 2)]
            parts[-1] = max(cx.prof[sym].lot, round(q - sum(parts[:-1]), 10))
            for part in parts:
                tp.leg(t, sym, b, a, p2, part, not taker_first, rest)
                t += sec(lu(rng, 0.5, 20))
        else:
            tp.leg(t, sym, b, a, p2, q, not taker_first, rest)  # b buys it back
        t += sec(jitter(rng, p["round_gap_s"], 0.7))
    return tp, users, p


def emit_circular(cx: Context, sym: str, t0: int):
    rng = cx.rng
    k = int(rng.integers(3, 7))
    p = params(cx, {
        "ring_size": k, "laps": int(rng.integers(2, 11)), "size_x_median": round(lu(rng, 0.5, 30), 2),
        "fee_per_hop": round(float(rng.uniform(0, 0.002)), 5), "hop_gap_s": round(lu(rng, 2, 180), 1),
        "lap_gap_s": round(lu(rng, 5, 900), 1), "price_band_bps": round(float(rng.uniform(0, 10)), 2),
        "books": pick(rng, ["orders", "ids_no_events", "no_ids"], [0.6, 0.2, 0.2]),
        "direction": pick(rng, ["fixed", "reversed_every_other_lap"], [0.8, 0.2]),
        "maker_rest_s": round(lu(rng, 0.05, 30), 2),
        "hop_pieces": 1 if rng.random() < 0.85 else int(rng.integers(2, 4)),
    })
    tp = Tape(cx, p["books"])
    k = p["ring_size"]
    ring = [cx.abuser(0.3) for _ in range(k)]
    q, t = cx.med[sym] * p["size_x_median"], t0
    for lap in range(p["laps"]):
        order = ring if p["direction"] == "fixed" or lap % 2 == 0 else ring[::-1]
        anchor = cx.px(sym, t)
        for i in range(k):
            seller, buyer = order[i], order[(i + 1) % k]
            price = cx.rt(sym, anchor * (1 + rng.uniform(-p["price_band_bps"], p["price_band_bps"]) * 1e-4))
            q = cx.rq(sym, q * (1 - p["fee_per_hop"]))
            parts = [q] if p["hop_pieces"] == 1 else list(q * rng.dirichlet(np.ones(p["hop_pieces"]) * 3))
            for part in parts:
                tp.leg(t, sym, buyer, seller, price, cx.rq(sym, part), bool(rng.random() < 0.5),
                       jitter(rng, p["maker_rest_s"], 0.4))
                t += sec(lu(rng, 0.2, 5)) if len(parts) > 1 else 0
            t += sec(jitter(rng, p["hop_gap_s"], 0.5))
        t += sec(jitter(rng, p["lap_gap_s"], 0.6))
    return tp, ring, p


def plan_pump(cx: Context, sym: str):
    rng = cx.rng
    p = params(cx, {
        "rise_pct": round(100 * lu(rng, 0.05, 3.0), 1), "pump_minutes": round(lu(rng, 1, 15), 1),
        "dump_minutes": round(lu(rng, 10, 120), 1), "final_vs_rise": round(float(rng.uniform(-0.1, 0.3)), 2),
        "accumulation_hours": round(float(rng.uniform(1, 10)), 1), "organisers": int(rng.integers(2, 6)),
        "buyers": int(lu(rng, 20, 400)), "buyers_are": pick(rng, ["fresh_accounts", "background_retail"], [0.7, 0.3]),
        "dump_trades": int(lu(rng, 50, 800)), "organiser_maker_share": round(float(rng.uniform(0.2, 0.7)), 2),
        "rise_shape": round(float(rng.uniform(0.3, 1.0)), 2), "fall_shape": round(float(rng.uniform(0.3, 1.0)), 2),
    })
    P, D = sec(p["pump_minutes"] * 60), sec(p["dump_minutes"] * 60)
    lo = cx.day_start + sec(p["accumulation_hours"] * 3600 + 900)
    hi = cx.day_end - P - D - sec(900)
    if hi <= lo:
        return None
    t0 = int(rng.integers(lo, hi))
    rise = p["rise_pct"] / 100
    path = PricePath(t0, t0 + P, t0 + P + D, math.log1p(rise), math.log1p(rise * p["final_vs_rise"]),
                     p["rise_shape"], p["fall_shape"])
    return t0, path, p


def _sweep_makers(cx: Context, tp: Tape, t: int, sym: str, side: str, level: float, qty: float, levels: int,
                  makers: list[str]) -> list[tuple[str, float]]:
    """Resting orders on `side` a taker sweeps: `levels` price levels moving away from `level`."""
    rng, fills = cx.rng, []
    parts = qty * rng.dirichlet(np.ones(levels) * 2)
    for j in range(levels):
        step = 1 + (j * rng.uniform(0.0005, 0.003)) * (1 if side == "sell" else -1)
        oid = tp.new(t - sec(lu(rng, 0.05, 8)), makers[j % len(makers)], sym, side, cx.rt(sym, level * step),
                     cx.rq(sym, parts[j]))
        fills.append((oid, tp.live[oid][4]))
    return fills


def emit_pump(cx: Context, sym: str, t0: int, path: PricePath, p: dict):
    rng = cx.rng
    tp = Tape(cx, "orders")
    med = cx.med[sym]
    organisers = [cx.new_account() for _ in range(p["organisers"])]
    p0 = cx.px(sym, t0 - 1)
    level = lambda t: p0 * math.exp(float(path.logm(np.array([t]))[0]))
    # accumulation: organisers buy quietly for hours
    acc_start = t0 - sec(p["accumulation_hours"] * 3600)
    n_acc = int(rng.integers(10, 61))
    for t in np.sort(rng.integers(acc_start, t0 - sec(300), n_acc)):
        t = int(t)
        bid, ask = cx.touch(sym, t)
        org = organisers[int(rng.integers(len(organisers)))]
        q = cx.rq(sym, med * lu(rng, 2, 20))
        if rng.random() < 0.6:
            tp.leg(t, sym, org, cx.liquidity((org,)), ask, q, True, lu(rng, 0.5, 60))
        else:
            tp.leg(t, sym, org, cx.some_retail((org,)), bid, q, False, lu(rng, 1, 300))
    # pump: many buyers sweep the asks with market orders, front-loaded (the signal moment)
    P = path.peak_t - t0
    if p["buyers_are"] == "fresh_accounts":
        buyers = [cx.new_account() for _ in range(p["buyers"])]
    else:
        buyers = [cx.retail[i] for i in rng.choice(len(cx.retail), min(p["buyers"], len(cx.retail)), replace=False)]
    buys = []
    for b in buyers:
        for _ in range(1 + min(2, int(rng.poisson(0.6)))):
            buys.append((t0 + int(P * rng.beta(0.8, 2.5)), b))
    buys.sort()
    for t, b in buys:
        qty = med * lu(rng, 0.5, 8)
        makers = [organisers[int(rng.integers(len(organisers)))] if rng.random() < p["organiser_maker_share"]
                  else cx.liquidity((b,)) for _ in range(4)]
        fills = _sweep_makers(cx, tp, t, sym, "sell", level(t), qty, int(rng.integers(1, 5)), makers)
        tp.take(t, b, fills)
    # dump: organisers first, then the buyers, sell into the bids as the price collapses
    D = path.end - path.peak_t
    sells = np.sort(path.peak_t + (D * rng.beta(0.7, 2.0, p["dump_trades"])).astype(np.int64))
    for i, t in enumerate(sells):
        t = int(t)
        early = i < len(sells) * 0.5
        seller = (organisers[int(rng.integers(len(organisers)))] if early and rng.random() < 0.7
                  else buyers[int(rng.integers(len(buyers)))])
        qty = med * lu(rng, 0.5, 10)
        if rng.random() < 0.85:
            fills = _sweep_makers(cx, tp, t, sym, "buy", level(t), qty, int(rng.integers(1, 4)),
                                  [cx.liquidity((seller,))])
            tp.take(t, seller, fills)
        else:
            tp.leg(t, sym, cx.some_retail((seller,)), seller, cx.rt(sym, level(t)), cx.rq(sym, qty), True,
                   lu(rng, 0.2, 20))
    return tp, organisers, p


def emit_spoofing(cx: Context, sym: str, t0: int):
    rng = cx.rng
    p = params(cx, {
        "reps": int(rng.integers(2, 21)), "large_x_median_trade": round(lu(rng, 5, 50), 1),
        "large_orders_per_rep": 1 if rng.random() < 0.6 else int(rng.integers(2, 4)),
        "rest_s": round(lu(rng, 0.2, 30), 2), "side": pick(rng, ["fixed", "alternating"], [0.7, 0.3]),
        "ticks_behind_touch": int(rng.integers(0, 6)), "genuine": pick(rng, ["passive", "aggressive"], [0.7, 0.3]),
        "cancel_timing": pick(rng, ["right_after_fill", "end_of_rest", "just_before_fill"], [0.45, 0.35, 0.2]),
        "genuine_x_median": round(lu(rng, 0.3, 3), 2), "rep_gap_s": round(lu(rng, 3, 600), 1),
        "large_filled_share": 0.0 if rng.random() < 0.8 else round(float(rng.uniform(0.05, 0.3)), 2),
    })
    p["large_x_mm_quote"] = round(p["large_x_median_trade"] * cx.med[sym] / cx.mm_q[sym], 1)
    tp, S, med, tick = Tape(cx), cx.abuser(), cx.med[sym], cx.prof[sym].tick
    first_side = pick(rng, ["buy", "sell"])
    t, delays = t0, []
    for r in range(p["reps"]):
        side = first_side if p["side"] == "fixed" or r % 2 == 0 else ("sell" if first_side == "buy" else "buy")
        opp = "sell" if side == "buy" else "buy"
        bid, ask = cx.touch(sym, t)
        rest = sec(min(60, max(0.2, jitter(rng, p["rest_s"], 0.25))))
        large = []
        for j in range(p["large_orders_per_rep"]):
            off = (p["ticks_behind_touch"] + j) * tick
            price = cx.rt(sym, bid - off if side == "buy" else ask + off)
            large.append(tp.new(t + j * int(rng.integers(0, 50_000)), S, sym, side, price,
                                cx.rq(sym, med * p["large_x_median_trade"] * math.exp(rng.normal(0, 0.15)))))
        if p["large_filled_share"] > 0:  # someone hits part of the first large order while it rests
            hit = cx.rq(sym, tp.live[large[0]][4] * p["large_filled_share"])
            tp.take(t + int(rest * rng.uniform(0.05, 0.25)), cx.some_retail((S,)), [(large[0], hit)])
        if p["cancel_timing"] == "right_after_fill":  # the fill ends the rest: pulled 5 ms - 1 s later
            tc = t + rest
            tf = tc - sec(lu(rng, 0.005, min(1.0, rest / US * 0.7)))
        elif p["cancel_timing"] == "end_of_rest":  # filled some time while resting, pulled when the rest is up
            tc = t + rest
            tf = t + int(rest * rng.uniform(0.3, 0.95))
        else:  # pulled 5-500 ms before the genuine order fills
            tc = t + rest
            tf = tc + sec(lu(rng, 0.005, 0.5))
        delays.append((tc - tf) / US)
        gq = cx.rq(sym, med * p["genuine_x_median"] * math.exp(rng.normal(0, 0.3)))
        gprice = ask if opp == "sell" else bid
        if p["genuine"] == "passive":
            goid = tp.new(t + int((tf - t) * rng.uniform(0.05, 0.5)), S, sym, opp, gprice, gq)
            tp.take(tf, cx.some_retail((S,)), [(goid, gq)])
        else:  # the spoofer's own market order hits a resting order of someone else
            moid = tp.new(tf - sec(lu(rng, 1, 60)), cx.liquidity((S,)), sym, side, bid if opp == "sell" else ask, gq)
            tp.take(tf, S, [(moid, gq)])
        for j, oid in enumerate(large):
            tp.cancel(max(tc, tp_last_new(tp, oid) + 1000) + j * int(rng.integers(0, 5_000)), oid)
        t = max(tc, tf) + sec(jitter(rng, p["rep_gap_s"], 0.5))
    p["median_cancel_minus_fill_s"] = round(float(np.median(delays)), 3)
    return tp, [S], p


def tp_last_new(tp: Tape, oid: str) -> int:
    for row in reversed(tp.orders):
        if row[0] == oid and row[7] == "new":
            return row[1]
    return 0


def emit_layering(cx: Context, sym: str, t0: int):
    rng = cx.rng
    p = params(cx, {
        "cycles": int(rng.integers(1, 6)), "layers": int(rng.integers(3, 11)),
        "level_step_ticks": int(rng.integers(1, 6)), "first_level_ticks_behind": int(rng.integers(0, 4)),
        "layer_x_median": round(lu(rng, 1, 20), 1), "layer_sizes": pick(rng, ["flat", "increasing", "random"]),
        "placement_spread_s": 0.0 if rng.random() < 0.3 else round(lu(rng, 0.05, 3), 2),
        "hold_before_execution_s": round(lu(rng, 0.5, 60), 2),
        "cancel_after_execution_s": round(lu(rng, 0.05, 10), 2), "cancel_spread_s": round(lu(rng, 0.001, 0.3), 3),
        "execution": pick(rng, ["passive", "aggressive"], [0.6, 0.4]), "execution_x_median": round(lu(rng, 0.3, 5), 2),
        "side": pick(rng, ["fixed", "alternating"], [0.8, 0.2]), "cycle_gap_s": round(lu(rng, 10, 600), 1),
    })
    tp, L, med, tick = Tape(cx), cx.abuser(), cx.med[sym], cx.prof[sym].tick
    first_side = pick(rng, ["buy", "sell"])
    t = t0
    for c in range(p["cycles"]):
        side = first_side if p["side"] == "fixed" or c % 2 == 0 else ("sell" if first_side == "buy" else "buy")
        opp = "sell" if side == "buy" else "buy"
        bid, ask = cx.touch(sym, t)
        layers = []
        for i in range(p["layers"]):
            off = (p["first_level_ticks_behind"] + i * p["level_step_ticks"]) * tick
            size = {"flat": 1.0, "increasing": 1 + 0.3 * i, "random": lu(rng, 0.5, 2)}[p["layer_sizes"]]
            ts = t + int(sec(p["placement_spread_s"]) * i / max(1, p["layers"] - 1))
            layers.append(tp.new(ts, L, sym, side, cx.rt(sym, bid - off if side == "buy" else ask + off),
                                 cx.rq(sym, med * p["layer_x_median"] * size)))
        placed = t + sec(p["placement_spread_s"])
        te = placed + sec(jitter(rng, p["hold_before_execution_s"], 0.3))
        eq = cx.rq(sym, med * p["execution_x_median"])
        if p["execution"] == "passive":
            goid = tp.new(placed + int((te - placed) * rng.uniform(0.0, 0.5)), L, sym, opp,
                          ask if opp == "sell" else bid, eq)
            tp.take(te, cx.some_retail((L,)), [(goid, eq)])
        else:
            moid = tp.new(te - sec(lu(rng, 1, 60)), cx.liquidity((L,)), sym, side, bid if opp == "sell" else ask, eq)
            tp.take(te, L, [(moid, eq)])
        tc = te + sec(jitter(rng, p["cancel_after_execution_s"], 0.3))
        for oid in layers:
            tp.cancel(tc + int(rng.uniform(0, sec(p["cancel_spread_s"]))), oid)
        t = tc + sec(p["cancel_spread_s"]) + sec(jitter(rng, p["cycle_gap_s"], 0.5))
    return tp, [L], p


def _bulk_quotes(cx: Context, tp: Tape, sym: str, users: list[str], t_new: np.ndarray, life_us: np.ndarray,
                 qty: float, max_ticks: int, filled: np.ndarray, sides: np.ndarray) -> None:
    """Vectorised quotes: new + cancel after `life_us`; rows in `filled` are hit by a background taker instead."""
    rng, n, tick = cx.rng, len(t_new), cx.prof[sym].tick
    ids = [cx.next_oid() for _ in range(n)]
    user = np.array(users)[rng.integers(0, len(users), n)]
    ref = cx.px_many(sym, t_new)
    half = cx.prof[sym].half_spread_ticks
    off = (half + rng.integers(0, max_ticks + 1, n)) * tick
    price = np.round(np.where(sides == "buy", ref - off, ref + off) / tick) * tick
    q = np.array([cx.rq(sym, qty * math.exp(x)) for x in rng.normal(0, 0.3, n)])
    new = pl.DataFrame({"order_id": ids, "timestamp": t_new, "user_id": user, "symbol": sym, "side": sides,
                        "price": price, "quantity": q, "event": "new", "order_type": "limit"})
    keep = ~filled
    cancel = new.filter(pl.Series(keep)).with_columns(
        pl.Series("timestamp", (t_new + life_us)[keep]), pl.lit("cancel").alias("event"))
    tp.bulk_orders += [new, cancel]
    for i in np.flatnonzero(filled):  # a background taker hits the quote (the order events are in `new`)
        oid, side = ids[i], str(sides[i])
        tp.live[oid] = [str(user[i]), sym, side, float(price[i]), float(q[i])]
        saved, tp.books = tp.books, "orders"
        tp.take(int(t_new[i] + life_us[i]), cx.some_retail(exclude=users), [(oid, float(q[i]))])
        tp.books = saved


def emit_stuffing(cx: Context, sym: str, t0: int):
    rng = cx.rng
    p = params(cx, {
        "messages_per_s": round(lu(rng, 100, 2000)), "duration_s": round(lu(rng, 1, 60), 2),
        "cancelled_share": round(float(rng.uniform(0.95, 1.0)), 4), "cancel_latency_ms": round(lu(rng, 0.5, 50), 2),
        "accounts": 1 if rng.random() < 0.8 else int(rng.integers(2, 4)),
        "sides": pick(rng, ["both", "one"]), "max_ticks_from_touch": int(rng.integers(0, 11)),
        "size_x_median": round(lu(rng, 0.1, 2), 2),
    })
    total = min(p["messages_per_s"] * p["duration_s"], MAX_STUFF_MESSAGES)
    p["duration_s"] = round(total / p["messages_per_s"], 2)
    n = max(2, int(total / 2))
    users = [cx.abuser(0.2) for _ in range(p["accounts"])]
    tp = Tape(cx)
    t_new = t0 + np.sort(rng.integers(0, max(1, sec(p["duration_s"])), n)).astype(np.int64)
    life = (p["cancel_latency_ms"] * 1000 * np.exp(rng.normal(0, 0.5, n))).astype(np.int64) + 1
    not_cancelled = rng.random(n) > p["cancelled_share"]
    filled = not_cancelled & (rng.random(n) < 0.5)
    life[not_cancelled & ~filled] = (rng.uniform(1, 60, int((not_cancelled & ~filled).sum())) * US).astype(np.int64)
    life[filled] = (rng.uniform(0.1, 5, int(filled.sum())) * US).astype(np.int64)
    side = pick(rng, ["buy", "sell"])
    sides = np.where(rng.random(n) < 0.5, "buy", "sell") if p["sides"] == "both" else np.full(n, side)
    _bulk_quotes(cx, tp, sym, users, t_new, life, cx.med[sym] * p["size_x_median"], p["max_ticks_from_touch"],
                 filled, sides)
    return tp, users, p


def emit_excessive(cx: Context, sym, t0: int):
    """`sym`: one symbol, or a list the account's trades are spread over (the rate is the account's total)."""
    rng = cx.rng
    syms = [sym] if isinstance(sym, str) else list(sym)
    p = params(cx, {"symbols": len(syms),
        "taker_trades_per_hour": round(lu(rng, 1000, 6000)), "duration_min": round(lu(rng, 15, 120), 1),
        "size_x_median": round(lu(rng, 0.05, 1), 3), "timing": pick(rng, ["uniform", "bursty"]),
        "books": pick(rng, ["orders", "ids_no_events"], [0.7, 0.3]),
    })
    n = min(int(p["taker_trades_per_hour"] * p["duration_min"] / 60), 12_000)
    p["trades"] = n
    dur = sec(p["duration_min"] * 60)
    if p["timing"] == "uniform":
        times = t0 + np.sort(rng.integers(0, dur, n))
    else:  # bursts of 5-50 trades a few ms apart
        times = []
        while len(times) < n:
            c = int(rng.integers(0, dur))
            times += [c + int(x) for x in np.cumsum(rng.integers(500, 50_000, int(rng.integers(5, 51))))]
        times = t0 + np.sort(np.array(times[:n]))
    tp, X = Tape(cx, p["books"]), cx.abuser(0.3)
    for t in times:
        t = int(t)
        sym = syms[int(rng.integers(len(syms)))]
        bid, ask = cx.touch(sym, t)
        buy = rng.random() < 0.5
        other = cx.liquidity((X,))
        tp.leg(t, sym, X if buy else other, other if buy else X, ask if buy else bid,
               cx.rq(sym, jitter(rng, cx.med[sym] * p["size_x_median"], 0.5)), buy, lu(rng, 0.05, 20))
    p["taker_trades_per_hour_per_symbol"] = round(p["taker_trades_per_hour"] / len(syms))
    return tp, [X], p


# ---- legitimate look-alikes (no label) -------------------------------------------------------------------

def plan_rally(cx: Context, sym: str):
    rng = cx.rng
    p = params(cx, {"rise_pct": round(100 * lu(rng, 0.08, 0.6), 1), "rally_minutes": round(lu(rng, 20, 120), 1),
         "buyers": int(rng.integers(1000, 3001)), "retained_share_of_rise": round(float(rng.uniform(0.85, 1.0)), 2),
         "profit_taking_share": round(float(rng.uniform(0.1, 0.3)), 2)})
    t0 = int(rng.integers(cx.day_start + sec(3600), cx.day_start + sec(16 * 3600)))
    R = sec(p["rally_minutes"] * 60)
    peak = math.log1p(p["rise_pct"] / 100)
    path = PricePath(t0, t0 + R, t0 + R + sec(1800), peak,
                     math.log1p(p["rise_pct"] / 100 * p["retained_share_of_rise"]), float(rng.uniform(0.6, 1.0)), 1.0)
    return t0, path, p


def emit_rally(cx: Context, sym: str, t0: int, path: PricePath, p: dict):
    rng, tp, med = cx.rng, Tape(cx), cx.med[sym]
    p0 = cx.px(sym, t0 - 1)
    R = path.peak_t - t0
    buyers = [cx.new_account() for _ in range(p["buyers"])]
    events = [(t0 + int(R * rng.beta(1.0, 1.4)), "buy", b) for b in buyers]
    events += [(t0 + int(R * rng.uniform()), "sell", cx.some_retail())
               for _ in range(int(len(buyers) * p["profit_taking_share"]))]
    for t, side, who in sorted(events):
        level = p0 * math.exp(float(path.logm(np.array([t]))[0]))
        qty = med * math.exp(rng.normal(0, 0.8))
        rest_side = "sell" if side == "buy" else "buy"
        fills = _sweep_makers(cx, tp, t, sym, rest_side, level, qty, int(rng.integers(1, 3)), [cx.liquidity((who,))])
        tp.take(t, who, fills)
    return tp, buyers[:5], p


def emit_mm_quoting(cx: Context, sym: str, t0: int):
    rng = cx.rng
    p = params(cx, {"requote_every_s": round(lu(rng, 0.5, 5), 2), "hours": round(float(rng.uniform(1, 3)), 2),
         "quote_x_median": round(lu(rng, 1, 5), 2), "fill_prob_per_quote": round(float(rng.uniform(0.01, 0.08)), 3)})
    n = min(int(p["hours"] * 3600 / p["requote_every_s"]), 15_000)
    p["hours"] = round(n * p["requote_every_s"] / 3600, 2)
    M = cx.new_account()
    tp = Tape(cx)
    t_new = t0 + np.repeat(np.arange(n, dtype=np.int64) * sec(p["requote_every_s"]), 2)
    life = np.full(2 * n, sec(p["requote_every_s"]) - 1000, dtype=np.int64)
    filled = rng.random(2 * n) < p["fill_prob_per_quote"]
    life[filled] = (life[filled] * rng.uniform(0.05, 0.95, int(filled.sum()))).astype(np.int64)
    sides = np.tile(np.array(["buy", "sell"]), n)
    _bulk_quotes(cx, tp, sym, [M], t_new, life, cx.med[sym] * p["quote_x_median"], 2, filled, sides)
    p["cancel_share"] = round(1 - float(filled.mean()), 3)
    return tp, [M], p


def emit_hft(cx: Context, sym: str, t0: int):
    rng = cx.rng
    p = params(cx, {"messages_per_s": round(lu(rng, 5, 60), 1), "hours": round(float(rng.uniform(1, 3)), 2),
         "quote_life_ms": round(lu(rng, 50, 2000)), "fill_prob": round(float(rng.uniform(0.01, 0.05)), 3),
         "quoting": pick(rng, ["paired_bid_ask", "independent_sides"], [0.6, 0.4])})
    total = min(p["messages_per_s"] * p["hours"] * 3600, MAX_HFT_MESSAGES)
    p["hours"] = round(total / p["messages_per_s"] / 3600, 2)
    n = int(total / 2)
    H = cx.new_account()
    tp = Tape(cx)
    span = sec(p["hours"] * 3600)
    if p["quoting"] == "paired_bid_ask":  # a bid and an ask placed and pulled together
        n -= n % 2
        t_new = np.repeat(t0 + np.sort(rng.integers(0, span, n // 2)).astype(np.int64), 2)
        life = np.repeat((p["quote_life_ms"] * 1000 * np.exp(rng.normal(0, 0.3, n // 2))).astype(np.int64) + 1, 2)
        sides = np.tile(np.array(["buy", "sell"]), n // 2)
    else:
        t_new = t0 + np.sort(rng.integers(0, span, n)).astype(np.int64)
        life = (p["quote_life_ms"] * 1000 * np.exp(rng.normal(0, 0.3, n))).astype(np.int64) + 1
        sides = np.where(rng.random(n) < 0.5, "buy", "sell")
    filled = rng.random(n) < p["fill_prob"]
    _bulk_quotes(cx, tp, sym, [H], t_new, life, cx.med[sym] * lu(rng, 0.5, 3), 3, filled, sides)
    p["maker_trades"] = int(filled.sum())
    return tp, [H], p


def emit_cancel_after_move(cx: Context, sym: str, t0: int):
    """One large resting order, a small fill on the other side while it rests, cancelled once the market moved."""
    rng, tp, med, tick = cx.rng, Tape(cx), cx.med[sym], cx.prof[sym].tick
    p = params(cx, {"large_x_median": round(lu(rng, 10, 40), 1), "ticks_behind_touch": int(rng.integers(0, 6)),
         "small_fill_other_side": bool(rng.random() < 0.7)})
    T = cx.new_account()
    p0 = cx.px(sym, t0)
    t_move, move = None, 0.0
    for dt in range(10, 1800, 5):  # first time the market moves >= 0.2 %
        move = cx.px(sym, t0 + sec(dt)) / p0 - 1
        if abs(move) >= 0.002:
            t_move = t0 + sec(dt)
            break
    t_move = t_move or t0 + sec(600)
    side = "buy" if move < 0 else "sell"  # the order the market moved towards: the trader pulls it
    if rng.random() < 0.5:
        side = "sell" if side == "buy" else "buy"  # ... or away from: the trader re-prices
    bid, ask = cx.touch(sym, t0)
    off = p["ticks_behind_touch"] * tick
    oid = tp.new(t0, T, sym, side, cx.rt(sym, bid - off if side == "buy" else ask + off),
                 cx.rq(sym, med * p["large_x_median"]))
    tc = t_move + sec(lu(rng, 1, 30))
    if p["small_fill_other_side"]:
        tf = t0 + int((tc - t0) * rng.uniform(0.2, 0.9))
        b2, a2 = cx.touch(sym, tf)
        opp = "sell" if side == "buy" else "buy"
        goid = tp.new(tf - sec(lu(rng, 1, 20)), T, sym, opp, a2 if opp == "sell" else b2,
                      cx.rq(sym, med * lu(rng, 0.5, 2)))
        tp.take(tf, cx.some_retail((T,)), [(goid, tp.live[goid][4])])
    tp.cancel(tc, oid)
    p.update(side=side, rest_s=round((tc - t0) / US, 1), market_move_pct=round(100 * move, 3))
    return tp, [T], p


def emit_net_position(cx: Context, sym: str, t0: int):
    rng, med = cx.rng, cx.med[sym]
    p = params(cx, {"trades_between": int(rng.integers(10, 41)), "hours": round(float(rng.uniform(2, 6)), 2),
         "a_buys_share": round(float(rng.uniform(0.8, 1.0)), 2), "size_x_median": round(lu(rng, 0.5, 10), 2),
         "other_counterparties": int(rng.integers(5, 16))})
    tp = Tape(cx)
    A, B = cx.new_account(), cx.new_account()
    span = sec(p["hours"] * 3600)
    for t in np.sort(rng.integers(0, span, p["trades_between"])) + t0:
        t = int(t)
        bid, ask = cx.touch(sym, t)
        a_buys = rng.random() < p["a_buys_share"]
        taker_is_buyer = rng.random() < 0.5
        price = (ask if taker_is_buyer else bid)
        buyer, seller = (A, B) if a_buys else (B, A)
        tp.leg(t, sym, buyer, seller, price, cx.rq(sym, jitter(rng, med * p["size_x_median"], 0.6)), taker_is_buyer,
               lu(rng, 1, 120))
    for t in np.sort(rng.integers(0, span, 2 * p["other_counterparties"])) + t0:
        t = int(t)
        bid, ask = cx.touch(sym, t)
        me = A if rng.random() < 0.5 else B
        buy = rng.random() < 0.5
        other = cx.some_retail((A, B))
        tp.leg(t, sym, me if buy else other, other if buy else me, ask if buy else bid,
               cx.rq(sym, jitter(rng, med * p["size_x_median"], 0.6)), True, lu(rng, 1, 120))
    return tp, [A, B], p


def emit_arbitrage(cx: Context, sym: str, t0: int):
    rng, med = cx.rng, cx.med[sym]
    p = params(cx, {"round_trips": int(rng.integers(30, 201)), "hours": round(float(rng.uniform(1, 4)), 2),
         "hold_s": round(lu(rng, 0.5, 30), 2), "size_x_median": round(lu(rng, 0.5, 5), 2)})
    tp, X = Tape(cx), cx.new_account()
    span = sec(p["hours"] * 3600)
    partners = set()
    for t in np.sort(rng.integers(0, span, p["round_trips"])) + t0:
        t = int(t)
        q = cx.rq(sym, jitter(rng, med * p["size_x_median"], 0.5))
        first_buy = rng.random() < 0.5
        c1, c2 = cx.some_retail((X,)), cx.some_retail((X,))
        partners |= {c1, c2}
        bid, ask = cx.touch(sym, t)
        t2 = t + sec(jitter(rng, p["hold_s"], 0.5))
        b2, a2 = cx.touch(sym, t2)
        if first_buy:
            tp.leg(t, sym, X, c1, ask, q, True, lu(rng, 1, 60))
            tp.leg(t2, sym, c2, X, b2, q, False, lu(rng, 1, 60))
        else:
            tp.leg(t, sym, c1, X, bid, q, False, lu(rng, 1, 60))
            tp.leg(t2, sym, X, c2, a2, q, True, lu(rng, 1, 60))
    p["distinct_counterparties"] = len(partners)
    return tp, [X], p


def emit_fixed_clip(cx: Context, sym: str, t0: int):
    """An algorithm taking liquidity in one fixed clip size both ways, mostly from the market maker at the touch."""
    rng = cx.rng
    p = params(cx, {"trades_per_hour": round(lu(rng, 60, 500)), "hours": round(float(rng.uniform(1, 3)), 2),
                    "clip_x_median": round(lu(rng, 0.5, 5), 2),
                    "dominant_mm_share": round(float(rng.uniform(0.5, 1.0)), 2)})
    tp, X, M = Tape(cx), cx.new_account(), cx.some_mm()
    clip = cx.rq(sym, cx.med[sym] * p["clip_x_median"])
    n = max(2, int(p["trades_per_hour"] * p["hours"]))
    for t in np.sort(rng.integers(0, sec(p["hours"] * 3600), n)) + t0:
        t = int(t)
        bid, ask = cx.touch(sym, t)
        buy = rng.random() < 0.5
        other = M if rng.random() < p["dominant_mm_share"] else cx.liquidity((X, M))
        tp.leg(t, sym, X if buy else other, other if buy else X, ask if buy else bid, clip, buy, lu(rng, 0.05, 20))
    return tp, [X], p


EMITTERS = {
    "wash_trading": emit_wash, "circular_trading": emit_circular, "spoofing": emit_spoofing,
    "layering": emit_layering, "quote_stuffing": emit_stuffing, "excessive_trading": emit_excessive,
    "mm_quoting": emit_mm_quoting, "hft_market_maker": emit_hft, "cancel_after_move": emit_cancel_after_move,
    "net_position_pair": emit_net_position, "arbitrage_in_out": emit_arbitrage, "fixed_clip_taker": emit_fixed_clip,
}
LATEST_MARGIN_S = {"excessive_trading": 3 * 3600, "mm_quoting": 4 * 3600, "hft_market_maker": 4 * 3600,
                   "net_position_pair": 7 * 3600, "arbitrage_in_out": 5 * 3600, "cancel_after_move": 3600,
                   "fixed_clip_taker": 4 * 3600}


# ---- building one seed's day -----------------------------------------------------------------------------

def apply_paths(frame: pl.DataFrame, paths: dict[str, list[PricePath]], ticks: dict[str, float],
                per_order: bool) -> pl.DataFrame:
    """Multiply prices of symbols with price paths (orders: by the multiplier when the order was placed)."""
    if not paths:
        return frame
    parts = []
    for sym, part in frame.partition_by(Trade.SYMBOL, as_dict=True).items():
        sym = sym[0]
        if sym in paths:
            anchor = (pl.col(Trade.TIMESTAMP).min().over(Order.ORDER_ID) if per_order else pl.col(Trade.TIMESTAMP))
            ts = part.select(anchor.dt.epoch("us")).to_series().to_numpy()
            logm = sum(path.logm(ts) for path in paths[sym])
            tick = ticks[sym]
            mult = pl.Series(np.exp(logm))
            part = part.with_columns(((pl.col(Trade.PRICE) * mult / tick).round() * tick).alias(Trade.PRICE))
        parts.append(part)
    return pl.concat(parts).sort(Trade.TIMESTAMP, maintain_order=True)


def place(cx: Context, kind: str, ov: dict, tag: str, injected: list[Injected], tries: int = 80) -> None:
    """Write one episode / look-alike at a random free symbol and time (retried elsewhere when it collides)."""
    rng = cx.rng
    for _ in range(tries):
        if kind in ("quote_stuffing", "excessive_trading", "mm_quoting", "hft_market_maker"):
            sym = pick(rng, list(SYMBOLS))
        else:
            sym = pick(rng, list(SYMBOLS), [3, 3, 2, 1, 1])
        t0 = cx.random_start(LATEST_MARGIN_S.get(kind, 2 * 3600))
        if kind == "excessive_trading":
            k = ov.get("symbols", int(rng.integers(2, 4)) if rng.random() < 0.35 else 1)
            if k > 1:
                sym = sorted(rng.choice(SYMBOLS, k, replace=False).tolist())
        cx.ov = ov
        tp, users, params = EMITTERS[kind](cx, sym, t0)
        cx.ov = {}
        syms = [sym] if isinstance(sym, str) else sym
        spans = {s: tp.bounds(s) for s in syms}
        if all(cx.free(s, *spans[s]) for s in syms):
            for s in syms:
                cx.reserve(s, *spans[s])
                injected.append(Injected(kind, kind in EPISODES, s, users, *spans[s], params, sweep=tag))
            cx.tapes.append(tp)
            return
    print(f"  (could not place {kind} {tag})")


PATH_KINDS = ("pump_and_dump", "news_rally")


def build_day(seed: int, trades_per_day: int, requests: list[tuple[str, dict, str]]):
    """A clean background day of `seed` with the requested items written into it: (kind, overrides, sweep tag)."""
    background = generate_scenario(ScenarioSpec(days=1, seed=seed, clean=True, trades_per_day=trades_per_day,
                                                symbols=SYMBOLS))
    cx = Context(seed, background.trades, background.orders)
    injected: list[Injected] = []
    rng = cx.rng
    # price-path items first: they reshape the symbol's background
    planned = []
    for kind, ov, tag in requests:
        if kind not in PATH_KINDS:
            continue
        for _ in range(200):
            sym = ov.get("_symbol") or pick(rng, list(SMALL_CAPS) + ["SOLUSDT", "ETHUSDT"],
                                            [4, 4, 2, 0] if kind == "pump_and_dump" else [2, 2, 2, 1])
            cx.ov = ov
            plan = (plan_pump if kind == "pump_and_dump" else plan_rally)(cx, sym)
            cx.ov = {}
            if plan and cx.reserve(sym, plan[1].start, plan[1].end):
                cx.paths[sym].append(plan[1])
                planned.append((kind, sym, plan, tag))
                break
        else:
            print(f"  (could not place {kind} {tag})")
    ticks = {s: cx.prof[s].tick for s in SYMBOLS}
    cx.bg_trades = apply_paths(cx.bg_trades, cx.paths, ticks, per_order=False)
    cx.bg_orders = apply_paths(cx.bg_orders, cx.paths, ticks, per_order=True)
    cx.build_reference()
    for kind, sym, (t0, path, params), tag in planned:
        emit = emit_pump if kind == "pump_and_dump" else emit_rally
        tp, users, params = emit(cx, sym, t0, path, params)
        injected.append(Injected(kind, kind in EPISODES, sym, users, path.start, path.end, params, sweep=tag))
        cx.tapes.append(tp)
    for kind, ov, tag in requests:
        if kind not in PATH_KINDS:
            place(cx, kind, ov, tag, injected)
    # assemble
    trade_rows = [r for tp in cx.tapes for r in tp.trades]
    order_rows = [r for tp in cx.tapes for r in tp.orders]
    tcols = [Trade.TRADE_ID, "t", Trade.SYMBOL, Trade.SIDE, Trade.PRICE, Trade.QUANTITY, Trade.BUYER_ID,
             Trade.SELLER_ID, Trade.BUYER_ORDER_ID, Trade.SELLER_ORDER_ID]
    ocols = [Order.ORDER_ID, "timestamp", Order.USER_ID, Order.SYMBOL, Order.SIDE, Order.PRICE, Order.QUANTITY,
             Order.EVENT, Order.ORDER_TYPE]
    numeric = {"t": pl.Int64, "timestamp": pl.Int64, Trade.PRICE: pl.Float64, Trade.QUANTITY: pl.Float64}
    ostr = {c: numeric.get(c, pl.String) for c in ocols}
    tstr = {c: numeric.get(c, pl.String) for c in tcols}
    inj_trades = pl.DataFrame(trade_rows, schema=tstr, orient="row").with_columns(
        pl.from_epoch("t", "us").dt.replace_time_zone("UTC").alias(Trade.TIMESTAMP),
        pl.lit("spot").alias(Trade.MARKET_TYPE),
        (pl.col(Trade.PRICE) * pl.col(Trade.QUANTITY)).alias(Trade.QUOTE_QUANTITY),
    ).with_columns((pl.col(Trade.QUOTE_QUANTITY) * 0.001).alias(Trade.FEE))
    inj_trades = inj_trades.select(list(TRADE_SCHEMA)).cast(TRADE_SCHEMA)
    order_frames = [pl.DataFrame(order_rows, schema=ostr, orient="row")]
    order_frames += [f.select(ocols).cast(ostr) for tp in cx.tapes for f in tp.bulk_orders]
    inj_orders = pl.concat(order_frames).with_columns(
        pl.from_epoch("timestamp", "us").dt.replace_time_zone("UTC").alias(Order.TIMESTAMP),
        pl.lit("spot").alias(Order.MARKET_TYPE)).select(list(ORDER_SCHEMA)).cast(ORDER_SCHEMA)
    trades = pl.concat([cx.bg_trades.select(list(TRADE_SCHEMA)).cast(TRADE_SCHEMA), inj_trades]).sort(Trade.TIMESTAMP)
    orders = pl.concat([cx.bg_orders.select(list(ORDER_SCHEMA)).cast(ORDER_SCHEMA), inj_orders]).sort(Order.TIMESTAMP)
    day_end = datetime.fromtimestamp(cx.day_end / US, UTC)
    assert trades[Trade.TIMESTAMP].max() < day_end and orders[Order.TIMESTAMP].max() < day_end
    # labels
    injected.sort(key=lambda x: x.start)
    n = 0
    for item in injected:
        if item.labelled:
            n += 1
            item.episode_id = f"s{seed}-ind-{n:03d}"
        else:
            item.episode_id = f"s{seed}-look-{item.kind}-{item.symbol}-{iso(item.start)}"
    labels = pl.DataFrame(
        [(i.episode_id, i.kind, i.symbol, ";".join(i.users), datetime.fromtimestamp(i.start / US, UTC),
          datetime.fromtimestamp(i.end / US, UTC)) for i in injected if i.labelled],
        schema={"episode_id": pl.String, "pattern": pl.String, "symbol": pl.String, "user_ids": pl.String,
                "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")}, orient="row").cast(LABEL_SCHEMA)
    return trades, orders, labels, injected, cx


# ---- detection and scoring -------------------------------------------------------------------------------

def detect_days(detector: RuleBasedDetector, trades: pl.DataFrame, orders: pl.DataFrame, history_days: int):
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    alerts = []
    for day in trades.select(stamp.unique().sort()).to_series().to_list():
        first = day - timedelta(days=history_days)
        inputs = DetectionInputs(trades=trades.filter(stamp == day), orders=orders.filter(stamp == day),
                                 history=trades.filter((stamp >= first) & (stamp < day)), day=day)
        alerts.append(detector.run(inputs).alerts)
    return pl.concat(alerts)


def touching(alert: dict, items: list[Injected], slack_us: int) -> list[Injected]:
    """Injected items an alert lands on: same symbol, overlapping window, a shared account (if it names any)."""
    a0 = int(alert["window_start"].timestamp() * US)
    a1 = int(alert["window_end"].timestamp() * US)
    users = {u for u in (alert["user_ids"] or "").split(";") if u}
    out = []
    for it in items:
        if it.symbol != alert["symbol"] or a0 > it.end + slack_us or a1 < it.start - slack_us:
            continue
        if users and not users & set(it.users) and it.kind not in ("pump_and_dump", "news_rally"):
            continue
        out.append(it)
    return out


def fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def short_users(users) -> str:
    users = list(users)
    return ";".join(users[:4]) + (f";+{len(users) - 4}" if len(users) > 4 else "")


def recall_by_param(items: list[Injected]) -> list[str]:
    """Per pattern, recall in each value of a categorical parameter or each third of a numeric one."""
    lines = []
    by_kind = defaultdict(list)
    for it in items:
        if it.labelled:
            by_kind[it.kind].append(it)
    for kind, eps in by_kind.items():
        found = sum(e.found for e in eps)
        lines.append(f"{kind}: {found}/{len(eps)} found")
        for key in eps[0].params:
            values = [e.params.get(key) for e in eps]
            if len(set(map(str, values))) < 2:
                continue
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(values)) > 3:
                lo, hi = (float(q) for q in np.quantile(values, [1 / 3, 2 / 3]))
                bins = [(f"<={lo:g}", lambda v, lo=lo: v <= lo),
                        (f"{lo:g}..{hi:g}", lambda v, lo=lo, hi=hi: lo < v <= hi),
                        (f">{hi:g}", lambda v, hi=hi: v > hi)]
                cells = []
                for name, test in bins:
                    sel = [e for e in eps if test(e.params[key])]
                    if sel:
                        cells.append(f"{name}: {sum(e.found for e in sel)}/{len(sel)}")
            else:
                cells = []
                for value in sorted(set(map(str, values))):
                    sel = [e for e in eps if str(e.params.get(key)) == value]
                    cells.append(f"{value}: {sum(e.found for e in sel)}/{len(sel)}")
            missed_vals = sorted(e.params[key] for e in eps if not e.found) if all(
                isinstance(v, (int, float)) for v in values) else None
            lines.append(f"    {key:28s} " + " | ".join(cells)
                         + (f"   missed at {missed_vals}" if missed_vals and len(missed_vals) <= 8 else ""))
    return lines


# ---- one-parameter sweeps around an easily detected base episode -------------------------------------

BASE = {
    "wash_trading": {"variant": "pair_equal_legs", "books": "orders", "rounds": 10, "size_x_median": 3.0,
        "size_varies": True, "price_diff_bps": 2.0, "leg_gap_s": 20.0, "round_gap_s": 60.0, "maker_rest_s": 2.0,
        "taker": "alternate", "round_initiator": "same_account"},
    "circular_trading": {"ring_size": 3, "laps": 4, "size_x_median": 3.0, "fee_per_hop": 0.001, "hop_gap_s": 20.0,
        "lap_gap_s": 60.0, "price_band_bps": 5.0, "books": "orders", "direction": "fixed", "maker_rest_s": 1.0,
        "hop_pieces": 1},
    "pump_and_dump": {"rise_pct": 50.0, "pump_minutes": 3.0, "dump_minutes": 30.0, "final_vs_rise": 0.1,
        "accumulation_hours": 4.0, "organisers": 3, "buyers": 150, "buyers_are": "fresh_accounts", "dump_trades": 300,
        "organiser_maker_share": 0.4, "rise_shape": 0.6, "fall_shape": 0.6},
    "spoofing": {"reps": 6, "large_x_median_trade": 20.0, "large_orders_per_rep": 1, "rest_s": 3.0, "side": "fixed",
        "ticks_behind_touch": 1, "genuine": "passive", "cancel_timing": "right_after_fill", "genuine_x_median": 0.5,
        "rep_gap_s": 30.0, "large_filled_share": 0.0},
    "layering": {"cycles": 2, "layers": 5, "level_step_ticks": 1, "first_level_ticks_behind": 1,
        "layer_x_median": 5.0, "layer_sizes": "flat", "placement_spread_s": 0.2, "hold_before_execution_s": 3.0,
        "cancel_after_execution_s": 0.3, "cancel_spread_s": 0.05, "execution": "passive", "execution_x_median": 0.5,
        "side": "fixed", "cycle_gap_s": 60.0},
    "quote_stuffing": {"messages_per_s": 500, "duration_s": 10.0, "cancelled_share": 0.98, "cancel_latency_ms": 5.0,
        "accounts": 1, "sides": "both", "max_ticks_from_touch": 3, "size_x_median": 0.5},
    "excessive_trading": {"taker_trades_per_hour": 3000, "duration_min": 60.0, "size_x_median": 0.3,
        "timing": "uniform", "books": "orders", "symbols": 1},
    "hft_market_maker": {"messages_per_s": 30.0, "hours": 1.0, "quote_life_ms": 300, "fill_prob": 0.02,
        "quoting": "independent_sides"},
    "mm_quoting": {"requote_every_s": 1.0, "hours": 1.5, "quote_x_median": 3.0, "fill_prob_per_quote": 0.04},
    "cancel_after_move": {"large_x_median": 20.0, "ticks_behind_touch": 1, "small_fill_other_side": True},
    "net_position_pair": {"trades_between": 30, "hours": 3.0, "a_buys_share": 0.85, "size_x_median": 2.0,
        "other_counterparties": 8},
    "arbitrage_in_out": {"round_trips": 150, "hours": 1.5, "hold_s": 3.0, "size_x_median": 2.0},
    "news_rally": {"rise_pct": 30.0, "rally_minutes": 40.0, "buyers": 2000, "retained_share_of_rise": 0.9,
        "profit_taking_share": 0.2},
    "fixed_clip_taker": {"trades_per_hour": 200, "hours": 2.0, "clip_x_median": 1.0, "dominant_mm_share": 0.8},
}


def vary(name: str, values) -> list[tuple[str, dict]]:
    return [(f"{name}={v}", {name: v}) for v in values]


def combo(**kw) -> list[tuple[str, dict]]:
    return [(",".join(f"{k}={v}" for k, v in kw.items()), kw)]


SWEEPS: dict[str, list[tuple[str, dict]]] = {
    "wash_trading": [("base", {})] + vary("rounds", [2, 3, 4]) + vary("price_diff_bps", [8, 12, 20])
    + vary("leg_gap_s", [120, 400, 700]) + vary("round_gap_s", [300, 500, 800])
    + vary("round_initiator", ["random_account"]) + combo(round_initiator="random_account", size_varies=False)
    + vary("variant", ["self_trade", "pair_split_legs"]) + combo(variant="self_trade", round_gap_s=800)
    + vary("books", ["no_ids"]) + vary("size_x_median", [0.3, 30]) + vary("taker", ["random"]),
    "circular_trading": [("base", {})] + vary("ring_size", [4, 5, 6]) + vary("laps", [1, 2])
    + vary("hop_gap_s", [120, 250, 400]) + vary("lap_gap_s", [400, 900, 1200]) + vary("fee_per_hop", [0.005, 0.01])
    + vary("price_band_bps", [15, 30]) + vary("hop_pieces", [2]) + vary("direction", ["reversed_every_other_lap"]),
    "pump_and_dump": [("base", {})] + vary("buyers", [20, 40, 70, 100]) + vary("pump_minutes", [6, 10, 15])
    + vary("rise_pct", [3.0, 6.0, 10.0]) + combo(dump_minutes=60, fall_shape=1.0)
    + combo(dump_minutes=90, fall_shape=1.0) + combo(dump_minutes=120, fall_shape=1.0)
    + vary("final_vs_rise", [0.4, 0.6]) + vary("buyers_are", ["background_retail"])
    + vary("_symbol", ["SOLUSDT", "ETHUSDT", "BTCUSDT"]) + combo(_symbol="ETHUSDT", buyers=400),
    "spoofing": [("base", {})] + vary("large_x_median_trade", [3, 5, 8]) + vary("rest_s", [0.2, 15, 30, 55])
    + [(f"cancel_timing=end_of_rest,rest_s={r}", {"cancel_timing": "end_of_rest", "rest_s": r}) for r in (3, 10, 30)]
    + vary("cancel_timing", ["just_before_fill"]) + vary("large_orders_per_rep", [2, 3])
    + combo(large_orders_per_rep=3, cancel_timing="just_before_fill") + vary("reps", [2])
    + vary("rep_gap_s", [300, 700]) + vary("genuine_x_median", [2, 5]) + vary("genuine", ["aggressive"])
    + vary("side", ["alternating"]) + vary("large_filled_share", [0.05, 0.2]),
    "layering": [("base", {})] + vary("layers", [3, 4]) + vary("cancel_after_execution_s", [1, 2.5, 4, 8])
    + vary("hold_before_execution_s", [20, 45, 70]) + vary("execution_x_median", [5, 8, 12])
    + vary("cancel_spread_s", [0.5, 1.5, 3]) + vary("placement_spread_s", [5, 12])
    + vary("layer_x_median", [0.3, 0.6]) + vary("cycles", [1]) + vary("execution", ["aggressive"]),
    "quote_stuffing": [("base", {})] + vary("messages_per_s", [50, 80, 110, 150])
    + vary("cancel_latency_ms", [100, 200, 400])
    + combo(accounts=2, messages_per_s=250) + combo(accounts=3, messages_per_s=250) + vary("duration_s", [0.5, 1.0]),
    "excessive_trading": [("base", {})]
    + [(f"taker_trades_per_hour={r},duration_min={d}", {"taker_trades_per_hour": r, "duration_min": d})
       for r, d in ((500, 60), (700, 60), (2000, 15), (2000, 20), (2000, 30))]
    + combo(symbols=2, taker_trades_per_hour=1500, duration_min=40)
    + combo(symbols=3, taker_trades_per_hour=1500, duration_min=40) + combo(symbols=3) + vary("timing", ["bursty"]),
    # look-alikes: how often each is flagged
    "hft_market_maker": [("base", {})] + vary("messages_per_s", [10, 60])
    + combo(quoting="paired_bid_ask", messages_per_s=60) + vary("quote_life_ms", [1500])
    + combo(quoting="paired_bid_ask", messages_per_s=40, quote_life_ms=100)
    + combo(quoting="paired_bid_ask", messages_per_s=60, quote_life_ms=100),
    "mm_quoting": [("base", {})] + vary("requote_every_s", [0.3, 4.0]),
    "cancel_after_move": [("base", {})] + vary("large_x_median", [40]),
    "net_position_pair": [("base", {})] + vary("a_buys_share", [0.7]),
    "arbitrage_in_out": [("base", {})] + vary("hold_s", [0.5, 20]),
    "news_rally": [("base", {})] + vary("rise_pct", [60.0]) + vary("rally_minutes", [15.0]),
    "fixed_clip_taker": [("base", {})] + vary("dominant_mm_share", [0.5, 1.0]) + vary("trades_per_hour", [60, 500]),
}
EPISODE_REPLICATES, LOOKALIKE_REPLICATES = 2, 3
SWEEP_DAY_ITEMS, SWEEP_DAY_PATHS, SWEEP_DAY_LOOKALIKES = 40, 5, 14  # per sweep day: look-alikes run for hours


def sweep_days(seed0: int) -> list[tuple[int, list[tuple[str, dict, str]]]]:
    """The sweep requests (base parameters + one change) packed into days: few price-path items a day."""
    requests = []
    for kind, points in SWEEPS.items():
        reps = EPISODE_REPLICATES if kind in EPISODES else LOOKALIKE_REPLICATES
        for tag, change in points:
            requests += [(kind, {**BASE[kind], **change}, tag)] * reps
    paths = [r for r in requests if r[0] in PATH_KINDS]
    episodes = [r for r in requests if r[0] not in PATH_KINDS and r[0] in EPISODES]
    lookalikes = [r for r in requests if r[0] not in PATH_KINDS and r[0] not in EPISODES]
    days = []
    while paths or episodes:
        day = [paths.pop(0) for _ in range(min(SWEEP_DAY_PATHS, len(paths)))]
        day += [episodes.pop(0) for _ in range(min(SWEEP_DAY_ITEMS, len(episodes)))]
        days.append((seed0 + len(days), day))
    while lookalikes:
        day = [lookalikes.pop(0) for _ in range(min(SWEEP_DAY_LOOKALIKES, len(lookalikes)))]
        days.append((seed0 + len(days), day))
    return days


# ---- running and reporting -------------------------------------------------------------------------------

def random_requests(scale: float) -> list[tuple[str, dict, str]]:
    out = [(k, {}, "") for k, n in EPISODES.items() for _ in range(max(1, round(n * scale)))]
    return out + [(k, {}, "") for k, n in LOOKALIKES.items() for _ in range(n)]


def run_day(seed: int, trades_per_day: int, requests, detector, settings, verbose: bool, prefix: str = ""):
    """Build, detect and score one day; prints its table (and misses / false alerts when verbose)."""
    slack_us = int(settings.evaluation.slack_minutes * 60 * US)
    tick = time.perf_counter()
    trades, orders, labels, items, _ = build_day(seed, trades_per_day, requests)
    built = time.perf_counter() - tick
    alerts = detect_days(detector, trades, orders, settings.detectors.history_days)
    report = evaluate(alerts, labels, settings.evaluation, trade_count=trades.height)
    print(f"\n== {prefix}seed {seed}: {trades.height:,} trades, {orders.height:,} order events, {labels.height} "
          f"episodes, {sum(not i.labelled for i in items)} look-alikes; built {built:.1f} s, "
          f"total {time.perf_counter() - tick:.1f} s")
    if verbose:
        print(report.format_table())
    missed = {e for r in report.rows for e in r.missed_episode_ids}
    false_ids = {a for r in report.rows for a in r.false_alert_ids}
    by_id = {a["alert_id"]: a for a in alerts.iter_rows(named=True)}
    for it in items:
        if it.labelled:
            it.found = it.episode_id not in missed
    for a in by_id.values():
        for it in touching(a, items, slack_us):
            it.touched_by.append(f"{a['pattern']}({short_users((a['user_ids'] or '').split(';'))})")
    if verbose:
        for it in items:
            if it.labelled and not it.found:
                others = sorted(set(it.touched_by))
                print(f"  MISSED {it.episode_id} {it.kind} {it.symbol} {iso(it.start)}-{iso(it.end)} "
                      f"users={short_users(it.users)}\n      params: {fmt_params(it.params)}"
                      + (f"\n      other alerts on it: {', '.join(others)}" if others else ""))
    false_rows = []
    for aid in sorted(false_ids):
        a = by_id[aid]
        landed = touching(a, items, slack_us)
        where = ", ".join(f"{'episode ' + i.episode_id + ' (' + i.kind + ')' if i.labelled else 'LOOK-ALIKE ' + i.kind}"
                          for i in landed) or "background"
        window = f"{iso(int(a['window_start'].timestamp() * US))}-{iso(int(a['window_end'].timestamp() * US))}"
        false_rows.append({"seed": seed, "pattern": a["pattern"], "symbol": a["symbol"], "landed_on": where,
                           "users": a["user_ids"], "window": window, "explanation": a["explanation"],
                           "landed_params": [i.params for i in landed]})
        if verbose:
            print(f"  FALSE {a['pattern']} {a['symbol']} {window} users={short_users((a['user_ids'] or '').split(';'))}"
                  f" on: {where}\n      {a['explanation']}")
    tag = f"{prefix}s{seed}-"
    pooled_labels = labels.with_columns((tag + pl.col("symbol")).alias("symbol"))
    pooled_alerts = alerts.with_columns((tag + pl.col("alert_id")).alias("alert_id"),
                                        (tag + pl.col("symbol")).alias("symbol"))
    return {"seed": seed, "report": report, "items": items, "false_rows": false_rows, "trades": trades.height,
            "pooled": (pooled_alerts, pooled_labels), "build_seconds": built}


def false_alert_summary(false_rows: list[dict]) -> list[str]:
    by_where = defaultdict(int)
    for row in false_rows:
        first = row["landed_on"].split(", ")[0]
        where = first if first.startswith("LOOK") or first == "background" else \
            "episode of " + first.split("(")[-1].rstrip(")")
        by_where[(row["pattern"], where)] += 1
    return [f"  {pattern:20s} {where:40s} {n}" for (pattern, where), n in sorted(by_where.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(101, 111)))
    parser.add_argument("--trades-per-day", type=int, default=25_000)
    parser.add_argument("--episodes-scale", type=float, default=1.5, help="multiply the random episodes per seed")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the one-parameter sweeps")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "eval" / "independent.json")
    parser.add_argument("--quiet", action="store_true", help="tables only, no per-miss / per-false-alert lines")
    args = parser.parse_args()
    settings = load_settings()
    detector = RuleBasedDetector(settings.detectors)
    began = time.perf_counter()

    # 1. random episodes and look-alikes, several seeds
    print("#### PART 1: random episodes (parameters drawn over wide ranges) and look-alikes")
    runs = [run_day(seed, args.trades_per_day, random_requests(args.episodes_scale), detector, settings,
                    not args.quiet) for seed in args.seeds]
    all_items = [it for r in runs for it in r["items"]]
    false_rows = [f for r in runs for f in r["false_rows"]]
    pooled = evaluate(pl.concat([r["pooled"][0] for r in runs]), pl.concat([r["pooled"][1] for r in runs]),
                      settings.evaluation, trade_count=sum(r["trades"] for r in runs))
    print(f"\n== pooled over seeds {args.seeds}")
    print(pooled.format_table())
    print("\n== recall by injected parameter (pooled; numeric parameters in thirds)")
    print("\n".join(recall_by_param(all_items)))
    print("\n== look-alikes (no label): alerts landing on each")
    for it in all_items:
        if not it.labelled:
            hits = sorted(set(it.touched_by))
            print(f"  {'FLAGGED' if hits else 'clean  '} {it.episode_id}: {fmt_params(it.params)}"
                  + (f"\n      by {', '.join(hits)}" if hits else ""))
    print("\n== false alerts by pattern and what they landed on")
    print("\n".join(false_alert_summary(false_rows)) or "  none")

    # 2. one-parameter sweeps around a base episode each
    sweep_items, sweep_false, sweep_runs = [], [], []
    if not args.no_sweeps:
        print("\n#### PART 2: one parameter changed at a time from an easily detected base episode "
              f"({EPISODE_REPLICATES} replicates per point, {LOOKALIKE_REPLICATES} per look-alike point; "
              "timing jitter reduced)")
        JITTER["scale"] = 0.2
        for seed, requests in sweep_days(901):
            run = run_day(seed, args.trades_per_day, requests, detector, settings, False, prefix="sweep ")
            sweep_runs.append(run)
            sweep_items += run["items"]
            sweep_false += run["false_rows"]
        JITTER["scale"] = 1.0
        sweep_pooled = evaluate(pl.concat([r["pooled"][0] for r in sweep_runs]),
                                pl.concat([r["pooled"][1] for r in sweep_runs]), settings.evaluation,
                                trade_count=sum(r["trades"] for r in sweep_runs))
        print("\n== sweeps pooled")
        print(sweep_pooled.format_table())
        print("\n== sweep results: found (episodes) or flagged (look-alikes) per point; alerts on missed/flagged ones")
        for kind, points in SWEEPS.items():
            print(f"{kind}  base: {fmt_params(BASE[kind])}")
            for tag, _ in points:
                sel = [i for i in sweep_items if i.kind == kind and i.sweep == tag]
                if not sel:
                    continue
                if kind in EPISODES:
                    hit = sum(bool(i.found) for i in sel)
                    notes = sorted({t for i in sel if not i.found for t in i.touched_by})
                    mark = "ok  " if hit == len(sel) else "MISS" if hit == 0 else "part"
                else:
                    hit = sum(bool(i.touched_by) for i in sel)
                    notes = sorted({t for i in sel for t in i.touched_by})
                    mark = "ok  " if hit == 0 else "FP  "
                word = "found" if kind in EPISODES else "flagged"
                print(f"    {mark} {tag:55s} {word} {hit}/{len(sel)}"
                      + (f"   alerts on it: {', '.join(notes)}" if notes else ""))
        print("\n== sweep false alerts by pattern and what they landed on")
        print("\n".join(false_alert_summary(sweep_false)) or "  none")
        if not args.quiet:
            for row in sweep_false:
                print(f"  FALSE {row['pattern']} {row['symbol']} {row['window']} on: {row['landed_on']}\n"
                      f"      {row['explanation']}")

    print(f"\n{time.perf_counter() - began:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def item_json(i: Injected) -> dict:
        return {"episode_id": i.episode_id, "kind": i.kind, "labelled": i.labelled, "sweep": i.sweep,
                "symbol": i.symbol, "users": i.users, "start": iso(i.start), "end": iso(i.end), "found": i.found,
                "alerts_on_it": sorted(set(i.touched_by)), "params": i.params}

    args.out.write_text(json.dumps({
        "seeds": args.seeds, "trades_per_day": args.trades_per_day,
        "runs": [{"seed": r["seed"], "report": r["report"].to_dict(), "build_seconds": r["build_seconds"]}
                 for r in runs],
        "pooled": pooled.to_dict(), "episodes": [item_json(i) for i in all_items], "false_alerts": false_rows,
        "sweeps": {"base": BASE, "episodes": [item_json(i) for i in sweep_items], "false_alerts": sweep_false},
    }, indent=2, default=str) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
