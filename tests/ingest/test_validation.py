"""Every bad-input case gives the exact message; valid rows survive invalid ones."""
from __future__ import annotations

import gzip

import polars as pl
import pytest

from surveillance_pipeline.ingest.importer import ImportOptions
from surveillance_pipeline.ingest.readers import InputFileError
from surveillance_pipeline.ingest.service import validate_file
from tests.conftest import TRADE_HEADER

GOOD = "t1,2024-03-01T10:00:00Z,BTCUSDT,buy,60000,0.5,a,b\n"


def _reasons(result) -> list[tuple[int, str, str]]:
    return [(r["line"], r["field"], r["reason"]) for r in result.rejects.iter_rows(named=True)]


@pytest.mark.parametrize(
    "row, field, reason",
    [
        (",2024-03-01T10:00:01Z,BTCUSDT,buy,60000,0.5,a,b", "trade_id", "required field is empty"),
        ("t2,,BTCUSDT,buy,60000,0.5,a,b", "timestamp", "required field is empty"),
        ("t2,2024-03-01T10:00:01Z,,buy,60000,0.5,a,b", "symbol", "required field is empty"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,,60000,0.5,a,b", "side", "required field is empty"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,,0.5,a,b", "price", "required field is empty"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,60000,,a,b", "quantity", "required field is empty"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,abc,0.5,a,b", "price", "not a number: 'abc'"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,-5,0.5,a,b", "price", "must be a finite number > 0, got -5"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,0,0.5,a,b", "price", "must be a finite number > 0, got 0"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,60000,0,a,b", "quantity", "must be a finite number > 0, got 0"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,hold,60000,0.5,a,b", "side", "must be 'buy' or 'sell', got 'hold'"),
        ("t2,yesterday,BTCUSDT,buy,60000,0.5,a,b", "timestamp",
         "not a timestamp: 'yesterday' (expected ISO-8601 or epoch s/ms/µs/ns)"),
        ("t2,2001-01-01T00:00:00Z,BTCUSDT,buy,60000,0.5,a,b", "timestamp",
         "outside the accepted range 2009-01-03T00:00:00Z .. {high}: '2001-01-01T00:00:00Z'"),
        ("t1,2024-03-01T10:00:01Z,BTCUSDT,buy,60000,0.5,a,b", "trade_id",
         "duplicate trade_id 't1' for symbol BTCUSDT: first seen at line 2"),
        ("t2,2024-03-01T10:00:01Z,BTCUSDT,buy,60000,0.5,a,b,extra", "row", "expected 8 fields, found 9"),
    ],
)
def test_row_errors_name_line_field_and_reason(write, settings, row, field, reason):
    path = write("trades.csv", TRADE_HEADER + GOOD + row + "\n" + GOOD.replace("t1", "t3"))
    result = validate_file(path, ImportOptions(), settings)
    high = result.rejects["reason"].str.extract(r"\.\. (\S+):").drop_nulls()
    expected = reason.format(high=high[0] if high.len() else "")
    assert _reasons(result) == [(3, field, expected)]
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (3, 2, 1)
    assert result.status == "partial"


def test_a_row_with_several_bad_fields_is_one_rejected_row(write, settings):
    path = write("trades.csv", TRADE_HEADER + GOOD + "t2,never,BTCUSDT,up,-1,x,a,b\n")
    result = validate_file(path, ImportOptions(), settings)
    assert _reasons(result) == [
        (3, "timestamp", "not a timestamp: 'never' (expected ISO-8601 or epoch s/ms/µs/ns)"),
        (3, "side", "must be 'buy' or 'sell', got 'up'"),
        (3, "price", "must be a finite number > 0, got -1"),
        (3, "quantity", "not a number: 'x'"),
    ]
    assert result.rows_rejected == 1
    assert result.reject_lines(1) == [f"{path}:3: timestamp: not a timestamp: 'never' (expected ISO-8601 or epoch s/ms/µs/ns)"]


def test_duplicates_are_found_across_chunks(write, settings):
    rows = "".join(f"t{i},2024-03-01T10:00:{i % 60:02d}Z,BTCUSDT,sell,100,1,a,b\n" for i in range(2500))
    path = write("trades.csv", TRADE_HEADER + rows + "t5,2024-03-01T11:00:00Z,BTCUSDT,buy,100,1,a,b\n")
    result = validate_file(path, ImportOptions(batch_rows=1000), settings)
    assert _reasons(result) == [(2502, "trade_id", "duplicate trade_id 't5' for symbol BTCUSDT: first seen at line 7")]
    assert result.rows_accepted == 2500


def test_same_trade_id_on_another_symbol_is_not_a_duplicate(write, settings):
    path = write("trades.csv", TRADE_HEADER + GOOD + GOOD.replace("BTCUSDT", "ETHUSDT"))
    assert validate_file(path, ImportOptions(), settings).rows_rejected == 0


def test_strict_rejects_the_whole_file(write, settings):
    path = write("trades.csv", TRADE_HEADER + GOOD + "t2,2024-03-01T10:00:01Z,BTCUSDT,buy,-1,1,a,b\n")
    result = validate_file(path, ImportOptions(strict=True), settings)
    assert (result.rows_read, result.rows_accepted, result.rows_rejected, result.status) == (2, 0, 2, "rejected")
    assert "strict: whole file rejected" in result.summary()


