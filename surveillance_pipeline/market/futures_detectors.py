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

from surveillance_pipeline.detectors.alerts import merged_alerts
from surveillance_pipeline.detectors.base import Finding, findings_frame

UTC_MS = pl.Datetime("ms", "UTC")


@dataclass(frozen=True)
class FuturesSettings:
    baseline_minutes: int = 1440      # the trailing window of the robust baselines
    min_baseline_minutes: int = 240   # no judgement before this much history
    z: float = 6.0                    # robust z from which a premium / basis / open-interest change is abnormal
    pre_settlement_minutes: int = 60  # funding manipulation: the premium displaced in this window ...
    min_abnormal_minutes: int = 3     # ... for at least this many minutes ...
    min_rate_effect: float = 0.00005  # ... adding at least 0.5 bps (half the usual 1 bps interest component of an
                                      # interval's rate) to the settled rate, as the interval's average premium ...
    funding_interval_minutes: int = 480  # (the interval when the settlement before is not in the data)
    release_minutes: int = 30         # ... and back to ordinary within this many minutes after the settlement,
    onset_minutes: int = 120          # ... having been ordinary in the two hours before that window (a premium
                                      # that builds for hours is market pressure on the rate, not a push)
    basis_min_minutes: int = 5        # basis manipulation: abnormal for at least this long, away from settlements
                                      # and liquidation bursts, ordinary before and again after (release_minutes)
    liquidation_burst: float = 20.0   # liquidations in a minute, as a multiple of the trailing mean (and >= 10)
    min_move: float = 0.005           # a hunt or cascade moves the price at least this much, and at least ...
    move_z: float = 6.0               # ... this many of the market's usual 5-minute moves (1.4826 x the median
                                      # absolute 5-minute move of the trailing day) ...
    lead_z: float = 3.0               # ... led by the perpetual: ahead of the index by this many MADs of its usual
                                      # gap (or a wick within the minute) ...
    judge_without_index: bool = True  # ... where neither index nor basis is known, judged on the rest
    retrace_share: float = 0.5        # liquidation hunting: at least this share of the move given back ...
    retrace_minutes: int = 15         # ... within this many minutes of the extreme
    oi_jump: float = 0.05             # position concentration: open interest up this share within 15 minutes ...
    oi_hold_share: float = 0.5        # ... and at least this share of it still there 30 minutes and ...
    oi_hold_minutes: int = 120        # ... this long later (a position opened for a settlement and closed right
                                      # after it is funding farming, not concentration)
    farming_rate: float = 0.0005      # funding farming: |funding| at least this at a settlement ...
    farming_window_minutes: int = 60  # ... open interest above its low of this many minutes before ...
    farming_oi_change: float = 0.01   # ... by at least this share ...
    farming_z: float = 3.0            # ... and this many MADs beyond its usual rise, then its low of the same
                                      # span after at least three quarters of the rise below, as abnormally (two
                                      # abnormal moves bracketing the settlement) ...
    farming_min_settlements: int = 1  # ... at this many consecutive settlements
    merge_gap_seconds: float = 300.0
    oi_fill_minutes: int = 3          # open interest carried over gaps of at most this many minutes
    series_fill_minutes: int = 15     # premium and basis histories carried over gaps of at most this many (a
                                      # source may sample them every few minutes)
    imbalance_z: float = 3.0          # book corroboration: the window's mean imbalance this many MADs from usual ...
    wall_rate_multiple: float = 3.0   # ... or walls on the pushed side pulled at this multiple of the usual rate
    min_pulled_walls: int = 2         # ... and at least this many


def _utc_ms(frame: pl.DataFrame) -> pl.DataFrame:
    """Time columns as UTC milliseconds, the minute grid's type (naive times are read as UTC)."""
    fixes = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype != UTC_MS:
            column = pl.col(name) if dtype.time_zone else pl.col(name).dt.replace_time_zone("UTC")
            fixes.append(column.dt.convert_time_zone("UTC").cast(UTC_MS))
    return frame.with_columns(fixes) if fixes else frame


def _series(tables: dict[str, pl.DataFrame], market: str, name: str, column: str, grid: pl.DataFrame) -> np.ndarray:
    frame = tables.get(name)
    if frame is None or frame.is_empty():
        return np.full(grid.height, np.nan)
    per_minute = (frame.filter(pl.col("market") == market)
                  .select(pl.col("created_at").dt.truncate("1m").alias("minute"), column)
                  .group_by("minute").agg(pl.col(column).last()))
    return grid.join(per_minute, on="minute", how="left").sort("minute").get_column(column).to_numpy().astype(float)


