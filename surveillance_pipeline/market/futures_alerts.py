"""Futures alerts of a stored day: detected, shaped like the engine's alerts, linked, stored, exported."""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from surveillance_pipeline.contract import Alert
from surveillance_pipeline.detectors.alerts import write_alerts
from surveillance_pipeline.engine.engine import (
    ALERT_KEY, DATE, ENGINE_SCHEMA, FIRST_SEEN, LINKED, MODEL_SCORE, OCCURRENCE, SOURCES, TOP_FEATURES, alert_key,
    empty_alerts, link,
)
from surveillance_pipeline.engine.store import read_alerts, save_alert_day
from surveillance_pipeline.market.futures_detectors import FuturesSettings, futures_alerts
from surveillance_pipeline.market.futures_scenarios import PATTERNS
from surveillance_pipeline.market.stored import stored_market_tables
from surveillance_pipeline.storage.database import Database


def as_engine_alerts(alerts: pl.DataFrame, day: date) -> pl.DataFrame:
    if alerts.is_empty():
        return empty_alerts()
    return alerts.with_columns(
        pl.lit("futures rules").alias(SOURCES), pl.lit(None, pl.Float64).alias(MODEL_SCORE),
        pl.lit(json.dumps([])).alias(TOP_FEATURES), alert_key().alias(ALERT_KEY), pl.lit(None, pl.String).alias(LINKED),
        pl.lit(day).alias(FIRST_SEEN), pl.lit(1, pl.Int64).alias(OCCURRENCE), pl.lit(day).alias(DATE),
    ).select(list(ENGINE_SCHEMA)).cast(ENGINE_SCHEMA)


def futures_alerts_for_day(db: Database, day: date, link_days: int, out_dir: Path,
                           settings: FuturesSettings = FuturesSettings()) -> pl.DataFrame:
    """Detect on the day with the day before as baseline, and the next day where it is stored already (what
    follows an episode late in the day decides some patterns: a backfill, or a re-run the next day, has it);
    keep the episodes that start on the day."""
    tables = stored_market_tables(db, day - timedelta(days=1), day + timedelta(days=1))
    found = futures_alerts(tables, settings) if tables else pl.DataFrame()
    if found.height:
        found = found.filter(pl.col(Alert.WINDOW_START).dt.date() == day)
    alerts = as_engine_alerts(found, day)
    earlier = read_alerts(db, day - timedelta(days=link_days), day - timedelta(days=1)) if link_days else alerts
    linked = link(alerts, earlier, link_days)
    save_alert_day(db, day, linked, patterns=PATTERNS)
    write_alerts(linked, out_dir)
    return linked
