"""Polls the exchange's MCP server and requests a collection run when a futures market has new data; stores a
ticker and order-book snapshot of every market on each tick (the open-interest and book history)."""
import json
from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from assets.jobs import futures_collection_job
from resources.database import DatabaseResource
from resources.market import MarketDataResource
from resources.settings import SettingsResource
from surveillance_pipeline.market.collect import SnapshotCache, futures_markets, save_snapshots, take_snapshots
from surveillance_pipeline.market.tools import base_of


@sensor(job=futures_collection_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Each tick asks the MCP server for every futures market's newest funding time and trade; "
                    "new data since the cursor requests a run of that day's futures_market_data partition. Every "
                    "tick also stores a ticker and order-book snapshot of each market: the open-interest history "
                    "the futures detectors judge (no MCP tool has one). An unreachable server fails the tick "
                    "(visible in the UI); the next tick tries again.")
def futures_market_sensor(context: SensorEvaluationContext, settings: SettingsResource,
                          market_data: MarketDataResource, database: DatabaseResource):
    cfg = settings.get()
    client = market_data.client()
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    markets = cfg.market.markets or futures_markets(client, cfg.market.quote)
    latest: dict[str, int] = {}
    for market in markets:
        base = base_of(market, cfg.market.quote)
        funding = client.get_funding_rate(base, cfg.market.quote)
        deals = client.get_deals(base, cfg.market.quote, "futures", limit=1)
        times = [t for t in (funding["latest_funding_time"].max() if funding.height else None,
                             deals["created_at"].max() if deals.height else None) if t is not None]
        if times:
            latest[market] = int(max(times).timestamp() * 1000)
    snapshots, missing = take_snapshots(client, markets, cfg.market.quote)
    stored = save_snapshots(database.get(), snapshots)  # the database down fails the tick (visible, retried)
    try:
        cache = SnapshotCache(cfg.services.redis_url, cfg.market.snapshot_ttl_seconds)
        cached = f"cached {cache.put(snapshots)} ticker(s)" + ("" if cache.enabled else f" ({cache.reason})")
    except Exception as error:  # redis down: caching off for this tick, said in the log, collection goes on
        cached = f"caching failed: {type(error).__name__}: {error}"
        context.log.warning(cached)
    context.log.info(f"stored {stored} snapshot(s), {cached}"
                     + (f"; not provided: {sorted(missing)}" if missing else ""))
    new = {m: t for m, t in latest.items() if t > seen.get(m, -1)}
    context.update_cursor(json.dumps({**seen, **latest}, sort_keys=True))
    if not new:
        return SkipReason(f"no new data on {len(latest)} market(s) from {client.source}")
    days = sorted({datetime.fromtimestamp(t / 1000, UTC).date().isoformat() for t in new.values()})
    return [RunRequest(run_key=f"{day}:" + ",".join(f"{m}@{t}" for m, t in sorted(new.items())),
                       partition_key=day, tags={"trigger": "futures_market_sensor", "markets": ",".join(sorted(new))})
            for day in days]
