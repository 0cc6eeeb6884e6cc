"""Alerts scored against labelled episodes: recall, precision and alerts per episode, per pattern.

An alert matches an episode when they share the pattern family (wash + circular, spoofing + layering, every
other pattern alone; `ml_anomaly` matches any family), the symbol and the window (widened by
`slack_minutes`), and, for an account-level episode, at least one account. Market-level episodes (a label
without accounts, or a pattern in `market_level_patterns`: pump labels name the organisers, but a pump
alert on an anonymous tape cannot) match on symbol and window alone. An episode's row counts the alerts of
its family; an any-family pattern (`ml_anomaly`) gets its own row over all episodes and stays out of the
macro precision.
"""
from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from surveillance_pipeline.contract import (
    LABEL_SCHEMA, TIMESTAMP_DTYPE, USER_IDS_SEPARATOR, Alert, Label, Pattern,
)
from surveillance_pipeline.ingest.parsing import clean_strings, parse_timestamp_column
from surveillance_pipeline.ingest.readers import (
    BOM, LINE, ROW_ERROR, FileFormat, InputFileError, SourceFile, detect_format, file_errors, read_batches,
)

PER_TRADES = 100_000  # false alerts are counted per this many trades
_BATCH_ROWS = 200_000
ALERT_REQUIRED = (Alert.ALERT_ID, Alert.PATTERN, Alert.SYMBOL, Alert.USER_IDS, Alert.WINDOW_START, Alert.WINDOW_END)
LABEL_REQUIRED = tuple(LABEL_SCHEMA)


