"""The account risk profile: one account's alerts, its features against its peers, its scores and activity.

`account_profile` writes account_<id>.pdf, account_<id>.csv (the account's alerts of the period) and
account_<id>.json (alerts, feature comparison, score history, activity totals). `<id>` is the account id
with any character outside letters, digits, ".", "_" and "-" replaced by "_".
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import polars as pl

from surveillance_pipeline.reporting.analyst_common import (
    TABLE_ALIGN,
    activity_series,
    activity_summary,
    alert_records,
    alert_table,
    alert_windows,
    alerts_csv,
    alerts_of_account,
    check_period,
    counts_by_pattern,
    join_words,
    pattern_phrase,
    number_text,
    period_bounds,
    period_text,
    plural,
    prepare_activity,
    prepare_alerts,
    prepare_scores,
    risk_counts,
    safe_name,
    top_features,
    utc_now,
    window_text,
    write_json,
    write_text,
)
from surveillance_pipeline.reporting.charts import (
    RISK_ORDER,
    activity_bucket,
    activity_timeline,
    feature_percentiles,
    pattern_label,
    score_history,
)
from surveillance_pipeline.reporting.pdf import ReportDocument, utc_timestamp

TITLE = "Account risk profile"
FEATURE_ROWS = 20
ALERT_ROWS = 50  # the PDF lists this many; the CSV and JSON hold them all
CHART_FEATURES = 12
DRIVER_ROWS = 30
_KEYS = ("account_id", "date")


def account_profile(out_dir: Path, account_id: str, first_day: date, last_day: date, alerts: pl.DataFrame,
                    features: pl.DataFrame, scores: pl.DataFrame, activity_account: pl.DataFrame, *,
                    feature_units: Mapping[str, str] | None = None, score_threshold: float = 0.5,
                    ) -> dict[str, Path]:
    """Write the risk profile of `account_id` over `first_day`..`last_day` (inclusive, UTC days) into `out_dir`.

    `alerts`: the alert frame (the account's alerts are those whose `user_ids` name it); `features`: the
    account features table (account_id, date, numeric feature columns) of all accounts, compared on the
    latest day of the period the account has a row for; `scores`: model scores, drawn up to `last_day`
    (earlier days too, for the history); `activity_account`: the account's trades per symbol and hour.
    `feature_units`: feature -> unit shown beside its values. Returns {"pdf", "csv", "json"}.
    """
    check_period(first_day, last_day)
    account_id = str(account_id)
    if not account_id:
        raise ValueError("account_id: expected a non-empty account id")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units = dict(feature_units or {})
    frame = alerts_of_account(prepare_alerts(alerts, first_day, last_day), account_id)
    history = prepare_scores(scores, first_day=None, last_day=last_day).filter(pl.col("account_id") == account_id)
    history = history.group_by("date").agg(  # one point per day, the highest score if several models wrote rows
        pl.all().sort_by("score", descending=True).first()).sort("date")
    activity = prepare_activity(activity_account, first_day, last_day)
    comparison = feature_comparison(features, account_id, first_day, last_day, units=units)
    generated = utc_now()
    stem = f"account_{safe_name(account_id)}"
    payload = {
        "report": "account_profile", "account_id": account_id, "generated_at": utc_timestamp(generated),
        "period": {"first_day": first_day, "last_day": last_day},
        "alerts": {"total": frame.height, "by_risk_level": risk_counts(frame), "by_pattern": counts_by_pattern(frame),
                   "items": alert_records(frame)},
        "features": comparison,
        "scores": {"threshold": score_threshold,
                   "history": [{**row, "date": row["date"]} for row in
                               history.select("date", "score", "anomalous", "models", "model_source")
                               .iter_rows(named=True)]},
        "activity": activity_summary(activity),
    }
    paths = {"csv": write_text(out_dir / f"{stem}.csv", alerts_csv(frame)),
             "json": write_json(out_dir / f"{stem}.json", payload)}
    with tempfile.TemporaryDirectory(prefix="account_profile_charts_") as folder:
        document = _document(Path(folder), account_id, first_day, last_day, frame, comparison, history, activity,
                             payload, generated, score_threshold)
        paths["pdf"] = document.write(out_dir / f"{stem}.pdf")
    return paths


def feature_comparison(features: pl.DataFrame | None, account_id: str, first_day: date, last_day: date, *,
                       units: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The account's numeric features against every account of one day: the latest day of the period on
    which the account has a row.

    Per feature: the account's value; its percentile among all accounts of the day, mid-rank (the share of
    accounts below it, ties counting half, so a value most accounts share sits near 50); the median of the
    other accounts; `deviation`, the distance from that median in interquartile ranges. Rows run from the most
    unusual (percentile furthest from 50, then the larger deviation); features the account lacks come last.
    Returns {"date", "accounts", "rows"}; "date" is None when the account has no row in the period.
    """
    units = units or {}
    empty: dict[str, Any] = {"date": None, "accounts": 0, "rows": []}
    if features is None or features.height == 0:
        return empty
    missing = [c for c in _KEYS if c not in features.columns]
    if missing:
        raise ValueError(f"features: missing column(s) {', '.join(missing)}")
    day_type = features.schema["date"]
    day_expr = pl.col("date").dt.date() if isinstance(day_type, pl.Datetime) else pl.col("date").cast(pl.Date)
    table = features.with_columns(pl.col("account_id").cast(pl.String), day_expr.alias("date")).filter(
        pl.col("date").is_between(first_day, last_day))
    day = table.filter(pl.col("account_id") == account_id)["date"].max()
    if day is None:
        return empty
    today = table.filter(pl.col("date") == day)
    numeric = [c for c, dtype in today.schema.items() if c not in _KEYS and dtype.is_numeric()]
    mine = today.filter(pl.col("account_id") == account_id).row(0, named=True)
    others = today.filter(pl.col("account_id") != account_id)
    rows = []
    for feature in numeric:
        everyone = _finite(today[feature])
        value = mine[feature]
        value = None if value is None or not math.isfinite(float(value)) else float(value)
        peers = _finite(others[feature])
        median = float(peers.median()) if peers.len() else None
        percentile = deviation = None
        if value is not None and everyone.len():
            below, same = int((everyone < value).sum()), int((everyone == value).sum())
            percentile = 100.0 * (below + 0.5 * same) / everyone.len()
            if median is not None:
                spread = float(everyone.quantile(0.75, "linear") - everyone.quantile(0.25, "linear"))
                if spread <= 0:
                    spread = float(everyone.std() or 0.0)
                gap = abs(value - median)
                deviation = gap / spread if spread > 0 else (math.inf if gap else 0.0)
        rows.append({"feature": feature, "value": value, "unit": units.get(feature), "percentile": percentile,
                     "peer_median": median, "deviation": deviation, "peers": peers.len()})
    rows.sort(key=lambda r: (r["percentile"] is None, -abs((r["percentile"] or 50.0) - 50.0),
                             -(r["deviation"] or 0.0), r["feature"]))
    for row in rows:  # JSON has no infinity: a value off a spread-less crowd is just "far"
        if row["deviation"] is not None and math.isinf(row["deviation"]):
            row["deviation"] = None
    return {"date": day, "accounts": today["account_id"].n_unique(), "rows": rows}


def _finite(series: pl.Series) -> pl.Series:
    series = series.cast(pl.Float64).drop_nulls()
    return series.filter(series.is_finite())


def percentile_text(percentile: float | None) -> str:
    """One decimal, rounded towards 50 so that the top of 2,000 accounts reads 99.9, never 100.0."""
    if percentile is None:
        return "n/a"
    tenths = math.floor(percentile * 10) if percentile >= 50 else math.ceil(percentile * 10)
    return f"{tenths / 10:.1f}"


def _with_unit(value: Any, unit: str | None) -> str:
    text = number_text(value)
    return f"{text} {unit}" if unit and text != "n/a" else text


def _document(folder: Path, account_id: str, first_day: date, last_day: date, frame: pl.DataFrame,
              comparison: dict[str, Any], history: pl.DataFrame, activity: pl.DataFrame, payload: dict[str, Any],
              generated: datetime, threshold: float) -> ReportDocument:
    several_days = first_day != last_day
    document = ReportDocument(f"{TITLE}: {account_id}", period_text(first_day, last_day), generated_at=generated)
    document.heading("Summary")
    document.paragraph(_opening(account_id, frame, payload), markup=True)
    document.paragraph(_score_sentence(history, threshold, last_day), markup=True)
    if comparison["rows"]:
        document.paragraph(_feature_sentence(comparison), markup=True)

    document.heading("Alerts")
    if frame.height:
        shown = frame.head(ALERT_ROWS)
        header, rows, fills = alert_table(shown, with_day=several_days, account=account_id)
        listed = (f"The {ALERT_ROWS} highest-priority alerts of {frame.height:,} (all are in the CSV), by risk level"
                  if frame.height > ALERT_ROWS else "By risk level")
        document.paragraph(f"{listed}, then score. \u201cWith\u201d lists the other accounts of each alert.")
        document.table(header, rows, align=TABLE_ALIGN, cell_fills=fills)
        drivers = _driver_rows(shown, several_days)
        if drivers:
            document.heading("What drove the model alerts", level=2)
            document.table(["Alert", "Feature", "Value", "Percentile", "Peer median"], drivers[:DRIVER_ROWS],
                           align=["left", "left", "right", "right", "right"])
    else:
        document.paragraph("No alerts in this period.")

    document.heading("Features against peers")
    rows = comparison["rows"]
    if rows:
        document.paragraph(
            f"On {comparison['date']}, against the {comparison['accounts']:,} accounts of that day. The percentile "
            "is the share of accounts with a lower value (ties count half; 50 is typical); the peer median is "
            f"the other accounts' median. Most unusual first{', top ' + str(FEATURE_ROWS) if len(rows) > FEATURE_ROWS else ''}.")
        shown = rows[:FEATURE_ROWS]
        document.table(
            ["Feature", "Account value", "Percentile", "Peer median"],
            [[r["feature"], _with_unit(r["value"], r["unit"]), percentile_text(r["percentile"]),
              _with_unit(r["peer_median"], r["unit"])] for r in shown],
            align=["left", "right", "right", "right"],
            cell_fills={(i, 2): "#eadff5" if r["percentile"] >= 50 else "#d9e6f2" for i, r in enumerate(shown)
                        if r["percentile"] is not None and abs(r["percentile"] - 50) >= 45})
        charted = [r for r in rows if r["percentile"] is not None][:CHART_FEATURES]
        document.image(feature_percentiles(folder / "features.png", [r["feature"] for r in charted],
                                           [r["percentile"] for r in charted],
                                           labels=[percentile_text(r["percentile"]) for r in charted],
                                           title=f"Percentile among all accounts, {comparison['date']}"),
                       caption="Bars run from the peer median (50) to the account's percentile; "
                               "the most unusual features are at the top.")
    else:
        document.paragraph("No feature row for this account in the period.")

    document.heading("Model score history")
    document.image(score_history(folder / "scores.png", history["date"].to_list(), history["score"].to_list(),
                                 threshold=threshold, period=(first_day, last_day),
                                 title="Model anomaly score per day"),
                   caption="Red points are at or above the threshold; the shaded band is the report's period."
                   if history.height and history["date"].min() < first_day else None)

    start, end = period_bounds(first_day, last_day)
    document.heading("Activity")
    summary = payload["activity"]
    caption = [f"{summary['trades']:,} trades in the period." if summary["trades"] else None,
               "The account's alert windows are drawn by risk level below the activity." if frame.height else None]
    document.image(activity_timeline(folder / "activity.png", activity_series(activity, by_symbol=True),
                                     alert_windows(frame), start=start, end=end,
                                     title=f"The account's trades per {activity_bucket(start, end)[1]}, by symbol",
                                     empty_text="No activity data for this account"),
                   caption=" ".join(filter(None, caption)) or None)
    return document


def _opening(account_id: str, frame: pl.DataFrame, payload: dict[str, Any]) -> str:
    name = escape(account_id)
    if not frame.height:
        return f"No alerts for account <b>{name}</b> in this period."
    risk = payload["alerts"]["by_risk_level"]
    levels = join_words([f"{risk[r]:,} {r}" for r in RISK_ORDER if risk.get(r)])
    patterns = payload["alerts"]["by_pattern"]
    listed = join_words([f"{escape(pattern_phrase(p))} ({c['total']:,})"
                         for p, c in sorted(patterns.items(), key=lambda item: -item[1]["total"])])
    symbols = join_words([escape(s) for s in frame["symbol"].drop_nulls().unique().sort().to_list()])
    partners = sorted({a for accounts in frame["_accounts"].to_list() for a in accounts} - {account_id})
    text = (f"Account <b>{name}</b> is named in <b>{plural(frame.height, 'alert')}</b> in this period "
            f"({levels}): {listed}, on {symbols}.")
    if partners:
        shown = join_words([escape(p) for p in partners[:5]]) + (f" and {len(partners) - 5} more"
                                                                  if len(partners) > 5 else "")
        text += f" Other accounts in the same alerts: {shown}."
    top = frame.row(0, named=True)
    text += (f" Highest-priority alert: {escape(pattern_phrase(top['pattern']))}, {top['risk_level']}, "
             f"score {top['score']:.2f}, {window_text(top['window_start'], top['window_end'], with_day=True)} UTC.")
    return text


def _score_sentence(history: pl.DataFrame, threshold: float, last_day: date) -> str:
    if not history.height:
        return "No model scores for this account."
    latest = history.row(-1, named=True)
    above = int((history["score"] >= threshold).sum())
    text = (f"Latest model score <b>{latest['score']:.3f}</b> on {latest['date']}"
            f"{' (flagged anomalous)' if latest['anomalous'] else ''}")
    if latest["date"] < last_day:
        text += f", the last day scored up to {last_day}"
    text += (f"; {above:,} of {plural(history.height, 'scored day')} at or above the {threshold:.2f} threshold "
             f"(highest {history['score'].max():.3f}).")
    return text


def _feature_sentence(comparison: dict[str, Any]) -> str:
    unusual = [r for r in comparison["rows"] if r["percentile"] is not None and abs(r["percentile"] - 50) >= 40][:3]
    if not unusual:
        return f"On {comparison['date']} none of its features stands out from the other accounts."
    parts = [f"{escape(r['feature'])} {escape(_with_unit(r['value'], r['unit']))} (percentile "
             f"{percentile_text(r['percentile'])}, peers' median {escape(_with_unit(r['peer_median'], r['unit']))})"
             for r in unusual]
    return f"Most unusual features on {comparison['date']}: {join_words(parts)}."


def _driver_rows(frame: pl.DataFrame, several_days: bool) -> list[list[Any]]:
    rows = []
    for alert in frame.iter_rows(named=True):
        label = (f"{pattern_label(alert['pattern'])}, "
                 f"{window_text(alert['window_start'], alert['window_end'], with_day=several_days)}")
        for item in top_features(alert["top_features"]):
            percentile = item.get("percentile")
            if isinstance(percentile, int | float) and not isinstance(percentile, bool) and math.isfinite(percentile):
                # the engine writes a share (0..1); a value above 1 is already in percent
                percentile = percentile_text(100.0 * percentile if percentile <= 1 else float(percentile))
            else:
                percentile = "n/a"
            rows.append([label, str(item["feature"]), number_text(item.get("value")), percentile,
                         number_text(item.get("median"))])
    return rows
