"""Invariants of the held-out futures generator (benchmarks/futures_heldout_gen.py) on one small seed."""
from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from surveillance_pipeline.contract import LABEL_SCHEMA

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "futures_heldout_gen.py"
_spec = importlib.util.spec_from_file_location("futures_heldout_gen", _PATH)
gen = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("futures_heldout_gen", gen)
_spec.loader.exec_module(gen)

TS = pl.Datetime("ms", "UTC")
COLUMNS = {
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
SEED, DAYS = 11, 2


@pytest.fixture(scope="module")
def run():
    episodes = {**gen.EPISODES_PER_RUN, "forced_liquidation": 2}
    return gen.generate(SEED, DAYS, episodes=episodes)


@pytest.fixture(scope="module")
def clean():
    return gen.generate(SEED + 1, DAYS, clean=True)


def test_tables_have_the_contract_columns_and_dtypes(run):
    assert set(run.tables) == set(COLUMNS)
    for name, columns in COLUMNS.items():
        frame = run.tables[name]
        expected = {"market": pl.String, "market_type": pl.String, **columns}
        assert dict(frame.schema) == expected, name
        assert frame.height > 0, name
        assert frame["market_type"].unique().to_list() == ["futures"]
        assert set(frame["market"].unique()) == set(run.markets)
        assert frame.null_count().sum_horizontal().item() == 0, name


def test_minute_tables_cover_every_minute(run):
    minutes = DAYS * 1440
    for name in ("index", "mark", "premium", "basis", "klines"):
        counts = run.tables[name].group_by("market").len()
        assert counts["len"].to_list() == [minutes] * len(run.markets), name
    oi = run.tables["open_interest"].group_by("market").len()
    assert all(0.98 * minutes <= n <= minutes for n in oi["len"])
    depth = run.tables["depth"].group_by("market", "updated_at", "side").len()
    assert depth["len"].unique().to_list() == [gen.DEPTH_LEVELS]


def test_labels_follow_the_schema_and_lie_inside_the_data(run):
    labels = run.labels
    assert labels.height > 0
    assert dict(labels.cast(LABEL_SCHEMA).schema) == LABEL_SCHEMA
    assert set(labels["pattern"]) <= set(gen.PATTERNS)
    assert set(labels["symbol"]) <= set(run.markets)
    assert (labels["user_ids"] == "").all()
    assert (labels["start"] <= labels["end"]).all()
    assert labels["start"].min() >= run.start + timedelta(minutes=gen.BASELINE)
    assert labels["end"].max() <= run.end
    assert labels["episode_id"].n_unique() == labels.height


def test_klines_bars_contain_open_close_and_liquidations(run):
    k = run.tables["klines"]
    assert k.select((pl.col("high") >= pl.max_horizontal("open", "close")).all()).item()
    assert k.select((pl.col("low") <= pl.min_horizontal("open", "close")).all()).item()
    assert (k["low"] > 0).all() and (k["volume"] > 0).all()
    liq = run.tables["liquidations"].with_columns(pl.col("created_at").dt.truncate("1m").alias("minute"))
    joined = liq.join(k, left_on=["market", "minute"], right_on=["market", "created_at"])
    assert joined.height == liq.height
    assert ((joined["price"] >= joined["low"]) & (joined["price"] <= joined["high"])).all()
    assert set(liq["side"]) <= {"buy", "sell"}


def test_tables_agree_with_each_other(run):
    t = {name: frame.drop("market_type") for name, frame in run.tables.items()}
    joined = t["basis"].join(t["klines"], on=["market", "created_at"]).join(t["index"], on=["market", "created_at"])
    gap = (joined["close"] / joined["index_price"] - 1 - joined["basis_rate"]).abs()
    assert gap.max() < 1e-5
    top = t["depth"].filter(pl.col("level") == 0).pivot(on="side", index=["market", "updated_at"], values="price")
    assert (top["ask"] > top["bid"]).all()


def test_clean_mode_has_no_labels(clean):
    assert clean.labels.height == 0
    assert not any(item.labelled for item in clean.items)
    assert dict(clean.labels.cast(LABEL_SCHEMA).schema) == LABEL_SCHEMA


def test_labelled_cascade_drops_open_interest(run):
    cascades = [it for it in run.items if it.kind == "forced_liquidation"]
    assert cascades
    oi = run.tables["open_interest"]
    for item in cascades:
        mine = oi.filter(pl.col("market") == item.market)
        before = mine.filter(pl.col("created_at").is_between(item.start - timedelta(minutes=10), item.start))
        after = mine.filter(pl.col("created_at").is_between(item.end, item.end + timedelta(minutes=10)))
        drop = 1 - after["open_interest_volume"].median() / before["open_interest_volume"].median()
        assert drop > 0.5 * item.params["oi_drop_pct"] / 100, (item.episode_id, drop, item.params)
        liqs = run.tables["liquidations"].filter(
            (pl.col("market") == item.market) & pl.col("created_at").is_between(item.start, item.end))
        assert liqs.height >= item.params["n_liquidations"]


def test_funding_settles_every_four_or_eight_hours(run):
    funding = run.tables["funding"].with_columns(pl.col("funding_time").dt.date().alias("day"),
                                                 pl.col("funding_time").dt.hour().alias("hour"))
    for market in run.markets:
        hours = gen.SPEC[market].funding_hours
        mine = funding.filter(pl.col("market") == market)
        per_day = mine.group_by("day").len()
        assert per_day.height == DAYS
        assert per_day["len"].unique().to_list() == [24 // hours], market
        assert sorted(mine["hour"].unique()) == list(range(0, 24, hours))
        assert (mine["funding_time"].dt.minute() == 0).all()
        cap = gen.SPEC[market].cap
        assert (mine["actual_funding_rate"].abs() <= cap + 1e-12).all()
    four_hourly = [m for m in run.markets if gen.SPEC[m].funding_hours == 4]
    assert four_hourly and all(
        funding.filter(pl.col("market") == m).group_by("day").len()["len"].to_list() == [6] * DAYS
        for m in four_hourly)
