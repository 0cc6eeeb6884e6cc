"""Alerts in the application database: one partition day replaced idempotently (alerts keep their rows, and
the analysts' feedback on them, across re-runs), read back by period for linking, reports and exports."""
from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date

import polars as pl
import sqlalchemy as sa

from surveillance_pipeline.contract import Alert
from surveillance_pipeline.engine.engine import ENGINE_SCHEMA, empty_alerts
from surveillance_pipeline.features.base import DATE
from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.models import alerts_table, feedback_table

_JSON_COLUMNS = (Alert.THRESHOLDS, "top_features")


def _records(alerts: pl.DataFrame) -> list[dict]:
    rows = []
    for row in alerts.to_dicts():
        record = {k: v for k, v in row.items() if k != DATE}
        record["alert_date"] = row[DATE]
        record[Alert.EVIDENCE] = {"ids": list(row[Alert.EVIDENCE] or [])}
        for column in _JSON_COLUMNS:
            record[column] = json.loads(row[column]) if row[column] else None
        rows.append(record)
    return rows


def save_alert_day(db: Database, day: date, alerts: pl.DataFrame, patterns: Collection[str] | None = None,
                   exclude: Collection[str] = ()) -> dict[str, int]:
    """Make the stored alerts of `day` exactly `alerts`, in one transaction: alerts of an earlier run that are
    raised again are updated in place (same alert_id, feedback kept), new ones inserted, vanished ones deleted
    (or, when an analyst gave feedback on them, kept with status 'superseded' so the feedback is not lost).
    A writer owns some patterns only (`patterns`, or all but `exclude`): other writers' alerts of the day stay."""
    table = alerts_table
    records = _records(alerts)
    ids = [r[Alert.ALERT_ID] for r in records]
    owned = sa.true()
    if patterns is not None:
        owned = table.c[Alert.PATTERN].in_(list(patterns))
    if exclude:
        owned = owned & table.c[Alert.PATTERN].not_in(list(exclude))
    with db.transaction() as conn:
        existing = set(conn.execute(sa.select(table.c[Alert.ALERT_ID]).where((table.c.alert_date == day)
                                                                              & owned)).scalars())
        stale = existing - set(ids)
        if stale:
            reviewed = set(conn.execute(sa.select(feedback_table.c.alert_id).where(
                feedback_table.c.alert_id.in_(sorted(stale)))).scalars())
            if reviewed:
                conn.execute(sa.update(table).where(table.c[Alert.ALERT_ID].in_(sorted(reviewed)))
                             .values(status="superseded"))
            if stale - reviewed:
                conn.execute(sa.delete(table).where(table.c[Alert.ALERT_ID].in_(sorted(stale - reviewed))))
        updates = [r for r in records if r[Alert.ALERT_ID] in existing]
        inserts = [r for r in records if r[Alert.ALERT_ID] not in existing]
        if updates:
            for record in updates:
                record["status"] = "active"  # raised again
            columns = [c for c in updates[0] if c != Alert.ALERT_ID]
            statement = (sa.update(table).where(table.c[Alert.ALERT_ID] == sa.bindparam("_key"))
                         .values({c: sa.bindparam(f"_v_{c}") for c in columns}))
            conn.execute(statement, [{"_key": r[Alert.ALERT_ID], **{f"_v_{c}": r[c] for c in columns}}
                                     for r in updates])
        if inserts:
            conn.execute(sa.insert(table), inserts)
    return {"inserted": len(inserts), "updated": len(updates), "deleted": len(stale)}


def read_alerts(db: Database, first_day: date, last_day: date) -> pl.DataFrame:
    """Stored alerts raised on the days first_day..last_day, in ENGINE_SCHEMA."""
    table = alerts_table
    query = (sa.select(*[table.c[c] for c in ENGINE_SCHEMA if c != DATE], table.c.alert_date)
             .where(table.c.alert_date.between(first_day, last_day) & (table.c.status == "active"))
             .order_by(table.c[Alert.WINDOW_START], table.c[Alert.ALERT_ID]))
    with db.transaction() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return empty_alerts()
    for row in rows:
        row[DATE] = row.pop("alert_date")
        row[Alert.EVIDENCE] = list((row[Alert.EVIDENCE] or {}).get("ids", []))
        for column in _JSON_COLUMNS:
            row[column] = json.dumps(row[column]) if row[column] is not None else None
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.with_columns(
        pl.col(Alert.WINDOW_START, Alert.WINDOW_END).dt.replace_time_zone(None).dt.replace_time_zone("UTC")
        if frame.schema[Alert.WINDOW_START].time_zone is None else
        pl.col(Alert.WINDOW_START, Alert.WINDOW_END).dt.convert_time_zone("UTC"),
    ).select(list(ENGINE_SCHEMA)).cast(ENGINE_SCHEMA)
