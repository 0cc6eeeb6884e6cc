"""From findings to alerts: merging one episode's findings, stable alert ids, risk levels, CSV / JSON files.

The alert shape is the contract's (DESIGN.md "Alerts"): one row per de-duplicated alert with pattern,
risk level, score, symbol, accounts, window, explanation, evidence, model version and thresholds used.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from surveillance_pipeline.contract import (
    ALERT_COLUMNS,
    TIMESTAMP_DTYPE,
    USER_IDS_SEPARATOR,
    Alert,
    RiskLevel,
)
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, Finding, empty_findings

MERGED = "merged_findings"  # how many findings one alert stands for

ALERT_SCHEMA: dict[str, pl.DataType] = {
    Alert.ALERT_ID: pl.String(),
    Alert.PATTERN: pl.String(),
    Alert.RISK_LEVEL: pl.String(),
    Alert.SCORE: pl.Float64(),
    Alert.SYMBOL: pl.String(),
    Alert.USER_IDS: pl.String(),
    Alert.WINDOW_START: TIMESTAMP_DTYPE,
    Alert.WINDOW_END: TIMESTAMP_DTYPE,
    Alert.EXPLANATION: pl.String(),
    Alert.EVIDENCE: pl.List(pl.String()),
    Alert.MODEL_VERSION: pl.String(),
    Alert.THRESHOLDS: pl.String(),
}
assert tuple(ALERT_SCHEMA) == ALERT_COLUMNS


def merge_findings(findings: pl.DataFrame, gap_seconds: float) -> pl.DataFrame:
    """One finding per episode: findings of one pattern, symbol and account set whose windows overlap, or
    lie within `gap_seconds` of each other, become one. The merged finding spans them all, keeps the highest
    score with that finding's explanation and metrics, and the union of the evidence; MERGED counts them.
    """
    if findings.is_empty():
        return empty_findings().with_columns(pl.lit(0, pl.UInt32).alias(MERGED))
    key = [Finding.PATTERN, Finding.SYMBOL, "__users"]
    gap = pl.duration(microseconds=int(gap_seconds * 1_000_000))
    reach = pl.col(Finding.WINDOW_END).cum_max().shift(1).over(key, order_by=Finding.WINDOW_START)
    ordered = (
        findings.with_columns(pl.col(Finding.USER_IDS).list.sort().list.join(USER_IDS_SEPARATOR).alias("__users"))
        .sort(*key, Finding.WINDOW_START)
        .with_columns((pl.col(Finding.WINDOW_START) > reach + gap).fill_null(True).alias("__new"))
        .with_columns(pl.col("__new").cum_sum().alias("__episode"))
    )
    best = pl.col(Finding.SCORE).arg_max()
    return (
        ordered.group_by("__episode", maintain_order=True).agg(
            pl.col(Finding.PATTERN).first(),
            pl.col(Finding.SYMBOL).first(),
            pl.col(Finding.USER_IDS).first().list.sort(),
            pl.col(Finding.WINDOW_START).min(),
            pl.col(Finding.WINDOW_END).max(),
            pl.col(Finding.SCORE).max(),
            pl.col(Finding.EXPLANATION).get(best),
            pl.col(Finding.EVIDENCE).list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True),
            pl.col(Finding.METRICS).get(best),
            pl.len().alias(MERGED),
        )
        .select(*FINDING_SCHEMA, MERGED)
    )


def risk_level(score: pl.Expr, high: float, medium: float) -> pl.Expr:
    return (pl.when(score >= high).then(pl.lit(RiskLevel.HIGH.value))
            .when(score >= medium).then(pl.lit(RiskLevel.MEDIUM.value))
            .otherwise(pl.lit(RiskLevel.LOW.value)))


def alert_id() -> pl.Expr:
    """Stable across re-runs of the same data: a digest of pattern, symbol, accounts and window start."""
    digest = pl.concat_str(
        pl.col(Alert.PATTERN), pl.col(Alert.SYMBOL).fill_null(""), pl.col(Alert.USER_IDS).fill_null(""),
        pl.col(Alert.WINDOW_START).dt.epoch("us").cast(pl.String), separator="|",
    ).hash(seed=20260302)
    return pl.format("{}-{}", pl.col(Alert.PATTERN), digest.cast(pl.String).str.zfill(20))


def findings_to_alerts(findings: pl.DataFrame, thresholds: Mapping[str, Mapping], *, high: float, medium: float,
                       max_evidence: int, model_version: str | None = None) -> pl.DataFrame:
    """Merged findings in ALERT_SCHEMA: `thresholds` maps a pattern to the settings that produced it."""
    if findings.is_empty():
        return pl.DataFrame(schema=ALERT_SCHEMA)
    used = pl.DataFrame({Alert.PATTERN: list(thresholds),
                         Alert.THRESHOLDS: [json.dumps(dict(v), sort_keys=True, default=str)
                                            for v in thresholds.values()]},
                        schema={Alert.PATTERN: pl.String(), Alert.THRESHOLDS: pl.String()})
    alerts = (
        findings.join(used, on=Finding.PATTERN, how="left")
        .with_columns(
            pl.col(Finding.USER_IDS).list.join(USER_IDS_SEPARATOR).alias(Alert.USER_IDS),
            pl.col(Finding.SCORE).clip(0.0, 1.0).alias(Alert.SCORE),
            pl.col(Finding.EVIDENCE).list.head(max_evidence).alias(Alert.EVIDENCE),
            pl.lit(model_version, pl.String).alias(Alert.MODEL_VERSION),
        )
        .with_columns(risk_level(pl.col(Alert.SCORE), high, medium).alias(Alert.RISK_LEVEL))
        .with_columns(alert_id().alias(Alert.ALERT_ID))
    )
    return alerts.select(list(ALERT_SCHEMA)).cast(ALERT_SCHEMA).sort(Alert.WINDOW_START, Alert.PATTERN,
                                                                     Alert.SYMBOL, Alert.USER_IDS)


def merged_alerts(findings: pl.DataFrame, thresholds: Mapping[str, Mapping], gap_seconds: float, *, high: float,
                  medium: float, max_evidence: int, model_version: str | None = None) -> pl.DataFrame:
    """Findings merged per episode (`merge_findings`) and shaped as alerts (`findings_to_alerts`)."""
    merged = merge_findings(findings, gap_seconds).drop(MERGED)
    return findings_to_alerts(merged, thresholds, high=high, medium=medium, max_evidence=max_evidence,
                              model_version=model_version)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _iso(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")


def write_alerts(alerts: pl.DataFrame, folder: Path) -> tuple[Path, Path]:
    """`alerts.csv` (evidence ';'-joined) and `alerts.json` (an array of objects, evidence a list), each
    written to a temporary file and renamed: a reader never sees half a file."""
    timestamps = [_iso(Alert.WINDOW_START), _iso(Alert.WINDOW_END)]
    csv_path, json_path = folder / "alerts.csv", folder / "alerts.json"
    flat = alerts.with_columns(*timestamps, pl.col(Alert.EVIDENCE).list.join(USER_IDS_SEPARATOR))
    _atomic_write(csv_path, lambda p: flat.write_csv(p))
    rows = alerts.with_columns(*timestamps).to_dicts()
    for row in rows:  # JSON held as text in the frame is nested in the file
        for column in (Alert.THRESHOLDS, "top_features"):
            if column in row:
                row[column] = json.loads(row[column]) if row[column] else None
    _atomic_write(json_path, lambda p: p.write_text(json.dumps(rows, indent=2, default=str) + "\n"))
    return csv_path, json_path
