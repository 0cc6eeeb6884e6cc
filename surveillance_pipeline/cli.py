"""`surveillance`: the command line of the surveillance pipeline."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from enum import StrEnum
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from surveillance_pipeline.config import ConfigError, Settings, load_settings
from surveillance_pipeline.ingest.importer import ImportOptions, ValidationResult
from surveillance_pipeline.ingest.presets import PRESETS
from surveillance_pipeline.ingest.readers import InputFileError
from surveillance_pipeline.log import configure_logging

app = typer.Typer(help="Market-abuse surveillance for crypto exchanges.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
config_app = typer.Typer(help="Show or check the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
features_app = typer.Typer(help="The feature catalogue.", no_args_is_help=True)
app.add_typer(features_app, name="features")
market_app = typer.Typer(help="Exchange market data over MCP: our replay server.", no_args_is_help=True)
app.add_typer(market_app, name="market")
monitor_app = typer.Typer(help="Futures market monitoring over an exchange's MCP server.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
models_app = typer.Typer(help="Registered models (MLflow): list versions, roll the champion back.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def _settings(config: Path | None) -> Settings:
    if config is not None:  # everything started from here (Dagster resources included) reads this file
        os.environ["SURVEILLANCE_CONFIG"] = str(config.resolve())
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    configure_logging(settings.logging.level, settings.logging.json_lines)
    return settings


ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML settings file (default config/surveillance.yaml)")]


def _parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target or not source:
            err.print(f"[red]--map expects TARGET=SOURCE (e.g. price=px), got {pair!r}[/red]")
            raise typer.Exit(2)
        mapping[target.strip()] = source.strip()
    return mapping


def _check_preset(preset: str | None) -> None:
    if preset and preset not in PRESETS:
        err.print(f"[red]unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}[/red]")
        raise typer.Exit(2)


def _day_range(first_day: str | None, last_day: str | None) -> list[date | None]:
    """--from / --to as dates (None when not given), or exit 2 naming the bad value."""
    try:
        return [date.fromisoformat(d) if d else None for d in (first_day, last_day)]
    except ValueError as exc:
        err.print(f"[red]--from / --to: {escape(str(exc))} (expected YYYY-MM-DD)[/red]")
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                    TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)


def _print_result(result: ValidationResult, show: int) -> None:
    colour = {"ok": "green", "partial": "yellow"}.get(result.status, "red")
    out.print(f"[{colour}]{result.status}[/{colour}] {escape(result.summary())}")
    for line in result.reject_lines(show):
        out.print(f"  {escape(line)}")
    if result.rows_rejected and len(result.rejects) > show:
        out.print(f"  ... {result.rows_rejected - min(show, result.rows_rejected)} more rejected rows")
    if result.rejects_path:
        out.print(f"  rejected rows written to {result.rejects_path}")


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for trades.csv, orders.csv, labels.csv")],
    days: Annotated[int, typer.Option(min=1, help="number of days")] = 1,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 0,
    accounts: Annotated[int, typer.Option(min=10, help="background accounts")] = 200,
    symbols: Annotated[list[str] | None, typer.Option("--symbols", help="symbols (repeat the option)")] = None,
    start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD (UTC)")] = "2026-03-02",
    trades_per_day: Annotated[int, typer.Option(min=100, help="approximate background trades per day")] = 20_000,
    clean: Annotated[bool, typer.Option("--clean", help="background only, no abuse episodes")] = False,
) -> None:
    """Write a labelled synthetic scenario: trades.csv, orders.csv, labels.csv."""
    from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario, write_scenario

    spec_args = dict(days=days, seed=seed, accounts=accounts, start_date=date.fromisoformat(start),
                     clean=clean, trades_per_day=trades_per_day)
    if symbols:
        spec_args["symbols"] = tuple(s for item in symbols for s in item.split(",") if s)
    with err.status("generating scenario"):
        scenario = generate_scenario(ScenarioSpec(**spec_args))
        paths = write_scenario(scenario, out_dir)
    out.print(f"{scenario.trades.height:,} trades, {scenario.orders.height:,} order events, "
              f"{scenario.labels.height} labelled episodes")
    for name, path in paths.items():
        out.print(f"  {name}: {path}")


def _import_options(kind, fmt, preset, mapping, symbol, strict) -> ImportOptions:
    if preset and preset not in PRESETS:
        err.print(f"[red]unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}[/red]")
        raise typer.Exit(2)
    return ImportOptions(kind=kind.value if kind else None, format=fmt, preset=preset, mapping=_parse_mapping(mapping or []),
                         symbol=symbol, strict=strict, batch_rows=0)


class Kind(StrEnum):
    trades = "trades"
    orders = "orders"


KindOption = Annotated[Kind | None, typer.Option("--kind", help="trades or orders (default: from the preset)")]
FormatOption = Annotated[str | None, typer.Option("--format", help="csv, json, jsonl, xlsx or parquet")]
PresetOption = Annotated[str | None, typer.Option("--preset", help=f"column preset: {', '.join(PRESETS)}")]
MapOption = Annotated[list[str] | None, typer.Option("--map", help="column mapping TARGET=SOURCE (repeatable)")]
SymbolOption = Annotated[str | None, typer.Option("--symbol", help="market of a single-symbol file")]
StrictOption = Annotated[bool, typer.Option("--strict", help="reject the whole file if any row is invalid")]


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="trade or order files")],
    kind: KindOption = None, fmt: FormatOption = None, preset: PresetOption = None, mapping: MapOption = None,
    symbol: SymbolOption = None, strict: StrictOption = False, config: ConfigOption = None,
    show: Annotated[int, typer.Option(help="rejected rows to print per file")] = 10,
) -> None:
    """Validate files and store their valid rows; rejects go to a table and a CSV."""
    from surveillance_pipeline.ingest.service import import_file
    from surveillance_pipeline.storage.database import Database

    settings = _settings(config)
    options = _import_options(kind, fmt, preset, mapping, symbol, strict)
    database = Database(settings.database_url, pool_size=settings.database.pool_size)
    database.migrate()
    accepted = 0
    failed = False
    for path in files:
        try:
            with _progress() as bar:
                task = bar.add_task(f"importing {path.name}", total=None)
                result = import_file(path, options, settings, database,
                                     progress=lambda n: bar.update(task, completed=n))
        except InputFileError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            failed = True
            continue
        _print_result(result, show)
        accepted += result.rows_accepted
    out.print(f"stored in {database!r}")
    if accepted == 0 or failed:
        raise typer.Exit(1)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="trade or order files")],
    kind: KindOption = None, fmt: FormatOption = None, preset: PresetOption = None, mapping: MapOption = None,
    symbol: SymbolOption = None, strict: StrictOption = False, config: ConfigOption = None,
    show: Annotated[int, typer.Option(help="rejected rows to print per file")] = 10,
) -> None:
    """Check files against the data contract without storing anything."""
    from surveillance_pipeline.ingest.service import validate_file

    settings = _settings(config)
    options = _import_options(kind, fmt, preset, mapping, symbol, strict)
    bad = False
    for path in files:
        try:
            result = validate_file(path, options, settings)
        except InputFileError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            bad = True
            continue
        _print_result(result, show)
        bad = bad or result.rows_rejected > 0
    if bad:
        raise typer.Exit(1)


@app.command()
def presets() -> None:
    """List the column presets and what they read."""
    for preset in PRESETS.values():
        out.print(f"[bold]{preset.name}[/bold] ({preset.kind}): {preset.description}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where the demo scenario is written")] = Path("data/demo"),
    seed: Annotated[int, typer.Option(help="scenario seed")] = 7,
    config: ConfigOption = None,
) -> None:
    """Generate a small labelled day and materialise every asset for it on embedded defaults."""
    from surveillance_pipeline.demo import run_demo

    settings = _settings(config)
    run_demo(settings, settings.resolve(out_dir), seed, out)


@app.command()
def detect(
    trades: Annotated[list[Path], typer.Option("--trades", help="trade file (repeatable)")],
    orders: Annotated[list[Path] | None, typer.Option("--orders", help="order-event file (repeatable)")] = None,
    preset: PresetOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for alerts.csv and alerts.json")] = Path("alerts"),
    first_day: Annotated[str | None, typer.Option("--from", help="first UTC day (YYYY-MM-DD)")] = None,
    last_day: Annotated[str | None, typer.Option("--to", help="last UTC day (YYYY-MM-DD)")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the rule detectors on trade (and order) files, day by day; write alerts.csv and alerts.json."""
    from surveillance_pipeline.detectors.alerts import write_alerts
    from surveillance_pipeline.detectors.files import detect_files

    settings = _settings(config)
    _check_preset(preset)
    days = _day_range(first_day, last_day)
    try:
        result = detect_files(trades, orders or [], settings, preset, *days)
    except InputFileError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    for path, rows in result.rows.items():
        rejected = result.rejected.get(path, 0)
        out.print(f"{path}: {rows:,} valid rows" + (f", {rejected:,} rejected (see `surveillance validate`)"
                                                     if rejected else ""))
    csv_path, json_path = write_alerts(result.alerts, out_dir)
    counts = dict(result.alerts.group_by("pattern").len().sort("pattern").iter_rows()) if result.alerts.height else {}
    out.print(f"{len(result.days)} day(s), detectors {', '.join(result.ran) or 'none'}: "
              f"{result.alerts.height} alerts {counts} -> {csv_path}, {json_path}")


