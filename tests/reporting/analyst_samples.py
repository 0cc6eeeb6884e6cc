"""Realistic inputs for the analyst reports: a few days of alerts of every pattern, model scores, activity,
account features and labels. Used by a smoke test and to eyeball the pages:

    .venv/bin/python -m tests.reporting.analyst_samples /tmp/reports_check
"""
from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
PATTERNS = ("wash_trading", "circular_trading", "pump_and_dump", "spoofing", "layering", "quote_stuffing",
            "excessive_trading", "ml_anomaly")
FOCUS = "acct-00042"  # the account the sample profile is about: in several alerts, extreme in some features
FEATURES = ("trades_day", "trades_week", "max_trades_per_hour", "order_to_trade_ratio", "cancel_rate",
            "max_orders_per_second", "max_orders_per_minute", "cancel_latency_median_ms", "fast_cancel_share",
            "self_trade_count", "top_counterparty_share", "round_trip_counterparty_share", "net_position_ratio",
            "trade_size_mean", "trade_size_median", "volume_day", "hour_entropy", "session_concentration",
            "inter_trade_mean_s", "burstiness", "vwap_deviation_bps", "slippage_bps", "symbols_traded")
UNITS = {"trades_day": "fills", "trades_week": "fills", "max_trades_per_hour": "fills", "cancel_latency_median_ms": "ms",
         "max_orders_per_second": "msgs", "max_orders_per_minute": "msgs", "self_trade_count": "trades",
         "trade_size_mean": "USDT", "trade_size_median": "USDT", "volume_day": "USDT", "hour_entropy": "bits",
         "inter_trade_mean_s": "s", "vwap_deviation_bps": "bps", "slippage_bps": "bps"}
_SENTENCES = {
    "wash_trading": "{a} bought and sold {q:,} {base} with itself through {n} matched order pairs within {m} minutes "
                    "on {s}, at prices within 0.02% of each other, with no change in net position; self-trades made "
                    "up {p}% of the account's volume in the window (threshold 30%).",
    "circular_trading": "{a} and {k} other accounts passed {q:,} {base} around a closed cycle of {n} trades on {s} "
                        "within {m} minutes, each leg within 0.05% of the previous price, returning the position "
                        "to where it started; the cycle accounts for {p}% of the symbol's volume in the window.",
    "pump_and_dump": "The price of {s} rose {p}% in {m} minutes on volume {n}x its 7-day hourly median, with {k} "
                     "new accounts buying, then fell back {q:,} basis points within the next hour as the early "
                     "buyers sold into the rally (thresholds: 8% rise, 5x volume).",
    "spoofing": "{a} placed {n} large sell orders on {s} ({p}x the median order size) 3-6 levels from the touch "
                "and cancelled {k} of them within {m} seconds, while its buy orders on the other side filled "
                "{q:,} {base}; cancel rate 97% against a peer median of 12%.",
    "layering": "{a} stacked {n} orders across {k} price levels on one side of the {s} book within {m} seconds, "
                "moved the best bid by {p} ticks, traded {q:,} {base} on the opposite side and cancelled the "
                "stack within 2 seconds of the fill.",
    "quote_stuffing": "{a} sent {n:,} order messages on {s} in {m} seconds (peak {k} per second, {p}x the peer "
                      "99th percentile) with a fill ratio of 0.1%, while the market's update rate tripled and "
                      "the spread widened {q:,} basis points.",
    "excessive_trading": "{a} made {n:,} trades on {s} in one hour, more than {p}% of the {k:,} accounts trading "
                         "the symbol that day (their median busiest hour: {m} trades), in orders averaging {q:,} "
                         "USDT, round-tripping most of them within seconds.",
    "ml_anomaly": "{a}'s activity on the day scored 0.{p} from the models (isolation forest, autoencoder, random "
                  "forest), the {k}th highest of 2,000 accounts that day; most unusual: cancel_rate 0.97 (higher "
                  "than 99.8% of 1,912 accounts; median 0.12); order_to_trade_ratio {n} (median 3.1).",
}


