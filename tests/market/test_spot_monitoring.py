"""Spot markets in the monitoring loop: the public tape polled through the MCP server, stored as `deals`
snapshots, and the pump-and-dump detector on it."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from surveillance_pipeline.market.client import MarketDataClient
from surveillance_pipeline.market.loop import LoopSettings, MonitoringLoop
from surveillance_pipeline.market.replay import UTC_MS, ReplayStore, build_server
from surveillance_pipeline.market.spot import spot_check, stored_tape
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario
from surveillance_pipeline.storage.database import Database


def _spot_store() -> tuple[ReplayStore, pl.DataFrame]:
    """A generated day's BTCUSDT and PEPEUSDT trades as an exchange's public spot tape (no accounts); PEPEUSDT
    is pumped once."""
    scenario = generate_scenario(ScenarioSpec(days=1, seed=3, trades_per_day=5000,
                                              symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT", "PEPEUSDT")))
    deals = scenario.trades.filter(pl.col("symbol").is_in(["BTCUSDT", "PEPEUSDT"])).select(
        pl.col("symbol").alias("market"), pl.lit("spot").alias("market_type"),
        pl.col("timestamp").cast(UTC_MS).alias("created_at"), pl.col("trade_id").alias("deal_id"), "side", "price",
        pl.col("quantity").alias("amount"))
    return ReplayStore({"deals": deals}), scenario.labels.filter(pl.col("pattern") == "pump_and_dump")


def test_the_loop_polls_spot_tapes_and_finds_the_pump(tmp_path):
    store, pumps = _spot_store()
    assert pumps["symbol"].to_list() == ["PEPEUSDT"]
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    server = build_server(store)
    clock = [0.0]
    loop = MonitoringLoop(lambda: MarketDataClient(server=server), tmp_path / "loop",
                          LoopSettings(snapshot_interval_s=300, window_s=9 * 3600), clock=lambda: clock[0], db=db)
    moment = datetime(2026, 3, 2, 0, 10, tzinfo=UTC)
    store.now = loop.now_override = moment
    loop.discover()
    assert set(loop.states) == {"BTCUSDT@spot", "PEPEUSDT@spot"}
    while moment <= datetime(2026, 3, 2, 9, 0, tzinfo=UTC):  # a poll of the latest deals every 5 minutes
        store.now = loop.now_override = moment
        loop.snapshot()
        moment += timedelta(minutes=5)
        clock[0] += 300
    tape, gaps = stored_tape(db, "PEPEUSDT", datetime(2026, 3, 2, tzinfo=UTC), moment)
    day = store.tables["deals"].filter((pl.col("market") == "PEPEUSDT") & (pl.col("created_at") < store.now))
    assert tape.height == day.height and gaps == 0 and tape["buyer_id"].is_null().all()
    pump = loop.check(loop.states["PEPEUSDT@spot"])
    assert loop.states["PEPEUSDT@spot"].last_error == ""
    assert pump["pattern"].to_list() == ["pump_and_dump"] and pump["user_ids"].to_list() == [""]
    label = pumps.row(0, named=True)
    assert label["start"] <= pump["window_start"][0] <= label["end"]
    assert "market buys" in pump["explanation"][0] and "gave back" in pump["explanation"][0]
    assert loop.check(loop.states["BTCUSDT@spot"]).is_empty()
    assert loop.states["PEPEUSDT@spot"].risk_level in ("HIGH", "MEDIUM")
    db.dispose()


def test_a_tape_shorter_than_the_baseline_is_not_assessable():
    # a busy market: 1200 trades in 10 minutes; one poll holds the latest 1000, about 8 minutes of tape
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    deals = pl.DataFrame({"market": "DOGEUSDT", "market_type": "spot",
                          "created_at": [at + timedelta(milliseconds=500 * i) for i in range(1200)],
                          "deal_id": [str(i) for i in range(1200)], "side": ["buy", "sell"] * 600,
                          "price": 0.1, "amount": 100.0}).with_columns(pl.col("created_at").cast(UTC_MS))
    store = ReplayStore({"deals": deals})
    check = spot_check(MarketDataClient(server=build_server(store)), "DOGEUSDT", at - timedelta(hours=1),
                       at + timedelta(minutes=10))
    assert check.not_assessed == ["pump_and_dump"] and check.alerts.is_empty()
    assert check.trades == 1000 and check.covered_hours < 0.2


def test_a_failing_market_is_shown_and_the_others_go_on(tmp_path):
    from surveillance_pipeline.market.loop import read_status

    store, _ = _spot_store()
    at = datetime(2026, 3, 2, 6, tzinfo=UTC)
    # a listed spot market the server answers nothing for (no trades: get_ticker and get_deals fail)
    ghost = pl.DataFrame({"market": ["GHOSTUSDT"] * 2, "market_type": ["spot"] * 2, "updated_at": [at, at],
                          "side": ["bid", "ask"], "level": [0, 0], "price": [1.0, 1.1], "amount": [5.0, 5.0]},
                         schema_overrides={"updated_at": UTC_MS, "level": pl.Int32})
    store = ReplayStore({**store.tables, "depth": ghost}, now=at)
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    loop = MonitoringLoop(lambda: MarketDataClient(server=build_server(store)), tmp_path / "loop",
                          LoopSettings(snapshot_interval_s=60), clock=lambda: 0.0, db=db, now_override=at)
    loop.run(max_cycles=1)
    status = read_status(tmp_path / "loop")
    assert "GHOSTUSDT@spot" in status["totals"]["discovery_errors"]
    assert "deals GHOSTUSDT" in status["totals"]["snapshot_error"]
    tape, _ = stored_tape(db, "PEPEUSDT", at - timedelta(days=1), at)
    assert tape.height > 0  # the other market's poll was stored
    assert status["markets"]["GHOSTUSDT@spot"]["failures"] == 1 and status["markets"]["PEPEUSDT@spot"]["failures"] == 0
    db.dispose()
