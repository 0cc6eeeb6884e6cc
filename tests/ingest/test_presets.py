"""Real venues' files load with their preset, detected from the header (slices in tests/fixtures)."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pytest

from surveillance_pipeline.ingest.importer import ImportOptions, iter_validated, make_context, prepare_source
from surveillance_pipeline.ingest.presets import symbol_from_filename
from surveillance_pipeline.ingest.readers import InputFileError
from surveillance_pipeline.ingest.service import validate_file
from tests.conftest import FIXTURES

UTC = timezone.utc
SAMPLES = FIXTURES / "real_samples"
PUMPS = sorted((FIXTURES / "pumps").glob("*.csv.gz"))


def _accepted(path: Path, **options):
    prepared = prepare_source(path, ImportOptions(**options))
    ctx = make_context(prepared.generate_trade_ids, datetime(2009, 1, 3, tzinfo=UTC), 86_400)
    frames = [accepted for _, accepted, _ in iter_validated(prepared, ctx, 1_000)]
    return prepared, frames[0].vstack(*frames[1:]) if len(frames) > 1 else frames[0]


@pytest.mark.parametrize("name, preset, first", [
    ("tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz", "tardis_trades",
     {"trade_id": "42377944", "timestamp": datetime(2020, 2, 22, 0, 0, 2, 111000, UTC), "symbol": "BTCUSDT",
      "side": "buy", "price": 9682.0, "quantity": 0.132, "market_type": "futures"}),
    ("binance_btcusdt-trades.parquet", "binance_trades",
     {"trade_id": "553287559", "timestamp": datetime(2021, 1, 8, 0, 0, 0, 278000, UTC), "symbol": "BTCUSDT",
      "side": "sell", "price": 39432.48, "quantity": 0.000263, "market_type": "spot"}),
    ("XRP_OLD-trades.json.gz", "ccxt_trades",
     {"trade_id": "13519807", "timestamp": datetime(2019, 10, 11, 0, 0, 11, 620000, UTC), "symbol": "XRPETH",
      "side": "sell", "price": 0.00141342, "quantity": 23.0, "quote_quantity": 0.03250866}),
    ("kraken_trades_csv_BCHEUR.csv", "kraken_trades_csv",
     {"trade_id": "1672531436000000-0", "timestamp": datetime(2023, 1, 1, 0, 3, 56, tzinfo=UTC), "symbol": "BCHEUR",
      "side": "buy", "price": 90.54, "quantity": 1.1044842}),
])
def test_real_samples_import_with_their_detected_preset(name, preset, first):
    prepared, trades = _accepted(SAMPLES / name)
    assert prepared.preset.name == preset
    assert trades.height >= 140
    row = trades.row(0, named=True)
    assert {key: row[key] for key in first} == first
    assert trades["trade_id"].n_unique() == trades.height


def test_kraken_sides_follow_the_tick_rule():
    _, trades = _accepted(SAMPLES / "kraken_trades_csv_BCHEUR.csv")
    prices = trades["price"].to_list()
    sides = trades["side"].to_list()
    for previous, price, side, previous_side in zip(prices, prices[1:], sides[1:], sides):
        expected = "buy" if price > previous else "sell" if price < previous else previous_side
        assert side == expected


def test_tick_rule_carries_across_chunks():
    _, small = _accepted(SAMPLES / "kraken_trades_csv_BCHEUR.csv")
    prepared = prepare_source(SAMPLES / "kraken_trades_csv_BCHEUR.csv", ImportOptions())
    ctx = make_context(prepared.generate_trade_ids, datetime(2009, 1, 3, tzinfo=UTC), 86_400)
    chunked = [a for _, a, _ in iter_validated(prepared, ctx, 7)]
    assert sum(len(c) for c in chunked) == small.height
    assert [s for c in chunked for s in c["side"]] == small["side"].to_list()


@pytest.mark.parametrize("tape", PUMPS, ids=[p.name for p in PUMPS])
def test_every_pump_tape_imports_anonymously_with_stable_ids(tape):
    prepared, trades = _accepted(tape)
    assert prepared.preset.name == "pump_tape"
    assert trades.height == 100
    assert trades["symbol"].unique().to_list() == [tape.name.split("_")[0] + "BTC"]
    assert trades["buyer_id"].null_count() == trades.height  # account-level fields stay empty
    assert trades["trade_id"].n_unique() == trades.height
    _, again = _accepted(tape)
    assert again["trade_id"].to_list() == trades["trade_id"].to_list()


def test_pump_tape_same_millisecond_trades_get_distinct_ids(tmp_path):
    path = tmp_path / "ABC_2020-01-01.csv"
    path.write_text("symbol,timestamp,datetime,side,price,amount,btc_volume\n"
                    "ABC/BTC,1577836800000,2020-01-01T00:00:00.000Z,buy,0.0001,10,0.001\n"
                    "ABC/BTC,1577836800000,2020-01-01T00:00:00.000Z,buy,0.0001,10,0.001\n")
    _, trades = _accepted(path)
    assert trades["trade_id"].to_list() == ["1577836800000000-0", "1577836800000000-1"]


def test_forced_preset_and_symbol_override(tmp_path):
    path = tmp_path / "export.csv"
    with open(SAMPLES / "kraken_trades_csv_BCHEUR.csv") as source:
        path.write_text(source.read())
    with pytest.raises(InputFileError, match="pass --symbol"):
        _accepted(path)
    _, trades = _accepted(path, symbol="BCHEUR", preset="kraken_trades_csv")
    assert set(trades["symbol"]) == {"BCHEUR"}


def test_symbol_from_filename():
    assert symbol_from_filename(Path("binance_btcusdt-trades.parquet")) == "BTCUSDT"
    assert symbol_from_filename(Path("kraken_trades_csv_BCHEUR.csv")) == "BCHEUR"
    assert symbol_from_filename(Path("XBTEUR.csv")) == "XBTEUR"
    assert symbol_from_filename(Path("export.csv")) is None


def test_ambiguous_header_asks_for_a_preset(tmp_path, settings):
    path = tmp_path / "mixed.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trade_id", "timestamp", "symbol", "side", "price", "quantity", "order_id", "user_id", "event"])
    with pytest.raises(InputFileError, match=r"matches several presets \(.*\); pass --preset"):
        validate_file(path, ImportOptions(), settings)


def test_generated_ids_continue_across_chunks(tmp_path):
    rows = "".join("ABC/BTC,1577836800000,2020-01-01T00:00:00.000Z,buy,0.0001,10,0.001\n" for _ in range(60))
    path = tmp_path / "ABC_2020-01-01.csv"
    path.write_text("symbol,timestamp,datetime,side,price,amount,btc_volume\n" + rows)
    prepared = prepare_source(path, ImportOptions())
    ctx = make_context(prepared.generate_trade_ids, datetime(2009, 1, 3, tzinfo=UTC), 86_400)
    chunks = [a for _, a, _ in iter_validated(prepared, ctx, 5)]
    assert len(chunks) > 3
    ids = [i for c in chunks for i in c["trade_id"]]
    assert ids == [f"1577836800000000-{n}" for n in range(60)]
