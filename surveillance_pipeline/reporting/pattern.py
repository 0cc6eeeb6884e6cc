"""The pattern analysis: per typology, how much was raised, against whom, how risky, how often again.

`pattern_analysis` writes pattern_analysis.pdf, pattern_analysis.csv (one row per pattern: the figures of the
typology table) and pattern_analysis.json (the same per pattern with its most involved accounts and symbols,
alerts per day per pattern, and, given labels, the evaluation against them).
"""
from __future__ import annotations

import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import polars as pl

from surveillance_pipeline.reporting.analyst_common import (
    ACCOUNTS,
    check_period,
    counts_by_day,
    distinct_accounts,
    join_words,
    pattern_phrase,
    ordered_patterns,
    period_days,
    period_text,
    plural,
    prepare_alerts,
    re_raised,
    risk_counts,
    rows_csv,
    utc_now,
    write_json,
    write_text,
)
from surveillance_pipeline.reporting.charts import RISK_ORDER, pattern_label, pattern_trend, risk_by_pattern
from surveillance_pipeline.reporting.pdf import ReportDocument, utc_timestamp

TITLE = "Pattern analysis"
FILE_STEM = "pattern_analysis"
TOP_INVOLVED = 5
CSV_COLUMNS = ("pattern", "alerts", "episodes", "accounts", "symbols", "high", "medium", "low", "re_raised",
               "re_raised_share", "market_level", "mean_score", "max_score", "top_accounts", "top_symbols")


