"""Awkward but real files: BOMs, CRLF, blank lines, quoted newlines, nested JSON, broken bytes."""
from __future__ import annotations

import gzip
import json

import pytest

from surveillance_pipeline.config import load_settings
from surveillance_pipeline.ingest.importer import ImportOptions
from surveillance_pipeline.ingest.readers import InputFileError
from surveillance_pipeline.ingest.service import import_file, validate_file
from tests.conftest import FIXTURES, TRADE_HEADER, make_settings

ROW = "t{i},2024-03-01T10:00:{s:02d}Z,BTCUSDT,buy,60000,0.5,a,b\n"


def _rows(n: int) -> str:
    return "".join(ROW.format(i=i, s=i % 60) for i in range(n))


def _reasons(result):
    return [(r["line"], r["field"], r["reason"]) for r in result.rejects.iter_rows(named=True)]


def test_excel_csv_with_bom_and_crlf(tmp_path, settings):
    path = tmp_path / "trades.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (TRADE_HEADER + _rows(3)).replace("\n", "\r\n").encode())
    result = validate_file(path, ImportOptions(), settings)
    assert (result.preset, result.rows_accepted, result.rows_rejected) == ("contract_trades", 3, 0)


def test_blank_lines_are_not_rows_and_line_numbers_stay_physical(write, settings):
    path = write("trades.csv", TRADE_HEADER + ROW.format(i=1, s=1) + "\n" + "t2,bad,BTCUSDT,buy,1,1,a,b\n\n\n")
    result = validate_file(path, ImportOptions(), settings)
    assert (result.rows_read, result.rows_accepted) == (2, 1)
    assert _reasons(result)[0][:2] == (4, "timestamp")


def test_quoted_newline_on_a_chunk_boundary_stays_in_its_field(tmp_path, settings):
    rows = _rows(40) + 't40,2024-03-01T10:01:00Z,BTCUSDT,buy,60000,0.5,"multi\nline",b\n' + \
        ROW.format(i=41, s=1) + "t42,oops,BTCUSDT,buy,1,1,a,b\n"
    path = tmp_path / "trades.csv"
    path.write_text(TRADE_HEADER + rows)
    for batch_rows in (5, 41, 42, 1000):
        result = validate_file(path, ImportOptions(batch_rows=batch_rows), settings)
        assert (result.rows_read, result.rows_accepted) == (43, 42), batch_rows
        assert _reasons(result)[0][:2] == (45, "timestamp"), batch_rows  # physical line of t42


def test_quoted_newline_value_is_kept(tmp_path, settings):
    from surveillance_pipeline.storage.database import Database

    path = tmp_path / "trades.csv"
    path.write_text(TRADE_HEADER + 't1,2024-03-01T10:01:00Z,BTCUSDT,buy,60000,0.5,"multi\nline",b\n')
    database = Database(settings.database_url)
    database.migrate()
    import_file(path, ImportOptions(), settings, database)
    from datetime import datetime, timezone

    trades = database.read_trades(datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert trades["buyer_id"].to_list() == ["multi\nline"]
    database.dispose()


def test_json_with_lists_of_objects_and_empty_lists(tmp_path, settings):
    with gzip.open(FIXTURES / "real_samples" / "XRP_OLD-trades.json.gz", "rt") as handle:
        records = json.load(handle)[:3]
    records[0]["fees"] = []
    records[1]["fees"] = [{"cost": 0.1, "currency": "ETH"}]
    records[2]["fees"] = []
    records[2]["tags"] = [1, 2]
    path = tmp_path / "ccxt.json"
    path.write_text(json.dumps(records))
    result = validate_file(path, ImportOptions(), settings)
    assert (result.preset, result.rows_accepted) == ("ccxt_trades", 3)


def test_truncated_gzip_at_the_start(tmp_path, settings):
    data = gzip.compress((TRADE_HEADER + _rows(100)).encode())
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(data[:15])
    with pytest.raises(InputFileError, match="trades.csv.gz: truncated compressed file"):
        validate_file(path, ImportOptions(), settings)
    path.write_bytes(data[:10] + b"\x00" * 40 + data[50:])
    with pytest.raises(InputFileError, match="trades.csv.gz: corrupt compressed file"):
        validate_file(path, ImportOptions(), settings)


def test_jsonl_with_trailing_blank_lines_and_empty_json(tmp_path, settings):
    line = json.dumps({"trade_id": "t", "timestamp": 1709287200000, "symbol": "BTCUSDT", "side": "buy",
                       "price": 1, "quantity": 1})
    path = tmp_path / "trades.jsonl"
    path.write_text("\n".join(line.replace('"t"', f'"t{i}"') for i in range(50)) + "\n\n\n\n")
    assert validate_file(path, ImportOptions(batch_rows=5), settings).rows_accepted == 50
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(InputFileError, match="empty.json: empty file"):
        validate_file(empty, ImportOptions(), settings)


def test_configured_mapping_does_not_switch_off_preset_detection(tmp_path):
    settings = make_settings(tmp_path, SURVEILLANCE__INGEST__COLUMN_MAPPING="{fee: commission}")
    result = validate_file(FIXTURES / "real_samples" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz",
                           ImportOptions(), settings)
    assert (result.preset, result.rows_rejected) == ("tardis_trades", 0)


def test_headers_with_spaces_and_capitals(write, settings):
    header = " TRADE_ID , Timestamp,SYMBOL,Side,Price,Quantity,buyer_id,seller_id\n"
    result = validate_file(write("trades.csv", header + _rows(2)), ImportOptions(), settings)
    assert (result.preset, result.rows_accepted) == ("contract_trades", 2)


def test_bytes_that_are_not_utf8_reject_the_row(tmp_path, settings):
    path = tmp_path / "trades.csv"
    path.write_bytes((TRADE_HEADER + ROW.format(i=1, s=1)).encode() + b"t2,2024-03-01T10:00:00Z,BTCUSDT,buy,1,1,Jos\xe9,b\n")
    result = validate_file(path, ImportOptions(), settings)
    assert result.rows_accepted == 1
    assert _reasons(result) == [(3, "row", "not UTF-8 text (byte 0xe9 at column 44)")]


def test_strict_rejection_keeps_every_reject_in_the_table(db, settings, write):
    path = write("trades.csv", TRADE_HEADER + "".join(f"t{i},2024-03-01T10:00:00Z,BTCUSDT,buy,-1,1,a,b\n"
                                                      for i in range(1500)))
    result = import_file(path, ImportOptions(strict=True), settings, db)
    assert result.rows_rejected == 1500
    assert db.counts()["rejected_rows"] == 1500 and db.counts()["trades"] == 0


def test_environment_dates_and_bad_yaml_stay_text():
    settings = load_settings(environ={"SURVEILLANCE__PARTITIONS__START_DATE": "2026-02-01",
                                      "SURVEILLANCE__INGEST__MIN_TIMESTAMP": "2015-01-01T00:00:00Z"})
    assert settings.partitions.start_date == "2026-02-01"
    assert settings.ingest.min_timestamp.year == 2015
    with pytest.raises(Exception, match="config key 'logging.level'"):
        load_settings(environ={"SURVEILLANCE__LOGGING__LEVEL": "[oops"})
