"""Rule detections straight from trade and order files (`surveillance detect`), without the database or Dagster.

The files go through the same readers, presets and validation as an import; the valid rows are split by
UTC day and each day runs as the `rule_detections` asset runs it (the earlier days as history).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from surveillance_pipeline.config import Settings
from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA, Reject, Trade
from surveillance_pipeline.detectors.alerts import ALERT_SCHEMA
from surveillance_pipeline.detectors.base import DetectionInputs
from surveillance_pipeline.detectors.rules import RuleBasedDetector
from surveillance_pipeline.ingest.importer import ImportOptions, iter_validated, make_context, prepare_source
from surveillance_pipeline.ingest.presets import ORDERS, TRADES
from surveillance_pipeline.ingest.readers import LINE


@dataclass
class FileDetection:
    alerts: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ALERT_SCHEMA))
    days: list[date] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # file -> valid rows read
    rejected: dict[str, int] = field(default_factory=dict)  # file -> rejected rows
    ran: tuple[str, ...] = ()


def read_valid_rows(paths: list[Path], options: ImportOptions, settings: Settings,
                    result: FileDetection) -> pl.DataFrame:
    """The valid rows of the files, typed to the contract (duplicates across the files dropped)."""
    schema = ORDER_SCHEMA if options.kind == ORDERS else TRADE_SCHEMA
    frames = []
    for path in paths:
        prepared = prepare_source(path, options)
        ctx = make_context(prepared.generate_trade_ids, settings.ingest.min_timestamp,
                           settings.ingest.max_future_seconds)
        accepted = rejected = 0
        for _, good, bad in iter_validated(prepared, ctx, settings.ingest.batch_rows):
            frames.append(good.drop(LINE))
            accepted += good.height
            rejected += bad.get_column(Reject.LINE).n_unique() if bad.height else 0
        result.rows[str(path)] = accepted
        result.rejected[str(path)] = rejected
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames).sort(Trade.TIMESTAMP, maintain_order=True)


def detect_files(trades: list[Path], orders: list[Path], settings: Settings, preset: str | None = None,
                 first_day: date | None = None, last_day: date | None = None) -> FileDetection:
    result = FileDetection()
    mapping = dict(settings.ingest.column_mapping)
    trade_rows = read_valid_rows(trades, ImportOptions(kind=TRADES, preset=preset, mapping=mapping), settings, result)
    order_rows = read_valid_rows(orders, ImportOptions(kind=ORDERS, mapping=mapping), settings, result)
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    days = trade_rows.select(stamp.unique().sort()).to_series().to_list()
    result.days = [d for d in days if (first_day is None or d >= first_day) and (last_day is None or d <= last_day)]
    detector = RuleBasedDetector(settings.detectors)
    alerts = [result.alerts]
    for day in result.days:
        first = day - timedelta(days=settings.detectors.history_days)
        run = detector.run(DetectionInputs(
            trades=trade_rows.filter(stamp == day), orders=order_rows.filter(stamp == day),
            history=trade_rows.filter((stamp >= first) & (stamp < day)), day=day))
        alerts.append(run.alerts)
        result.ran = run.ran
    result.alerts = pl.concat(alerts)
    return result
