"""Quote stuffing on hand-made message streams, its legitimate look-alikes, and a generated day."""
import json

import polars as pl
import pytest

from surveillance_pipeline.contract import ORDER_SCHEMA, TRADE_SCHEMA, Pattern
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs
from surveillance_pipeline.detectors.quote_stuffing import QuoteStuffingSettings, detect_quote_stuffing
from tests.detectors.conftest import (
    BTC, assert_episodes_found, assert_no_findings, at, detect_generated, order_book_day,
)
from tests.detectors.test_layering import hft_market_maker


def event(s: float, oid: str, user: str, side: str, price: float, kind: str) -> dict:
    return {"order_id": oid, "timestamp": at(s), "user_id": user, "symbol": BTC, "side": side, "price": price,
            "quantity": 0.5, "event": kind, "order_type": "limit", "market_type": "spot"}


def stream(user: str, start: float, orders: int, every_s: float, life_s: float | None, tag: str) -> list[dict]:
    """`orders` orders placed every `every_s` from `start`, alternating sides, each cancelled after `life_s`
    (never when None)."""
    rows = []
    for i in range(orders):
        side = "buy" if i % 2 else "sell"
        placed = start + i * every_s
        rows.append(event(placed, f"{tag}{i}", user, side, 100.0 + (0.1 if side == "sell" else -0.1), "new"))
        if life_s is not None:
            rows.append(event(placed + life_s, f"{tag}{i}", user, side, 100.0, "cancel"))
    return rows


def inputs(rows: list[dict], trades: list[dict] | None = None) -> DetectionInputs:
    return DetectionInputs(trades=pl.DataFrame(trades or [], schema=TRADE_SCHEMA),
                           orders=pl.DataFrame(rows, schema=ORDER_SCHEMA).sort("timestamp"))


def fills_of(order_ids: list[str], start: float) -> list[dict]:
    """Trades that execute the given sell orders."""
    return [{"trade_id": f"t{i}", "timestamp": at(start + i * 0.001), "symbol": BTC, "side": "buy", "price": 100.1,
             "quantity": 0.5, "buyer_id": "x", "seller_id": "q", "buyer_order_id": f"xo{i}", "seller_order_id": oid,
             "market_type": "spot", "quote_quantity": 50.05, "fee": 0.0} for i, oid in enumerate(order_ids)]


def test_bursts_of_fleeting_orders_fire_once_per_episode():
    # two bursts 20 s apart: 300 orders in 0.6 s each, every one cancelled 5 ms later (600 messages in a second)
    rows = stream("q", 0.0, 300, 0.002, 0.005, "a") + stream("q", 20.0, 300, 0.002, 0.005, "b")
    findings = detect_quote_stuffing(inputs(rows), QuoteStuffingSettings())
    assert findings.schema == FINDING_SCHEMA
    assert findings.height == 1
    row = findings.row(0, named=True)
    assert row["pattern"] == Pattern.QUOTE_STUFFING.value and row["symbol"] == BTC and row["user_ids"] == ["q"]
    assert row["window_start"] == at(0.0)
    assert row["window_end"] == at(20.0 + 299 * 0.002 + 0.005)  # the last cancel
    metrics = json.loads(row["metrics"])
    assert metrics["bursts"] == 2 and metrics["orders"] == 600 and metrics["messages"] == 1200
    assert metrics["peak_messages_per_second"] == 600
    assert metrics["fast_cancel_share"] == 1.0 and metrics["filled_orders"] == 0
    assert metrics["median_order_life_ms"] == pytest.approx(5.0)
    assert len(row["evidence"]) == QuoteStuffingSettings().max_evidence_orders and row["evidence"][0] == "order:a0"
    assert "peaking at 600 per second" in row["explanation"]
    assert metrics["accounts"] == 1 and metrics["peak_account_messages_per_second"] == 600
    assert row["score"] == pytest.approx(1.0)


def test_a_few_fills_inside_the_burst_still_fire_but_many_do_not():
    rows = stream("q", 0.0, 300, 0.002, 0.005, "a")
    sells = [f"a{i}" for i in range(0, 300, 2)]
    few = detect_quote_stuffing(inputs(rows, fills_of(sells[:3], 0.001)), QuoteStuffingSettings())
    assert few.height == 1 and json.loads(few["metrics"][0])["filled_orders"] == 3
    many = detect_quote_stuffing(inputs(rows, fills_of(sells[:60], 0.001)), QuoteStuffingSettings())
    assert many.is_empty()  # a fifth of the orders traded: not orders that were never meant to trade


