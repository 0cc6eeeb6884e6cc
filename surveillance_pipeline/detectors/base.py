"""What every rule detector shares: its inputs, the finding it returns, and its thresholds' base class.

A detector is a function ``(DetectionInputs, <its settings>) -> pl.DataFrame`` in FINDING_SCHEMA: one row per
abuse episode it sees, never one per trade. It tests the definition of the abuse on the data that shows
it (order events for spoofing, layering and quote stuffing; trades with account ids for wash and circular
trading; the tape alone for pump-and-dump) and stands aside (an empty frame) when that data is absent.
Every number that made it fire goes into the explanation sentence and into `metrics`; every threshold
comes from its settings, never from a literal in the code.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from pydantic import BaseModel, ConfigDict

from surveillance_pipeline.contract import ORDER_SCHEMA, TIMESTAMP_DTYPE, TRADE_SCHEMA, Trade


class Finding:
    """Columns of a detector's finding."""

    PATTERN = "pattern"  # contract.Pattern value
    SYMBOL = "symbol"
    USER_IDS = "user_ids"  # list of account ids, sorted; empty for market-level findings
    WINDOW_START = "window_start"  # first evidence instant (UTC)
    WINDOW_END = "window_end"  # last evidence instant (UTC)
    SCORE = "score"  # 0..1: how surely the pattern is there (see each detector's module docstring)
    EXPLANATION = "explanation"  # one sentence an analyst can read, with the numbers that fired
    EVIDENCE = "evidence"  # trade ids and/or order ids, as "trade:<id>" / "order:<id>"
    METRICS = "metrics"  # JSON object: the measured values behind the finding (name -> number)


FINDING_SCHEMA: dict[str, pl.DataType] = {
    Finding.PATTERN: pl.String(),
    Finding.SYMBOL: pl.String(),
    Finding.USER_IDS: pl.List(pl.String()),
    Finding.WINDOW_START: TIMESTAMP_DTYPE,
    Finding.WINDOW_END: TIMESTAMP_DTYPE,
    Finding.SCORE: pl.Float64(),
    Finding.EXPLANATION: pl.String(),
    Finding.EVIDENCE: pl.List(pl.String()),
    Finding.METRICS: pl.String(),
}


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_SCHEMA)


def findings_frame(rows: list[Mapping[str, object]]) -> pl.DataFrame:
    """Findings from a few dict rows (one per episode: there are few); `metrics` may be a dict."""
    if not rows:
        return empty_findings()
    normalised = [
        {**row, Finding.METRICS: row[Finding.METRICS] if isinstance(row[Finding.METRICS], str)
         else json.dumps(row[Finding.METRICS], sort_keys=True, default=float)}
        for row in rows
    ]
    return pl.DataFrame(normalised, schema=FINDING_SCHEMA)


def trade_evidence(column: str = Trade.TRADE_ID) -> pl.Expr:
    return pl.format("trade:{}", pl.col(column))


def order_evidence(column: str) -> pl.Expr:
    return pl.format("order:{}", pl.col(column))


class DetectorSettings(BaseModel):
    """Base of a detector's thresholds: `enabled` plus the detector's own fields (each with a description)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


@dataclass
class DetectionInputs:
    """The typed trades and order events a detector reads (contract schemas), usually one UTC day.

    `history` holds trades of the days before (for baselines such as a pump's rolling volume); it may be
    empty. Frames are in memory: detectors filter early and work with group_bys, joins and windows.
    """

    trades: pl.DataFrame
    orders: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ORDER_SCHEMA))
    history: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TRADE_SCHEMA))
    day: date | None = None

    @property
    def has_accounts(self) -> bool:
        """Whether the trades name their buyer and seller (anonymous public tapes do not)."""
        return bool(self.trades.get_column(Trade.BUYER_ID).is_not_null().any()
                    or self.trades.get_column(Trade.SELLER_ID).is_not_null().any())

    @property
    def has_orders(self) -> bool:
        return self.orders.height > 0

    @property
    def start(self) -> datetime | None:
        return None if self.day is None else datetime.combine(self.day, time(), tzinfo=timezone.utc)

    @property
    def end(self) -> datetime | None:
        return None if self.start is None else self.start + timedelta(days=1)
