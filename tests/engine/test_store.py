"""Alerts in the database (SQLite and PostgreSQL): a day replaced idempotently, feedback kept, read back."""
from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import sqlalchemy as sa

from surveillance_pipeline.detectors.alerts import write_alerts
from surveillance_pipeline.engine.engine import DetectionEngine
from surveillance_pipeline.engine.store import read_alerts, save_alert_day
from surveillance_pipeline.storage.models import alerts_table, feedback_table
from tests.engine.test_engine import DAY, rule_alerts, scores, trades


def _day_alerts():
    return DetectionEngine().combine(DAY, rule_alerts(("spoofing", 0.6, "BTCUSDT", "a", 0),
                                                      ("wash_trading", 0.9, "ETHUSDT", "b;c", 10)),
                                     scores(n=300, flagged={"m": 0.95}), None, trades("m"), "champion v1")


def test_save_read_round_trip_and_idempotent_rerun(db):
    alerts = _day_alerts()
    assert alerts.height == 3
    assert save_alert_day(db, DAY, alerts) == {"inserted": 3, "updated": 0, "deleted": 0}
    back = read_alerts(db, DAY, DAY)
    assert back.sort("alert_id").equals(alerts.sort("alert_id"))
    # An analyst's verdict on one alert survives a re-run of the day.
    spoof = alerts.filter(pl.col("pattern") == "spoofing")["alert_id"][0]
    with db.transaction() as conn:
        conn.execute(sa.insert(feedback_table).values(alert_id=spoof, verdict="true_positive", analyst="kim"))
    assert save_alert_day(db, DAY, alerts) == {"inserted": 0, "updated": 3, "deleted": 0}
    assert save_alert_day(db, DAY, alerts.filter(pl.col("pattern") != "wash_trading")) == \
        {"inserted": 0, "updated": 2, "deleted": 1}
    assert read_alerts(db, DAY, DAY).height == 2
    # the reviewed alert no longer raised: kept as superseded with its feedback, not deleted
    assert save_alert_day(db, DAY, alerts.filter(pl.col("pattern") == "ml_anomaly"))["updated"] == 1
    assert read_alerts(db, DAY, DAY)["pattern"].to_list() == ["ml_anomaly"]
    with db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(feedback_table)).scalar_one() == 1
        assert conn.execute(sa.select(alerts_table.c.status).where(alerts_table.c.alert_id == spoof)).scalar_one() \
            == "superseded"
    # raised again later: active again, same row
    save_alert_day(db, DAY, alerts)
    assert sorted(read_alerts(db, DAY, DAY)["alert_id"]) == sorted(alerts["alert_id"])
    assert read_alerts(db, DAY + timedelta(days=1), DAY + timedelta(days=2)).is_empty()


def test_exports_nest_json_columns(tmp_path):
    alerts = _day_alerts()
    csv_path, json_path = write_alerts(alerts, tmp_path)
    rows = json.loads(json_path.read_text())
    model_only = next(r for r in rows if r["pattern"] == "ml_anomaly")
    assert isinstance(model_only["top_features"], list) and isinstance(model_only["thresholds"], dict)
    assert model_only["evidence"] == ["x0", "x1", "x2", "x3", "x4"]
    flat = pl.read_csv(csv_path)
    assert flat.height == 3 and "sources" in flat.columns and flat["window_start"][0].endswith("Z")