def test_market_maker_steady_quoting_is_not_stuffing():
    # 40 messages a second for ten minutes: 20 quotes a second, each resting 2 s
    rows = stream("m", 0.0, 12_000, 0.05, 2.0, "m")
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings()).is_empty()


def test_fast_market_maker_with_resting_quotes_is_not_stuffing():
    # 300 messages a second, but quotes rest 2 s, longer than fleeting: the rate alone does not make stuffing
    rows = stream("m", 0.0, 3_000, 1 / 150, 2.0, "m")
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings()).is_empty()


def test_hft_market_maker_with_sub_second_quotes_is_not_stuffing():
    """Independent bid and ask quotes living about 100 ms, 70 messages a second for 15 minutes: its busiest
    seconds reach 100 messages by chance, but never far above its own steady rate."""
    quoter = hft_market_maker(seconds=900.0, orders_per_second=35.0, life_s=0.1)
    assert detect_quote_stuffing(quoter, QuoteStuffingSettings()).is_empty()
    assert detect_quote_stuffing(quoter, QuoteStuffingSettings(min_rate_vs_baseline=1.0)).height == 1


def test_a_steady_quoter_bursting_far_above_its_own_rate_fires():
    # 20 messages a second for ten minutes, then 600 in one second: the burst is its own, far above its rate
    rows = stream("m", 0.0, 6_000, 0.1, 0.05, "m") + stream("m", 300.0, 300, 0.002, 0.005, "b")
    findings = detect_quote_stuffing(inputs(rows), QuoteStuffingSettings())
    assert findings.height == 1 and findings.row(0, named=True)["user_ids"] == ["m"]
    assert findings["window_start"][0] >= at(299.0) and findings["window_end"][0] <= at(302.0)
    assert json.loads(findings["metrics"][0])["min_rate_vs_baseline"] > 10


def test_a_burst_split_over_accounts_fires_once_naming_them():
    # three accounts, each 50 messages a second for 5 s (below the rate alone), together 150
    rows = [row for k, user in enumerate("abc")
            for row in stream(user, 0.003 * k, 125, 0.04, 0.005, user)]
    findings = detect_quote_stuffing(inputs(rows), QuoteStuffingSettings())
    assert findings.height == 1 and findings.row(0, named=True)["user_ids"] == ["a", "b", "c"]
    metrics = json.loads(findings["metrics"][0])
    assert metrics["accounts"] == 3 and metrics["peak_messages_per_second"] >= 140
    assert "3 accounts together" in findings["explanation"][0]
    assert detect_quote_stuffing(inputs([r for r in rows if r["user_id"] == "a"]), QuoteStuffingSettings()).is_empty()


def test_orders_living_a_few_hundred_ms_are_still_fleeting():
    rows = stream("q", 0.0, 1_500, 0.004, 0.3, "a")  # 500 messages a second for 6 s, each order 300 ms
    findings = detect_quote_stuffing(inputs(rows), QuoteStuffingSettings())
    assert findings.height == 1
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings(fast_cancel_ms=250)).is_empty()


def test_a_grid_of_resting_orders_placed_at_once_is_not_stuffing():
    rows = stream("g", 0.0, 400, 0.001, None, "g")
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings()).is_empty()


def test_below_the_rate_fleeting_orders_do_not_fire():
    rows = stream("q", 0.0, 200, 1 / 40, 0.005, "a")  # 80 messages a second
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings()).is_empty()
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings(min_messages_per_second=60)).height == 1


def test_without_order_events_or_when_disabled_it_stands_aside():
    rows = stream("q", 0.0, 300, 0.002, 0.005, "a")
    assert detect_quote_stuffing(DetectionInputs(trades=pl.DataFrame(schema=TRADE_SCHEMA)),
                                 QuoteStuffingSettings()).is_empty()
    assert detect_quote_stuffing(inputs(rows), QuoteStuffingSettings(enabled=False)).is_empty()


# --- a generated day ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 7])
def test_generated_day_quote_stuffing_episodes_are_found(seed):
    findings, labels = detect_generated(detect_quote_stuffing, QuoteStuffingSettings(), order_book_day(seed))
    assert_episodes_found(findings, labels, Pattern.QUOTE_STUFFING)


def test_clean_generated_day_gives_no_quote_stuffing():
    assert_no_findings(*detect_generated(detect_quote_stuffing, QuoteStuffingSettings(), order_book_day(4, clean=True)))
