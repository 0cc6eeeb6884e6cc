"""Shared state for generating one day: accounts, the market, the tape, scheduling and episode recording."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surveillance_pipeline.contract import Pattern
from surveillance_pipeline.scenarios.book import SymbolTouch, TouchIndex
from surveillance_pipeline.scenarios.market import DAY_US, US, PricePath, to_grid
from surveillance_pipeline.scenarios.spec import ScenarioSpec, SymbolProfile
from surveillance_pipeline.scenarios.tape import Tape

MARKET_MAKERS_PER_ACCOUNTS = 25  # one market maker per this many accounts, within the bounds below
MIN_MARKET_MAKERS, MAX_MARKET_MAKERS = 3, 10
ACTIVITY_SIGMA = 1.1  # lognormal spread of retail activity: a few busy accounts, many occasional ones
EPISODE_GAP_US = 10 * 60 * US  # labelled episodes on one symbol keep this far apart when they can
DAY_EDGE_US = 15 * 60 * US  # and this far from midnight
TOUCH_WINDOW_AFTER_DAY_US = 3 * 3600 * US  # a day's orders are checked against the touch this far past midnight


@dataclass(frozen=True)
class Accounts:
    names: list[str]
    market_makers: np.ndarray  # account indices
    retail: np.ndarray  # account indices
    retail_weights: np.ndarray  # activity share of each retail account (sums to 1)


def build_accounts(n: int, rng: np.random.Generator) -> Accounts:
    width = max(4, len(str(n - 1)))
    names = [f"acct_{i:0{width}d}" for i in range(n)]
    n_mm = int(np.clip(n // MARKET_MAKERS_PER_ACCOUNTS, MIN_MARKET_MAKERS, MAX_MARKET_MAKERS))
    shuffled = rng.permutation(n)
    market_makers, retail = np.sort(shuffled[:n_mm]), np.sort(shuffled[n_mm:])
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, len(retail))
    return Accounts(names, market_makers, retail, activity / activity.sum())


@dataclass
class ForcedTakers:
    """Taker orders decided by a plan (rally buyers, pump rush, a hyperactive account); the background fills them."""

    chunks: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, sym: int, ts, account, buy, qty, mm_share: float = np.nan) -> None:
        """mm_share: chance that a market maker (not a retail limit order) is the counterparty; NaN = usual."""
        ts = np.atleast_1d(np.asarray(ts, dtype=np.int64)) | 1  # odd microseconds: never on a requote instant
        n = len(ts)
        self.chunks.append((sym, ts, *(np.broadcast_to(np.asarray(v, dtype=t), (n,)) for v, t in (
            (account, np.int64), (buy, bool), (qty, np.float64), (mm_share, np.float64)))))

    def for_symbol(self, sym: int) -> tuple[np.ndarray, ...]:
        """(ts, account, buy, qty, mm_share) of the symbol's forced takers."""
        mine = [c for c in self.chunks if c[0] == sym]
        if not mine:
            return tuple(np.empty(0, t) for t in (np.int64, np.int64, bool, np.float64, np.float64))
        return tuple(np.concatenate([c[i] for c in mine]) for i in range(1, 6))


@dataclass
class EpisodeLabel:
    pattern: Pattern
    symbol: str
    users: list[int]
    start: int
    end: int


@dataclass
class DayContext:
    spec: ScenarioSpec
    rng: np.random.Generator
    tape: Tape
    market: PricePath
    accounts: Accounts
    profiles: dict[str, SymbolProfile]
    day_start: int
    forced: ForcedTakers = field(default_factory=ForcedTakers)
    fast_windows: list[tuple[str, int, int, float]] = field(default_factory=list)  # symbol, start, end, requote s
    labels: list[EpisodeLabel] = field(default_factory=list)
    touches: dict[str, SymbolTouch] = field(default_factory=dict)  # set once every overlay is laid
    _touch_windows: dict[str, TouchIndex] = field(default_factory=dict)
    _occupied: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _abuser_pool: list[int] = field(default_factory=list)

    @property
    def day_end(self) -> int:
        return self.day_start + DAY_US

    @property
    def scenario_end(self) -> int:
        return self.market.start_us + self.market.seconds * US

    @property
    def symbols(self) -> list[str]:
        return list(self.spec.symbols)

    def sym(self, symbol: str) -> int:
        return self.spec.symbols.index(symbol)

    def touch(self, symbol: str) -> TouchIndex:
        """The symbol's reference touch over the day (and a few hours past it): see scenarios.book."""
        index = self._touch_windows.get(symbol)
        if index is None:
            if symbol not in self.touches:
                raise RuntimeError("scenario: the reference touch is read only after every price overlay is laid")
            index = self.touches[symbol].window(self.day_start, self.day_end + TOUCH_WINDOW_AFTER_DAY_US)
            self._touch_windows[symbol] = index
        return index

    def release_touch(self) -> None:
        self._touch_windows.clear()

    def uniform_us(self, low_s: float, high_s: float) -> int:
        return int(self.rng.uniform(low_s, high_s) * US)

    def size(self, symbol: str, low_medians: float, high_medians: float) -> float:
        """A quantity of low..high times the symbol's median retail size, on the lot grid."""
        profile = self.profiles[symbol]
        qty = profile.median_qty * self.rng.uniform(low_medians, high_medians)
        return float(max(profile.lot, to_grid(qty, profile.lot)))

    def reserve(self, duration_us: int, symbol: str | None = None, earliest_us: int = 0,
                weights: np.ndarray | None = None, attempts: int = 200) -> tuple[str, int]:
        """A (symbol, start) whose window does not overlap other labelled windows on that symbol, if possible."""
        low = self.day_start + max(DAY_EDGE_US, earliest_us)
        high = max(low + 1, self.day_end - DAY_EDGE_US - duration_us)
        for _ in range(attempts):
            chosen = symbol or str(self.rng.choice(self.symbols, p=weights))
            start = int(self.rng.integers(low, high))
            window = (start - EPISODE_GAP_US, start + duration_us + EPISODE_GAP_US)
            busy = self._occupied.setdefault(chosen, [])
            if all(window[1] <= s or e <= window[0] for s, e in busy):
                break
        busy.append((start, start + duration_us))
        return chosen, start

    def take_abusers(self, k: int) -> list[int]:
        """k distinct retail accounts for an episode, drawn without replacement within the day while they last."""
        if len(self._abuser_pool) < k:
            self._abuser_pool = [int(a) for a in self.rng.permutation(self.accounts.retail)]
        taken, self._abuser_pool = self._abuser_pool[:k], self._abuser_pool[k:]
        return taken

    def counterparty(self, exclude: list[int]) -> int:
        """A random retail account (by activity) other than the excluded ones."""
        while True:
            account = int(self.rng.choice(self.accounts.retail, p=self.accounts.retail_weights))
            if account not in exclude:
                return account

    def episode(self, pattern: Pattern, symbol: str, users: list[int]) -> Episode:
        return Episode(self, pattern, symbol, users)


