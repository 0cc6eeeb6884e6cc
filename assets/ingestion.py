"""Raw and validated trades and orders of one UTC day."""

import tempfile
from datetime import date
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetOut, Config, Failure, MetadataValue, Output, asset, multi_asset

from assets.checks import check_specs, contract_check, rejects_ratio_check
from assets.partitions import daily_partitions
from resources.database import DatabaseResource
from resources.settings import SettingsResource
from surveillance_pipeline.contract import ORDER_SCHEMA, REJECT_SCHEMA, TRADE_SCHEMA, Reject
from surveillance_pipeline.ingest.importer import ImportOptions
from surveillance_pipeline.ingest.landing import PartWriter, files_for_day, stage_raw_files, validate_staged
from surveillance_pipeline.quality import count_rejected_rows
from surveillance_pipeline.ingest.presets import ORDERS, TRADES


class RawFilesConfig(Config):
    """Where a day's files come from: the landing folder by default, or explicit paths."""

    paths: list[str] = []
    preset: str | None = None
    format: str | None = None
    symbol: str | None = None


def _staging(settings: SettingsResource, name: str, partition: str):
    """A temporary folder for an asset's Parquet parts; removed once the IO manager has stored the output."""
    cfg = settings.get()
    root = cfg.resolve(cfg.paths.warehouse_dir) / "_staging"
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f"{name}-{partition}-", dir=root)


def _raw(context: AssetExecutionContext, config: RawFilesConfig, settings: SettingsResource, kind: str):
    cfg = settings.get()
    day = date.fromisoformat(context.partition_key)
    landing = cfg.resolve(cfg.paths.landing_dir)
    paths = [Path(p) for p in config.paths] or files_for_day(landing, day, kind, cfg.partitions.landing_file_glob)
    options = ImportOptions(kind=kind, format=config.format, preset=config.preset, symbol=config.symbol,
                            mapping=dict(cfg.ingest.column_mapping))
    if not paths and kind == TRADES:
        # A day without its trade feed is an incident, not an empty day: fail loudly, store nothing.
        raise Failure(f"no trades files for {day}: put them in {landing / day.isoformat()} "
                      "(or name the files in the run config: ops.raw_trades.config.paths)")
    if not paths:
        context.log.warning(f"no {kind} files for {day} under {landing}: the stored {kind} are left as they are")
    # Staged in chunks and streamed into the IO manager's file: a large day never sits in memory whole.
    with _staging(settings, f"raw_{kind}", context.partition_key) as folder:
        parts = stage_raw_files(paths, options, cfg, Path(folder))
        yield Output(parts.scan(), metadata={"files": MetadataValue.json([str(p) for p in paths]),
                                             "rows_read": parts.rows})


@asset(partitions_def=daily_partitions, group_name="ingestion", kinds={"polars"})
def raw_trades(context: AssetExecutionContext, config: RawFilesConfig, settings: SettingsResource):
    """The day's trade files as read, columns mapped to the contract, values still unparsed strings."""
    yield from _raw(context, config, settings, TRADES)


@asset(partitions_def=daily_partitions, group_name="ingestion", kinds={"polars"})
def raw_orders(context: AssetExecutionContext, config: RawFilesConfig, settings: SettingsResource):
    """The day's order-event files as read, columns mapped to the contract, values still unparsed strings."""
    yield from _raw(context, config, settings, ORDERS)


def _validated(context: AssetExecutionContext, raw: pl.LazyFrame, kind: str, settings: SettingsResource,
               database: DatabaseResource):
    cfg = settings.get()
    day = date.fromisoformat(context.partition_key)
    db = database.get()
    existing = db.existing_trade_keys if kind == TRADES else db.existing_order_keys
    with _staging(settings, f"validated_{kind}", context.partition_key) as folder:
        accepted = PartWriter(Path(folder) / "accepted", TRADE_SCHEMA if kind == TRADES else ORDER_SCHEMA)
        rejects = PartWriter(Path(folder) / "rejects", REJECT_SCHEMA)
        validate_staged(raw, day, kind, cfg, accepted, rejects,
                        existing_keys=lambda keys: existing(keys, exclude_day=day))
        rejected_rows = count_rejected_rows(rejects.scan())
        reasons = (rejects.scan().group_by(Reject.FIELD, Reject.REASON).len()
                   .sort("len", descending=True).head(10).collect())
        yield contract_check(kind, accepted.scan())
        yield rejects_ratio_check(kind, accepted.rows, rejects.scan(), cfg.ingest.rejected_ratio_warn)
        yield Output(accepted.scan(), output_name=f"validated_{kind}", metadata={
            "rows_read": accepted.rows + rejected_rows, "rows_accepted": accepted.rows,
            "rows_rejected": rejected_rows})
        yield Output(rejects.scan(), output_name=f"{kind[:-1]}_rejects", metadata={
            "rejected_rows": rejected_rows,
            "top_reasons": MetadataValue.md("\n".join(
                f"- {r[Reject.FIELD]}: {r[Reject.REASON]} ({r['len']} rows)" for r in reasons.iter_rows(named=True)
            ) or "none"),
        })


@multi_asset(
    partitions_def=daily_partitions, group_name="ingestion", can_subset=False, check_specs=check_specs(TRADES),
    outs={
        "validated_trades": AssetOut(description="The day's trades that passed validation, typed to the contract.",
                                     kinds={"polars"}),
        "trade_rejects": AssetOut(description="Rejected trade rows: file, line, field and reason.",
                                  kinds={"polars"}),
    },
)
def validated_trades(context: AssetExecutionContext, raw_trades: pl.LazyFrame, settings: SettingsResource,
                     database: DatabaseResource):
    yield from _validated(context, raw_trades, TRADES, settings, database)


@multi_asset(
    partitions_def=daily_partitions, group_name="ingestion", can_subset=False, check_specs=check_specs(ORDERS),
    outs={
        "validated_orders": AssetOut(description="The day's order events that passed validation, typed.",
                                     kinds={"polars"}),
        "order_rejects": AssetOut(description="Rejected order rows: file, line, field and reason.",
                                  kinds={"polars"}),
    },
)
def validated_orders(context: AssetExecutionContext, raw_orders: pl.LazyFrame, settings: SettingsResource,
                     database: DatabaseResource):
    yield from _validated(context, raw_orders, ORDERS, settings, database)