def test_orders_cancel_needs_no_price_and_market_orders_no_price(write, settings):
    path = write("orders.csv", "order_id,timestamp,user_id,symbol,side,price,quantity,event,order_type\n"
                 "o1,2024-03-01T10:00:00Z,u1,BTCUSDT,buy,100,1,new,limit\n"
                 "o1,2024-03-01T10:00:01Z,u1,BTCUSDT,buy,,,cancel,limit\n"
                 "o2,2024-03-01T10:00:02Z,u1,BTCUSDT,buy,,1,new,market\n"
                 "o3,2024-03-01T10:00:03Z,u1,BTCUSDT,buy,,1,new,limit\n"
                 "o4,2024-03-01T10:00:04Z,u1,BTCUSDT,buy,100,1,place,limit\n"
                 "o1,2024-03-01T10:00:00Z,u1,BTCUSDT,buy,100,1,new,limit\n")
    result = validate_file(path, ImportOptions(), settings)
    assert result.kind == "orders" and result.preset == "contract_orders"
    assert _reasons(result) == [
        (5, "price", "required field is empty"),
        (6, "event", "must be 'new' or 'cancel' or 'modify' or 'fill', got 'place'"),
        (7, "order_id", "duplicate event 'new' of order 'o1' at 2024-03-01T10:00:00Z: first seen at line 2"),
    ]


# -- whole-file errors ---------------------------------------------------------------------------------
def test_missing_required_column(write, settings):
    path = write("trades.csv", "trade_id,timestamp,symbol,side,price\nt1,2024-03-01T10:00:00Z,BTCUSDT,buy,1\n")
    with pytest.raises(InputFileError) as error:
        validate_file(path, ImportOptions(preset="contract_trades"), settings)
    assert str(error.value) == (f"{path}: missing required column 'quantity' (looked for source column 'quantity'; "
                                "found columns: trade_id, timestamp, symbol, side, price)")


def test_unknown_columns_without_preset_or_mapping(write, settings):
    path = write("trades.csv", "a,b\n1,2\n")
    with pytest.raises(InputFileError, match=r"no preset matches the columns \(a, b\); pass --preset NAME"):
        validate_file(path, ImportOptions(), settings)


def test_column_mapping_covers_unknown_venues(write, settings):
    path = write("venue.csv", "id,ts,pair,taker,px,qty\n9,1709287200000,BTCUSDT,SELL,60000,0.1\n")
    mapping = {"trade_id": "id", "timestamp": "ts", "symbol": "pair", "side": "taker", "price": "px", "quantity": "qty"}
    result = validate_file(path, ImportOptions(mapping=mapping), settings)
    assert (result.rows_accepted, result.rows_rejected) == (1, 0)


def test_truncated_gzip(tmp_path, settings):
    data = gzip.compress((TRADE_HEADER + GOOD * 2000).encode())
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"trades.csv.gz: truncated compressed file"):
        validate_file(path, ImportOptions(), settings)


def test_wrong_format(tmp_path, settings):
    path = tmp_path / "trades.parquet"
    path.write_text(TRADE_HEADER + GOOD)
    with pytest.raises(InputFileError, match=r"trades.parquet: not readable as parquet"):
        validate_file(path, ImportOptions(), settings)


def test_unknown_extension_and_missing_file(tmp_path, settings):
    path = tmp_path / "trades.dat"
    path.write_text(TRADE_HEADER)
    with pytest.raises(InputFileError, match="cannot tell the format from the extension; pass --format"):
        validate_file(path, ImportOptions(), settings)
    with pytest.raises(InputFileError, match="nothing.csv: file not found"):
        validate_file(tmp_path / "nothing.csv", ImportOptions(), settings)


def test_empty_file(write, settings):
    with pytest.raises(InputFileError, match="empty.csv: empty file"):
        validate_file(write("empty.csv", ""), ImportOptions(), settings)


# -- formats ---------------------------------------------------------------------------------------------
def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "trade_id": ["t1", "t2", "t3"],
        "timestamp": ["2024-03-01T10:00:00Z", "1709287201000", "bad"],
        "symbol": ["BTCUSDT"] * 3, "side": ["BUY", "sell", "buy"],
        "price": ["60000", "60001", "1"], "quantity": ["0.1", "0.2", "1"],
    })


def _write_xlsx(frame: pl.DataFrame, path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(frame.columns)
    for row in frame.iter_rows():
        sheet.append(list(row))
    book.save(path)


@pytest.mark.parametrize("name, writer, bad_line", [
    ("trades.csv", lambda f, p: f.write_csv(p), 4),
    ("trades.jsonl", lambda f, p: f.write_ndjson(p), 3),
    ("trades.json", lambda f, p: f.write_json(p), 3),
    ("trades.parquet", lambda f, p: f.write_parquet(p), 3),
    ("trades.xlsx", lambda f, p: _write_xlsx(f, p), 4),
    ("trades.csv.gz", lambda f, p: p.write_bytes(gzip.compress(f.write_csv().encode())), 4),
    ("trades.jsonl.gz", lambda f, p: p.write_bytes(gzip.compress(f.write_ndjson().encode())), 3),
])
def test_every_format_reads_with_line_numbers(tmp_path, settings, name, writer, bad_line):
    path = tmp_path / name
    writer(_frame(), path)
    result = validate_file(path, ImportOptions(), settings)
    assert (result.rows_read, result.rows_accepted) == (3, 2)
    assert _reasons(result)[0][:2] == (bad_line, "timestamp")


def test_explicit_format_overrides_the_extension(tmp_path, settings):
    path = tmp_path / "export.txt"
    path.write_text(_frame().write_ndjson())
    assert validate_file(path, ImportOptions(format="jsonl"), settings).rows_accepted == 2
