"""Futures detectors on a market's minute series (index, mark / premium, basis, open interest, liquidations)
and funding settlements; market-level findings (no accounts) in the rule detectors' FINDING_SCHEMA.

Every measure is judged against the market's own trailing day (robust z: distance from the rolling median in
rolling MADs), so a volatile market is not flagged for being volatile, and the first hours of data (no
baseline yet) are not judged. A move that index and futures make together (news, a trend) leaves premium and
basis ordinary and flags nothing here.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import polars as pl

from surveillance_pipeline.detectors.alerts import findings_to_alerts, merge_findings, MERGED
from surveillance_pipeline.detectors.base import Finding, findings_frame

UTC_MS = pl.Datetime("ms", "UTC")


@dataclass(frozen=True)
class FuturesSettings:
    baseline_minutes: int = 1440      # the trailing window of the robust baselines
    min_baseline_minutes: int = 240   # no judgement before this much history
    z: float = 6.0                    # robust z from which a premium / basis / open-interest change is abnormal
    pre_settlement_minutes: int = 60  # funding manipulation: the premium displaced in this window ...
    min_abnormal_minutes: int = 15    # ... for at least this many minutes ...
    release_minutes: int = 30         # ... and back to ordinary within this many minutes after the settlement,
    onset_minutes: int = 120          # ... having been ordinary in the two hours before that window (a premium
                                      # that builds for hours is market pressure on the rate, not a push)
    basis_min_minutes: int = 10       # basis manipulation: abnormal for at least this long, away from settlements
    liquidation_burst: float = 20.0   # liquidations in a minute, as a multiple of the trailing mean (and >= 10)
    min_move: float = 0.02            # a hunt or cascade moves the price at least this much
    retrace_share: float = 0.5        # liquidation hunting: at least this share of the move given back ...
    retrace_minutes: int = 15         # ... within this many minutes of the extreme
    oi_jump: float = 0.10             # position concentration: open interest up this share within 15 minutes ...
    oi_hold_share: float = 0.5        # ... and at least this share of it still there 30 minutes later
    farming_rate: float = 0.0005      # funding farming: |funding| at least this at a settlement ...
    farming_oi_change: float = 0.04   # ... open interest up this share in the 30 min before, down after ...
    farming_min_settlements: int = 2  # ... at this many settlements of one day
    merge_gap_seconds: float = 300.0


def _series(tables: dict[str, pl.DataFrame], market: str, name: str, column: str, grid: pl.DataFrame) -> np.ndarray:
    frame = tables.get(name)
    if frame is None or frame.is_empty():
        return np.full(grid.height, np.nan)
    per_minute = (frame.filter(pl.col("market") == market)
                  .select(pl.col("created_at").dt.truncate("1m").alias("minute"), column)
                  .group_by("minute").agg(pl.col(column).last()))
    return grid.join(per_minute, on="minute", how="left").sort("minute").get_column(column).to_numpy().astype(float)


def _robust_z(values: np.ndarray, settings: FuturesSettings) -> np.ndarray:
    series = pl.Series(values)
    window = settings.baseline_minutes
    median = series.shift(1).rolling_median(window, min_samples=settings.min_baseline_minutes)
    mad = (series - median).abs().shift(1).rolling_median(window, min_samples=settings.min_baseline_minutes // 2)
    z = (series - median) / (1.4826 * mad + 1e-12)
    return z.to_numpy().astype(float)


def _runs(mask: np.ndarray, min_length: int = 1, gap: int = 0) -> list[tuple[int, int]]:
    """[start, end] index pairs of True runs (bridging gaps of at most `gap` False minutes)."""
    idx = np.flatnonzero(mask)
    runs: list[tuple[int, int]] = []
    for i in idx:
        if runs and i - runs[-1][1] <= gap + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return [(a, b) for a, b in runs if b - a + 1 >= min_length]


def detect_futures(tables: dict[str, pl.DataFrame], settings: FuturesSettings = FuturesSettings()) -> pl.DataFrame:
    """Findings of every futures pattern over every market in the tables."""
    markets = sorted(set().union(*[set(f.get_column("market")) for f in tables.values() if f.height]))
    rows: list[dict] = []
    for market in markets:
        rows += _market_findings(tables, market, settings)
    return findings_frame(rows)


def futures_alerts(tables: dict[str, pl.DataFrame], settings: FuturesSettings = FuturesSettings()) -> pl.DataFrame:
    findings = detect_futures(tables, settings)
    merged = merge_findings(findings, settings.merge_gap_seconds)
    thresholds = {p: settings.__dict__ for p in findings.get_column(Finding.PATTERN).unique().to_list()}
    return findings_to_alerts(merged.drop(MERGED), thresholds, high=0.8, medium=0.5, max_evidence=100,
                              model_version="futures rules")


def _market_findings(tables, market: str, s: FuturesSettings) -> list[dict]:
    stamps = [f.filter(pl.col("market") == market).get_column("created_at") for name, f in tables.items()
              if "created_at" in f.columns and f.height and name in ("mark", "index", "premium", "basis",
                                                                      "open_interest")]
    if not stamps:
        return []
    first, last = min(x.min() for x in stamps), max(x.max() for x in stamps)
    grid = pl.DataFrame({"minute": pl.datetime_range(first.replace(second=0, microsecond=0), last, "1m",
                                                     time_unit="ms", time_zone="UTC", eager=True)})
    minutes = grid.get_column("minute").to_list()
    n = len(minutes)
    premium = _series(tables, market, "premium", "premium_index", grid)
    basis = _series(tables, market, "basis", "basis_rate", grid)
    index = _series(tables, market, "index", "index_price", grid)
    mark = _series(tables, market, "mark", "mark_price", grid)
    oi = _series(tables, market, "open_interest", "open_interest_volume", grid)
    price = np.where(np.isnan(mark), index, mark)
    liq = np.zeros(n)
    liq_frame = tables.get("liquidations")
    if liq_frame is not None and liq_frame.height:
        per = (liq_frame.filter(pl.col("market") == market).group_by(pl.col("created_at").dt.truncate("1m")
                                                                     .alias("minute")).len())
        liq = grid.join(per, on="minute", how="left").sort("minute").get_column("len").fill_null(0).to_numpy().astype(float)
    funding = tables.get("funding", pl.DataFrame())
    settlements = (funding.filter(pl.col("market") == market).sort("funding_time")
                   .select("funding_time", "actual_funding_rate").rows() if funding.height else [])
    position = {t: i for i, t in enumerate(minutes)}
    settle_idx = [(position.get(t.replace(second=0, microsecond=0)), rate) for t, rate in settlements]
    settle_idx = [(i, r) for i, r in settle_idx if i is not None]
    rows: list[dict] = []

    def finding(pattern: str, a: int, b: int, score: float, explanation: str, metrics: dict) -> None:
        rows.append({Finding.PATTERN: pattern, Finding.SYMBOL: market, Finding.USER_IDS: [],
                     Finding.WINDOW_START: minutes[a], Finding.WINDOW_END: minutes[min(b, n - 1)],
                     Finding.SCORE: float(min(1.0, max(0.0, score))), Finding.EXPLANATION: explanation,
                     Finding.EVIDENCE: [], Finding.METRICS: metrics})

    # -- funding-rate manipulation and basis manipulation: futures held away from the index -------------------
    pz, bz = _robust_z(premium, s), _robust_z(basis, s)
    pre_windows = [(max(0, i - s.pre_settlement_minutes), i) for i, _ in settle_idx]
    for i, rate in settle_idx:
        a = max(0, i - s.pre_settlement_minutes)
        window = pz[a:i]
        abnormal = np.abs(window) >= s.z
        if abnormal.sum() < s.min_abnormal_minutes:
            continue
        after = np.abs(pz[i:i + s.release_minutes]) < 2
        earlier = np.abs(pz[max(0, a - s.onset_minutes):a])
        earlier = earlier[~np.isnan(earlier)]
        if not after.any() or not len(earlier) or np.median(earlier) >= 2:
            continue
        released = i + int(np.argmax(after))
        start = a + int(np.argmax(abnormal))
        peak = float(np.nanmax(np.abs(window)))
        finding("funding_rate_manipulation", start, released, 0.6 + min(peak, 40) / 100,
                f"{market}: in the {s.pre_settlement_minutes} min before the {minutes[i]:%H:%M} UTC funding "
                f"settlement the premium index was abnormal for {int(abnormal.sum())} min (up to {peak:.0f} MADs from "
                f"its trailing-day median, {np.nanmax(np.abs(premium[a:i])) * 100:.2f}%) and back to ordinary "
                f"{released - i} min after it; the settled rate was {rate * 100:.4f}%.",
                {"abnormal_minutes": int(abnormal.sum()), "peak_z": peak, "funding_rate": rate})
    near_settlement = np.zeros(n, dtype=bool)
    for a, i in pre_windows:
        near_settlement[a:min(n, i + s.release_minutes)] = True
    for a, b in _runs((np.abs(bz) >= s.z) & ~near_settlement, s.basis_min_minutes, gap=2):
        index_move = abs(index[b] / index[a] - 1) if index[a] == index[a] else 0.0
        peak = float(np.nanmax(np.abs(bz[a:b + 1])))
        finding("basis_manipulation", a, b, 0.6 + min(peak, 40) / 100,
                f"{market}: the basis (futures vs index) was abnormal for {b - a + 1} min from {minutes[a]:%H:%M} UTC "
                f"(up to {np.nanmax(np.abs(basis[a:b + 1])) * 100:.2f}%, {peak:.0f} MADs from its trailing-day "
                f"median), away from any funding settlement, while the index moved {index_move * 100:.2f}%.",
                {"minutes": b - a + 1, "peak_z": peak, "index_move": index_move})
    # -- liquidation bursts: hunting (the move given back) or a cascade (it is not) -----------------------
    mean_rate = pl.Series(liq).shift(1).rolling_mean(s.baseline_minutes, min_samples=s.min_baseline_minutes).to_numpy()
    burst = (liq >= np.maximum(10, s.liquidation_burst * np.nan_to_num(mean_rate, nan=np.inf)))
    for a, b in _runs(burst, 1, gap=2):
        before = price[max(0, a - 5)]
        span = price[a:min(n, b + 4)]
        if np.isnan(before) or np.isnan(span).all():
            continue  # no price path there: the move cannot be judged
        extreme_at = a + int(np.nanargmax(np.abs(span / before - 1)))
        move = price[extreme_at] / before - 1
        if abs(move) < s.min_move:
            continue
        later = price[extreme_at:min(n, extreme_at + s.retrace_minutes + 1)]
        given_back = float(np.nanmax((later - price[extreme_at]) / (before - price[extreme_at]))) if len(later) else 0.0
        count = int(liq[a:b + 1].sum())
        if given_back >= s.retrace_share:
            finding("liquidation_hunting", a, extreme_at + s.retrace_minutes, 0.6 + min(given_back, 1) * 0.3,
                    f"{market}: a {move * 100:+.1f}% move from {minutes[a]:%H:%M} UTC set off {count} liquidations in "
                    f"{b - a + 1} min ({count / max(b - a + 1, 1):.0f} a minute against a usual "
                    f"{np.nan_to_num(mean_rate[a]):.2f}), and {given_back:.0%} of it was given back within "
                    f"{s.retrace_minutes} min.", {"move": move, "liquidations": count, "given_back": given_back})
        else:
            finding("forced_liquidation", a, max(b, extreme_at), 0.6 + min(abs(move), 0.2) * 2,
                    f"{market}: a liquidation cascade from {minutes[a]:%H:%M} UTC: {count} liquidations in "
                    f"{b - a + 1} min (usual {np.nan_to_num(mean_rate[a]):.2f} a minute) while the price moved "
                    f"{move * 100:+.1f}% and did not recover ({given_back:.0%} given back in {s.retrace_minutes} min).",
                    {"move": move, "liquidations": count, "given_back": given_back})
    # -- open interest: concentration (a jump that stays) and farming (up before settlements, down after) --
    log_oi = np.log(oi)
    change15 = np.full(n, np.nan)
    change15[15:] = log_oi[15:] - log_oi[:-15]
    cz = _robust_z(change15, s)
    for a, b in _runs((change15 >= np.log1p(s.oi_jump)) & (cz >= s.z), 1, gap=5):
        start = max(0, a - 15)
        jump = oi[b] / oi[start] - 1
        hold = (oi[min(n - 1, b + 30)] / oi[start] - 1) / jump if jump > 0 else 0.0
        if hold < s.oi_hold_share:
            continue
        finding("position_concentration", start, b, 0.6 + min(jump, 0.5) * 0.6,
                f"{market}: open interest rose {jump * 100:.1f}% within {b - start + 1} min from {minutes[start]:%H:%M} "
                f"UTC ({np.nanmax(cz[a:b + 1]):.0f} MADs above its usual 15-min change) and {hold:.0%} of it was "
                f"still there 30 min later: one actor building a position.", {"jump": jump, "hold": hold})
    by_day: dict = {}
    for i, rate in settle_idx:
        if i < 30 or i + 30 >= n or abs(rate) < s.farming_rate:
            continue
        up, down = oi[i] / oi[i - 30] - 1, oi[i + 30] / oi[i] - 1
        if up >= s.farming_oi_change and down <= -s.farming_oi_change * 0.75:
            by_day.setdefault(minutes[i].date(), []).append((i, rate, up, down))
    for day, hits in by_day.items():
        if len(hits) < s.farming_min_settlements:
            continue
        a, b = hits[0][0] - 30, hits[-1][0] + 30
        finding("funding_rate_farming", a, b, 0.6 + 0.1 * len(hits),
                f"{market} on {day}: at {len(hits)} funding settlements with rates of "
                f"{', '.join(f'{h[1] * 100:.3f}%' for h in hits)} open interest rose "
                f"{', '.join(f'{h[2] * 100:.1f}%' for h in hits)} in the 30 min before and fell "
                f"{', '.join(f'{-h[3] * 100:.1f}%' for h in hits)} in the 30 min after: positions held only across "
                "the settlement to collect funding.", {"settlements": len(hits)})
    return rows