class Episode:
    """Writes an episode's events to the tape and remembers the span they cover, for the label."""

    def __init__(self, day: DayContext, pattern: Pattern, symbol: str, users: list[int]):
        self.day, self.pattern, self.symbol, self.users = day, pattern, symbol, users
        self.sym = day.sym(symbol)
        self.first: int | None = None
        self.last: int | None = None

    def _seen(self, ts: int) -> None:
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)

    def place(self, ts: int, user: int, buy: bool, price: float, qty: float, market: bool = False) -> int:
        self._seen(ts)
        return self.day.tape.place(ts, user, self.sym, buy, price, qty, market)

    def cancel(self, oid: int, ts: int) -> None:
        self._seen(ts)
        self.day.tape.cancel(oid, ts)

    def fill(self, ts: int, maker_oid: int, maker: int, taker: int, taker_buy: bool, price: float, qty: float,
             taker_market: bool = True) -> int:
        """A taker order arriving at ts that fills the resting maker order; returns the taker's order id."""
        taker_oid = self.place(ts, taker, taker_buy, price, qty, market=taker_market)
        buyer, seller = (taker, maker) if taker_buy else (maker, taker)
        buyer_oid, seller_oid = (taker_oid, maker_oid) if taker_buy else (maker_oid, taker_oid)
        self.day.tape.trade(ts, self.sym, taker_buy, price, qty, buyer, seller, buyer_oid, seller_oid)
        return taker_oid

    def resting_since(self, ts: int, buy: bool, price: float, lead_us: int, inside: bool = False) -> int:
        """When an order resting at price until ts is placed: lead_us before ts, or later if the price was
        through it in between (it must rest on its own side of the touch: scenarios.book). The order must
        be on its side at ts itself."""
        since = int(self.day.touch(self.symbol).safe_since(ts, buy, price, inside))
        if since > ts:
            raise ValueError(f"scenario: a {'buy' if buy else 'sell'} at {price} would cross the book at {ts}")
        placed = ts - max(1, lead_us)
        if placed < since:  # placed at a random instant once the price has left its level
            placed = since + int(self.day.rng.random() * (ts - since))
        return placed

    def cross(self, ts: int, maker: int, taker: int, taker_buy: bool, price: float, qty: float,
              maker_lead_us: int, inside: bool = False) -> None:
        """A maker limit order placed up to maker_lead_us before ts (never while the price is through it),
        filled completely by a taker at ts. inside: the maker may rest inside the spread (scenarios.book)."""
        placed = self.resting_since(ts, not taker_buy, price, maker_lead_us, inside)
        maker_oid = self.place(placed, maker, not taker_buy, price, qty)
        self.fill(ts, maker_oid, maker, taker, taker_buy, price, qty)

    def rests_at(self, ts: int, buy: bool, price: float, inside: bool = False) -> bool:
        """Whether an order at price would be on its own side of the touch at ts."""
        return bool(self.day.touch(self.symbol).ok_at(ts, buy, price, inside))

    def force(self, ts, account, buy, qty, track: bool = True, mm_share: float = np.nan) -> None:
        """Taker orders the background matches against its makers."""
        ts = np.atleast_1d(np.asarray(ts, dtype=np.int64)) | 1
        if track and len(ts):
            self._seen(int(ts.min()))
            self._seen(int(ts.max()))
        self.day.forced.add(self.sym, ts, account, buy, qty, mm_share)

    def close(self, start: int | None = None, end: int | None = None) -> None:
        start = self.first if start is None else start
        end = self.last if end is None else end
        if start is None or end is None:
            raise RuntimeError(f"{self.pattern} episode on {self.symbol} produced no events")
        self.day.labels.append(EpisodeLabel(self.pattern, self.symbol, sorted(set(self.users)), start, end))
