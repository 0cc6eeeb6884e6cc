"""Invariants of the held-out benchmark generator (benchmarks/heldout_gen.py) on a small seed."""
from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from heldout_gen import generate

from surveillance_pipeline.contract import LABEL_SCHEMA, ORDER_SCHEMA, TRADE_SCHEMA

SMALL = {"scale": 0.15, "msg_scale": 0.3, "n_symbols": 4}


@pytest.fixture(scope="module")
def world_days():
    return generate(7, 1, fill_events=True, **SMALL)


@pytest.fixture(scope="module")
def clean_days():
    return generate(8, 1, clean=True, fill_events=False, **SMALL)


def _all_days(world_days, clean_days):
    return world_days[1] + clean_days[1]


def test_schemas(world_days, clean_days):
    for day in _all_days(world_days, clean_days):
        assert day.trades.schema == pl.Schema(TRADE_SCHEMA)
        assert day.orders.schema == pl.Schema(ORDER_SCHEMA)
        assert day.labels.schema == pl.Schema(LABEL_SCHEMA)
        assert day.trades.height > 1000 and day.orders.height > day.trades.height
        assert set(day.trades["side"].unique()) <= {"buy", "sell"}
        assert set(day.orders["event"].unique()) <= {"new", "cancel", "modify", "fill"}
        assert day.trades.filter((pl.col("price") <= 0) | (pl.col("quantity") <= 0)).height == 0
        assert day.trades.select(pl.struct("symbol", "trade_id").is_unique().all()).item()
        start = datetime.combine(day.day, time(), tzinfo=UTC)
        for frame in (day.trades, day.orders):
            assert frame["timestamp"].min() >= start and frame["timestamp"].max() < start + timedelta(days=1)
        # no ordinary self-match outside the wash episodes
        self_trades = day.trades.filter(pl.col("buyer_id") == pl.col("seller_id"))
        wash_self = [it for it in day.items if it.kind == "wash_trading" and it.params["variant"] == "self"]
        assert self_trades.height == 0 or wash_self


def test_every_trade_links_to_orders_with_a_new_before(world_days, clean_days):
    for day in _all_days(world_days, clean_days):
        news = (day.orders.filter(pl.col("event") == "new")
                .group_by("symbol", "order_id").agg(pl.col("timestamp").min().alias("new_ts"),
                                                     pl.col("user_id").first()))
        for oid, uid in (("buyer_order_id", "buyer_id"), ("seller_order_id", "seller_id")):
            joined = day.trades.join(news, left_on=["symbol", oid], right_on=["symbol", "order_id"], how="left")
            assert joined["new_ts"].null_count() == 0, f"{oid} without a new event"
            assert joined.filter(pl.col("new_ts") >= pl.col("timestamp")).height == 0
            assert joined.filter(pl.col("user_id") != pl.col(uid)).height == 0


def test_fill_events_follow_the_seed_choice(world_days, clean_days):
    for day in world_days[1]:
        fills = day.orders.filter(pl.col("event") == "fill").height
        assert fills == 2 * day.trades.height
    for day in clean_days[1]:
        assert day.orders.filter(pl.col("event") == "fill").height == 0


def test_labels_inside_the_data(world_days):
    days = [d for d in world_days[1] if not d.history_only]
    assert days and all(d.labels.height >= 10 for d in days)
    for day in days:
        assert set(day.labels["pattern"]) >= {"wash_trading", "spoofing", "layering", "quote_stuffing"}
        t0, t1 = day.orders["timestamp"].min(), day.orders["timestamp"].max()
        for row in day.labels.iter_rows(named=True):
            assert t0 <= row["start"] <= row["end"] <= t1
            assert row["symbol"] in set(day.trades["symbol"])
            if row["pattern"] == "pump_and_dump":
                assert row["user_ids"] == ""
                continue
            users = row["user_ids"].split(";")
            inside = day.orders.filter(pl.col("user_id").is_in(users) & (pl.col("symbol") == row["symbol"])
                                       & pl.col("timestamp").is_between(row["start"], row["end"]))
            assert inside.height > 0
    for day in world_days[1]:
        if day.history_only:
            assert day.labels.height == 0


