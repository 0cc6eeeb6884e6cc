"""The daily surveillance summary: what was raised in the period, the riskiest alerts, activity and scores.

`daily_summary` writes daily_summary.pdf, daily_summary.csv (every alert of the period, priority order) and
daily_summary.json (counts by pattern, risk level and day, the top alerts, score statistics, activity totals).
"""
from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
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
    check_period,
    counts_by_day,
    counts_by_pattern,
    join_words,
    pattern_phrase,
    pattern_risk_table,
    period_bounds,
    period_days,
    period_text,
    plural,
    prepare_activity,
    prepare_alerts,
    prepare_scores,
    re_raised,
    risk_counts,
    utc_now,
    write_json,
    write_text,
)
from surveillance_pipeline.reporting.charts import (
    RISK_ORDER,
    activity_bucket,
    activity_timeline,
    alert_heatmap,
    risk_level_bars,
    score_histogram,
)
from surveillance_pipeline.reporting.pdf import ReportDocument, utc_timestamp

TITLE = "Daily surveillance summary"
NO_ALERTS = "No alerts in this period."
FILE_STEM = "daily_summary"


def daily_summary(out_dir: Path, first_day: date, last_day: date, alerts: pl.DataFrame, scores: pl.DataFrame,
                  activity: pl.DataFrame, *, top_n: int = 15, score_threshold: float = 0.5) -> dict[str, Path]:
    """Write the daily summary of `first_day`..`last_day` (inclusive, UTC days) into `out_dir`.

    `alerts`: the alert frame (rows of the period are picked by their `date`); `scores`: model scores per
    account-day (may be empty); `activity`: trades per symbol and hour (may be empty). `top_n` alerts are
    listed in the PDF; `score_threshold` is the line drawn on the score histogram.
    Returns {"pdf", "csv", "json"}.
    """
    check_period(first_day, last_day)
    if top_n < 1:
        raise ValueError(f"top_n: expected at least 1, got {top_n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = prepare_alerts(alerts, first_day, last_day)
    score_frame = prepare_scores(scores, first_day=first_day, last_day=last_day)
    activity_frame = prepare_activity(activity, first_day, last_day)
    generated = utc_now()
    top = frame.head(top_n)
    stats = score_statistics(score_frame, score_threshold)
    payload = {
        "report": FILE_STEM, "generated_at": utc_timestamp(generated),
        "period": {"first_day": first_day, "last_day": last_day},
        "counts": {
            "total": frame.height, "new": frame.height - re_raised(frame), "re_raised": re_raised(frame),
            "by_risk_level": risk_counts(frame), "by_pattern": counts_by_pattern(frame),
            "by_day": counts_by_day(frame, first_day, last_day),
        },
        "top_alerts": alert_records(top),
        "scores": stats,
        "activity": activity_summary(activity_frame),
    }
    paths = {"csv": write_text(out_dir / f"{FILE_STEM}.csv", alerts_csv(frame)),
             "json": write_json(out_dir / f"{FILE_STEM}.json", payload)}
    with tempfile.TemporaryDirectory(prefix="daily_summary_charts_") as folder:
        document = _document(Path(folder), first_day, last_day, frame, top, score_frame, activity_frame, stats,
                             payload, generated, score_threshold)
        paths["pdf"] = document.write(out_dir / f"{FILE_STEM}.pdf")
    return paths


def score_statistics(scores: pl.DataFrame, threshold: float) -> dict[str, Any]:
    """Rows, accounts, how many at or above `threshold` (and flagged anomalous), mean, quantiles, max."""
    values = scores["score"]
    anomalous = scores["anomalous"]
    stats: dict[str, Any] = {
        "rows": scores.height, "accounts": scores["account_id"].n_unique(), "threshold": threshold,
        "at_or_above_threshold": int((values >= threshold).sum()),
        "anomalous": int(anomalous.sum()) if anomalous.null_count() < scores.height else None,
        "mean": None, "median": None, "p90": None, "p99": None, "max": None, "by_model_source": {},
    }
    if scores.height:
        stats |= {"mean": float(values.mean()), "median": float(values.median()),
                  "p90": float(values.quantile(0.9, "linear")), "p99": float(values.quantile(0.99, "linear")),
                  "max": float(values.max())}
        sources = scores.group_by(pl.col("model_source").fill_null("unknown")).len().sort("model_source")
        stats["by_model_source"] = dict(sources.iter_rows())
    return stats


def _document(folder: Path, first_day: date, last_day: date, frame: pl.DataFrame, top: pl.DataFrame,
              scores: pl.DataFrame, activity: pl.DataFrame, stats: dict[str, Any], payload: dict[str, Any],
              generated: datetime, threshold: float) -> ReportDocument:
    period = period_text(first_day, last_day)
    several_days = first_day != last_day
    document = ReportDocument(TITLE, period, generated_at=generated)
    counts = payload["counts"]

    document.heading("Summary")
    document.paragraph(_opening(frame, counts), markup=True)
    document.paragraph(_scores_sentence(stats), markup=True)

    if frame.height:
        document.heading("Alerts by pattern and risk level")
        header, rows, highlight = pattern_risk_table(counts["by_pattern"],
                                                     {"total": frame.height, **counts["by_risk_level"],
                                                      "re_raised": counts["re_raised"]})
        document.table(header, rows, highlight_rows=highlight, align=["left"] + ["right"] * 5)
        if several_days:
            document.heading("Alerts by day", level=2)
            document.table(["Day", *RISK_ORDER, "Total", "Re-raised"],
                           [[d["date"], *(d[r] for r in RISK_ORDER), d["total"], d["re_raised"]]
                            for d in counts["by_day"]], align=["left"] + ["right"] * 5, width_mm=120)
        document.image(risk_level_bars(folder / "risk_levels.png", counts["by_risk_level"],
                                       title="Alerts by risk level"), width_mm=115)

        document.heading(f"Top {plural(top.height, 'alert')}" if top.height < frame.height else "Alerts")
        shown = (f"The {top.height} highest-priority alerts of {frame.height:,} (risk level, then score)"
                 if top.height < frame.height else f"All {plural(frame.height, 'alert')}, by risk level then score")
        document.paragraph(f"{shown}. Windows are in UTC; the full list with evidence ids is in "
                           "daily_summary.csv.")
        header, rows, fills = alert_table(top, with_day=several_days)
        document.table(header, rows, align=TABLE_ALIGN, cell_fills=fills)

    start, end = period_bounds(first_day, last_day)
    document.heading("Trading activity and alert windows")
    document.image(activity_timeline(folder / "activity.png", activity_series(activity, by_symbol=False),
                                     alert_windows(frame), start=start, end=end,
                                     title=f"Trades per {activity_bucket(start, end)[1]}, all symbols"),
                   caption=_activity_caption(payload["activity"]))

    document.heading("Model scores")
    document.image(score_histogram(folder / "scores.png", scores["score"].to_list(), threshold=threshold,
                                   title="Anomaly-score distribution, account-days of the period"),
                   caption="Bars at or above the dashed threshold are red; the count axis is logarithmic "
                           "when most accounts score low." if scores.height else None)

    if frame.height:
        document.heading("When alerts start")
        weekdays = sorted({d.weekday() for d in period_days(first_day, last_day)})
        document.image(alert_heatmap(folder / "heatmap.png", frame["window_start"].to_list(),
                                     weekdays_in_period=weekdays),
                       caption="Alerts by the hour and weekday their window starts (UTC). "
                               "Weekdays outside the period have grey labels.")
    return document


def _opening(frame: pl.DataFrame, counts: dict[str, Any]) -> str:
    """The opening paragraph in words (reportlab markup, data escaped)."""
    if not frame.height:
        return NO_ALERTS
    risk = counts["by_risk_level"]
    levels = join_words([f"<b>{risk.get(r, 0):,} {r}</b>" if r == "HIGH" else f"{risk.get(r, 0):,} {r}"
                         for r in RISK_ORDER])
    patterns = sorted(counts["by_pattern"].items(), key=lambda item: -item[1]["total"])
    listed = join_words([f"{escape(pattern_phrase(p))} ({c['total']:,})" for p, c in patterns])
    text = f"<b>{plural(frame.height, 'alert')}</b> in this period: {levels}. By pattern: {listed}."
    again = counts["re_raised"]
    if again:
        text += (f" {plural(again, 'alert')} {'was' if again == 1 else 'were'} re-raised from earlier days; "
                 f"{frame.height - again:,} {'is' if frame.height - again == 1 else 'are'} new.")
    else:
        text += " All are new: none was re-raised from an earlier day."
    symbols = frame["symbol"].drop_nulls().unique().sort().to_list()
    accounts = frame["_accounts"].explode().drop_nulls().n_unique()
    text += (f" They involve {plural(accounts, 'account')} on {plural(len(symbols), 'symbol')}"
             f"{': ' + escape(join_words(symbols)) if len(symbols) <= 6 else ''}.")
    return text


def _scores_sentence(stats: dict[str, Any]) -> str:
    if not stats["rows"]:
        return "No model scores in this period."
    above = stats["at_or_above_threshold"]
    text = (f"The models scored {plural(stats['rows'], 'account-day')} ({plural(stats['accounts'], 'account')}); "
            f"<b>{above:,}</b> ({above / stats['rows']:.1%}) scored at or above the {stats['threshold']:.2f} "
            f"threshold. Median score {stats['median']:.3f}, 99th percentile {stats['p99']:.3f}, "
            f"highest {stats['max']:.3f}.")
    if stats["anomalous"] is not None and stats["anomalous"] != above:
        text += f" {plural(stats['anomalous'], 'account-day')} flagged anomalous by the models."
    return text


def _activity_caption(summary: dict[str, Any]) -> str:
    if not summary["trades"]:
        return "No activity data for this period. Alert windows are drawn by risk level below."
    busiest = summary["busiest_hour"]
    hour = datetime.fromisoformat(busiest["hour"].replace("Z", "+00:00")).astimezone(UTC)
    return (f"{summary['trades']:,} trades on {plural(len(summary['symbols']), 'symbol')}; busiest hour "
            f"{hour:%Y-%m-%d %H:00} UTC ({busiest['trades']:,} trades). Each alert window is a bar on its "
            "risk level's lane, and shaded faintly behind the activity.")