class EvaluationSettings(BaseModel):
    """How alerts are matched to labelled episodes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    slack_minutes: float = Field(5.0, ge=0.0, description="windows this many minutes apart still overlap")
    families: tuple[tuple[Pattern, ...], ...] = Field(
        ((Pattern.WASH_TRADING, Pattern.CIRCULAR_TRADING), (Pattern.SPOOFING, Pattern.LAYERING)),
        description="patterns whose alerts and episodes match each other; any other pattern is its own family")
    market_level_patterns: tuple[Pattern, ...] = Field(
        (Pattern.PUMP_AND_DUMP,), description="episodes matched on symbol and window alone, accounts or not")
    any_family_patterns: tuple[Pattern, ...] = Field(
        (Pattern.ML_ANOMALY,), description="alert patterns matched against episodes of every family")

    @model_validator(mode="after")
    def _disjoint(self) -> EvaluationSettings:
        grouped = [p for family in self.families for p in family]
        if len(grouped) != len(set(grouped)):
            raise ValueError("a pattern appears in more than one family")
        if set(grouped) & set(self.any_family_patterns):
            raise ValueError("an any-family pattern cannot belong to a family")
        return self

    def family_of(self) -> dict[str, str]:
        """Pattern -> its family's name (the family's first pattern) for every grouped pattern."""
        return {p.value: family[0].value for family in self.families for p in family}


class EvaluationInputError(InputFileError):
    """An alerts or labels file that cannot be evaluated; names the file, the row and the field."""


# ---- reading -------------------------------------------------------------------------------------------

def read_alerts(path: Path | str) -> pl.DataFrame:
    """The columns evaluation reads from an alerts file (CSV or JSON array of the alert contract):
    ids, pattern, symbol as text, user_ids ';'-joined (a JSON list is joined), windows as UTC datetimes."""
    frame = _read_table(Path(path), ALERT_REQUIRED, "alerts")
    return _validated(frame, Path(path), ALERT_REQUIRED).select(ALERT_REQUIRED)


def read_labels(path: Path | str) -> pl.DataFrame:
    """Labelled episodes (LABEL_SCHEMA), as `scenarios.write_scenario` writes them."""
    frame = _read_table(Path(path), LABEL_REQUIRED, "labels")
    frame = _validated(frame, Path(path), LABEL_REQUIRED)
    repeated = frame.filter(~pl.col(Label.EPISODE_ID).is_first_distinct()).head(1)
    if repeated.height:
        row = repeated.row(0, named=True)
        raise EvaluationInputError(f"{path}:{row[LINE]}: {Label.EPISODE_ID}: {row[Label.EPISODE_ID]!r} "
                                   "appears more than once; expected one row per episode")
    return frame.select(LABEL_REQUIRED)


def count_trades(path: Path | str) -> int:
    """Rows of a trades file (CSV, JSON lines or Parquet, CSV possibly gzip-compressed)."""
    source = detect_format(Path(path))
    with file_errors(source):
        if source.format == FileFormat.PARQUET:
            return pl.scan_parquet(source.path).select(pl.len()).collect().item()
        if source.format == FileFormat.CSV and not source.compressed:
            return pl.scan_csv(source.path, infer_schema=False).select(pl.len()).collect().item()
        if source.format == FileFormat.CSV:
            return pl.read_csv(source.path, columns=[0], infer_schema=False).height
        if source.format == FileFormat.JSONL:
            return pl.read_ndjson(source.path).height
    raise InputFileError(f"{path}: trades are counted in CSV, JSON lines or Parquet files, not {source.format.value}")


def _read_table(path: Path, required: Sequence[str], what: str) -> pl.DataFrame:
    """The file as text columns plus LINE (line in a CSV, header counted; record number in JSON)."""
    source = detect_format(path)
    if source.format in (FileFormat.JSON, FileFormat.JSONL):
        frame = _json_table(source)
        frame = frame if frame.height else _empty_table(source, required)  # `[]`: no alerts
    else:
        batches = list(read_batches(source, _BATCH_ROWS))
        frame = pl.concat(batches, how="diagonal_relaxed") if batches else _empty_table(source, required)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise EvaluationInputError(f"{path}: missing column(s) {', '.join(missing)}; "
                                   f"{what} files need {', '.join(required)}")
    if ROW_ERROR in frame.columns:
        broken = frame.filter(pl.col(ROW_ERROR).is_not_null()).head(1)
        if broken.height:
            raise EvaluationInputError(f"{path}:{broken[LINE][0]}: {broken[ROW_ERROR][0]}")
    return frame


def _empty_table(source: SourceFile, required: Sequence[str]) -> pl.DataFrame:
    columns = list(required)
    if source.format == FileFormat.CSV:  # a header without rows: its columns are still checked
        with file_errors(source):
            columns = pl.read_csv(source.path, n_rows=0, infer_schema=False).columns
    return pl.DataFrame(schema={**{c.strip(): pl.String for c in columns}, LINE: pl.Int64})


def _json_table(source: SourceFile) -> pl.DataFrame:
    with file_errors(source), (gzip.open if source.compressed else open)(source.path, "rb") as handle:
        data = handle.read().removeprefix(BOM)
        if not data.strip():
            raise EvaluationInputError(f"{source.path}: empty file; expected a JSON array of objects")
        read = pl.read_json if source.format == FileFormat.JSON else pl.read_ndjson
        frame = read(io.BytesIO(data), infer_schema_length=None)
    text = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List):  # user_ids may come as a list; evidence does
            text.append(pl.col(name).cast(pl.List(pl.String)).list.join(USER_IDS_SEPARATOR).alias(name))
        elif isinstance(dtype, pl.Datetime):
            text.append(pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%z").alias(name))
        elif isinstance(dtype, pl.Struct):  # e.g. thresholds: not read here
            continue
        else:
            text.append(pl.col(name).cast(pl.String))
    return frame.select(text).with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(LINE))


def _validated(frame: pl.DataFrame, path: Path, columns: Sequence[str]) -> pl.DataFrame:
    """Text fields stripped and present, patterns in the vocabulary, windows parsed and in order.

    `columns`: the id, pattern, symbol, user_ids, start and end columns (ALERT_REQUIRED, LABEL_REQUIRED)."""
    id_column, pattern, symbol, users, start, end = columns
    text = (id_column, pattern, symbol)
    frame = frame.with_columns(*(clean_strings(pl.col(c)).alias(c) for c in text), pl.col(users).fill_null(""))
    for column in text:
        _fail_first(frame, pl.col(column).is_null(), path, column, lambda row: "missing value")
    known = [p.value for p in Pattern]
    _fail_first(frame, ~pl.col(pattern).is_in(known), path, pattern,
                lambda row: f"unknown pattern {row[pattern]!r}; expected one of {', '.join(known)}")
    for column in (start, end):
        parsed = parse_timestamp_column(frame[column].fill_null(""))
        frame = frame.with_columns(parsed.alias(f"__{column}"))
        _fail_first(frame, clean_strings(pl.col(column)).is_null(), path, column, lambda row: "missing value")
        _fail_first(frame, pl.col(f"__{column}").is_null(), path, column,
                    lambda row, c=column: f"expected an ISO-8601 UTC timestamp, got {row[c]!r}")
    frame = frame.with_columns(pl.col(f"__{start}").alias(start), pl.col(f"__{end}").alias(end))
    _fail_first(frame, pl.col(end) < pl.col(start), path, end,
                lambda row: f"{row[end]} is before {start} {row[start]}; expected {end} >= {start}")
    return frame


def _fail_first(frame: pl.DataFrame, bad: pl.Expr, path: Path, field: str, reason) -> None:
    hit = frame.filter(bad).head(1)
    if hit.height:
        row = hit.row(0, named=True)
        raise EvaluationInputError(f"{path}:{row[LINE]}: {field}: {reason(row)}")


# ---- matching ------------------------------------------------------------------------------------------

def _users(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Account ids as a list: ';'-joined text (the contract) or already a list (detector findings)."""
    users = pl.col(column) if isinstance(frame.schema[column], pl.List) else \
        pl.col(column).fill_null("").str.split(USER_IDS_SEPARATOR)
    return users.list.eval(pl.element().str.strip_chars()).list.eval(pl.element().filter(pl.element() != ""))