def _bars(tables: dict[str, pl.DataFrame], market: str, grid: pl.DataFrame) -> dict[str, np.ndarray]:
    """1-minute open / high / low / close / volume on the grid: the recorded k-lines, else built from the deals."""
    columns = ("open", "high", "low", "close", "volume")
    klines, deals = tables.get("klines"), tables.get("deals")
    bars = None
    if klines is not None and klines.height and (mine := klines.filter(pl.col("market") == market)).height:
        bars = mine.select(pl.col("created_at").dt.truncate("1m").alias("minute"), *columns).group_by("minute").agg(
            pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
            pl.col("volume").sum())
    elif deals is not None and deals.height and (mine := deals.filter(pl.col("market") == market)).height:
        bars = mine.sort("created_at").group_by(pl.col("created_at").dt.truncate("1m").alias("minute")).agg(
            pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
            pl.col("amount").sum().alias("volume"))
    if bars is None:
        return {c: np.full(grid.height, np.nan) for c in columns}
    joined = grid.join(bars, on="minute", how="left").sort("minute")
    return {c: joined.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy() for c in columns}


@dataclass
class _Book:
    """Per grid minute: the mean book imbalance of the snapshots taken then, and walls pulled per side."""
    imbalance: np.ndarray
    pulled: dict[str, np.ndarray]

    def support(self, a: int, b: int, direction: float, s: FuturesSettings) -> tuple[float, str, dict]:
        """Corroboration of a push in `direction` (+1 up, -1 down) over minutes [a, b] against the trailing day."""
        lo = max(0, a - s.baseline_minutes)
        notes, metrics, bonus = [], {}, 0.0
        usual, window = self.imbalance[lo:a], self.imbalance[a:b + 1]
        usual, window = usual[~np.isnan(usual)], window[~np.isnan(window)]
        if len(usual) >= 30 and len(window):
            median = float(np.median(usual))
            mad = float(np.median(np.abs(usual - median))) * 1.4826 + 1e-6
            lean = (float(window.mean()) - median) / mad
            metrics["imbalance_z"] = lean
            if lean * direction >= s.imbalance_z:
                bonus += 0.1
                notes.append(f"the order book leaned to the {'bid' if direction > 0 else 'ask'} side (imbalance "
                             f"{window.mean():+.2f} against a usual {median:+.2f})")
        side = "bid" if direction > 0 else "ask"
        pulled = self.pulled[side]
        if pulled.any():
            count = int(pulled[a:b + 1].sum())
            rate = pulled[lo:a].sum() / max(a - lo, 1)
            metrics["walls_pulled"] = count
            if count >= s.min_pulled_walls and count > s.wall_rate_multiple * rate * (b - a + 1):
                bonus += 0.1
                notes.append(f"{count} {side} walls were pulled before the price reached them (usually "
                             f"{rate * 60:.1f} an hour)")
        return bonus, ("; " + " and ".join(notes) if notes else ""), metrics


def _book(tables: dict[str, pl.DataFrame], market: str, grid: pl.DataFrame) -> _Book:
    from surveillance_pipeline.market.orderbook import book_imbalance, vanished_walls

    empty = np.zeros(grid.height)
    depth = tables.get("depth")
    mine = depth.filter(pl.col("market") == market) if depth is not None and depth.height else None
    if mine is None or mine.is_empty():
        return _Book(np.full(grid.height, np.nan), {"bid": empty, "ask": empty})
    per_minute = book_imbalance(mine).group_by(pl.col("updated_at").dt.truncate("1m").alias("minute")).agg(
        pl.col("imbalance").mean())
    imbalance = grid.join(per_minute, on="minute", how="left").sort("minute").get_column("imbalance")
    walls = vanished_walls(mine).group_by(pl.col("seen_at").dt.truncate("1m").alias("minute"), "side").len()
    pulled = {}
    for side in ("bid", "ask"):
        counts = grid.join(walls.filter(pl.col("side") == side), on="minute", how="left").sort("minute")
        pulled[side] = counts.get_column("len").fill_null(0).to_numpy().astype(float)
    return _Book(imbalance.fill_null(np.nan).to_numpy().astype(float), pulled)


