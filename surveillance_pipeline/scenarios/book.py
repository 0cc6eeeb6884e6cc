"""The no-crossing rule: every resting order stays on its own side of the reference touch while it is live.

The reference touch is the market's (best bid, best ask) on the one-second grid (PricePath.touch); its bid
is always below its ask. The generator keeps one invariant, which keeps the book it writes uncrossed at every
instant, as a venue's book is (a crossing limit order would have executed at once):

- a resting buy is live only while its price is at or below the reference bid, a resting sell only while it
  is at or above the reference ask ("behind the touch": background makers, quotes, spoofs, layers);
- a few episode orders (a wash trade's resting side) may sit inside the spread instead: a buy below the
  reference ask, a sell above the reference bid; they never meet another inside order of the other side.

So a resting order is placed no earlier than the price last went through it before its fill, and is
cancelled (or filled) before the price goes through it afterwards; a market maker's quote is priced at the
far edge of the touch over the quote's whole life. `TouchIndex` answers those questions for a window of
seconds with sparse tables (range maximum, first / last second beyond a level): O(log n) numpy steps per
batch of queries, no loop over orders.

All prices here are integer ticks of the symbol; times are microseconds since the epoch, as elsewhere.
"""
from __future__ import annotations

import numpy as np

from surveillance_pipeline.scenarios.market import US, PricePath

NEVER = np.iinfo(np.int64).max  # "no violation before the scenario ends"