def test_clean_mode_has_no_labels_but_lookalikes(clean_days):
    for day in clean_days[1]:
        assert day.labels.height == 0
        assert not any(it.labelled for it in day.items)
        kinds = {it.kind for it in day.items}
        assert {"news_rally", "frequent_pair", "large_order_cancelled"} <= kinds


def test_spoof_and_layer_orders_are_cancelled_never_filled(world_days):
    seen = 0
    for day in world_days[1]:
        traded = set(day.trades["buyer_order_id"]) | set(day.trades["seller_order_id"])
        cancelled = set(day.orders.filter(pl.col("event") == "cancel")["order_id"])
        for it in day.items:
            if it.kind in ("spoofing", "layering"):
                ids = set(it.meta["spoof_order_ids"])
                assert ids and ids <= cancelled and not ids & traded
                seen += 1
    assert seen


def test_pump_rises_then_falls(world_days):
    seen = 0
    for day in world_days[1]:
        for it in day.items:
            if it.kind != "pump_and_dump":
                continue
            tr = day.trades.filter(pl.col("symbol") == it.symbol)
            signal = it.start
            pre = tr.filter(pl.col("timestamp").is_between(signal - timedelta(minutes=30), signal))["price"].median()
            during = tr.filter(pl.col("timestamp").is_between(signal, it.end))
            peak = during["price"].max()
            after = tr.filter(pl.col("timestamp").is_between(it.end - timedelta(minutes=2), it.end + timedelta(minutes=5)))
            gain = it.params["peak_gain"]
            assert peak >= pre * (1 + 0.5 * gain)
            assert after["price"].median() <= peak / (1 + 0.4 * gain)
            seen += 1
    assert seen


def test_market_makers_cancel_most_orders(world_days):
    w, days = world_days
    roles = pl.DataFrame({"user_id": list(w._names[: len(w.roles)]), "role": w.roles})
    od = days[1].orders.join(roles, on="user_id")
    mm = od.filter(pl.col("role") == "market_maker")
    new, cancel = (mm["event"] == "new").sum(), (mm["event"] == "cancel").sum()
    assert cancel / new > 0.9


def test_spoof_orders_are_never_crossed_while_resting(world_days):
    for day in world_days[1]:
        for it in day.items:
            if it.kind not in ("spoofing", "layering"):
                continue
            ids = it.meta["spoof_order_ids"]
            life = (day.orders.filter(pl.col("order_id").is_in(ids))
                    .group_by("order_id").agg(pl.col("side").first(), pl.col("price").min().alias("pmin"),
                                              pl.col("price").max().alias("pmax"),
                                              pl.col("timestamp").min().alias("t0"), pl.col("timestamp").max().alias("t1")))
            tape = day.trades.filter(pl.col("symbol") == it.symbol)
            for row in life.iter_rows(named=True):
                during = tape.filter(pl.col("timestamp").is_between(row["t0"], row["t1"]))
                if row["side"] == "buy":
                    assert during.filter(pl.col("price") < row["pmin"]).height == 0
                else:
                    assert during.filter(pl.col("price") > row["pmax"]).height == 0


def test_no_pile_up_of_trades_at_one_instant(world_days, clean_days):
    for day in _all_days(world_days, clean_days):
        # several trades share a timestamp only when one taker order sweeps a few makers
        per_instant = day.trades.group_by("symbol", "timestamp").agg(
            pl.len().alias("n"), pl.min_horizontal(pl.col("buyer_id").n_unique(), pl.col("seller_id").n_unique()).alias("takers"))
        assert per_instant["n"].max() <= 6 and per_instant["takers"].max() == 1
