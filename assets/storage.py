"""The validated day written to the application database, idempotently per partition."""

from datetime import date

import polars as pl
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, asset

from assets.partitions import daily_partitions
from resources.database import DatabaseResource
from resources.settings import SettingsResource
from surveillance_pipeline.quality import count_rejected_rows
from surveillance_pipeline.ingest.presets import ORDERS, TRADES


def _store(context: AssetExecutionContext, kind: str, accepted: pl.LazyFrame, rejects: pl.LazyFrame,
           database: DatabaseResource, batch_rows: int) -> MaterializeResult:
    db = database.get()
    day = date.fromisoformat(context.partition_key)
    replace = db.replace_trades_partition if kind == TRADES else db.replace_orders_partition
    insert = db.insert_trades if kind == TRADES else db.insert_orders
    rejected = count_rejected_rows(rejects)
    batches = accepted.collect_batches(chunk_size=batch_rows)
    first = next(batches, None)
    if first is None and rejected == 0:
        # Nothing arrived for the day (e.g. no order feed): keep what is stored rather than wipe it.
        return MaterializeResult(metadata={"rows_stored": 0, "rows_rejected": 0, "skipped": "no rows for the day"})
    # One transaction: the partition's rows, the import record and its rejects land together or not at all.
    with db.transaction() as conn:
        db.forget_partition_imports(day, kind, conn=conn)
        import_id = db.start_import(f"dagster partition {day}", kind, partition_date=day, conn=conn)
        written = replace(day, first if first is not None else accepted.head(0).collect(), import_id=import_id,
                          conn=conn)
        for batch in batches:  # the rest of the day, chunk by chunk (memory bounded by one chunk)
            written += insert(batch, import_id=import_id, conn=conn)
        for batch in rejects.collect_batches(chunk_size=batch_rows):
            db.insert_rejects(import_id, batch, conn=conn)
        db.finish_import(import_id, written + rejected, written, rejected,
                         "partial" if rejected else ("ok" if written else "empty"), conn=conn)
    return MaterializeResult(metadata={"rows_stored": written, "rows_rejected": rejected, "import_id": import_id,
                                       "database": repr(db)})


@asset(partitions_def=daily_partitions, group_name="storage", kinds={"sqlalchemy"},
       ins={"validated_trades": AssetIn(), "trade_rejects": AssetIn()})
def stored_trades(context: AssetExecutionContext, validated_trades: pl.LazyFrame, trade_rejects: pl.LazyFrame,
                  database: DatabaseResource, settings: SettingsResource) -> MaterializeResult:
    """The `trades` table's rows for the day: the partition is replaced as a whole, in one transaction."""
    return _store(context, TRADES, validated_trades, trade_rejects, database, settings.get().ingest.batch_rows)


@asset(partitions_def=daily_partitions, group_name="storage", kinds={"sqlalchemy"},
       ins={"validated_orders": AssetIn(), "order_rejects": AssetIn()})
def stored_orders(context: AssetExecutionContext, validated_orders: pl.LazyFrame, order_rejects: pl.LazyFrame,
                  database: DatabaseResource, settings: SettingsResource) -> MaterializeResult:
    """The `orders` table's rows for the day: the partition is replaced as a whole, in one transaction."""
    return _store(context, ORDERS, validated_orders, order_rejects, database, settings.get().ingest.batch_rows)
