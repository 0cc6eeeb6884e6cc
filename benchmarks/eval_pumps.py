"""Event-level recall and precision of the pump-and-dump detector on whole real pump tapes.

Each tape of ../shared/data/pumps_dev (every Binance trade of one SYM/BTC pair, ~19 days around a pump
organised on Telegram; anonymous) is imported with the project's importer (`pump_tape` preset) and run
through `detect_pump_and_dump` day by day (UTC), each day with the tape's earlier days as history, exactly
as the daily pipeline would. Known pumps come from pumps.csv; rows of one file less than --event-gap-hours
apart name one event. An alert is a hit when its window, widened by --slack-minutes on each side, contains
the time of a known event's row; an event is found when some alert hits it; any other alert is false.
Prints a per-file table and totals and writes them, with every alert, as JSON; also writes the alerts in the
alert contract (alerts.csv / alerts.json) and the known events as labels (labels.csv) next to it, so that
`surveillance evaluate --alerts .../alerts.csv --labels .../labels.csv --slack-minutes 30` scores them too.
Usage: python benchmarks/eval_pumps.py [--data DIR] [--out FILE] [--slack-minutes 30] [--event-gap-hours 3]
       [--set field=value ...]  (override PumpAndDumpSettings fields, e.g. --set min_price_rise=0.03)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from surveillance_pipeline.contract import LABEL_SCHEMA, Label, Pattern, Trade  # noqa: E402
from surveillance_pipeline.detectors.alerts import findings_to_alerts, write_alerts  # noqa: E402
from surveillance_pipeline.detectors.base import DetectionInputs, Finding  # noqa: E402
from surveillance_pipeline.detectors.pump import PumpAndDumpSettings, detect_pump_and_dump  # noqa: E402
from surveillance_pipeline.ingest.importer import ImportOptions, iter_validated, make_context, prepare_source  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pumps_dev"
DEFAULT_OUT = ROOT / "data" / "bench" / "eval_pumps.json"
UTC = timezone.utc


def load_tape(path: Path) -> pl.DataFrame:
    """A pump tape as contract trades, through the importer (preset detected from the header)."""
    prepared = prepare_source(path, ImportOptions())
    ctx = make_context(prepared.generate_trade_ids, datetime(2009, 1, 3, tzinfo=UTC), 86_400)
    frames = [accepted.drop("__line") for _, accepted, _ in iter_validated(prepared, ctx, 200_000)]
    return pl.concat(frames).sort(Trade.TIMESTAMP, maintain_order=True)


def known_events(pumps_csv: Path, gap_hours: float) -> pl.DataFrame:
    """One row per known event: file, event number, the pump times its rows name."""
    rows = pl.read_csv(pumps_csv).with_columns(pl.col("pump_time").str.to_datetime(time_zone="UTC"))
    gap = timedelta(hours=gap_hours)
    return (
        rows.sort("file", "pump_time")
        .with_columns(((pl.col("pump_time").diff() > gap) | (pl.col("file") != pl.col("file").shift(1)))
                      .fill_null(True).cum_sum().alias("event"))
        .group_by("file", "event", maintain_order=True)
        .agg(pl.col("pump_time").sort().alias("times"), pl.col("source").unique().sort().alias("sources"))
    )


def detect_tape(tape: pl.DataFrame, settings: PumpAndDumpSettings) -> pl.DataFrame:
    """Run the detector over every UTC day of the tape, each with the earlier days as history."""
    found = []
    for day in tape.get_column(Trade.TIMESTAMP).dt.date().unique().sort().to_list():
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        trades = tape.filter(pl.col(Trade.TIMESTAMP).is_between(start, start + timedelta(days=1), closed="left"))
        history = tape.filter(pl.col(Trade.TIMESTAMP) < start)
        found.append(detect_pump_and_dump(DetectionInputs(trades=trades, history=history, day=day), settings))
    return pl.concat(found)


def score_file(alerts: pl.DataFrame, events: pl.DataFrame, slack: timedelta) -> tuple[list[bool], list[bool]]:
    """(per alert: hits a known event, per event: found by some alert)."""
    windows = [(row[Finding.WINDOW_START] - slack, row[Finding.WINDOW_END] + slack)
               for row in alerts.iter_rows(named=True)]
    times = events.get_column("times").to_list()
    hits = [[any(lo <= t <= hi for t in event_times) for event_times in times] for lo, hi in windows]
    alert_hits = [any(row) for row in hits]
    event_found = [any(row[i] for row in hits) for i in range(len(times))]
    return alert_hits, event_found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--slack-minutes", type=float, default=30.0)
    parser.add_argument("--event-gap-hours", type=float, default=3.0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = PumpAndDumpSettings(**overrides)
    events = known_events(args.data / "pumps.csv", args.event_gap_hours)
    slack = timedelta(minutes=args.slack_minutes)

    per_file, all_alerts, contract_alerts, labels = [], [], [], []
    began = time.perf_counter()
    for path in sorted(args.data.glob("*.csv.gz")):
        tape = load_tape(path)
        tick = time.perf_counter()
        alerts = detect_tape(tape, settings).sort(Finding.WINDOW_START)
        seconds = time.perf_counter() - tick
        file_events = events.filter(pl.col("file") == path.name)
        symbol = tape.get_column(Trade.SYMBOL)[0]
        contract_alerts.append(findings_to_alerts(alerts, {Pattern.PUMP_AND_DUMP.value: settings.model_dump()},
                                                  high=0.8, medium=0.5, max_evidence=50, model_version="rules"))
        labels.append(file_events.select(
            pl.format("{}#{}", pl.col("file"), pl.col("event")).alias(Label.EPISODE_ID),
            pl.lit(Pattern.PUMP_AND_DUMP.value).alias(Label.PATTERN), pl.lit(symbol).alias(Label.SYMBOL),
            pl.lit("").alias(Label.USER_IDS), pl.col("times").list.min().alias(Label.START),
            pl.col("times").list.max().alias(Label.END)).cast(LABEL_SCHEMA))
        alert_hits, event_found = score_file(alerts, file_events, slack)
        per_file.append({
            "file": path.name, "trades": tape.height,
            "days": tape.get_column(Trade.TIMESTAMP).dt.date().n_unique(),
            "events": file_events.height, "found": sum(event_found),
            "alerts": alerts.height, "true_alerts": sum(alert_hits), "false_alerts": alerts.height - sum(alert_hits),
            "detect_seconds": round(seconds, 2),
        })
        for row, hit in zip(alerts.iter_rows(named=True), alert_hits):
            all_alerts.append({"file": path.name, "hit": hit, "window_start": row[Finding.WINDOW_START].isoformat(),
                               "window_end": row[Finding.WINDOW_END].isoformat(), "score": round(row[Finding.SCORE], 3),
                               "explanation": row[Finding.EXPLANATION]})

    table = pl.DataFrame(per_file)
    totals = table.select(pl.col("trades", "events", "found", "alerts", "true_alerts", "false_alerts").sum())
    total = totals.row(0, named=True)
    recall = total["found"] / total["events"] if total["events"] else float("nan")
    precision = total["true_alerts"] / total["alerts"] if total["alerts"] else float("nan")
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(table)
        print(totals)
    print(f"event recall {recall:.3f} ({total['found']}/{total['events']}), "
          f"alert precision {precision:.3f} ({total['true_alerts']}/{total['alerts']}), "
          f"{time.perf_counter() - began:.1f} s")
    for alert in all_alerts:
        if not alert["hit"]:
            print(f"false: {alert['file']} {alert['window_start']} score {alert['score']}: {alert['explanation']}")
    report = {
        "rule": {"slack_minutes": args.slack_minutes, "event_gap_hours": args.event_gap_hours},
        "settings": settings.model_dump(), "files": per_file,
        "totals": {**total, "recall": recall, "precision": precision}, "alerts": all_alerts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    folder = args.out.with_suffix("")
    alerts_csv, _ = write_alerts(pl.concat(contract_alerts), folder)
    labels_csv = folder / "labels.csv"
    pl.concat(labels).with_columns(pl.col(Label.START, Label.END).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(
        labels_csv)
    print(f"wrote {args.out}; alerts and labels for `surveillance evaluate --alerts {alerts_csv} "
          f"--labels {labels_csv} --slack-minutes {args.slack_minutes:g}`")


if __name__ == "__main__":
    main()
