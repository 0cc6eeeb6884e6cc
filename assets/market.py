"""Futures market data collected from the exchange's MCP server, one UTC day per partition."""
from datetime import date

import polars as pl
from dagster import AssetExecutionContext, BackfillPolicy, MetadataValue, Output, asset

from assets.partitions import daily_partitions
from resources.database import DatabaseResource
from resources.market import MarketDataResource
from resources.settings import SettingsResource
from surveillance_pipeline.market.collect import SnapshotCache, collect_day, futures_markets, save_market_day


@asset(partitions_def=daily_partitions, group_name="market", kinds={"mcp", "sqlalchemy"},
       backfill_policy=BackfillPolicy.single_run())
def futures_market_data(context: AssetExecutionContext, settings: SettingsResource, database: DatabaseResource,
                        market_data: MarketDataResource):
    """Funding rates, premium index, basis and liquidations of the day per futures market (history tools of the
    MCP server), plus ticker and order-book snapshots, into the futures_* and market_snapshots tables
    (replacing the day's earlier rows); the latest ticker per market in Redis when REDIS_URL is set."""
    cfg = settings.get()
    client = market_data.client()
    markets = cfg.market.markets or futures_markets(client, cfg.market.quote)
    cache = SnapshotCache(cfg.services.redis_url, cfg.market.snapshot_ttl_seconds)
    if not cache.enabled:
        context.log.info(cache.reason)
    rows, unavailable = [], {}
    for key in context.partition_keys:
        batch = collect_day(client, markets, date.fromisoformat(key), cfg.market.quote)
        counts = save_market_day(database.get(), batch)
        cached = cache.put(batch)
        unavailable.update(batch.unavailable)
        rows += [{"date": date.fromisoformat(key), "table": table, "rows": n} for table, n in counts.items()]
        context.log.info(f"{key}: {counts}; cached {cached} tickers")
    table = pl.DataFrame(rows, schema={"date": pl.Date, "table": pl.String, "rows": pl.Int64})
    return Output(table, metadata={
        "source": client.source, "markets": MetadataValue.json(markets),
        "rows_by_table": MetadataValue.json({t: int(n) for t, n in table.group_by("table").agg(pl.col("rows").sum()).iter_rows()}),
        "unavailable": MetadataValue.json(unavailable), "mcp_calls": client.calls,
        "mcp_failed_calls": client.failed_calls, "redis_cache": "on" if cache.enabled else cache.reason})
