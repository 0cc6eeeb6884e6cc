"""A big day's rule detectors in symbol batches: the same alerts as on the whole day, memory bounded."""
from __future__ import annotations

import polars as pl

from surveillance_pipeline.config import load_settings
from surveillance_pipeline.contract import Trade
from surveillance_pipeline.detectors.day import detect_day
from surveillance_pipeline.detectors.rules import RuleBasedDetector, symbol_batches
from surveillance_pipeline.scenarios import ScenarioSpec, generate_scenario


def test_symbol_batches_pack_up_to_the_row_limit():
    assert symbol_batches({"A": 60, "B": 50, "C": 40, "D": 10}, 100) == [["A", "C"], ["B", "D"]]
    assert symbol_batches({"BIG": 500, "x": 1}, 100) == [["BIG"], ["x"]]  # a bigger symbol stands alone


def test_batched_day_gives_the_whole_days_alerts():
    scenario = generate_scenario(ScenarioSpec(days=2, seed=31, accounts=600, trades_per_day=6_000))
    settings = load_settings().detectors
    whole = RuleBasedDetector(settings)
    batched = RuleBasedDetector(settings.model_copy(update={"batch_rows": 5_000}))  # forces one symbol at a time
    day = scenario.trades.get_column(Trade.TIMESTAMP).dt.date().max()
    a = detect_day(whole, day, scenario.trades.lazy(), scenario.orders.lazy()).alerts.sort("alert_id")
    b = detect_day(batched, day, scenario.trades.lazy(), scenario.orders.lazy()).alerts.sort("alert_id")
    assert a.height > 5
    columns = ["alert_id", "pattern", "symbol", "user_ids", "window_start", "window_end", "score", "explanation"]
    assert a.select(columns).equals(b.select(columns))
    assert a.select(pl.col("evidence").list.sort()).equals(b.select(pl.col("evidence").list.sort()))


def test_pump_on_an_anonymous_symbol_is_judged_alone_when_another_symbol_names_accounts():
    from datetime import datetime, timezone
    from pathlib import Path

    import pytest

    from surveillance_pipeline.detectors.base import DetectionInputs
    from surveillance_pipeline.detectors.pump import PumpAndDumpSettings, detect_pump_and_dump
    from surveillance_pipeline.ingest.importer import ImportOptions
    from surveillance_pipeline.detectors.files import FileDetection, read_valid_rows

    tape = Path(__file__).resolve().parents[3] / "shared" / "data" / "pumps_dev" / "CVC_2019-08-13_20.00.csv.gz"
    if not tape.exists():
        pytest.skip(f"{tape} is absent")
    trades = read_valid_rows([tape], ImportOptions(kind="trades"), load_settings(), FileDetection())
    day = datetime(2019, 8, 13, tzinfo=timezone.utc).date()
    stamp = pl.col(Trade.TIMESTAMP).dt.date()
    alone = detect_pump_and_dump(DetectionInputs(trades=trades.filter(stamp == day),
                                                 history=trades.filter(stamp < day), day=day), PumpAndDumpSettings())
    named = pl.DataFrame({"trade_id": ["n1", "n2"], "timestamp": [datetime(2019, 8, 13, 1, tzinfo=timezone.utc)] * 2,
                          "symbol": ["OTHERUSDT"] * 2, "side": ["buy", "sell"], "price": [1.0, 1.0],
                          "quantity": [1.0, 1.0], "buyer_id": ["a", "b"], "seller_id": ["b", "a"]})
    mixed = pl.concat([trades, named.cast({c: trades.schema[c] for c in named.columns})], how="diagonal_relaxed")
    together = detect_pump_and_dump(DetectionInputs(trades=mixed.filter(stamp == day), history=mixed.filter(stamp < day),
                                                    day=day), PumpAndDumpSettings())
    assert alone.height >= 1 and together.select("symbol", "window_start").equals(alone.select("symbol", "window_start"))
