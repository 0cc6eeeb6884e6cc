"""One day through the engine: combine, link to the days before, store, export. Shared by the `alerts` asset
and `surveillance analyze`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from surveillance_pipeline.contract import Alert
from surveillance_pipeline.detectors.alerts import write_alerts
from surveillance_pipeline.engine.engine import ML_ANOMALY, OCCURRENCE, SOURCES, DetectionEngine, link
from surveillance_pipeline.engine.settings import EngineSettings
from surveillance_pipeline.engine.store import read_alerts, save_alert_day
from surveillance_pipeline.storage.database import Database


@dataclass
class DayAlerts:
    day: date
    alerts: pl.DataFrame
    stored: dict[str, int]
    files: tuple[Path, Path]

    def counts(self) -> dict:
        frame = self.alerts
        by = (lambda column: dict(frame.group_by(column).len().sort(column).iter_rows())) if frame.height else \
            (lambda column: {})
        return {"alerts": frame.height, "by_pattern": by(Alert.PATTERN), "by_risk_level": by(Alert.RISK_LEVEL),
                "model_only": frame.filter(pl.col(Alert.PATTERN) == ML_ANOMALY).height,
                "with_model_evidence": frame.filter(pl.col(SOURCES).str.contains("models")).height,
                "re_raised": frame.filter(pl.col(OCCURRENCE) > 1).height}


def model_version_of(scores: pl.DataFrame) -> str | None:
    """`champion surveillance-ensemble v3`, `self-fitted`, or None when the day has no model scores."""
    if scores is None or scores.is_empty() or "model_source" not in scores.columns:
        return None
    source = scores.get_column("model_source")[0]
    versions = json.loads(scores.get_column("model_versions")[0] or "{}") if "model_versions" in scores.columns else {}
    named = ", ".join(f"{name} v{version}" for name, version in sorted(versions.items()))
    return f"{source} {named}".strip()


def alerts_for_day(day: date, rule_alerts: pl.DataFrame, scores: pl.DataFrame, features: pl.DataFrame,
                   trades: pl.DataFrame, settings: EngineSettings, db: Database, out_dir: Path) -> DayAlerts:
    """Combine the day's evidence, link it to the alerts of the `link_days` before, store the day (replacing an
    earlier run of it) and write `out_dir/alerts.csv` and `alerts.json`."""
    combined = DetectionEngine(settings).combine(day, rule_alerts, scores, features, trades,
                                                 model_version_of(scores))
    earlier = read_alerts(db, day - timedelta(days=settings.link_days), day - timedelta(days=1)) \
        if settings.link_days else combined.clear()
    linked = link(combined, earlier, settings.link_days)
    from surveillance_pipeline.market.futures_scenarios import PATTERNS as FUTURES_PATTERNS

    stored = save_alert_day(db, day, linked, exclude=FUTURES_PATTERNS)  # futures alerts have their own writer
    files = write_alerts(linked, out_dir)
    return DayAlerts(day, linked, stored, files)
