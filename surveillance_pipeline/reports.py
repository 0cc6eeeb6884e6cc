"""The analyst reports from what the pipeline stored: the `reports` asset (daily summary, pattern analysis
over the week before, a risk profile of each account with a HIGH alert) and `surveillance report ...`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from surveillance_pipeline.config import Settings
from surveillance_pipeline.contract import USER_IDS_SEPARATOR, Alert, Trade
from surveillance_pipeline.engine.activity import account_activity, hourly_activity
from surveillance_pipeline.engine.store import read_alerts
from surveillance_pipeline.features.base import DATE
from surveillance_pipeline.storage.database import Database

PATTERN_DAYS = 7  # the pattern analysis of a day looks at the week up to it
PROFILES_PER_DAY = 5


@dataclass
class StoredDays:
    """What the warehouse holds for a period: model scores, account features and trades (lazy)."""

    scores: pl.DataFrame
    features: pl.DataFrame
    trades: pl.LazyFrame


def _partitions(warehouse: Path, asset: str, first: date, last: date) -> list[Path]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [p for d in days if (p := warehouse / asset / f"{d}.parquet").exists()]


def stored_days(settings: Settings, first: date, last: date) -> StoredDays:
    warehouse = settings.resolve(settings.paths.warehouse_dir)

    def frame(asset: str) -> pl.DataFrame:
        paths = _partitions(warehouse, asset, first, last)
        return pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed") if paths else pl.DataFrame()

    trade_paths = _partitions(warehouse, "validated_trades", first, last)
    trades = pl.scan_parquet(trade_paths) if trade_paths else pl.LazyFrame(
        schema={Trade.TIMESTAMP: pl.Datetime("us", "UTC"), Trade.SYMBOL: pl.String, Trade.PRICE: pl.Float64,
                Trade.QUANTITY: pl.Float64, Trade.BUYER_ID: pl.String, Trade.SELLER_ID: pl.String})
    return StoredDays(frame("model_scores"), frame("account_features"), trades)


def high_risk_accounts(alerts: pl.DataFrame, limit: int = PROFILES_PER_DAY) -> list[str]:
    """Accounts of the day's HIGH alerts, the highest scores first."""
    high = alerts.filter(pl.col(Alert.RISK_LEVEL) == "HIGH").sort(Alert.SCORE, descending=True)
    accounts: list[str] = []
    for joined in high.get_column(Alert.USER_IDS).to_list():
        for account in (joined or "").split(USER_IDS_SEPARATOR):
            if account and account not in accounts:
                accounts.append(account)
    return accounts[:limit]


def reports_for_day(settings: Settings, db: Database, day: date) -> dict[str, Path]:
    """Write paths.reports_dir/<day>/: daily summary, pattern analysis of the week, account profiles."""
    from surveillance_pipeline.reporting.analyst import account_profile, daily_summary, pattern_analysis

    folder = settings.resolve(settings.paths.reports_dir) / day.isoformat()
    week_start = day - timedelta(days=PATTERN_DAYS - 1)
    alerts = read_alerts(db, week_start, day)
    today = alerts.filter(pl.col(DATE) == day)
    stored = stored_days(settings, day, day)
    files = {f"daily_{k}": v for k, v in daily_summary(folder, day, day, today, stored.scores,
                                                       hourly_activity(stored.trades)).items()}
    files.update({f"pattern_{k}": v for k, v in pattern_analysis(folder, week_start, day, alerts).items()})
    for account in high_risk_accounts(today):
        written = account_profile(folder, account, day, day, today, stored.features, stored.scores,
                                  account_activity(stored.trades, account))
        files[f"account_{account}"] = written["pdf"]
    return files


def report_on_demand(settings: Settings, db: Database, kind: str, first: date, last: date, out_dir: Path,
                     account: str | None = None) -> dict[str, Path]:
    """`surveillance report daily|account|pattern`: the same reports over any stored period."""
    from surveillance_pipeline.reporting.analyst import account_profile, daily_summary, pattern_analysis

    alerts = read_alerts(db, first, last)
    if kind == "pattern":
        return pattern_analysis(out_dir, first, last, alerts)
    stored = stored_days(settings, first, last)
    if kind == "daily":
        return daily_summary(out_dir, first, last, alerts, stored.scores, hourly_activity(stored.trades))
    if kind == "account":
        if not account:
            raise ValueError("an account report needs --account")
        return account_profile(out_dir, account, first, last, alerts, stored.features, stored.scores,
                               account_activity(stored.trades, account))
    raise ValueError(f"unknown report {kind!r}: daily, account or pattern")
