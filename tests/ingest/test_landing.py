"""A landing day validated as a whole: duplicates across files and chunks, stored keys, other days, typed
Parquet timestamps; the same rows and reasons as validating each file on its own."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from surveillance_pipeline.contract import ORDER_SCHEMA, REJECT_SCHEMA, TRADE_SCHEMA
from surveillance_pipeline.ingest.importer import ImportOptions, iter_validated, make_context, prepare_source
from surveillance_pipeline.ingest.landing import PartWriter, stage_raw_files, validate_staged
from surveillance_pipeline.ingest.service import validate_file
from tests.conftest import TRADE_HEADER, make_settings

DAY = date(2026, 3, 2)
UTC = timezone.utc


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, SURVEILLANCE__INGEST__BATCH_ROWS="1000")  # the smallest chunk allowed


def _trade(trade_id: str, stamp: str = "2026-03-02T10:00:00Z", symbol: str = "BTCUSDT", price: str = "100") -> str:
    return f"{trade_id},{stamp},{symbol},buy,{price},1,a,b\n"


def _validate(paths: list[Path], settings, folder: Path, kind: str = "trades", existing_keys=None,
              preset: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    staged = stage_raw_files(paths, ImportOptions(kind=kind, preset=preset), settings, folder / "raw")
    accepted = PartWriter(folder / "accepted", TRADE_SCHEMA if kind == "trades" else ORDER_SCHEMA)
    rejects = PartWriter(folder / "rejects", REJECT_SCHEMA)
    validate_staged(staged.scan(), DAY, kind, settings, accepted, rejects, existing_keys=existing_keys)
    frames = accepted.scan().collect(), rejects.scan().collect()
    assert (accepted.rows, rejects.rows) == (frames[0].height, frames[1].height)
    return frames


def _reasons(rejects: pl.DataFrame) -> list[tuple[str, int, str, str]]:
    return [(Path(r["source"]).name, r["line"], r["field"], r["reason"]) for r in rejects.iter_rows(named=True)]


def test_duplicates_across_files_and_chunks_name_the_first_line(write, settings, tmp_path):
    first = write("landing/trades-a.csv", TRADE_HEADER + "".join(_trade(f"t{i}") for i in range(2500))
                  + _trade("t5", price="999"))
    second = write("landing/trades-b.csv", TRADE_HEADER + _trade("t3", symbol="ETHUSDT") + _trade("t2400")
                   + _trade("u1") + _trade("u1"))
    accepted, rejects = _validate([first, second], settings, tmp_path)
    assert _reasons(rejects) == [
        ("trades-a.csv", 2502, "trade_id", "duplicate trade_id 't5' for symbol BTCUSDT: first seen at line 7"),
        ("trades-b.csv", 3, "trade_id", "duplicate trade_id 't2400' for symbol BTCUSDT: first seen at line 2402"),
        ("trades-b.csv", 5, "trade_id", "duplicate trade_id 'u1' for symbol BTCUSDT: first seen at line 4"),
    ]
    assert accepted.height == 2502  # t0..t2499, t3 of ETHUSDT and u1
    assert accepted["trade_id"].head(2500).to_list() == [f"t{i}" for i in range(2500)]  # file order kept
    assert accepted.filter(pl.col("trade_id") == "t5")["price"].to_list() == [100.0]  # the first one is kept


def test_stored_keys_and_other_days_are_checked_after_duplicates(write, settings, tmp_path):
    path = write("landing/trades.csv", TRADE_HEADER + _trade("t1") + _trade("t2", "2026-03-01T23:59:59Z")
                 + _trade("t3", price="-1") + _trade("t2") + _trade("t4") + _trade("t1"))
    def stored(keys: pl.DataFrame) -> pl.DataFrame:  # what the database would say
        return keys.filter(pl.col("trade_id") == "t1")

    accepted, rejects = _validate([path], settings, tmp_path, existing_keys=stored)
    assert [(line, field, reason) for _, line, field, reason in _reasons(rejects)] == [
        (2, "trade_id", "trade_id 't1' for symbol BTCUSDT is already stored"),
        (3, "timestamp", "not on the partition's day 2026-03-02 (UTC)"),
        (4, "price", "must be a finite number > 0, got -1"),
        (5, "trade_id", "duplicate trade_id 't2' for symbol BTCUSDT: first seen at line 3"),
        (7, "trade_id", "duplicate trade_id 't1' for symbol BTCUSDT: first seen at line 2"),
    ]
    assert rejects["value"][1] == "2026-03-01T23:59:59Z"
    assert accepted["trade_id"].to_list() == ["t4"]


def test_a_day_gives_what_each_file_gives_on_its_own(write, settings, tmp_path):
    rows = [_trade(f"t{i % 1700}", f"2026-03-02T10:{i % 60:02d}:00Z", price=("x" if i % 97 == 0 else "5"))
            for i in range(2600)]
    path = write("landing/trades.csv", TRADE_HEADER + "".join(rows) + "t9, 2026-03-02 11:00:00 ,ethusdt, SELL ,1,1,,\n")
    accepted, rejects = _validate([path], settings, tmp_path)
    prepared = prepare_source(path, ImportOptions(kind="trades"))
    ctx = make_context(False, settings.ingest.min_timestamp, settings.ingest.max_future_seconds)
    chunks = list(iter_validated(prepared, ctx, settings.ingest.batch_rows))
    assert accepted.equals(pl.concat([a for _, a, _ in chunks]).drop("__line"))
    assert rejects.equals(pl.concat([r for _, _, r in chunks]))
    assert rejects.height > 800 and accepted.tail(1)["side"].to_list() == ["sell"]


def test_generated_trade_ids_are_the_file_s_and_overlapping_tapes_collide(write, settings, tmp_path):
    tape = "1772445600,100.0,1\n1772445600,100.1,2\n1772445601,100.2,1\n"
    first = write("landing/XBTUSD_a.csv", tape)
    second = write("landing/XBTUSD_b.csv", "".join(tape.splitlines(keepends=True)[:2]) + "1772445602,100.3,1\n")
    accepted, rejects = _validate([first, second], settings, tmp_path, preset="kraken_trades_csv")
    assert accepted["trade_id"].to_list() == ["1772445600000000-0", "1772445600000000-1", "1772445601000000-0",
                                              "1772445602000000-0"]
    assert _reasons(rejects) == [
        ("XBTUSD_b.csv", n, "trade_id",
         f"duplicate trade_id '1772445600000000-{n - 1}' for symbol XBTUSD: first seen at line {n}")
        for n in (1, 2)
    ]


def _parquet_trades(path: Path, stamps: pl.Series) -> Path:
    n = stamps.len()
    pl.DataFrame({"trade_id": [f"t{i}" for i in range(n)], "timestamp": stamps, "symbol": ["BTCUSDT"] * n,
                  "side": ["buy"] * n, "price": [100.0] * n, "quantity": [1.0] * n}).write_parquet(path)
    return path


@pytest.mark.parametrize("dtype", [pl.Datetime("us"), pl.Datetime("ns"), pl.Datetime("us", "UTC"),
                                   pl.Datetime("ms", "Asia/Tokyo"), pl.Datetime("ns", "America/New_York")])
def test_typed_parquet_timestamps_are_utc_instants(tmp_path, settings, dtype):
    instants = [datetime(2026, 3, 2, 0, 0, tzinfo=UTC), datetime(2026, 3, 2, 10, 30, 15, 123000, tzinfo=UTC),
                datetime(2026, 3, 2, 23, 59, 59, 999000, tzinfo=UTC)]
    stamps = pl.Series("timestamp", instants).dt.convert_time_zone(dtype.time_zone or "UTC")
    if dtype.time_zone is None:  # naive: the wall-clock time in UTC
        stamps = stamps.dt.replace_time_zone(None)
    (tmp_path / "landing").mkdir()
    path = _parquet_trades(tmp_path / "landing" / "trades.parquet", stamps.cast(dtype))
    accepted, rejects = _validate([path], settings, tmp_path)
    assert rejects.height == 0
    assert accepted["timestamp"].to_list() == instants
    streamed = validate_file(path, ImportOptions(), settings)
    assert (streamed.rows_accepted, streamed.rows_rejected) == (3, 0)


def test_typed_parquet_timestamps_out_of_range_read_as_instants(tmp_path, settings):
    stamps = pl.Series("timestamp", [datetime(2001, 1, 1), datetime(1970, 1, 1), datetime(2026, 3, 2, 12)])
    (tmp_path / "landing").mkdir()
    path = _parquet_trades(tmp_path / "landing" / "trades.parquet", stamps)
    accepted, rejects = _validate([path], settings, tmp_path)
    high = rejects["reason"].str.extract(r"\.\. (\S+):")[0]
    low = "outside the accepted range 2009-01-03T00:00:00Z .. " + high
    assert [(r["line"], r["value"], r["reason"]) for r in rejects.iter_rows(named=True)] == [
        (1, "978307200000000", f"{low}: '978307200000000' (2001-01-01T00:00:00Z)"),  # epoch µs, and its instant
        (2, "1970-01-01T00:00:00.000000Z", f"{low}: '1970-01-01T00:00:00.000000Z'"),  # µs would read as seconds
    ]
    assert accepted["timestamp"].to_list() == [datetime(2026, 3, 2, 12, tzinfo=UTC)]


def test_an_empty_day(tmp_path, settings, write):
    path = write("landing/trades.csv", TRADE_HEADER + _trade("t1", "2026-03-05T00:00:00Z"))
    accepted, rejects = _validate([path], settings, tmp_path)
    assert accepted.height == 0 and rejects["reason"].to_list() == ["not on the partition's day 2026-03-02 (UTC)"]
    assert _validate([], settings, tmp_path / "none")[0].schema == pl.Schema(TRADE_SCHEMA)


def test_order_events_repeated_across_files(tmp_path, settings, write):
    header = "order_id,timestamp,user_id,symbol,side,price,quantity,event\n"
    base = datetime(2026, 3, 2, 9, tzinfo=UTC)
    rows = "".join(f"o{i},{(base + timedelta(seconds=i)).isoformat()},u,BTCUSDT,buy,1,1,new\n" for i in range(1200))
    first = write("landing/orders-a.csv", header + rows)
    second = write("landing/orders-b.csv", header + "o7,2026-03-02T09:00:07Z,u,BTCUSDT,buy,1,1,NEW\n"
                   + "o7,2026-03-02T09:00:08Z,u,BTCUSDT,buy,,,cancel\n")
    accepted, rejects = _validate([first, second], settings, tmp_path, kind="orders")
    assert _reasons(rejects) == [("orders-b.csv", 2, "order_id",
                                  "duplicate event 'new' of order 'o7' at 2026-03-02T09:00:07Z: first seen at line 9")]
    assert accepted.height == 1201
