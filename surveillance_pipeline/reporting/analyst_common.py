"""What the three analyst reports share: input checks, period filters, counts, CSV/JSON writing, cell text.

The reports (`daily`, `account`, `pattern`; exported together by `analyst`) take polars frames:
alerts (the alert contract plus the engine's bookkeeping columns), model scores, hourly activity. Each
frame is checked and normalised here once: missing required columns are named in a ValueError, optional
columns get their defaults, windows become UTC datetimes, and alerts are sorted by priority (risk level,
then score, then window start).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from surveillance_pipeline.contract import TIMESTAMP_DTYPE, USER_IDS_SEPARATOR, Pattern
from surveillance_pipeline.reporting.charts import RISK_ORDER, pattern_label

# ---- alerts ---------------------------------------------------------------------------------------------

ALERT_SCHEMA: dict[str, pl.DataType] = {
    "alert_id": pl.String(), "date": pl.Date(), "pattern": pl.String(), "risk_level": pl.String(),
    "score": pl.Float64(), "symbol": pl.String(), "user_ids": pl.String(), "window_start": TIMESTAMP_DTYPE,
    "window_end": TIMESTAMP_DTYPE, "explanation": pl.String(), "evidence": pl.List(pl.String()),
    "sources": pl.String(), "model_score": pl.Float64(), "model_version": pl.String(), "thresholds": pl.String(),
    "top_features": pl.String(), "linked_alert_id": pl.String(), "first_seen": pl.Date(), "occurrence": pl.Int64(),
}
# the rest have defaults: date and first_seen from window_start, occurrence 1, evidence [], text columns null
ALERT_REQUIRED = ("alert_id", "pattern", "risk_level", "score", "symbol", "user_ids", "window_start", "window_end",
                  "explanation")
ALERT_CSV_COLUMNS = tuple(ALERT_SCHEMA)
_JSON_TEXT_COLUMNS = ("thresholds", "top_features")  # JSON held as text: parsed again for the JSON files
PATTERN_ORDER = tuple(p.value for p in Pattern)
RISK_RANK = {risk: rank for rank, risk in enumerate(RISK_ORDER)}
# light tints of charts.RISK_COLORS for table cells
RISK_FILLS = {"HIGH": "#f6d0d0", "MEDIUM": "#fde0c0", "LOW": "#dbe3ec"}
ACCOUNTS = "_accounts"  # helper column: the alert's account ids as a list (never written out)

SCORE_REQUIRED = ("account_id", "date", "score")
ACTIVITY_REQUIRED = ("symbol", "hour", "trades")


def utc_now() -> datetime:
    """One timestamp per report, shared by its JSON and its PDF."""
    return datetime.now(UTC)


def check_period(first_day: date, last_day: date) -> None:
    for name, day in (("first_day", first_day), ("last_day", last_day)):
        if not isinstance(day, date) or isinstance(day, datetime):
            raise TypeError(f"{name}: expected a datetime.date, got {type(day).__name__}")
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")


def period_text(first_day: date, last_day: date) -> str:
    """"2026-03-02" for one day, "2026-03-02 – 2026-03-04" for several."""
    return first_day.isoformat() if first_day == last_day else f"{first_day.isoformat()} – {last_day.isoformat()}"


def period_bounds(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """The period as [start, end) in UTC: midnight of the first day to midnight after the last."""
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    return start, datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(days=1)


def period_days(first_day: date, last_day: date) -> list[date]:
    return [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> pl.DataFrame | None:
    """None when every column is there; an empty frame with the columns when the frame is empty anyway."""
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return None
    if frame.height == 0:
        return frame.with_columns(pl.lit(None).alias(c) for c in missing)
    raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")


def _utc(frame: pl.DataFrame, column: str, what: str) -> pl.Expr:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Null):
        return pl.col(column).cast(TIMESTAMP_DTYPE)
    if not isinstance(dtype, pl.Datetime):
        raise TypeError(f"{what}.{column}: expected UTC datetimes, got {dtype}")
    value = pl.col(column).dt.convert_time_zone("UTC") if dtype.time_zone else \
        pl.col(column).dt.replace_time_zone("UTC")
    return value.cast(TIMESTAMP_DTYPE)


def _day(frame: pl.DataFrame, column: str, what: str) -> pl.Expr:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime):
        return _utc(frame, column, what).dt.date()
    if isinstance(dtype, pl.Date | pl.Null):
        return pl.col(column).cast(pl.Date)
    if isinstance(dtype, pl.String):
        return pl.col(column).str.to_date(strict=True)
    raise TypeError(f"{what}.{column}: expected dates, got {dtype}")


def prepare_alerts(alerts: pl.DataFrame | None, first_day: date, last_day: date) -> pl.DataFrame:
    """The alerts of the period (by their `date` partition, else the window start's day), normalised to
    ALERT_SCHEMA plus any extra columns and the helper column `_accounts`, in priority order."""
    if alerts is None:
        alerts = pl.DataFrame(schema=ALERT_SCHEMA)
    frame = _require(alerts, ALERT_REQUIRED, "alerts")
    frame = alerts if frame is None else frame
    frame = frame.with_columns(_utc(frame, c, "alerts").alias(c) for c in ("window_start", "window_end"))
    defaults: dict[str, pl.Expr] = {
        "date": pl.col("window_start").dt.date(), "evidence": pl.lit([], dtype=pl.List(pl.String())),
        "occurrence": pl.lit(1, dtype=pl.Int64()),
    }
    frame = frame.with_columns(
        defaults.get(c, pl.lit(None, dtype=dtype)).alias(c)
        for c, dtype in ALERT_SCHEMA.items() if c not in frame.columns)
    if "first_seen" not in alerts.columns:
        frame = frame.with_columns(pl.col("date").alias("first_seen"))
    users = pl.col("user_ids")
    if isinstance(frame.schema["user_ids"], pl.List):
        users = users.list.eval(pl.element().cast(pl.String)).list.join(USER_IDS_SEPARATOR)
    evidence = pl.col("evidence")
    if not isinstance(frame.schema["evidence"], pl.List):
        evidence = evidence.cast(pl.String).fill_null("").str.split(USER_IDS_SEPARATOR) \
            .list.eval(pl.element().filter(pl.element() != ""))
    frame = frame.with_columns(
        _day(frame, "date", "alerts").alias("date"), _day(frame, "first_seen", "alerts").alias("first_seen"),
        pl.col("risk_level").cast(pl.String).str.strip_chars().str.to_uppercase().fill_null("LOW"),
        users.cast(pl.String).fill_null("").alias("user_ids"),
        evidence.cast(pl.List(pl.String())).fill_null([]).alias("evidence"),
        pl.col("occurrence").cast(pl.Int64).fill_null(1),
        pl.col("score").cast(pl.Float64), pl.col("model_score").cast(pl.Float64),
        *(pl.col(c).cast(pl.String) for c in ("alert_id", "pattern", "symbol", "explanation", "sources",
                                              "model_version", "thresholds", "top_features", "linked_alert_id")),
    )
    frame = frame.filter(pl.col("date").is_between(first_day, last_day))
    frame = frame.with_columns(
        pl.col("user_ids").str.split(USER_IDS_SEPARATOR)
        .list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != "")).alias(ACCOUNTS),
    )
    extra = [c for c in frame.columns if c not in ALERT_SCHEMA and c != ACCOUNTS]
    return frame.select(*ALERT_SCHEMA, *extra, ACCOUNTS).sort(
        pl.col("risk_level").replace_strict(RISK_RANK, default=len(RISK_RANK), return_dtype=pl.Int64),
        pl.col("score"), pl.col("window_start"), pl.col("alert_id"),
        descending=[False, True, False, False], nulls_last=True)


def alerts_of_account(frame: pl.DataFrame, account_id: str) -> pl.DataFrame:
    return frame.filter(pl.col(ACCOUNTS).list.contains(account_id))


# ---- scores and activity --------------------------------------------------------------------------------

def prepare_scores(scores: pl.DataFrame | None, *, first_day: date | None, last_day: date) -> pl.DataFrame:
    """Score rows from `first_day` (None: from the start) to `last_day`: account_id, date, score, anomalous
    (null when not given), models, model_source; sorted by date then account."""
    schema = {"account_id": pl.String(), "date": pl.Date(), "score": pl.Float64(), "anomalous": pl.Boolean(),
              "models": pl.String(), "model_source": pl.String()}
    if scores is None:
        scores = pl.DataFrame(schema=schema)
    frame = _require(scores, SCORE_REQUIRED, "scores")
    frame = scores if frame is None else frame
    frame = frame.with_columns(pl.lit(None, dtype=d).alias(c) for c, d in schema.items() if c not in frame.columns)
    frame = frame.select(
        pl.col("account_id").cast(pl.String), _day(frame, "date", "scores").alias("date"),
        pl.col("score").cast(pl.Float64), pl.col("anomalous").cast(pl.Boolean),
        pl.col("models").cast(pl.String), pl.col("model_source").cast(pl.String),
    ).filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
    upper = pl.col("date") <= last_day
    return frame.filter(upper if first_day is None else upper & (pl.col("date") >= first_day)).sort(
        "date", "account_id")


def prepare_activity(activity: pl.DataFrame | None, first_day: date, last_day: date) -> pl.DataFrame:
    """Hourly rows inside the period: symbol, hour (UTC), trades, volume, accounts (null when not given)."""
    schema = {"symbol": pl.String(), "hour": TIMESTAMP_DTYPE, "trades": pl.Int64(), "volume": pl.Float64(),
              "accounts": pl.Int64()}
    if activity is None:
        activity = pl.DataFrame(schema=schema)
    frame = _require(activity, ACTIVITY_REQUIRED, "activity")
    frame = activity if frame is None else frame
    frame = frame.with_columns(pl.lit(None, dtype=d).alias(c) for c, d in schema.items() if c not in frame.columns)
    start, end = period_bounds(first_day, last_day)
    return frame.select(
        pl.col("symbol").cast(pl.String), _utc(frame, "hour", "activity").alias("hour"),
        pl.col("trades").cast(pl.Int64), pl.col("volume").cast(pl.Float64), pl.col("accounts").cast(pl.Int64),
    ).filter((pl.col("hour") >= start) & (pl.col("hour") < end)).sort("hour", "symbol")


def activity_series(activity: pl.DataFrame, *, by_symbol: bool) -> dict[str, tuple[list, list]]:
    """Trades per hour as chart series: one for all symbols together, or one per symbol (busiest first)."""
    if activity.height == 0:
        return {}
    if not by_symbol:
        total = activity.group_by("hour").agg(pl.col("trades").sum()).sort("hour")
        return {"All symbols": (total["hour"].to_list(), total["trades"].to_list())}
    order = activity.group_by("symbol").agg(pl.col("trades").sum()).sort("trades", "symbol",
                                                                          descending=[True, False])
    series = {}
    for symbol in order["symbol"].to_list():
        rows = activity.filter(pl.col("symbol") == symbol).group_by("hour").agg(pl.col("trades").sum()).sort("hour")
        series[str(symbol)] = (rows["hour"].to_list(), rows["trades"].to_list())
    return series


def activity_summary(activity: pl.DataFrame) -> dict[str, Any]:
    """Totals for the JSON: trades, quote volume, symbols, and the busiest hour over all symbols."""
    if activity.height == 0:
        return {"trades": 0, "volume": 0.0, "symbols": [], "busiest_hour": None, "by_symbol": {}}
    by_hour = activity.group_by("hour").agg(pl.col("trades").sum()).sort("trades", "hour", descending=[True, False])
    by_symbol = activity.group_by("symbol").agg(pl.col("trades").sum(), pl.col("volume").sum()).sort("symbol")
    return {
        "trades": int(activity["trades"].sum()), "volume": float(activity["volume"].fill_null(0).sum()),
        "symbols": by_symbol["symbol"].to_list(),
        "busiest_hour": {"hour": iso(by_hour["hour"][0]), "trades": int(by_hour["trades"][0])},
        "by_symbol": {r["symbol"]: {"trades": int(r["trades"] or 0), "volume": float(r["volume"] or 0.0)}
                      for r in by_symbol.iter_rows(named=True)},
    }


def alert_windows(frame: pl.DataFrame) -> list[tuple[datetime, datetime, str]]:
    return list(zip(frame["window_start"].to_list(), frame["window_end"].to_list(), frame["risk_level"].to_list(),
                    strict=True))


# ---- counts ---------------------------------------------------------------------------------------------

def ordered_patterns(patterns: Iterable[str]) -> list[str]:
    """The vocabulary's order first, any other name after, alphabetically."""
    present = set(patterns)
    return [p for p in PATTERN_ORDER if p in present] + sorted(present - set(PATTERN_ORDER))


def risk_counts(frame: pl.DataFrame) -> dict[str, int]:
    counted = dict(frame.group_by("risk_level").len().iter_rows())
    extra = sorted(r for r in counted if r not in RISK_ORDER)
    return {r: int(counted.get(r, 0)) for r in (*RISK_ORDER, *extra)}


def re_raised(frame: pl.DataFrame) -> int:
    return int((frame["occurrence"] >= 2).sum()) if frame.height else 0


def counts_by_pattern(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    """pattern -> {"total", "HIGH", "MEDIUM", "LOW", "re_raised"}, vocabulary order."""
    result = {}
    for pattern in ordered_patterns(frame["pattern"].to_list()):
        rows = frame.filter(pl.col("pattern") == pattern)
        result[pattern] = {"total": rows.height, **risk_counts(rows), "re_raised": re_raised(rows)}
    return result


def counts_by_day(frame: pl.DataFrame, first_day: date, last_day: date) -> list[dict[str, Any]]:
    """One entry per day of the period, days without alerts included."""
    days = []
    for day in period_days(first_day, last_day):
        rows = frame.filter(pl.col("date") == day)
        days.append({"date": day.isoformat(), "total": rows.height, **risk_counts(rows), "re_raised": re_raised(rows),
                     "by_pattern": {p: c["total"] for p, c in counts_by_pattern(rows).items()}})
    return days


def distinct_accounts(frame: pl.DataFrame) -> list[str]:
    if frame.height == 0:
        return []
    return sorted(frame[ACCOUNTS].explode().drop_nulls().unique().to_list())


# ---- text for the PDF -----------------------------------------------------------------------------------

def pattern_phrase(pattern: str) -> str:
    """A pattern inside a sentence: "wash trading", "ML anomaly" (acronyms keep their capitals)."""
    label = pattern_label(pattern)
    first = label.split(" ", 1)[0]
    return label if first.isupper() and len(first) > 1 else label[:1].lower() + label[1:]


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def join_words(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def window_text(start: datetime | None, end: datetime | None, *, with_day: bool) -> str:
    """"10:15–10:45" (with the day in front when the period has several: "Mar 02 10:15–10:45");
    a window that ends on a later day says so ("23:50–00:10 +1d")."""
    if start is None or end is None:
        return "n/a"
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    text = f"{start:%H:%M}–{end:%H:%M}"
    days = (end.date() - start.date()).days
    if days:
        text += f" +{days}d"
    return f"{start:%b %d} {text}" if with_day else text


def accounts_text(accounts: Sequence[str] | None, *, most: int = 6, skip: str | None = None) -> str:
    """Account ids for a table cell, comma-separated so that they wrap; "market-level" when there are none."""
    accounts = [a for a in (accounts or []) if a != skip]
    if not accounts:
        return "market-level" if skip is None else "–"
    shown = ", ".join(accounts[:most])
    return shown + (f" +{len(accounts) - most} more" if len(accounts) > most else "")


def number_text(value: Any) -> str:
    """A measurement for a table cell: thousands separators, digits that suit the magnitude."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    value = float(value)
    size = abs(value)
    if size >= 1e15 or (0 < size < 0.001):
        return f"{value:.3g}"
    if value.is_integer():
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:,.1f}"
    if size >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def alert_table(frame: pl.DataFrame, *, with_day: bool, account: str | None = None,
                ) -> tuple[list[str], list[list[Any]], dict[tuple[int, int], str]]:
    """Header, rows and risk-cell tints of an alert table. With `account`, the accounts column lists the
    other accounts of each alert ("With")."""
    header = ["Risk", "Pattern", "Symbol", "With" if account else "Accounts", "Window (UTC)", "Score", "Explanation"]
    rows, fills = [], {}
    for index, alert in enumerate(frame.iter_rows(named=True)):
        explanation = alert["explanation"] or ""
        if (alert["occurrence"] or 1) >= 2 and not explanation.lower().startswith("raised again"):
            # the engine's explanations of re-raised alerts already say so; others get a note
            explanation += f" (re-raised, first seen {alert['first_seen']})" if alert["first_seen"] else " (re-raised)"
        rows.append([alert["risk_level"], pattern_label(alert["pattern"]), alert["symbol"],
                     accounts_text(alert[ACCOUNTS], skip=account), window_text(alert["window_start"],
                                                                               alert["window_end"], with_day=with_day),
                     _score_cell(alert["score"]), explanation])
        if alert["risk_level"] in RISK_FILLS:
            fills[(index, 0)] = RISK_FILLS[alert["risk_level"]]
    return header, rows, fills


TABLE_ALIGN = ["left", "left", "left", "left", "left", "right", "left"]


def _score_cell(score: float | None) -> str:
    return "n/a" if score is None or not math.isfinite(score) else f"{score:.2f}"


def pattern_risk_table(counts: Mapping[str, Mapping[str, int]], total: Mapping[str, int],
                       ) -> tuple[list[str], list[list[Any]], list[int]]:
    """Pattern x risk level counts with a total row (highlighted)."""
    header = ["Pattern", *RISK_ORDER, "Total", "Re-raised"]
    rows = [[pattern_label(p), *(c.get(r, 0) for r in RISK_ORDER), c["total"], c["re_raised"]]
            for p, c in counts.items()]
    rows.append(["All patterns", *(total.get(r, 0) for r in RISK_ORDER), total["total"], total["re_raised"]])
    return header, rows, [len(rows) - 1]


# ---- files ----------------------------------------------------------------------------------------------

def iso(value: Any) -> Any:
    """Datetimes as ISO-8601 UTC with a Z, dates as ISO-8601; anything else unchanged."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, list | tuple):
        return USER_IDS_SEPARATOR.join("" if v is None else str(v) for v in value)
    return str(iso(value))


def alerts_csv(frame: pl.DataFrame) -> str:
    """The alerts as CSV: ALERT_CSV_COLUMNS then any extra columns; evidence ';'-joined, times ISO-8601 UTC."""
    columns = [c for c in frame.columns if not c.startswith("_")]
    return rows_csv(columns, frame.select(columns).iter_rows())


def rows_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buffer.getvalue()


def _parsed_json(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON after all: keep the text


def alert_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The alerts for a JSON file: thresholds and top_features parsed, times ISO-8601 UTC."""
    columns = [c for c in frame.columns if not c.startswith("_")]
    records = []
    for row in frame.select(columns).iter_rows(named=True):
        for column in _JSON_TEXT_COLUMNS:
            row[column] = _parsed_json(row[column])
        records.append(plain(row))
    return records


def top_features(text: str | None) -> list[dict[str, Any]]:
    """An alert's `top_features` JSON as a list of {"feature", "value", "percentile", "median"}; [] if unusable."""
    parsed = _parsed_json(text)
    if not isinstance(parsed, list):
        return []
    return [item for item in parsed if isinstance(item, Mapping) and item.get("feature")]


def plain(value: Any) -> Any:
    """JSON-ready copy: NaN and infinities to None, dates and datetimes to ISO-8601, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | pl.Series):
        return [plain(v) for v in value]
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return iso(value)


def write_text(path: Path, text: str) -> Path:
    """Write `text` through a temporary file beside `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, payload: Mapping[str, Any]) -> Path:
    return write_text(path, json.dumps(plain(payload), indent=2, allow_nan=False, ensure_ascii=False) + "\n")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe form of an id: other characters become "_" (never empty, never hidden)."""
    name = _UNSAFE.sub("_", str(text)).strip("._") or "unknown"
    return name[:120]
