"""Invariants of the independent futures-market generator behind benchmarks/eval_futures_independent.py.

Checks the generator itself (schemas, consistency between tables, labels, episodes really present), never
detector performance.
"""
from __future__ import annotations

import itertools
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from futures_independent_gen import MARGIN, PATTERNS, PROFILES, START, generate

from surveillance_pipeline.contract import LABEL_SCHEMA

TS = pl.Datetime("ms", "UTC")
REQUIRED = {
    "index": {"created_at": TS, "index_price": pl.Float64},
    "mark": {"created_at": TS, "mark_price": pl.Float64},
    "premium": {"created_at": TS, "premium_index": pl.Float64},
    "basis": {"created_at": TS, "basis_rate": pl.Float64},
    "open_interest": {"created_at": TS, "open_interest_volume": pl.Float64},
    "funding": {"funding_time": TS, "theoretical_funding_rate": pl.Float64, "actual_funding_rate": pl.Float64},
    "liquidations": {"created_at": TS, "side": pl.String, "price": pl.Float64, "amount": pl.Float64},
    "klines": {"created_at": TS, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
               "volume": pl.Float64},
    "depth": {"updated_at": TS, "side": pl.String, "level": pl.Int64, "price": pl.Float64, "amount": pl.Float64},
}
DAYS = 2


def oi_at(series: pl.DataFrame, when) -> float:
    """The last open-interest snapshot at or before `when`."""
    return series.filter(pl.col("created_at") <= when)["open_interest_volume"][-1]


@pytest.fixture(scope="module")
def gen():
    return generate(7, DAYS, depth_every=2)


@pytest.fixture(scope="module")
def clean():
    return generate(8, DAYS, clean=True, depth_every=5)


def test_tables_have_the_required_columns_and_dtypes(gen):
    assert set(gen.tables) == set(REQUIRED)
    for name, columns in REQUIRED.items():
        frame = gen.tables[name]
        assert frame.height, name
        assert frame.schema["market"] == pl.String and frame.schema["market_type"] == pl.String, name
        assert set(frame["market"].unique()) == set(PROFILES), name
        assert frame["market_type"].unique().to_list() == ["futures"], name
        for column, dtype in columns.items():
            assert frame.schema[column] == dtype, (name, column, frame.schema[column])
            assert frame[column].null_count() == 0, (name, column)
    assert set(gen.tables["liquidations"]["side"].unique()) == {"buy", "sell"}
    assert set(gen.tables["depth"]["side"].unique()) == {"bid", "ask"}


def test_minute_series_and_funding_cover_the_days(gen):
    end = START + timedelta(days=DAYS)
    for name in ("index", "mark", "premium", "basis", "open_interest", "klines"):
        frame = gen.tables[name]
        assert frame.height == DAYS * 1440 * len(PROFILES), name
        assert frame["created_at"].min() >= START and frame["created_at"].max() < end, name
    funding = gen.tables["funding"]
    assert funding.height == DAYS * 3 * len(PROFILES)
    assert (funding["funding_time"].dt.hour().is_in([0, 8, 16])).all()
    assert (funding["funding_time"].dt.minute() == 0).all()
    for market, profile in PROFILES.items():
        f = funding.filter(pl.col("market") == market)
        clipped = f["theoretical_funding_rate"].clip(-profile.funding_cap, profile.funding_cap)
        assert np.allclose(f["actual_funding_rate"].to_numpy(), clipped.to_numpy())


def test_klines_are_consistent(gen):
    k = gen.tables["klines"]
    assert k.filter(pl.col("high") < pl.max_horizontal("open", "close")).height == 0
    assert k.filter(pl.col("low") > pl.min_horizontal("open", "close")).height == 0
    assert k.filter(pl.col("low") <= 0).height == 0
    assert k.filter(pl.col("volume") <= 0).height == 0
    # each bar opens at the previous close (one latent last-price path)
    for market in PROFILES:
        m = k.filter(pl.col("market") == market).sort("created_at")
        assert np.allclose(m["open"].to_numpy()[1:], m["close"].to_numpy()[:-1])