@app.command()
def analyze(
    trades: Annotated[list[Path], typer.Option("--trades", help="trade file (repeatable)")],
    orders: Annotated[list[Path] | None, typer.Option("--orders", help="order-event file (repeatable)")] = None,
    preset: PresetOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for alerts.csv, alerts.json, report.pdf, "
                                          "summary.json")] = Path("analysis"),
    first_day: Annotated[str | None, typer.Option("--from", help="first UTC day (YYYY-MM-DD)")] = None,
    last_day: Annotated[str | None, typer.Option("--to", help="last UTC day (YYYY-MM-DD)")] = None,
    keep_workspace: Annotated[bool, typer.Option(help="keep the run's private warehouse and database "
                                                 "(DIR/.analyze-*) for inspection")] = False,
    config: ConfigOption = None,
) -> None:
    """Run the whole asset graph (ingest, features, rules, models, alerts, report) on trade and order files:
    DIR/alerts.csv, alerts.json, report.pdf and summary.json. Exit code 0 even with zero alerts."""
    from surveillance_pipeline.analyze import AnalyzeError, analyze as run_analysis

    settings = _settings(config)
    _check_preset(preset)
    days = _day_range(first_day, last_day)
    try:
        result = run_analysis(trades, orders or [], out_dir, settings, preset, *days, keep_workspace=keep_workspace,
                              progress=lambda line: out.print(line, markup=False))
    except (InputFileError, AnalyzeError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    summary = result.summary
    for path, rows in summary["input"]["rows"].items():
        rejected = summary["input"]["rejected_rows"].get(path, 0)
        out.print(f"{path}: {rows:,} valid rows" + (f", {rejected:,} rejected" if rejected else ""))
    out.print(f"models: {escape(summary['models'])}")
    out.print(f"{len(result.days)} day(s): {summary['alerts']} alerts {summary['by_pattern']} "
              f"{summary['by_risk_level']} in {summary['seconds']} s")
    for name in ("alerts_csv", "alerts_json", "report", "summary"):
        out.print(f"  {result.files[name]}")


@app.command()
def backfill(
    first_day: Annotated[str, typer.Option("--from", help="first UTC day (YYYY-MM-DD)")],
    last_day: Annotated[str, typer.Option("--to", help="last UTC day (YYYY-MM-DD)")],
    concurrency: Annotated[int | None, typer.Option(help="partitions at a time (default batch.concurrency)")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the daily job over a range of days already landed: ingest all days in parallel, then features,
    rules and model scores in parallel, then alerts and reports day by day. Progress per partition."""
    from surveillance_pipeline.batch import backfill as run_backfill

    settings = _settings(config)
    try:
        first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    except ValueError as exc:
        err.print(f"[red]--from / --to: {escape(str(exc))} (expected YYYY-MM-DD)[/red]")
        raise typer.Exit(2) from None
    if last < first:
        err.print("[red]--to is before --from[/red]")
        raise typer.Exit(2)
    workers = concurrency or settings.batch.concurrency

    def show(run, done, total) -> None:
        state = "ok" if run.ok else f"[red]FAILED[/red] {escape(run.error)}"
        out.print(f"[{done}/{total}] {run.wave:<7} {run.day}  {run.seconds:6.1f} s  peak RSS {run.peak_rss_mb:6.0f} MB  "
                  f"{state}")

    out.print(f"backfilling {first}..{last} with {workers} worker(s)")
    result = run_backfill(first, last, workers, show)
    if result.failed:
        err.print(f"[red]{len(result.failed)} partition run(s) failed; later waves were not started[/red]")
        raise typer.Exit(1)
    out.print(f"{len(result.days)} day(s) done in {sum(r.seconds for r in result.runs):.0f} s of partition time")


class ReportKind(StrEnum):
    daily = "daily"
    account = "account"
    pattern = "pattern"


@app.command()
def report(
    kind: Annotated[ReportKind, typer.Argument(help="daily summary, account risk profile or pattern analysis")],
    first_day: Annotated[str, typer.Option("--from", help="first UTC day (YYYY-MM-DD)")],
    last_day: Annotated[str | None, typer.Option("--to", help="last UTC day (default: --from)")] = None,
    account: Annotated[str | None, typer.Option("--account", help="the account of an account report")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the PDF, CSV and JSON")] = Path("reports"),
    config: ConfigOption = None,
) -> None:
    """A report over stored days: alerts from the database, scores, features and trades from the warehouse."""
    from surveillance_pipeline.reports import report_on_demand
    from surveillance_pipeline.storage.database import Database

    settings = _settings(config)
    try:
        first = date.fromisoformat(first_day)
        last = date.fromisoformat(last_day) if last_day else first
    except ValueError as exc:
        err.print(f"[red]--from / --to: {escape(str(exc))} (expected YYYY-MM-DD)[/red]")
        raise typer.Exit(2) from None
    if last < first:
        err.print("[red]--to is before --from[/red]")
        raise typer.Exit(2)
    if kind == ReportKind.account and not account:
        err.print("[red]an account report needs --account ACCOUNT_ID[/red]")
        raise typer.Exit(2)
    database = Database(settings.database_url)
    try:
        database.migrate()
        files = report_on_demand(settings, database, kind.value, first, last, out_dir, account)
    finally:
        database.dispose()
    for name, path in files.items():
        out.print(f"{name}: {path}")


@app.command()
def evaluate(
    alerts_file: Annotated[Path, typer.Option("--alerts", help="alerts.csv or alerts.json (the alert contract)")],
    labels_file: Annotated[Path | None, typer.Option("--labels", help="labels.csv of the scenario")] = None,
    trades_file: Annotated[Path | None, typer.Option("--trades", help="trades file, counted for false alerts per 100k trades")] = None,
    trade_count: Annotated[int | None, typer.Option("--trade-count", min=1, help="number of trades, instead of --trades")] = None,
    clean: Annotated[bool, typer.Option("--clean", help="a clean scenario: no episodes, every alert is false")] = False,
    slack_minutes: Annotated[float | None, typer.Option("--slack-minutes", min=0.0, help="window slack (default from config)")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="JSON report (default: evaluation.json beside the alerts)")] = None,
    config: ConfigOption = None,
) -> None:
    """Score alerts against labelled episodes: recall, precision and alerts per episode, per pattern."""
    from surveillance_pipeline.contract import LABEL_SCHEMA, empty_frame
    from surveillance_pipeline.evaluation import EvaluationSettings, count_trades, evaluate as score, read_alerts, read_labels

    settings = _settings(config)
    if labels_file is None and not clean:
        err.print("[red]--labels is required (or --clean for a scenario without episodes)[/red]")
        raise typer.Exit(2)
    if trades_file is not None and trade_count is not None:
        err.print("[red]give --trades or --trade-count, not both[/red]")
        raise typer.Exit(2)
    if clean and trades_file is None and trade_count is None:
        err.print("[red]--clean reports false alerts per 100k trades: give --trades or --trade-count[/red]")
        raise typer.Exit(2)
    evaluation = settings.evaluation
    if slack_minutes is not None:
        evaluation = EvaluationSettings.model_validate({**evaluation.model_dump(), "slack_minutes": slack_minutes})
    try:
        alerts = read_alerts(alerts_file)
        labels = read_labels(labels_file) if labels_file is not None else empty_frame(LABEL_SCHEMA)
        if clean and labels.height:
            err.print(f"[red]error:[/red] {escape(str(labels_file))}: --clean expects no episodes, found {labels.height}")
            raise typer.Exit(1)
        if trades_file is not None:
            trade_count = count_trades(trades_file)
    except InputFileError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    report = score(alerts, labels, evaluation, trade_count)
    out.print(report.format_table(), markup=False)
    target = out_file or alerts_file.parent / "evaluation.json"
    document = {"inputs": {"alerts": str(alerts_file), "labels": None if labels_file is None else str(labels_file),
                           "trades": None if trades_file is None else str(trades_file), "clean": clean},
                **report.to_dict()}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n")
    out.print(f"wrote {target}", markup=False)


TrackingOption = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow store (default: services.mlflow_tracking_uri / MLFLOW_TRACKING_URI)")]


def _fmt_metric(value) -> str:
    return "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


@app.command()
def train(
    scenario_days: Annotated[int | None, typer.Option("--scenario-days", help="days of generated labelled "
                                                      "scenarios (default models.training.scenario_days)")] = None,
    seed: Annotated[int, typer.Option(help="scenario seed")] = 7,
    report_dir: Annotated[Path | None, typer.Option("--report", help="folder of the performance report "
                                                    "(default <paths.models_dir>/training-<UTC time>)")] = None,
    tracking_uri: TrackingOption = None,
    config: ConfigOption = None,
) -> None:
    """Generate labelled scenarios, train the three models and their ensemble, register them in MLflow
    (a new version becomes champion only if it beats the current one) and write the performance report."""
    from datetime import datetime, timezone

    from surveillance_pipeline.ml.base import ModelError
    from surveillance_pipeline.ml.dataset import TrainingDataError
    from surveillance_pipeline.ml.service import registry_for, train_on_scenarios

    settings = _settings(config)
    if scenario_days is not None and scenario_days < 3:
        err.print("[red]--scenario-days must be at least 3 (train, validation and test days)[/red]")
        raise typer.Exit(2)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = report_dir or settings.resolve(settings.paths.models_dir) / f"training-{stamp}"
    registry = registry_for(settings, tracking_uri)
    out.print(f"training on {scenario_days or settings.models.training.scenario_days} days of generated "
              f"scenarios (seed {seed}); MLflow: {registry.tracking_uri}")
    try:
        outcome = train_on_scenarios(settings, registry, scenario_days, seed, folder)
    except (ModelError, TrainingDataError) as exc:
        err.print(f"[red]training failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    _print_training(outcome)


def _print_training(outcome) -> None:
    result = outcome.result
    out.print(f"{'model':<18} {'split':<11} {'precision':>9} {'recall':>7} {'F1':>6} {'AUC-ROC':>8} {'AP':>6}")
    for row in result.metric_rows():
        out.print(f"{row['model']:<18} {row['split']:<11} {_fmt_metric(row['precision']):>9} "
                  f"{_fmt_metric(row['recall']):>7} {_fmt_metric(row['f1']):>6} {_fmt_metric(row['auc_roc']):>8} "
                  f"{_fmt_metric(row['average_precision']):>6}")
    out.print(f"selected on validation ({result.metric}): {result.selected}; ensemble weights "
              f"{result.models['ensemble'].details.get('weights')}")
    recall = result.pattern_recall("test")
    if recall:
        kinds = list(result.models)
        out.print("recall per pattern on the test days (abusive account-days found / labelled):")
        out.print(f"{'pattern':<20} " + " ".join(f"{k:>17}" for k in kinds))
        table = {(r["pattern"], r["model"]): r for r in recall}
        for pattern in sorted({r["pattern"] for r in recall}):
            cells = [table.get((pattern, k)) for k in kinds]
            out.print(f"{pattern:<20} " + " ".join(f"{c['found']:>6}/{c['account_days']:<4} {c['recall']:>5.2f}"
                                                  if c else f"{'':>17}" for c in cells))
    for kind, reason in result.skipped.items():
        out.print(f"[yellow]not trained[/yellow] {kind}: {escape(reason)}")
    for registration in outcome.registrations.values():
        state = "champion" if registration.promoted else f"champion stays v{registration.champion_version}"
        out.print(f"registered {registration.name} v{registration.version} ({state}): {escape(registration.reason)}")
    if outcome.report:
        out.print(f"report: {outcome.report['pdf']} (+ metrics.csv, metrics.json, roc.png, pr.png)")


@models_app.command("list")
def models_list(tracking_uri: TrackingOption = None, config: ConfigOption = None) -> None:
    """Every registered version of the four models, which one is champion, and its validation figure."""
    from surveillance_pipeline.ml.service import registry_for

    registry = registry_for(_settings(config), tracking_uri)
    rows = registry.describe()
    if not rows:
        out.print(f"no registered models in {registry.tracking_uri}: run `surveillance train`")
        return
    for row in rows:
        mark = "*" if row["champion"] else " "
        out.print(f"{mark} {row['name']:<32} v{row['version']:<4} validation AP "
                  f"{_fmt_metric(row['validation_average_precision']):>6}  {escape(row['gate'])}")
    out.print("* = champion")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="isolation-forest | autoencoder | random-forest | ensemble "
                                        "(or the full registered name)")],
    to_version: Annotated[int | None, typer.Option("--to", help="the version to make champion (default: the "
                                                   "champion before the current one)")] = None,
    tracking_uri: TrackingOption = None,
    config: ConfigOption = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from surveillance_pipeline.ml.base import ModelError
    from surveillance_pipeline.ml.service import registry_for

    registry = registry_for(_settings(config), tracking_uri)
    try:
        previous, current = registry.rollback(name, to_version)
    except ModelError as exc:
        err.print(f"[red]rollback failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    out.print(f"{registry.model_name(name)}: champion v{previous} -> v{current}")


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


@market_app.command("serve")
def market_serve(
    data: Annotated[Path | None, typer.Option("--data", help="a replay folder (Parquet per table); default: the real "
                                              "samples in ../shared/data/real_samples")] = None,
    transport: Annotated[Transport, typer.Option(help="stdio, or streamable HTTP at http://HOST:PORT/mcp")] = Transport.stdio,
    host: Annotated[str, typer.Option(help="HTTP bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8765,
) -> None:
    """An MCP server with CoinEx's tool names, arguments and envelopes, answering from recorded market data."""
    from surveillance_pipeline.market.replay import ReplayStore, build_server
    from surveillance_pipeline.market.samples import from_real_samples

    try:
        store = ReplayStore.load(data) if data else from_real_samples(
            Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples")
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    server = build_server(store)
    if transport == Transport.stdio:
        server.run("stdio")
    else:
        err.print(f"replay MCP server on http://{host}:{port}/mcp (markets: "
                  f"{', '.join(store.markets('futures') + store.markets('spot'))}); Ctrl-C stops it")
        server.run("streamable-http", host=host, port=port)


@market_app.command("generate")
def market_generate(
    out_dir: Annotated[Path, typer.Option("--out", help="replay folder to write (Parquet per table + labels.csv)")],
    days: Annotated[int, typer.Option(help="days of minute data")] = 3,
    seed: Annotated[int, typer.Option(help="scenario seed")] = 0,
    clean: Annotated[bool, typer.Option(help="no abuse episodes")] = False,
) -> None:
    """Generated futures markets with labelled abuse (funding, liquidation, basis, open-interest patterns)."""
    from surveillance_pipeline.market.futures_scenarios import generate_futures

    scenario = generate_futures(days=days, seed=seed, clean=clean)
    scenario.store.save(out_dir)
    tmp = out_dir / ".labels.csv.tmp"
    scenario.labels.with_columns(pl_iso("start"), pl_iso("end")).write_csv(tmp)
    tmp.replace(out_dir / "labels.csv")
    out.print(f"{days} day(s), {len(scenario.store.markets('futures'))} futures markets, {scenario.labels.height} "
              f"labelled episodes -> {out_dir}")


def pl_iso(column: str):
    import polars as pl

    return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")


@market_app.command("detect")
def market_detect(
    data: Annotated[Path, typer.Option("--data", help="a replay folder (surveillance market generate, or collected)")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for alerts.csv and alerts.json")] = Path("alerts"),
) -> None:
    """The futures detectors on recorded market data: alerts.csv and alerts.json (market-level)."""
    from surveillance_pipeline.detectors.alerts import write_alerts
    from surveillance_pipeline.market.futures_detectors import futures_alerts
    from surveillance_pipeline.market.replay import ReplayStore

    try:
        store = ReplayStore.load(data)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    alerts = futures_alerts(store.tables)
    csv_path, json_path = write_alerts(alerts, out_dir)
    counts = dict(alerts.group_by("pattern").len().sort("pattern").iter_rows()) if alerts.height else {}
    out.print(f"{alerts.height} futures alerts {counts} -> {csv_path}, {json_path}")


def _mcp_url(mcp: str | None, settings: Settings) -> str:
    url = mcp or settings.market.mcp_url
    if not url:
        err.print("[red]no MCP server: give --mcp URL or set market.mcp_url / EXCHANGE_MCP_URL[/red]")
        raise typer.Exit(2)
    return url


def _snapshot_db(db: str | None, settings: Settings):
    if not db:
        return None
    from surveillance_pipeline.storage.database import Database

    database = Database(settings.database_url if db == "config" else db)
    database.migrate()
    return database


@monitor_app.command("run")
def monitor_run(
    once: Annotated[bool, typer.Option("--once", help="one pass (the loop: `monitor start`)")] = False,
    mcp: Annotated[str | None, typer.Option("--mcp", help="the MCP server (streamable HTTP URL); default "
                                            "market.mcp_url / EXCHANGE_MCP_URL")] = None,
    markets: Annotated[str | None, typer.Option("--markets", help="comma-separated futures markets; default: all "
                                                "the server lists")] = None,
    first: Annotated[str | None, typer.Option("--from", help="window start (ISO-8601 UTC); default 24 h before --to")] = None,
    last: Annotated[str | None, typer.Option("--to", help="window end (ISO-8601 UTC); default now")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for alerts.csv and alerts.json")] = Path("monitor"),
    db: Annotated[str | None, typer.Option("--db", help="a database with the ticker / order-book snapshots the "
                                           "sensor or `monitor start --db` stored (open-interest history); "
                                           "'config' for the configured one")] = None,
    kline_limit: Annotated[int, typer.Option(help="1-minute k-lines asked per market (the price path); CoinEx "
                                             "answers at most 1000, the latest ~16.7 h")] = 1000,
    config: ConfigOption = None,
) -> None:
    """Poll the MCP server's history tools over a window, run the futures detectors, write the alerts."""
    from datetime import datetime, timezone

    from surveillance_pipeline.detectors.alerts import write_alerts
    from surveillance_pipeline.market.client import MarketDataClient, MarketDataError
    from surveillance_pipeline.market.envelope import ExchangeToolError
    from surveillance_pipeline.market.monitor import monitor_once

    settings = _settings(config)
    if not once:
        err.print("[red]`monitor run` makes one pass (--once); the continuous loop is `surveillance monitor start`"
                  "[/red]")
        raise typer.Exit(2)
    url = _mcp_url(mcp, settings)

    def moment(text: str | None):
        if not text:
            return None
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    try:
        window = (moment(first), moment(last))
    except ValueError as exc:
        err.print(f"[red]--from / --to: {escape(str(exc))} (expected ISO-8601)[/red]")
        raise typer.Exit(2) from None
    try:
        result = monitor_once(MarketDataClient(url=url), [m.strip() for m in markets.split(",")] if markets else None,
                              *window, settings.market.quote, db=_snapshot_db(db, settings), kline_limit=kline_limit)
    except (MarketDataError, ExchangeToolError) as exc:
        err.print(f"[red]monitoring failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    csv_path, json_path = write_alerts(result.alerts, out_dir)
    counts = dict(result.alerts.group_by("pattern").len().sort("pattern").iter_rows()) if result.alerts.height else {}
    out.print(f"{len(result.markets)} market(s), {result.window[0]:%Y-%m-%d %H:%M} to {result.window[1]:%Y-%m-%d %H:%M} "
              f"UTC, {result.calls} MCP calls in {result.seconds:.1f} s: {result.alerts.height} alerts {counts}")
    coverage = (f" (open-interest snapshots cover "
                f"{', '.join(f'{m} {c:.0%}' for m, c in sorted(result.oi_coverage.items()))} of the window)"
                if result.oi_coverage else "")
    out.print(f"not assessable over MCP history: {', '.join(result.not_assessed) or 'none'}{coverage}")
    for tool, message in result.unavailable.items():
        out.print(f"unavailable from the source: {tool}: {escape(message)}")
    out.print(f"-> {csv_path}, {json_path}")


@monitor_app.command("start")
def monitor_start(
    mcp: Annotated[str | None, typer.Option("--mcp", help="the MCP server URL; default market.mcp_url")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="alerts.json, status.json and the pid file")] = Path("monitor"),
    interval: Annotated[float, typer.Option(help="seconds between checks of an ordinary market")] = 300.0,
    max_concurrent: Annotated[int, typer.Option(help="markets checked at once")] = 4,
    window: Annotated[float, typer.Option(help="seconds a check covers (read with the trailing day before it)")] = 3600.0,
    db: Annotated[str | None, typer.Option("--db", help="store a ticker and order-book snapshot of every market "
                                           "each minute in this database and judge open interest from them; "
                                           "'config' for the configured one")] = None,
    cycles: Annotated[int | None, typer.Option(help="stop after this many cycles (default: until stopped)")] = None,
    spot: Annotated[bool, typer.Option("--spot/--no-spot", help="spot markets too: their polled public tape, "
                                       "checked for pump-and-dump")] = True,
    config: ConfigOption = None,
) -> None:
    """Run the monitoring loop in the foreground until `surveillance monitor stop` (or Ctrl-C)."""
    from surveillance_pipeline.market.loop import LoopSettings, MonitoringLoop, client_factory

    settings = _settings(config)
    url = _mcp_url(mcp, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    loop = MonitoringLoop(client_factory(url), out_dir, LoopSettings(base_interval_s=interval,
                                                                     max_concurrent=max_concurrent, window_s=window,
                                                                     spot=spot),
                          db=_snapshot_db(db, settings))
    out.print(f"monitoring {url}: status in {out_dir / 'status.json'}, alerts in {out_dir / 'alerts.json'}")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the loop like `monitor stop`
        loop.run(max_cycles=cycles)
    out.print(f"stopped after {loop.cycles} cycle(s)")


@monitor_app.command("stop")
def monitor_stop(out_dir: Annotated[Path, typer.Option("--out", help="the loop's folder")] = Path("monitor")) -> None:
    """Stop the loop writing to --out."""
    from surveillance_pipeline.market.loop import stop

    pid = stop(out_dir)
    if pid is None:
        err.print(f"no monitoring loop is running for {out_dir}")
        raise typer.Exit(1)
    out.print(f"sent SIGTERM to the monitoring loop (pid {pid})")


@monitor_app.command("status")
def monitor_status(out_dir: Annotated[Path, typer.Option("--out", help="the loop's folder")] = Path("monitor")) -> None:
    """Per market: risk level, checks, failures, latency, alerts, next check; totals."""
    from surveillance_pipeline.market.loop import read_status

    status = read_status(out_dir)
    if status is None:
        err.print(f"no status in {out_dir}: the loop has not run there")
        raise typer.Exit(1)
    out.print(f"cycle {status['cycles']}, updated {status['updated_at']}: {status['totals']}")
    for market, state in status["markets"].items():
        out.print(f"  {market:<12} risk {state['risk_level']:<6} checks {state['checks']:>4} failures "
                  f"{state['failures']:>3} alerts {state['alerts']:>4} latency {state['latency_s']:.2f} s "
                  f"interval {state['interval_s']:.0f} s {escape(state['last_error'])} {escape(state.get('note', ''))}")
    totals = status["totals"]
    for name in ("snapshot_error", "cycle_error"):
        if totals.get(name):
            out.print(f"  last {name.replace('_', ' ')}: {escape(totals[name])}")


@features_app.command("docs")
def features_docs(
    out_file: Annotated[Path, typer.Option("--out", help="where the table is written")] = Path("docs/FEATURES.md"),
) -> None:
    """Write the table of every feature, its unit and meaning (docs/FEATURES.md)."""
    from surveillance_pipeline.features.catalog import features_markdown

    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(features_markdown())
    out.print(f"wrote {out_file}")


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (file + environment overrides) as JSON."""
    settings = _settings(config)
    json.dump(settings.model_dump(mode="json"), sys.stdout, indent=2)
    sys.stdout.write("\n")


@config_app.command("validate")
def config_validate(config: ConfigOption = None) -> None:
    """Check the configuration; exit 2 naming the bad key when it is invalid."""
    settings = _settings(config)
    out.print(f"configuration valid (database {settings.database_url})")


if __name__ == "__main__":
    app()
