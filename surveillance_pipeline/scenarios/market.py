"""The market every participant sees: intraday seasonality and a mid-price path per symbol.

Times are integer microseconds since the Unix epoch (UTC) throughout the generator.
"""
from __future__ import annotations

import math

import numpy as np

from surveillance_pipeline.scenarios.spec import SymbolProfile

US = 1_000_000
SECONDS_PER_DAY = 86_400
DAY_US = SECONDS_PER_DAY * US
# Heavy-tailed price innovations (Student t); the scale keeps the variance at the profile's volatility.
RETURN_TAIL_DF = 4.0


def activity_curve() -> np.ndarray:
    """Relative trading intensity for each second of a UTC day, mean 1: quiet Asian night, busy EU and US hours."""
    hours = np.arange(SECONDS_PER_DAY) / 3600.0

    def bump(centre_h: float, width_h: float, height: float) -> np.ndarray:
        return height * np.exp(-0.5 * ((hours - centre_h) / width_h) ** 2)

    curve = 0.35 + bump(2.0, 2.0, 0.25) + bump(9.5, 2.2, 0.8) + bump(15.5, 2.5, 1.1) + bump(20.0, 1.5, 0.3)
    return curve / curve.mean()


ACTIVITY = activity_curve()


def sample_times(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n microsecond offsets within a day, drawn with density proportional to per-second `weights`."""
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    seconds = np.searchsorted(cdf, rng.random(n), side="right")
    seconds = np.minimum(seconds, SECONDS_PER_DAY - 1)
    return seconds.astype(np.int64) * US + rng.integers(0, US, n)


def to_grid(values: np.ndarray | float, step: float, mode: str = "round") -> np.ndarray:
    """Snap values to a price or quantity grid; the final rounding removes float noise (60000.1, not ...0002)."""
    scaled = np.asarray(values, dtype=np.float64) / step
    steps = {"round": np.round, "floor": np.floor, "ceil": np.ceil}[mode](scaled)
    return np.round(steps * step, 9)


class PricePath:
    """Mid price per symbol on a one-second grid: a seasonal random walk plus event overlays (rallies, pumps)."""

    def __init__(self, start_us: int, days: int, profiles: dict[str, SymbolProfile], rng: np.random.Generator):
        self.start_us = start_us
        self.seconds = days * SECONDS_PER_DAY
        self.profiles = profiles
        seasonal_scale = np.sqrt(np.tile(ACTIVITY, days))
        t_scale = math.sqrt((RETURN_TAIL_DF - 2) / RETURN_TAIL_DF)
        self._log_mid: dict[str, np.ndarray] = {}
        self._centre: dict[str, np.ndarray] = {}
        for symbol, profile in profiles.items():
            sigma = profile.daily_vol / math.sqrt(SECONDS_PER_DAY)
            steps = rng.standard_t(RETURN_TAIL_DF, self.seconds) * t_scale * sigma * seasonal_scale
            opening = math.log(profile.base_price) + rng.normal(0.0, 0.02)
            self._log_mid[symbol] = opening + np.cumsum(steps)

    def add_overlay(self, symbol: str, start_us: int, log_shift: np.ndarray) -> None:
        """Add a per-second log-price shift from start_us on; its last value persists to the end."""
        path = self._log_mid[symbol]
        self._centre.pop(symbol, None)
        first = (start_us - self.start_us) // US
        if first >= self.seconds or len(log_shift) == 0:
            return
        span = min(len(log_shift), self.seconds - first)
        path[first:first + span] += log_shift[:span]
        path[first + span:] += log_shift[-1]

    def _index(self, ts_us: np.ndarray | int) -> np.ndarray:
        offsets = (np.asarray(ts_us, dtype=np.int64) - self.start_us) // US
        return np.clip(offsets, 0, self.seconds - 1)

    def log_mid(self, symbol: str, ts_us: np.ndarray | int) -> np.ndarray:
        return self._log_mid[symbol][self._index(ts_us)]

    def mid(self, symbol: str, ts_us: np.ndarray | int) -> np.ndarray:
        return np.exp(self.log_mid(symbol, ts_us))

    def centre_ticks(self, symbol: str) -> np.ndarray:
        """floor(mid / tick) for every second of the scenario: the touch's centre, in ticks (cached)."""
        centre = self._centre.get(symbol)
        if centre is None:
            centre = np.floor(np.exp(self._log_mid[symbol]) / self.profiles[symbol].tick).astype(np.int64)
            self._centre[symbol] = centre
        return centre

    def touch(self, symbol: str, ts_us: np.ndarray | int, extra_ticks: np.ndarray | int = 0):
        """(best bid, best ask) at ts; extra_ticks widens the quote (a market maker's own offset)."""
        profile = self.profiles[symbol]
        centre = self.centre_ticks(symbol)[self._index(ts_us)]
        half = profile.half_spread_ticks + np.asarray(extra_ticks)
        bid = np.round((centre - half + 1) * profile.tick, 9)
        ask = np.round((centre + half) * profile.tick, 9)
        return bid, ask

    def best_bid(self, symbol: str, ts_us: int) -> float:
        return float(self.touch(symbol, ts_us)[0])

    def best_ask(self, symbol: str, ts_us: int) -> float:
        return float(self.touch(symbol, ts_us)[1])