def test_liquidation_prices_lie_inside_their_minute_bar(gen):
    liq = gen.tables["liquidations"].with_columns(pl.col("created_at").dt.truncate("1m").alias("minute"))
    bars = gen.tables["klines"].drop("market_type").rename({"created_at": "minute"})
    joined = liq.join(bars, on=["market", "minute"], how="left")
    assert joined["high"].null_count() == 0
    eps = 1e-9
    assert joined.filter((pl.col("price") > pl.col("high") * (1 + eps)) | (pl.col("price") < pl.col("low") * (1 - eps))
                         ).height == 0
    assert (joined["amount"] > 0).all()


def test_premium_basis_and_mark_follow_from_the_prices(gen):
    t = gen.tables
    keys = ["market", "created_at"]
    j = t["basis"].drop("market_type").join(t["index"].drop("market_type"), on=keys) \
        .join(t["mark"].drop("market_type"), on=keys).join(t["premium"].drop("market_type"), on=keys)
    assert j.height == DAYS * 1440 * len(PROFILES)
    # mark is the median of three prices close to the index; basis is last / index - 1
    assert j.filter((pl.col("mark_price") / pl.col("index_price") - 1).abs() > 0.05).height == 0
    assert j.filter(pl.col("basis_rate").abs() > 0.2).height == 0
    # last price = index * (1 + basis) equals the open of the minute's k-line (same snapshot instant)
    k = t["klines"].drop("market_type").rename({"created_at": "minute"})
    j = j.with_columns(pl.col("created_at").dt.truncate("1m").alias("minute")).join(k, on=["market", "minute"])
    last = (j["index_price"] * (1 + j["basis_rate"])).to_numpy()
    assert np.allclose(last, j["open"].to_numpy(), rtol=1e-6)


def test_depth_books_are_ordered_and_uncrossed(gen):
    d = gen.tables["depth"]
    assert set(d["level"].unique()) == set(range(20))
    top = d.filter(pl.col("level") == 0).pivot(on="side", index=["market", "updated_at"], values="price")
    assert top.filter(pl.col("bid") >= pl.col("ask")).height == 0
    bids = d.filter(pl.col("side") == "bid").sort("market", "updated_at", "level")
    asks = d.filter(pl.col("side") == "ask").sort("market", "updated_at", "level")
    assert bids.group_by("market", "updated_at").agg(pl.col("price").diff().drop_nulls().max().alias("d"))["d"].max() < 0
    assert asks.group_by("market", "updated_at").agg(pl.col("price").diff().drop_nulls().min().alias("d"))["d"].min() > 0
    assert (d["amount"] > 0).all()


def test_labels_follow_the_schema_and_sit_inside_the_data(gen):
    labels = gen.labels
    assert labels.height > 0
    labels.cast(LABEL_SCHEMA)  # castable to the contract
    assert list(labels.columns) == list(LABEL_SCHEMA)
    assert labels["episode_id"].is_unique().all()
    assert set(labels["pattern"]) <= set(PATTERNS)
    assert (labels["user_ids"] == "").all()
    assert labels.filter(pl.col("end") < pl.col("start")).height == 0
    assert labels["start"].min() >= START + timedelta(hours=6)
    assert labels["end"].max() < START + timedelta(days=DAYS)
    assert set(labels["symbol"]) <= set(PROFILES)


def test_items_of_different_kinds_are_kept_apart(gen):
    events = [it for it in gen.items if not it.regime]
    for market in PROFILES:
        mine = sorted((it for it in events if it.market == market), key=lambda it: it.start)
        for a, b in itertools.pairwise(mine):
            gap = 30 if "thin_hours" in (a.kind, b.kind) else MARGIN
            assert b.start >= a.end + gap, (a.kind, a.start, a.end, b.kind, b.start)