def _explanation(pattern: str, accounts: list[str], symbol: str, rng: np.random.Generator) -> str:
    return _SENTENCES[pattern].format(
        a=accounts[0] if accounts else "The market", s=symbol, base=symbol.removesuffix("USDT"),
        n=int(rng.integers(4, 60)), m=int(rng.integers(3, 45)), k=int(rng.integers(2, 40)),
        p=int(rng.integers(11, 99)), q=int(rng.integers(100, 90_000)))


def sample_alerts(days: list[date], count: int = 40, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        pattern = PATTERNS[i % len(PATTERNS)]
        day = days[int(rng.integers(len(days)))]
        symbol = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
        people = {"circular_trading": int(rng.integers(3, 6)), "pump_and_dump": 0}.get(pattern, 1)
        accounts = sorted({f"acct-{int(rng.integers(1, 700)):05d}" for _ in range(people)})
        if i % 6 == 0 and pattern != "pump_and_dump":
            accounts = sorted({FOCUS, *accounts})
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            minutes=int(rng.integers(0, 24 * 60 - 120)))
        end = start + timedelta(minutes=int(rng.choice([2, 5, 10, 20, 45, 90])))
        score = float(np.clip(rng.beta(4, 3), 0.3, 0.99))
        risk = "HIGH" if score >= 0.8 else "MEDIUM" if score >= 0.6 else "LOW"
        occurrence = 2 if (i % 7 == 3 and day != days[0]) else 1
        explanation = _explanation(pattern, accounts, symbol, rng)
        first_seen = day - timedelta(days=1) if occurrence > 1 else day
        if occurrence > 1:
            explanation = (f"Raised again (occurrence 2, first seen {first_seen}; previous alert {pattern}-0000"
                           f"{i:04d} on {first_seen}): {explanation}")
        top = [] if pattern != "ml_anomaly" else [
            {"feature": "cancel_rate", "value": 0.97, "percentile": 0.998, "median": 0.12},
            {"feature": "order_to_trade_ratio", "value": 41.0, "percentile": 0.995, "median": 3.1}]
        is_model = pattern == "ml_anomaly"
        rows.append({
            "alert_id": f"{pattern}-{i:020d}", "pattern": pattern, "risk_level": risk, "score": score,
            "symbol": symbol, "user_ids": ";".join(accounts), "window_start": start, "window_end": end,
            "explanation": explanation, "evidence": [f"T{int(rng.integers(1e6, 9e6))}" for _ in range(4)],
            "model_version": "ensemble-v3" if is_model else None,
            "thresholds": None if is_model else json.dumps({"min_trades": 4, "max_price_gap": 0.0002}),
            "sources": "models" if is_model else ("rules;models" if i % 5 == 0 else "rules"),
            "model_score": score if is_model or i % 5 == 0 else None, "top_features": json.dumps(top),
            "linked_alert_id": f"{pattern}-0000{i:04d}" if occurrence > 1 else None, "first_seen": first_seen,
            "occurrence": occurrence, "date": day,
        })
    return pl.DataFrame(rows, schema={
        "alert_id": pl.String, "pattern": pl.String, "risk_level": pl.String, "score": pl.Float64, "symbol": pl.String,
        "user_ids": pl.String, "window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
        "explanation": pl.String, "evidence": pl.List(pl.String), "model_version": pl.String, "thresholds": pl.String,
        "sources": pl.String, "model_score": pl.Float64, "top_features": pl.String, "linked_alert_id": pl.String,
        "first_seen": pl.Date, "occurrence": pl.Int64, "date": pl.Date})


def sample_scores(days: list[date], rows: int = 2000, seed: int = 4) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    per_day = rows // len(days)
    accounts = [f"acct-{i:05d}" for i in range(1, per_day + 1)]
    frames = []
    for day in days:
        score = np.clip(rng.beta(1.3, 9, per_day), 0, 1)
        spikes = rng.random(per_day) < 0.02
        score[spikes] = rng.uniform(0.5, 0.98, int(spikes.sum()))
        score[accounts.index(FOCUS)] = {0: 0.41, 1: 0.77, 2: 0.91}.get(days.index(day), 0.5)
        frames.append(pl.DataFrame({"account_id": accounts, "date": [day] * per_day, "score": score,
                                    "anomalous": score >= 0.5, "models": ["isolation_forest;autoencoder;random_forest"]
                                    * per_day, "model_source": ["registry"] * per_day}))
    return pl.concat(frames)


