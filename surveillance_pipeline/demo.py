"""`make demo`: a small labelled day through every asset that exists, on embedded defaults."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
from rich.console import Console

from surveillance_pipeline.config import Settings
from surveillance_pipeline.evaluation import evaluate
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, write_scenario
from surveillance_pipeline.storage.database import Database

# Rows a real feed gets wrong now and then; the demo shows them rejected with their line and reason.
BROKEN_TRADE_ROWS = (
    "demo-bad-1,2026-03-02T10:00:00Z,BTCUSDT,buy,-5,0.1,,,,,spot,,\n",
    "demo-bad-2,2026-03-02T10:00:01Z,BTCUSDT,hold,60000,0.1,,,,,spot,,\n",
    "demo-bad-3,yesterday,BTCUSDT,sell,60000,0.1,,,,,spot,,\n",
)


def _land(source: Path, target: Path, extra_rows: tuple[str, ...] = ()) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    if extra_rows:
        with open(tmp, "a", encoding="utf-8") as handle:
            handle.writelines(extra_rows)
    os.replace(tmp, target)


def run_demo(settings: Settings, out_dir: Path, seed: int, console: Console) -> None:
    from surveillance_pipeline.definitions import run_daily_batch

    # The same crowd as the models' training days (models.training): 2,000 accounts, 20,000 trades.
    spec = ScenarioSpec(days=1, seed=seed, accounts=settings.models.training.scenario_accounts,
                        trades_per_day=settings.models.training.scenario_trades_per_day)
    day = spec.start_date.isoformat()
    console.print(f"[bold]1. generating a labelled day[/bold] ({day}, seed {seed})")
    scenario = generate_scenario(spec)
    paths = write_scenario(scenario, out_dir)
    console.print(f"   {scenario.trades.height:,} trades, {scenario.orders.height:,} order events, "
                  f"{scenario.labels.height} labelled episodes -> {out_dir}")

    labels_dir = settings.resolve(settings.paths.labels_dir)
    _land(paths["labels"], labels_dir / f"{day}.csv")  # what the weekly retraining learns from

    from surveillance_pipeline.ml.service import registry_for, train_on_scenarios

    registry = registry_for(settings)
    if registry.champion_version("ensemble") is None:
        report_dir = settings.resolve(settings.paths.models_dir) / "initial-training"
        console.print(f"[bold]   no champion model in {registry.tracking_uri}:[/bold] initial training on "
                      f"{settings.models.training.scenario_days} generated days (`surveillance train`)")
        outcome = train_on_scenarios(settings, registry, seed=seed + 1000, report_dir=report_dir)
        for row in outcome.result.metric_rows():
            if row["split"] == "test":
                console.print(f"   test {row['model']:<17} precision {_fmt(row['precision'])} recall "
                              f"{_fmt(row['recall'])} AUC {_fmt(row['auc_roc'])}")
        console.print(f"   registered: {', '.join(f'{r.name} v{r.version}' for r in outcome.registrations.values())}"
                      f"; report {outcome.report.get('pdf')}")
    else:
        console.print(f"   champion ensemble v{registry.champion_version('ensemble')} in {registry.tracking_uri}")

    landing = settings.resolve(settings.paths.landing_dir) / day
    _land(paths["trades"], landing / "trades.csv", BROKEN_TRADE_ROWS)
    _land(paths["orders"], landing / "orders.csv")
    console.print(f"[bold]2. landed[/bold] trades.csv (+{len(BROKEN_TRADE_ROWS)} broken rows) and orders.csv in {landing}")

    console.print(f"[bold]3. materialising partition {day}[/bold] (raw -> validated -> stored -> features -> rule detections -> model scores -> alerts -> reports, with asset checks)")
    result = run_daily_batch(day)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        rows = mat.metadata.get("rows") or mat.metadata.get("rows_stored")
        shown = f"{rows.value:,} rows" if rows is not None else ""
        where = mat.metadata.get("path")
        console.print(f"   {mat.asset_key.to_user_string():<18} {shown:>14}  {where.value if where else ''}")
    for check in result.get_asset_check_evaluations():
        status = "passed" if check.passed else f"FAILED ({check.severity.value})"
        console.print(f"   check {check.check_name:<28} {status}")

    rejects = pl.read_parquet(settings.resolve(settings.paths.warehouse_dir) / "trade_rejects" / f"{day}.parquet")
    for row in rejects.head(5).iter_rows(named=True):
        console.print(f"   rejected {Path(row['source']).name}:{row['line']}: {row['field']}: {row['reason']}")
    database = Database(settings.database_url)
    console.print(f"[bold]4. stored[/bold] in {database!r}: " +
                  ", ".join(f"{table} {count:,}" for table, count in database.counts().items()))
    database.dispose()
    home = os.environ.get("DAGSTER_STORAGE_DIR") or os.environ.get("DAGSTER_HOME") or "(a temporary instance)"
    console.print(f"   Dagster run history: {home}; `make dev` shows the assets and this run in the UI")

    rules = pl.read_parquet(settings.resolve(settings.paths.warehouse_dir) / "rule_detections" / f"{day}.parquet")
    by_pattern = dict(rules.group_by("pattern").len().sort("pattern").iter_rows()) if rules.height else {}
    console.print(f"[bold]5. rule detections[/bold]: {rules.height} rule alerts {by_pattern}")

    scores = pl.read_parquet(settings.resolve(settings.paths.warehouse_dir) / "model_scores" / f"{day}.parquet")
    flagged = scores.filter(pl.col("anomalous"))
    console.print(f"[bold]6. model scores[/bold]: {scores.height} account-days, {flagged.height} at or above the "
                  f"ensemble threshold (source: {scores['model_source'][0] if scores.height else 'n/a'}, "
                  f"models {scores['models'][0] if scores.height else 'n/a'})")
    from surveillance_pipeline.ml.dataset import account_day_labels

    abusive = set(account_day_labels(scenario.labels).get_column("account_id").to_list())
    for row in scores.head(8).iter_rows(named=True):
        mark = "labelled abusive" if row["account_id"] in abusive else ""
        console.print(f"   {row['account_id']:<10} score {row['score']:.3f}  {row['top_features']:<70} {mark}")
    top = scores.head(max(len(abusive), 1))
    hits = top.filter(pl.col("account_id").is_in(list(abusive))).height
    console.print(f"   of the {len(abusive)} labelled abusive accounts, {hits} are among the top {top.height} scores")

    alerts = pl.read_parquet(settings.resolve(settings.paths.warehouse_dir) / "alerts" / f"{day}.parquet")
    exported = settings.resolve(settings.paths.alerts_dir) / day
    console.print(f"[bold]7. alerts[/bold] (rules + models, `engine:` settings): {alerts.height} -> "
                  f"{exported / 'alerts.csv'}, alerts.json and the database")
    for row in alerts.sort("risk_level", "score", descending=[False, True]).head(6).iter_rows(named=True):
        console.print(f"   {row['risk_level']:<6} {row['score']:.2f} {row['pattern']:<17} {row['symbol']:<8} "
                      f"[{row['sources']}] {row['explanation'][:220]}", markup=False, highlight=False)
    report = evaluate(alerts, scenario.labels, settings.evaluation, trade_count=scenario.trades.height)
    console.print("   against the day's labels (`surveillance evaluate`):")
    for line in report.format_table().splitlines():
        console.print(f"   {line}", markup=False, highlight=False)

    reports = settings.resolve(settings.paths.reports_dir) / day
    pdfs = sorted(reports.glob("*.pdf"))
    console.print(f"[bold]8. reports[/bold] in {reports}: " + ", ".join(p.name for p in pdfs))
    console.print(f"   the daily summary: {reports / 'daily_summary.pdf'}; any period on demand with "
                  "`surveillance report daily|account|pattern --from D --to D`")

    _futures_monitoring(out_dir, seed, console)


def _futures_monitoring(out_dir: Path, seed: int, console: Console) -> None:
    """Generated futures markets served by our replay MCP server over streamable HTTP; one monitoring pass."""
    import socket
    import subprocess
    import sys
    from datetime import UTC, datetime

    from surveillance_pipeline.detectors.alerts import write_alerts
    from surveillance_pipeline.market.client import MarketDataClient
    from surveillance_pipeline.market.futures_scenarios import generate_futures
    from surveillance_pipeline.market.monitor import monitor_once

    scenario = generate_futures(days=3, seed=seed)
    folder = out_dir / "futures"
    scenario.store.save(folder)
    scenario.labels.write_csv(folder / "labels.csv")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    server = subprocess.Popen([sys.executable, "-m", "surveillance_pipeline.cli", "market", "serve", "--data",
                               str(folder), "--transport", "http", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = MarketDataClient(url=url, retries=20, backoff_seconds=0.2)
        console.print(f"[bold]9. futures monitoring[/bold]: replay MCP server on {url} ({scenario.labels.height} "
                      f"labelled episodes in 3 days of 3 generated perpetuals), one pass over its history tools")
        # our replay answers all three days of 1-minute k-lines (CoinEx's server: the latest 1000)
        result = monitor_once(client, start=datetime(2026, 3, 2, tzinfo=UTC), end=datetime(2026, 3, 4, 23, 59, tzinfo=UTC),
                              kline_limit=3 * 1440)
    finally:
        server.terminate()
        server.wait(timeout=10)
    csv_path, _ = write_alerts(result.alerts, out_dir / "futures_alerts")
    console.print(f"   {result.calls} MCP calls in {result.seconds:.1f} s: {result.alerts.height} alerts -> {csv_path}")
    for row in result.alerts.sort("window_start").head(4).iter_rows(named=True):
        console.print(f"   {row['risk_level']:<6} {row['pattern']:<26} {row['explanation'][:150]}", markup=False,
                      highlight=False)
    console.print(f"   not assessable in one pass without stored snapshots (no MCP tool has open-interest "
                  f"history; the sensor and `monitor start --db` store it): {', '.join(result.not_assessed)}")
    report = evaluate(result.alerts, scenario.labels.filter(~pl.col("pattern").is_in(result.not_assessed)))
    for line in report.format_table().splitlines():
        console.print(f"   {line}", markup=False, highlight=False)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"