def _utc(frame: pl.DataFrame, column: str, what: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise TypeError(f"{what}.{column}: expected datetimes, got {dtype} (read files with read_{what})")
    value = pl.col(column).dt.convert_time_zone("UTC") if dtype.time_zone else pl.col(column).dt.replace_time_zone("UTC")
    return value.cast(TIMESTAMP_DTYPE)


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def _alert_table(alerts: pl.DataFrame, settings: EvaluationSettings) -> pl.DataFrame:
    _require(alerts, ALERT_REQUIRED[1:], "alerts")
    ids = pl.col(Alert.ALERT_ID).cast(pl.String) if Alert.ALERT_ID in alerts.columns else \
        pl.int_range(1, pl.len() + 1).cast(pl.String)
    return alerts.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("a_row"), ids.alias("a_id"),
        pl.col(Alert.PATTERN).cast(pl.String).alias("a_pattern"),
        pl.col(Alert.PATTERN).cast(pl.String).replace(settings.family_of()).alias("family"),
        pl.col(Alert.SYMBOL).cast(pl.String).alias("symbol"), _users(alerts, Alert.USER_IDS).alias("a_users"),
        _utc(alerts, Alert.WINDOW_START, "alerts").alias("a_start"), _utc(alerts, Alert.WINDOW_END, "alerts").alias("a_end"),
    ).with_columns(pl.col("a_pattern").is_in([p.value for p in settings.any_family_patterns]).alias("any_family"))


def _episode_table(labels: pl.DataFrame, settings: EvaluationSettings) -> pl.DataFrame:
    _require(labels, LABEL_REQUIRED, "labels")
    alert_only = labels.filter(pl.col(Label.PATTERN).is_in([p.value for p in settings.any_family_patterns]))
    if alert_only.height:
        raise ValueError(f"labels: episode {alert_only[Label.EPISODE_ID][0]!r} has pattern "
                         f"{alert_only[Label.PATTERN][0]!r}, an alert-only pattern")
    market_level = [p.value for p in settings.market_level_patterns]
    return labels.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("e_row"), pl.col(Label.EPISODE_ID).cast(pl.String).alias("e_id"),
        pl.col(Label.PATTERN).cast(pl.String).alias("e_pattern"),
        pl.col(Label.PATTERN).cast(pl.String).replace(settings.family_of()).alias("family"),
        pl.col(Label.SYMBOL).cast(pl.String).alias("symbol"), _users(labels, Label.USER_IDS).alias("e_users"),
        _utc(labels, Label.START, "labels").alias("e_start"), _utc(labels, Label.END, "labels").alias("e_end"),
    ).with_columns(((pl.col("e_users").list.len() > 0) & ~pl.col("e_pattern").is_in(market_level)).alias("needs_account"))