def sample_activity(days: list[date], seed: int = 5, symbols=SYMBOLS, scale: float = 1.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for day in days:
        for hour in range(24):
            moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
            for k, symbol in enumerate(symbols):
                base = (900, 600, 350)[k % 3] * (1 + 0.6 * np.sin((hour - 8) / 24 * 2 * np.pi)) * scale
                trades = int(rng.poisson(max(base, 1)))
                if scale < 1 and rng.random() < 0.35:
                    continue  # an account does not trade every hour
                rows.append({"symbol": symbol, "hour": moment, "trades": trades,
                             "volume": trades * float(rng.uniform(300, 1500)), "accounts": int(trades / 7) + 1})
    return pl.DataFrame(rows, schema={"symbol": pl.String, "hour": pl.Datetime("us", "UTC"), "trades": pl.Int64,
                                      "volume": pl.Float64, "accounts": pl.Int64})


def sample_features(days: list[date], accounts: int = 700, seed: int = 6) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for day in days:
        ids = [f"acct-{i:05d}" for i in range(1, accounts + 1)]
        data: dict[str, object] = {"account_id": ids, "date": [day] * accounts}
        for name in FEATURES:
            if "share" in name or "rate" in name or "ratio" in name and "order" not in name:
                values = rng.beta(2, 8, accounts)
            elif name in ("self_trade_count",):
                values = rng.poisson(0.2, accounts).astype(float)
            else:
                values = rng.lognormal(3, 1, accounts)
            data[name] = values
        frame = pl.DataFrame(data)
        focus = ids.index(FOCUS)
        extreme = {"cancel_rate": 0.97, "order_to_trade_ratio": 480.0, "max_orders_per_second": 950.0,
                   "fast_cancel_share": 0.93}
        frame = frame.with_columns(pl.when(pl.col("account_id") == FOCUS).then(pl.lit(v)).otherwise(pl.col(k)).alias(k)
                                   for k, v in extreme.items())
        assert frame.row(focus, named=True)["cancel_rate"] == 0.97
        frames.append(frame)
    return pl.concat(frames)


def sample_labels(alerts: pl.DataFrame) -> pl.DataFrame:
    """Episodes behind two thirds of the alerts, and two that nothing found."""
    picked = alerts.filter(pl.col("pattern") != "ml_anomaly").gather_every(3)
    found = picked.select(pl.format("ep-{}", pl.int_range(pl.len())).alias("episode_id"), "pattern", "symbol",
                          "user_ids", pl.col("window_start").alias("start"), pl.col("window_end").alias("end"))
    missed = pl.DataFrame({"episode_id": ["ep-m1", "ep-m2"], "pattern": ["spoofing", "wash_trading"],
                           "symbol": ["ETHUSDT", "SOLUSDT"], "user_ids": ["acct-00999", "acct-00998"],
                           "start": [datetime(2026, 3, 3, 4, tzinfo=UTC)] * 2,
                           "end": [datetime(2026, 3, 3, 4, 30, tzinfo=UTC)] * 2},
                          schema=found.schema)
    return pl.concat([found, missed])


def write_samples(out: Path, days: list[date] | None = None) -> dict[str, dict[str, Path]]:
    from surveillance_pipeline.reporting.analyst import account_profile, daily_summary, pattern_analysis

    days = days or [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    alerts = sample_alerts(days)
    scores = sample_scores(days)
    activity = sample_activity(days)
    first, last = days[0], days[-1]
    return {
        "daily": daily_summary(out, first, last, alerts, scores, activity),
        "account": account_profile(out, FOCUS, first, last, alerts, sample_features(days), scores,
                                   sample_activity(days, seed=9, symbols=SYMBOLS[:2], scale=0.02),
                                   feature_units=UNITS),
        "pattern": pattern_analysis(out, first, last, alerts, labels=sample_labels(alerts)),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/reports_check")
    for name, paths in write_samples(target).items():
        print(name, {k: str(v) for k, v in paths.items()})
