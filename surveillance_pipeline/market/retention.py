"""Retention: futures market data and snapshots older than their configured ages are deleted."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.models import (
    basis_table,
    funding_rates_table,
    liquidations_table,
    premium_table,
    snapshots_table,
)

TABLES = ((funding_rates_table, "funding_time", "history"), (premium_table, "created_at", "history"),
          (basis_table, "created_at", "history"), (liquidations_table, "created_at", "history"),
          (snapshots_table, "taken_at", "snapshots"))


def apply_retention(db: Database, history_days: int, snapshot_days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete rows older than `history_days` (funding, premium, basis, liquidations) and `snapshot_days`
    (order-book / ticker snapshots), in one transaction; returns the rows deleted per table."""
    now = now or datetime.now(UTC)
    ages = {"history": timedelta(days=history_days), "snapshots": timedelta(days=snapshot_days)}
    deleted = {}
    with db.transaction() as conn:
        for table, column, kind in TABLES:
            result = conn.execute(sa.delete(table).where(table.c[column] < now - ages[kind]))
            deleted[table.name] = result.rowcount or 0
    return deleted