def test_a_liquidation_hunt_has_a_burst_and_reverts(gen):
    hunts = [it for it in gen.items if it.kind == "liquidation_hunting"]
    assert hunts
    liq = gen.tables["liquidations"]
    k = gen.tables["klines"]
    for it in hunts:
        side = "sell" if it.params["direction"] < 0 else "buy"
        inside = liq.filter((pl.col("market") == it.market) & (pl.col("side") == side)
                            & pl.col("created_at").is_between(it.start_dt, it.end_dt))
        background = liq.filter(pl.col("market") == it.market).height / (DAYS * 1440)  # per minute
        assert inside.height >= it.params["liquidations"] * 0.9
        per_minute = inside.group_by(pl.col("created_at").dt.truncate("1m")).len()["len"]
        assert per_minute.max() >= max(3, 0.3 * it.params["liquidations"], 4 * background)
        # measured against the index (the spot market may drift meanwhile): the bars reach the spike, and by
        # the end of the episode the perp is back near the index
        bars = k.filter((pl.col("market") == it.market) & pl.col("created_at").is_between(it.start_dt, it.end_dt))
        index = gen.tables["index"].filter(pl.col("market") == it.market).with_columns(
            pl.col("created_at").dt.truncate("1m")).drop("market_type")
        bars = bars.join(index, on=["market", "created_at"])
        gap = (bars["low"] / bars["index_price"] - 1) if side == "sell" else (bars["high"] / bars["index_price"] - 1)
        extreme = gap.abs().max()
        assert extreme > 0.5 * it.params["move_pct"] / 100
        end_index = index.filter(pl.col("created_at") == it.end_dt + timedelta(minutes=1))["index_price"][0]
        if it.params["move_pct"] >= 1:  # smaller ones are within a few minutes' noise
            assert abs(bars["close"][-1] / end_index - 1) < 0.5 * extreme


def test_a_cascade_drops_open_interest_with_one_sided_liquidations(gen):
    for it in (i for i in gen.items if i.kind == "forced_liquidation"):
        side = "sell" if it.params["direction"] < 0 else "buy"
        liq = gen.tables["liquidations"].filter((pl.col("market") == it.market)
                                                & pl.col("created_at").is_between(it.start_dt, it.end_dt))
        assert liq.filter(pl.col("side") == side).height >= 0.9 * it.params["liquidations"]
        oi = gen.tables["open_interest"].filter(pl.col("market") == it.market).sort("created_at")
        drop = 1 - oi_at(oi, it.end_dt + timedelta(minutes=2)) / oi_at(oi, it.start_dt)
        assert drop > 0.5 * it.params["oi_drop_pct"] / 100


def test_a_funding_farm_moves_open_interest_around_settlements(gen):
    farms = [it for it in gen.items if it.kind == "funding_rate_farming"]
    assert farms
    oi = gen.tables["open_interest"]
    for it in farms:
        series = oi.filter(pl.col("market") == it.market).sort("created_at")
        settle = it.start_dt + timedelta(minutes=it.params["open_before_minutes"])
        assert settle.hour in (0, 8, 16) and settle.minute == 0
        before = oi_at(series, it.start_dt - timedelta(minutes=1))
        held = oi_at(series, settle)
        after = oi_at(series, it.end_dt + timedelta(minutes=2))
        assert held > before and held > after


def test_clean_mode_has_no_labels_but_the_look_alikes(clean):
    assert clean.labels.height == 0
    assert list(clean.labels.columns) == list(LABEL_SCHEMA)
    assert not any(it.labelled for it in clean.items)
    kinds = {it.kind for it in clean.items}
    assert {"trending_funding", "thin_hours", "news_move", "volatile_hour", "mm_walls", "organic_oi_growth"} <= kinds


def test_same_seed_same_data():
    a, b = generate(3, 1, depth_every=10), generate(3, 1, depth_every=10)
    assert a.labels.equals(b.labels)
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name