class SymbolTouch:
    """A symbol's reference-touch centre (ticks) for every second of the scenario, once its path is final."""

    def __init__(self, market: PricePath, symbol: str):
        profile = market.profiles[symbol]
        self.tick = profile.tick
        self.half = profile.half_spread_ticks
        self.origin_us = market.start_us
        self.centre = market.centre_ticks(symbol).astype(np.int32)  # PricePath.touch reads the same array
        # Suffix extremes: what the centre still reaches from each second to the end of the scenario.
        self.later_max = np.maximum.accumulate(self.centre[::-1])[::-1]
        self.later_min = np.minimum.accumulate(self.centre[::-1])[::-1]

    @property
    def seconds(self) -> int:
        return len(self.centre)

    def window(self, start_us: int, end_us: int) -> TouchIndex:
        lo = max(0, (start_us - self.origin_us) // US)
        hi = min(self.seconds, -(-(end_us - self.origin_us) // US))
        return TouchIndex(self, int(lo), int(max(hi, lo + 1)))


class TouchIndex:
    """Queries on the reference touch of one symbol over the seconds [lo, hi) of the scenario."""

    def __init__(self, symbol: SymbolTouch, lo: int, hi: int):
        self.symbol, self.lo, self.hi = symbol, lo, hi
        self.tick, self.half = symbol.tick, symbol.half
        self.lo_us = symbol.origin_us + lo * US
        self.hi_us = symbol.origin_us + hi * US
        centre = symbol.centre[lo:hi]
        # Two range-maximum tables: over the centre (asks) and over its negation (bids).
        self._up = _sparse_max(centre)
        self._down = _sparse_max(-centre)

    # --- conversions ------------------------------------------------------------------------------------
    def ticks(self, price) -> np.ndarray:
        return np.round(np.asarray(price, dtype=np.float64) / self.tick).astype(np.int64)

    def price(self, ticks) -> np.ndarray:
        return np.round(np.asarray(ticks, dtype=np.float64) * self.tick, 9)

    def _second(self, ts_us) -> np.ndarray:
        """Index into the window of the second holding ts (clipped to the window)."""
        s = (np.asarray(ts_us, dtype=np.int64) - self.lo_us) // US
        return np.clip(s, 0, self.hi - self.lo - 1)

    def _level(self, buy, price, inside) -> tuple[np.ndarray, np.ndarray]:
        """(table selector, level): the order is fine in a second whose table value is <= level.

        Sell at p: behind the touch iff ask = c + half <= p; inside allowed iff bid = c - half + 1 < p.
        Buy at p: behind iff bid = c - half + 1 >= p, i.e. -c <= half - 1 - p; inside iff ask = c + half > p.
        """
        buy = np.broadcast_to(np.asarray(buy, dtype=bool), np.shape(price))
        p = self.ticks(price)
        slack = np.where(np.asarray(inside, dtype=bool), 2 * self.half - 2, 0)
        level = np.where(buy, self.half - 1 - p + slack, p - self.half + slack)
        return buy, level

    # --- questions --------------------------------------------------------------------------------------
    def envelope(self, start_us, end_us) -> tuple[np.ndarray, np.ndarray]:
        """(lowest reference bid, highest reference ask) in ticks over the seconds holding start..end."""
        a, b = self._second(start_us), self._second(end_us)
        b = np.maximum(a, b)
        top = _range_max(self._up, a, b)
        bottom = -_range_max(self._down, a, b)
        return bottom - self.half + 1, top + self.half

    def ok_at(self, ts_us, buy, price, inside=False) -> np.ndarray:
        """Whether an order resting at price is on its side of the touch at ts."""
        buy, level = self._level(buy, price, inside)
        s = self._second(ts_us)
        value = np.where(buy, self._down[0][s], self._up[0][s])
        return value <= level

    def safe_since(self, end_us, buy, price, inside=False) -> np.ndarray:
        """The earliest instant from which an order at price stays on its side until end (first microsecond
        after the last second before end in which the price was through it; the window's start if none).
        Greater than end when the order is not on its side at end itself."""
        buy, level = self._level(buy, price, inside)
        end = self._second(end_us)
        last = np.full(end.shape, -1, dtype=np.int64)
        for side, table in ((True, self._down), (False, self._up)):
            mask = buy == side
            if mask.any():
                last[mask] = _last_above(table, end[mask], level[mask])
        return self.lo_us + (last + 1) * US

    def safe_until(self, start_us, buy, price, inside=False) -> np.ndarray:
        """The first instant at which an order at price, resting from start, would be through the touch
        (the start of that second): it must be gone by then. NEVER when the price never reaches it before the
        scenario ends; the window's end when it does so only after the window."""
        buy, level = self._level(buy, price, inside)
        start = self._second(start_us)
        first = np.empty(start.shape, dtype=np.int64)
        for side, table in ((True, self._down), (False, self._up)):
            mask = buy == side
            if mask.any():
                first[mask] = _first_above(table, start[mask], level[mask])
        until = self.lo_us + first * US
        beyond = first >= self.hi - self.lo
        if beyond.any():
            # After the window: only the suffix extreme is known.
            later = self.hi if self.hi < self.symbol.seconds else None
            if later is None:
                until[beyond] = NEVER
            else:
                reach = np.where(buy[beyond], -self.symbol.later_min[later], self.symbol.later_max[later])
                until[beyond] = np.where(reach > level[beyond], self.hi_us, NEVER)
        return until


def _sparse_max(values: np.ndarray) -> np.ndarray:
    """table[k, i] = max(values[i : i + 2**k]) (truncated at the end), levels until one block covers all."""
    n = len(values)
    levels = max(1, int(np.ceil(np.log2(max(n, 1)))) + 1)
    table = np.empty((levels, n), dtype=values.dtype)
    table[0] = values
    for k in range(1, levels):
        half = 1 << (k - 1)
        table[k] = table[k - 1]
        np.maximum(table[k, :n - half], table[k - 1, half:], out=table[k, :n - half])
    return table


def _range_max(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max(values[a..b]) inclusive, a <= b."""
    length = b - a + 1
    k = np.floor(np.log2(length)).astype(np.int64)
    return np.maximum(table[k, a], table[k, b - (1 << k) + 1])


def _first_above(table: np.ndarray, start: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Smallest i >= start with values[i] > level; len(values) if none. Greedy binary lifting."""
    n = table.shape[1]
    pos = start.copy()
    for k in range(table.shape[0] - 1, -1, -1):
        fits = pos < n
        clean = fits & (table[k, np.minimum(pos, n - 1)] <= level)
        pos = np.where(clean, pos + (1 << k), pos)
    return np.minimum(pos, n)


def _last_above(table: np.ndarray, end: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Largest i <= end with values[i] > level; -1 if none. Greedy binary lifting backwards."""
    pos = end.copy()  # values[pos + 1 .. end] are known clean
    for k in range(table.shape[0] - 1, -1, -1):
        begin = pos - (1 << k) + 1
        fits = begin >= 0
        clean = fits & (table[k, np.maximum(begin, 0)] <= level)
        pos = np.where(clean, begin - 1, pos)
    return pos