def _robust_z(values: np.ndarray, settings: FuturesSettings) -> np.ndarray:
    series = pl.Series(values, nan_to_null=True)  # minutes without data are skipped, not poison the window
    window = settings.baseline_minutes
    median = series.shift(1).rolling_median(window, min_samples=settings.min_baseline_minutes)
    mad = (series - median).abs().shift(1).rolling_median(window, min_samples=settings.min_baseline_minutes // 2)
    z = (series - median) / (1.4826 * mad + 1e-12)
    return z.fill_null(np.nan).to_numpy().astype(float)


def _carried(values: np.ndarray, limit: int) -> np.ndarray:
    """A series carried forward over gaps of at most `limit` minutes (history sampled every few minutes)."""
    return pl.Series(values, nan_to_null=True).fill_null(strategy="forward", limit=limit).fill_null(
        np.nan).to_numpy().astype(float)


def _trailing_median(values: np.ndarray, settings: FuturesSettings) -> np.ndarray:
    return pl.Series(values, nan_to_null=True).shift(1).rolling_median(
        settings.baseline_minutes, min_samples=settings.min_baseline_minutes).fill_null(np.nan).to_numpy().astype(float)


def _ordinary_before(z: np.ndarray, a: int, settings: FuturesSettings) -> bool:
    """The `onset_minutes` before minute `a` were ordinary (median |z| < 2): a displacement that began abruptly."""
    earlier = np.abs(z[max(0, a - settings.onset_minutes):a])
    earlier = earlier[~np.isnan(earlier)]
    return bool(len(earlier)) and float(np.median(earlier)) < 2


def _touching(abnormal: np.ndarray, forced: np.ndarray, gap: int = 2) -> np.ndarray:
    """The forced minutes and every run of abnormal minutes that overlaps them (an aftermath that persists)."""
    out = forced.copy()
    for a, b in _runs(abnormal, 1, gap):
        if forced[a:b + 1].any():
            out[a:b + 1] = True
    return out


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
    tables = {name: _utc_ms(frame) for name, frame in tables.items()}
    markets = sorted(set().union(*[set(f.get_column("market")) for f in tables.values() if f.height]))
    rows: list[dict] = []
    for market in markets:
        rows += _market_findings(tables, market, settings)
    return findings_frame(rows)


def futures_alerts(tables: dict[str, pl.DataFrame], settings: FuturesSettings = FuturesSettings()) -> pl.DataFrame:
    findings = detect_futures(tables, settings)
    thresholds = {p: settings.__dict__ for p in findings.get_column(Finding.PATTERN).unique().to_list()}
    return merged_alerts(findings, thresholds, settings.merge_gap_seconds, high=0.8, medium=0.5, max_evidence=100,
                         model_version="futures rules")


def _market_findings(tables, market: str, s: FuturesSettings) -> list[dict]:
    stamps = [f.filter(pl.col("market") == market).get_column("created_at") for name, f in tables.items()
              if "created_at" in f.columns and f.height and name in ("mark", "index", "premium", "basis",
                                                                      "open_interest", "klines")]
    stamps = [x for x in stamps if x.len()]  # tables of other markets only
    if not stamps:
        return []
    first, last = min(x.min() for x in stamps), max(x.max() for x in stamps)
    grid = pl.DataFrame({"minute": pl.datetime_range(first.replace(second=0, microsecond=0), last, "1m",
                                                     time_unit="ms", time_zone="UTC", eager=True)})
    minutes = grid.get_column("minute").to_list()
    n = len(minutes)
    premium = _carried(_series(tables, market, "premium", "premium_index", grid), s.series_fill_minutes)
    basis = _carried(_series(tables, market, "basis", "basis_rate", grid), s.series_fill_minutes)
    index = _series(tables, market, "index", "index_price", grid)
    mark = _series(tables, market, "mark", "mark_price", grid)
    oi = _carried(_series(tables, market, "open_interest", "open_interest_volume", grid), s.oi_fill_minutes)
    bars = _bars(tables, market, grid)
    book = _book(tables, market, grid)
    price = np.where(np.isnan(mark), np.where(np.isnan(bars["close"]), index, bars["close"]), mark)
    high, low = np.fmax(price, bars["high"]), np.fmin(price, bars["low"])  # a bar's wick beyond its close
    usual_volume = pl.Series(bars["volume"], nan_to_null=True).shift(1).rolling_median(
        s.baseline_minutes, min_samples=30).fill_null(np.nan).to_numpy().astype(float)
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

    # -- liquidation bursts: hunting (the move given back) or a cascade (it is not) -----------------------
    mean_rate = pl.Series(liq).shift(1).rolling_mean(s.baseline_minutes, min_samples=s.min_baseline_minutes).to_numpy()
    burst = (liq >= np.maximum(10, s.liquidation_burst * np.nan_to_num(mean_rate, nan=np.inf)))
    bursts = _runs(burst, 1, gap=2)
    log_price = np.log(price)
    moves5 = np.full(n, np.nan)
    moves5[5:] = log_price[5:] - log_price[:-5]
    usual_move = 1.4826 * _trailing_median(np.abs(moves5), s)  # 5-minute moves centre on zero
    # the perpetual against the index (spot): recorded, else its basis; judged against its own trailing day
    ahead = np.where(np.isnan(index), basis, price / index - 1)
    ahead_z = _robust_z(ahead, s)
    for a, b in bursts:
        before = price[max(0, a - 5)]
        lo, hi = a, min(n, b + 4)
        if np.isnan(before) or np.isnan(price[lo:hi]).all():
            continue  # no price path there: the move cannot be judged
        up, down = high[lo:hi] / before - 1, low[lo:hi] / before - 1
        if np.nanmax(np.abs(up)) >= np.nanmax(np.abs(down)):
            extreme_at = lo + int(np.nanargmax(np.abs(up)))
            extreme = high[extreme_at]
        else:
            extreme_at = lo + int(np.nanargmax(np.abs(down)))
            extreme = low[extreme_at]
        move = extreme / before - 1
        least = max(s.min_move, s.move_z * np.nan_to_num(usual_move[a], nan=np.inf))
        if abs(move) < least:
            continue  # an ordinary move for this market (or no baseline yet): the liquidations are its own
        # led by the perpetual: a wick (the spike was the perpetual's own, within the minute), or the perpetual ran
        # ahead of the index in the move's direction by >= lead_z MADs of its usual gap; a move the index made as
        # well (news, a spot-led sell-off) liquidates leveraged positions without anyone driving it on the perp
        wick = extreme_at if abs(extreme / price[extreme_at] - 1) >= least / 2 else None
        gap = ahead_z[max(0, a - 5):extreme_at + 1]
        lead = float(np.nanmax(np.sign(move) * gap)) if not np.isnan(gap).all() else float("nan")
        if wick is None and not lead >= s.lead_z:
            if lead == lead or not s.judge_without_index:
                continue
        index_note = (f"; the perpetual ran ahead of the index ({lead:.0f} MADs of its usual gap)"
                      if lead == lead and lead >= s.lead_z else "" if lead == lead or wick is not None
                      else "; whether the perpetual led the index is not known here (no index or basis)")
        if extreme_at + s.retrace_minutes >= n:
            continue  # hunt or cascade is decided by what follows: not yet (a later pass judges it)
        # closes from the extreme's own minute on: a wick closes back inside its bar
        later = price[extreme_at:min(n, extreme_at + s.retrace_minutes + 1)]
        given_back = float(np.nanmax((later - extreme) / (before - extreme))) if len(later) else 0.0
        count = int(liq[a:b + 1].sum())
        volume_ratio = float(np.nanmax(bars["volume"][lo:hi]) / usual_volume[a]) if (
            usual_volume[a] > 0 and not np.isnan(bars["volume"][lo:hi]).all()) else float("nan")
        bar_note = (f"; the {minutes[wick]:%H:%M} bar reached {extreme:.6g} and closed at {price[wick]:.6g} (a wick)"
                    if wick is not None else "") + (
            f"; volume {volume_ratio:.0f}x the usual minute" if volume_ratio == volume_ratio and volume_ratio >= 3
            else "")
        metrics = {"move": move, "liquidations": count, "given_back": given_back, "wick": wick is not None,
                   "volume_ratio": None if volume_ratio != volume_ratio else volume_ratio,
                   "lead_z": None if lead != lead else lead}
        if given_back >= s.retrace_share:
            finding("liquidation_hunting", a, extreme_at + s.retrace_minutes,
                    0.6 + min(given_back, 1) * 0.3 + (0.1 if wick is not None or volume_ratio >= 5 else 0.0),
                    f"{market}: a {move * 100:+.1f}% move from {minutes[a]:%H:%M} UTC set off {count} liquidations in "
                    f"{b - a + 1} min ({count / max(b - a + 1, 1):.0f} a minute against a usual "
                    f"{np.nan_to_num(mean_rate[a]):.2f}), and {given_back:.0%} of it was given back within "
                    f"{s.retrace_minutes} min{bar_note}{index_note}.", metrics)
        else:
            finding("forced_liquidation", a, max(b, extreme_at), 0.6 + min(abs(move), 0.2) * 2,
                    f"{market}: a liquidation cascade from {minutes[a]:%H:%M} UTC: {count} liquidations in "
                    f"{b - a + 1} min (usual {np.nan_to_num(mean_rate[a]):.2f} a minute) while the price moved "
                    f"{move * 100:+.1f}% and did not recover ({given_back:.0%} given back in {s.retrace_minutes} min)"
                    f"{bar_note}{index_note}.", metrics)
    # -- funding-rate manipulation and basis manipulation: futures held away from the index -------------------
    # minutes of a liquidation burst (and its aftermath) are the liquidation patterns' to judge: forced orders
    # dislocate the perpetual from the index without anyone holding it there
    forced = np.zeros(n, dtype=bool)
    for a, b in bursts:
        forced[max(0, a - 5):min(n, b + s.retrace_minutes + 1)] = True
    pz, bz = _robust_z(premium, s), _robust_z(basis, s)
    usual_premium = _trailing_median(premium, s)
    burst_premium = _touching(np.abs(pz) >= s.z, forced)  # a displacement a burst began is the burst's
    for k, (i, rate) in enumerate(settle_idx):
        a = max(0, i - s.pre_settlement_minutes)
        window = pz[a:i]
        abnormal = (np.abs(window) >= s.z) & ~burst_premium[a:i]
        if abnormal.sum() < s.min_abnormal_minutes:
            continue
        # the settled rate averages the premium over the funding interval: what the displaced minutes added
        interval = i - settle_idx[k - 1][0] if k else s.funding_interval_minutes
        effect = float(np.nansum((premium[a:i] - usual_premium[a:i])[abnormal]) / max(interval, 1))
        if abs(effect) < s.min_rate_effect:
            continue
        after = np.abs(pz[i:i + s.release_minutes]) < 2
        if not after.any() or not _ordinary_before(pz, a, s):
            continue
        released = i + int(np.argmax(after))
        start = a + int(np.argmax(abnormal))
        peak = float(np.nanmax(np.abs(window[abnormal])))
        bonus, book_note, book_metrics = book.support(start, i, float(np.sign(effect)), s)
        finding("funding_rate_manipulation", start, released, 0.55 + min(peak, 40) / 160 + bonus,
                f"{market}: in the {s.pre_settlement_minutes} min before the {minutes[i]:%H:%M} UTC funding "
                f"settlement the premium index was abnormal for {int(abnormal.sum())} min (up to {peak:.0f} MADs from "
                f"its trailing-day median, {np.nanmax(np.abs(premium[a:i])) * 100:.2f}%), adding about "
                f"{effect * 1e4:+.2f} bps to the settled rate of {rate * 100:.4f}%, and back to ordinary "
                f"{released - i} min after it{book_note}.",
                {"abnormal_minutes": int(abnormal.sum()), "peak_z": peak, "funding_rate": rate,
                 "rate_effect": effect, **book_metrics})
    near_settlement = np.zeros(n, dtype=bool)
    for i, _ in settle_idx:
        near_settlement[max(0, i - s.pre_settlement_minutes):min(n, i + s.release_minutes)] = True
    burst_basis = _touching(np.abs(bz) >= s.z, forced)
    for a, b in _runs((np.abs(bz) >= s.z) & ~near_settlement & ~burst_basis, s.basis_min_minutes, gap=2):
        # held, then let go: ordinary before it began and again soon after (a basis that drifts for hours, or
        # stays, is market pressure; a manipulator pays to hold it and releases it)
        after = np.abs(bz[b + 1:b + 1 + s.release_minutes]) < 2
        if not after.any() or not _ordinary_before(bz, a, s):
            continue
        index_move = abs(index[b] / index[a] - 1) if index[a] == index[a] else 0.0
        peak = float(np.nanmax(np.abs(bz[a:b + 1])))
        released = b + 1 + int(np.argmax(after))
        bonus, book_note, book_metrics = book.support(a, b, float(np.sign(np.nanmedian(bz[a:b + 1]))), s)
        finding("basis_manipulation", a, b, 0.55 + min(peak, 40) / 160 + bonus,
                f"{market}: the basis (futures vs index) was abnormal for {b - a + 1} min from {minutes[a]:%H:%M} UTC "
                f"(up to {np.nanmax(np.abs(basis[a:b + 1])) * 100:.2f}%, {peak:.0f} MADs from its trailing-day "
                f"median) after two ordinary hours, away from any funding settlement and any liquidation burst, "
                f"while the index moved {index_move * 100:.2f}%, and ordinary again {released - b} min later"
                f"{book_note}.", {"minutes": b - a + 1, "peak_z": peak, "index_move": index_move, **book_metrics})
    # -- open interest: concentration (a jump that stays) and farming (up before settlements, down after) --
    log_oi = np.log(oi)
    change15 = np.full(n, np.nan)
    change15[15:] = log_oi[15:] - log_oi[:-15]
    cz = _robust_z(change15, s)
    for a, b in _runs((change15 >= np.log1p(s.oi_jump)) & (cz >= s.z), 1, gap=5):
        start = max(0, a - 15)
        jump = oi[b] / oi[start] - 1
        if b + s.oi_hold_minutes >= n:
            continue  # whether it stays is not known yet (a later pass judges it)
        later = np.array([oi[b + 30], oi[b + s.oi_hold_minutes]])
        if np.isnan(later).any() or np.isnan(oi[start]):
            continue  # open interest not known then: not assessable
        hold = float((later / oi[start] - 1).min() / jump) if jump > 0 else 0.0
        if hold < s.oi_hold_share:
            continue
        finding("position_concentration", start, b, 0.6 + min(jump, 0.5) * 0.6,
                f"{market}: open interest rose {jump * 100:.1f}% within {b - start + 1} min from {minutes[start]:%H:%M} "
                f"UTC ({np.nanmax(cz[a:b + 1]):.0f} MADs above its usual 15-min change) and {hold:.0%} of it was "
                f"still there 30 and {s.oi_hold_minutes} min later: one actor building a position.", {"jump": jump, "hold": hold})
    w = s.farming_window_minutes
    # at each minute: open interest above its low of the hour before, and its low of the hour after below it
    risen = log_oi - pl.Series(log_oi, nan_to_null=True).rolling_min(w + 1, min_samples=w // 2).fill_null(
        np.nan).to_numpy()
    falls = pl.Series(log_oi[::-1], nan_to_null=True).rolling_min(w + 1, min_samples=w // 2).fill_null(
        np.nan).to_numpy()[::-1] - log_oi
    risen_z, falls_z = _robust_z(risen, s), _robust_z(falls, s)
    hits = []  # (position in settle_idx, minute, rate, rise, fall)
    for k, (i, rate) in enumerate(settle_idx):
        if abs(rate) < s.farming_rate or i + w >= n:
            continue  # (the hour after the settlement not there yet: a later pass judges it)
        rise, fall = risen[i], falls[i]
        if (rise >= np.log1p(s.farming_oi_change) and risen_z[i] >= s.farming_z and fall <= -0.75 * rise
                and falls_z[i] <= -s.farming_z):
            hits.append((k, i, rate, float(np.expm1(rise)), float(-np.expm1(fall))))
    groups: list[list] = []
    for hit in hits:  # consecutive settlements farmed by the same positions make one episode
        if groups and hit[0] == groups[-1][-1][0] + 1:
            groups[-1].append(hit)
        else:
            groups.append([hit])
    for group in groups:
        if len(group) < s.farming_min_settlements:
            continue
        a, b = max(0, group[0][1] - w), group[-1][1] + w
        finding("funding_rate_farming", a, b, 0.6 + 0.1 * len(group),
                f"{market}: at {len(group)} funding settlement(s) ({', '.join(f'{minutes[h[1]]:%d %H:%M}' for h in group)}"
                f" UTC) with rates of {', '.join(f'{h[2] * 100:.3f}%' for h in group)} open interest rose "
                f"{', '.join(f'{h[3] * 100:.1f}%' for h in group)} in the {w} min before (>= {s.farming_z:.0f} MADs "
                f"beyond its usual hourly rise) and fell {', '.join(f'{h[4] * 100:.1f}%' for h in group)} in the "
                f"{w} min after: positions held only across the settlement to collect funding.",
                {"settlements": len(group), "rises": [h[3] for h in group], "falls": [h[4] for h in group]})
    return rows
