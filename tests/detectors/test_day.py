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