def _matches(alerts: pl.DataFrame, episodes: pl.DataFrame, slack: timedelta) -> pl.DataFrame:
    """Every (alert, episode) pair that matches: joined on symbol (and family), then filtered."""
    same_family = alerts.filter(~pl.col("any_family")).join(episodes, on=["symbol", "family"])
    any_family = alerts.filter(pl.col("any_family")).drop("family").join(episodes, on="symbol")
    pairs = pl.concat([same_family, any_family], how="diagonal")
    overlap = (pl.col("a_start") <= pl.col("e_end") + slack) & (pl.col("a_end") >= pl.col("e_start") - slack)
    shared = pl.col("a_users").list.set_intersection(pl.col("e_users")).list.len() > 0
    return pairs.filter(overlap & (~pl.col("needs_account") | shared)).select(
        "a_row", "a_pattern", "any_family", "e_row", "e_pattern")


# ---- report --------------------------------------------------------------------------------------------

def _ratio(numerator: int, denominator: int | None) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class PatternResult:
    """One pattern's figures. `episodes`/`found` are labelled episodes of the pattern (all episodes for an
    any-family pattern); `alerts`/`true_alerts` are alerts of the pattern; `matching_alerts` are the
    family's alerts (the pattern's own, for an any-family pattern) that match the pattern's episodes."""

    pattern: str
    episodes: int
    found: int
    alerts: int
    true_alerts: int
    matching_alerts: int
    any_family: bool
    false_alerts_per_100k_trades: float | None
    missed_episode_ids: tuple[str, ...]
    false_alert_ids: tuple[str, ...]

    @property
    def recall(self) -> float | None:
        return _ratio(self.found, self.episodes)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_alerts, self.alerts)

    @property
    def false_alerts(self) -> int:
        return self.alerts - self.true_alerts

    @property
    def alerts_per_found_episode(self) -> float | None:
        return _ratio(self.matching_alerts, self.found)

    def to_dict(self) -> dict:
        return {**asdict(self), "recall": self.recall, "precision": self.precision,
                "false_alerts": self.false_alerts, "alerts_per_found_episode": self.alerts_per_found_episode,
                "missed_episode_ids": list(self.missed_episode_ids), "false_alert_ids": list(self.false_alert_ids)}