def pattern_analysis(out_dir: Path, first_day: date, last_day: date, alerts: pl.DataFrame, *,
                     labels: pl.DataFrame | None = None, top_involved: int = TOP_INVOLVED) -> dict[str, Path]:
    """Write the pattern analysis of `first_day`..`last_day` (inclusive, UTC days) into `out_dir`.

    `alerts`: the alert frame (rows of the period are picked by their `date`). `labels`: optional
    labelled episodes (episode_id, pattern, symbol, user_ids, start, end); those starting in the period are
    matched against the period's alerts with `surveillance_pipeline.evaluation.evaluate`.
    `top_involved`: accounts and symbols listed per pattern. Returns {"pdf", "csv", "json"}.
    """
    check_period(first_day, last_day)
    if top_involved < 1:
        raise ValueError(f"top_involved: expected at least 1, got {top_involved}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = prepare_alerts(alerts, first_day, last_day)
    patterns = pattern_statistics(frame, top_involved=top_involved)
    totals = _totals(frame)
    by_day = counts_by_day(frame, first_day, last_day)
    evaluation = _evaluation(frame, labels, first_day, last_day) if labels is not None else None
    generated = utc_now()
    payload = {
        "report": FILE_STEM, "generated_at": utc_timestamp(generated),
        "period": {"first_day": first_day, "last_day": last_day},
        "totals": totals, "patterns": patterns,
        "by_day": [{"date": d["date"], "total": d["total"], "by_pattern": d["by_pattern"]} for d in by_day],
        "labels": evaluation,
    }
    csv_rows = [[p["pattern"], p["alerts"], p["episodes"], p["accounts"], p["symbols"], p["HIGH"], p["MEDIUM"],
                 p["LOW"], p["re_raised"], p["re_raised_share"], p["market_level"], p["mean_score"], p["max_score"],
                 ";".join(a["account"] for a in p["top_accounts"]), ";".join(s["symbol"] for s in p["top_symbols"])]
                for p in patterns]
    paths = {"csv": write_text(out_dir / f"{FILE_STEM}.csv", rows_csv(CSV_COLUMNS, csv_rows)),
             "json": write_json(out_dir / f"{FILE_STEM}.json", payload)}
    with tempfile.TemporaryDirectory(prefix="pattern_analysis_charts_") as folder:
        document = _document(Path(folder), first_day, last_day, frame, patterns, totals, by_day, evaluation,
                             generated, top_involved)
        paths["pdf"] = document.write(out_dir / f"{FILE_STEM}.pdf")
    return paths


def _top(frame: pl.DataFrame, column: str, name: str, most: int) -> list[dict[str, Any]]:
    """The values of `column` (a list column is spread out) by how many alerts name them, most first."""
    values = frame.select(pl.col(column).alias(name))
    if isinstance(values.schema[name], pl.List):
        values = values.explode(name)
    counted = values.drop_nulls().group_by(name).len("alerts").sort(["alerts", name], descending=[True, False])
    return counted.head(most).to_dicts()


def _episodes(frame: pl.DataFrame) -> int:
    """Distinct episodes: the engine's alert key (pattern, symbol, accounts) when present, else the same."""
    if "alert_key" in frame.columns and frame["alert_key"].null_count() == 0:
        return frame["alert_key"].n_unique()
    return frame.select("pattern", "symbol", "user_ids").n_unique() if frame.height else 0


def pattern_statistics(frame: pl.DataFrame, *, top_involved: int = TOP_INVOLVED) -> list[dict[str, Any]]:
    """One entry per pattern present (vocabulary order): alerts, episodes, distinct accounts and symbols,
    alerts per risk level, re-raised count and share, market-level alerts (no account), mean and max score,
    and the `top_involved` accounts and symbols with their alert counts."""
    result = []
    for pattern in ordered_patterns(frame["pattern"].drop_nulls().to_list()):
        rows = frame.filter(pl.col("pattern") == pattern)
        again = re_raised(rows)
        result.append({
            "pattern": pattern, "alerts": rows.height, "episodes": _episodes(rows),
            "accounts": len(distinct_accounts(rows)), "symbols": rows["symbol"].drop_nulls().n_unique(),
            **risk_counts(rows), "re_raised": again, "re_raised_share": again / rows.height,
            "market_level": int((rows[ACCOUNTS].list.len() == 0).sum()),
            "mean_score": rows["score"].mean(), "max_score": rows["score"].max(),
            "top_accounts": _top(rows, ACCOUNTS, "account", top_involved),
            "top_symbols": _top(rows, "symbol", "symbol", top_involved),
        })
    return result


def _totals(frame: pl.DataFrame) -> dict[str, Any]:
    again = re_raised(frame)
    return {"alerts": frame.height, "episodes": _episodes(frame), "accounts": len(distinct_accounts(frame)),
            "symbols": frame["symbol"].drop_nulls().n_unique(), "patterns": frame["pattern"].drop_nulls().n_unique(),
            **risk_counts(frame), "re_raised": again,
            "re_raised_share": again / frame.height if frame.height else None}


def _evaluation(frame: pl.DataFrame, labels: pl.DataFrame, first_day: date, last_day: date) -> dict[str, Any]:
    """The period's alerts against the labelled episodes that start in the period."""
    from surveillance_pipeline.evaluation import evaluate  # only with labels: it loads the readers too

    if "start" not in labels.columns:
        raise ValueError("labels: missing column start; expected episode_id, pattern, symbol, user_ids, start, end")
    start = labels["start"]
    if isinstance(start.dtype, pl.Datetime):
        day = (pl.col("start").dt.convert_time_zone("UTC") if start.dtype.time_zone
               else pl.col("start")).dt.date()
    else:
        day = pl.col("start").cast(pl.Date)
    in_period = labels.filter(day.is_between(first_day, last_day))
    alerts = frame.drop(ACCOUNTS)
    return evaluate(alerts, in_period).to_dict()


def _document(folder: Path, first_day: date, last_day: date, frame: pl.DataFrame, patterns: list[dict[str, Any]],
              totals: dict[str, Any], by_day: list[dict[str, Any]], evaluation: dict[str, Any] | None,
              generated: datetime, top_involved: int) -> ReportDocument:
    document = ReportDocument(TITLE, period_text(first_day, last_day), generated_at=generated)
    document.heading("Summary")
    document.paragraph(_opening(patterns, totals), markup=True)

    if patterns:
        document.heading("Typologies")
        document.paragraph("Episodes count each pattern, symbol and account set once, however often it was "
                           "raised. Accounts and symbols are distinct per pattern; the last row counts them over "
                           "all patterns. Re-raised: alerts that repeat an episode raised on an earlier day.")
        header = ["Pattern", "Alerts", "Episodes", "Accounts", "Symbols", *RISK_ORDER, "Re-raised"]
        rows = [[pattern_label(p["pattern"]), p["alerts"], p["episodes"], p["accounts"], p["symbols"],
                 *(p[r] for r in RISK_ORDER), f"{p['re_raised_share']:.0%}"] for p in patterns]
        rows.append(["All patterns", totals["alerts"], totals["episodes"], totals["accounts"], totals["symbols"],
                     *(totals[r] for r in RISK_ORDER), f"{totals['re_raised_share']:.0%}"])
        document.table(header, rows, align=["left"] + ["right"] * (len(header) - 1), highlight_rows=[len(rows) - 1])

    if patterns:
        days = period_days(first_day, last_day)
        document.heading("Trend")
        document.image(pattern_trend(folder / "trend.png", days,
                                     {p["pattern"]: [d["by_pattern"].get(p["pattern"], 0) for d in by_day]
                                      for p in patterns}, title="Alerts per day by pattern"),
                       caption="Alerts by the day (partition) they were raised on, stacked by pattern; "
                               "the day's total above each bar.")
        document.image(risk_by_pattern(folder / "risk.png", {p["pattern"]: p for p in patterns},
                                       title="Risk levels by pattern"), width_mm=160)

        document.heading("Most involved accounts and symbols")
        document.paragraph(f"Per pattern, the {top_involved} accounts and symbols named in the most alerts "
                           "(alert counts in brackets). Market-level alerts name no account.")
        document.table(["Pattern", "Accounts", "Symbols"],
                       [[pattern_label(p["pattern"]), _involved(p["top_accounts"], "account", p["accounts"])
                         or "market-level only", _involved(p["top_symbols"], "symbol", p["symbols"])]
                        for p in patterns], align=["left", "left", "left"])

    if evaluation is not None:
        _evaluation_section(document, evaluation)
    return document


def _involved(items: list[dict[str, Any]], key: str, distinct: int) -> str:
    text = ", ".join(f"{item[key]}\u00a0({item['alerts']})" for item in items)  # an id and its count stay on one line
    more = distinct - len(items)
    return text + (f", +{more} more" if more > 0 else "")


def _opening(patterns: list[dict[str, Any]], totals: dict[str, Any]) -> str:
    if not patterns:
        return "No alerts in this period."
    busiest = max(patterns, key=lambda p: (p["alerts"], -patterns.index(p)))
    riskiest = max(patterns, key=lambda p: (p["HIGH"], p["alerts"]))
    text = (f"<b>{plural(totals['alerts'], 'alert')}</b> ({plural(totals['episodes'], 'episode')}) in "
            f"{plural(totals['patterns'], 'pattern')}, naming {plural(totals['accounts'], 'account')} on "
            f"{plural(totals['symbols'], 'symbol')}. The most frequent pattern is "
            f"<b>{escape(pattern_phrase(busiest['pattern']))}</b> ({plural(busiest['alerts'], 'alert')})")
    if riskiest["HIGH"]:
        text += (f"; the most HIGH-risk alerts are {escape(pattern_phrase(riskiest['pattern']))} "
                 f"({riskiest['HIGH']:,} of {plural(riskiest['alerts'], 'alert')})")
    text += "."
    if totals["re_raised"]:
        recurring = [p for p in patterns if p["re_raised"]]
        recurring.sort(key=lambda p: -p["re_raised_share"])
        text += (f" {totals['re_raised_share']:.0%} of the alerts repeat an episode from an earlier day, "
                 f"most of all in {join_words([escape(pattern_phrase(p['pattern'])) for p in recurring[:2]])}.")
    return text


def _evaluation_section(document: ReportDocument, evaluation: dict[str, Any]) -> None:
    document.heading("Against labelled episodes")
    totals = evaluation["totals"]
    if not totals["episodes"]:
        document.paragraph("No labelled episode starts in this period.")
        return
    document.paragraph(
        f"{plural(totals['episodes'], 'labelled episode')} start in this period; the alerts found "
        f"{totals['episodes_found']:,}. An alert matches an episode of the same pattern family on the same symbol, "
        "with overlapping windows and a shared account (model anomalies match any family).")

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    document.table(
        ["Pattern", "Episodes", "Found", "Recall", "Alerts", "True alerts", "Precision"],
        [[pattern_label(r["pattern"]) + (" (any family)" if r["any_family"] else ""), r["episodes"], r["found"],
          share(r["recall"]), r["alerts"], r["true_alerts"], share(r["precision"])] for r in evaluation["patterns"]],
        align=["left"] + ["right"] * 6)