@dataclass(frozen=True)
class EvaluationReport:
    """Per-pattern rows, macro figures (any-family patterns left out) and totals over all alerts."""

    rows: tuple[PatternResult, ...]
    episodes: int
    episodes_found: int  # by any alert, any-family ones included
    alerts: int
    true_alerts: int
    trade_count: int | None
    settings: EvaluationSettings

    def row(self, pattern: str) -> PatternResult:
        return next(r for r in self.rows if r.pattern == pattern)

    @property
    def macro_recall(self) -> float | None:
        recalls = [r.recall for r in self.rows if r.episodes and not r.any_family]
        return sum(recalls) / len(recalls) if recalls else None

    @property
    def macro_precision(self) -> float | None:
        precisions = [r.precision for r in self.rows if r.alerts and not r.any_family]
        return sum(precisions) / len(precisions) if precisions else None

    @property
    def false_alerts(self) -> int:
        return self.alerts - self.true_alerts

    @property
    def false_alerts_per_100k_trades(self) -> float | None:
        return None if not self.trade_count else self.false_alerts * PER_TRADES / self.trade_count

    def to_dict(self) -> dict:
        return {
            "patterns": [r.to_dict() for r in self.rows],
            "macro": {"recall": self.macro_recall, "precision": self.macro_precision},
            "totals": {"episodes": self.episodes, "episodes_found": self.episodes_found, "alerts": self.alerts,
                       "true_alerts": self.true_alerts, "false_alerts": self.false_alerts,
                       "trade_count": self.trade_count,
                       "false_alerts_per_100k_trades": self.false_alerts_per_100k_trades},
            "settings": self.settings.model_dump(mode="json"),
        }

    def format_table(self) -> str:
        """The printed table: one line per pattern, then the macro and total lines."""
        def number(value: float | None, digits: int = 2) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        per_trades = self.trade_count is not None
        header = ["pattern", "episodes", "found", "recall", "alerts", "true", "precision", "alerts/episode"]
        header += ["false/100k trades"] * per_trades
        lines = [header]
        for r in self.rows:
            name = f"{r.pattern} (any family)" if r.any_family else r.pattern
            lines.append([name, str(r.episodes), str(r.found), number(r.recall), str(r.alerts), str(r.true_alerts),
                          number(r.precision), number(r.alerts_per_found_episode)]
                         + [number(r.false_alerts_per_100k_trades)] * per_trades)
        lines.append(["macro", "", "", number(self.macro_recall), "", "", number(self.macro_precision), ""]
                     + [""] * per_trades)
        lines.append(["all alerts", str(self.episodes), str(self.episodes_found), number(_ratio(self.episodes_found, self.episodes)),
                      str(self.alerts), str(self.true_alerts), number(_ratio(self.true_alerts, self.alerts)), ""]
                     + [number(self.false_alerts_per_100k_trades)] * per_trades)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                                   enumerate(zip(line, widths))).rstrip() for line in lines)


def evaluate(alerts: pl.DataFrame, labels: pl.DataFrame, settings: EvaluationSettings | None = None,
             trade_count: int | None = None) -> EvaluationReport:
    """Score alerts (alert contract; user_ids ';'-joined or a list) against labels (LABEL_SCHEMA).

    With no labels (a clean scenario) every alert is false; `trade_count` gives false alerts per 100k trades.
    """
    settings = settings or EvaluationSettings()
    alert_table, episodes = _alert_table(alerts, settings), _episode_table(labels, settings)
    pairs = _matches(alert_table, episodes, timedelta(minutes=settings.slack_minutes))
    true_rows = pairs.get_column("a_row").unique()
    alert_table = alert_table.with_columns(pl.col("a_row").is_in(true_rows.implode()).alias("true"))
    by_alert = {k[0]: g for k, g in alert_table.group_by("a_pattern")}
    family_pairs, any_pairs = pairs.filter(~pl.col("any_family")), pairs.filter(pl.col("any_family"))
    patterns = set(by_alert) | set(episodes.get_column("e_pattern").to_list())
    rows = []
    for pattern in sorted(patterns, key=[p.value for p in Pattern].index):
        mine = by_alert.get(pattern, alert_table.clear())
        any_family = pattern in settings.any_family_patterns
        if any_family:
            scope, matched = episodes, any_pairs.filter(pl.col("a_pattern") == pattern)
        else:
            scope = episodes.filter(pl.col("e_pattern") == pattern)
            matched = family_pairs.filter(pl.col("e_pattern") == pattern)
        found = matched.get_column("e_row").unique()
        false_alerts = mine.filter(~pl.col("true")).get_column("a_id")
        rows.append(PatternResult(
            pattern=pattern, episodes=scope.height, found=found.len(), alerts=mine.height,
            true_alerts=int(mine.get_column("true").sum()), matching_alerts=matched.get_column("a_row").n_unique(),
            any_family=any_family,
            false_alerts_per_100k_trades=None if not trade_count else false_alerts.len() * PER_TRADES / trade_count,
            missed_episode_ids=tuple(scope.filter(~pl.col("e_row").is_in(found.implode())).get_column("e_id")),
            false_alert_ids=tuple(false_alerts)))
    return EvaluationReport(rows=tuple(rows), episodes=episodes.height,
                            episodes_found=pairs.get_column("e_row").n_unique(), alerts=alert_table.height,
                            true_alerts=true_rows.len(), trade_count=trade_count, settings=settings)
