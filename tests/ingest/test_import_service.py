"""Importing into the database, on SQLite and PostgreSQL: partial imports, duplicates, strictness, atomicity."""
from __future__ import annotations

import gzip
from datetime import datetime, timezone

import polars as pl
import pytest

from surveillance_pipeline.ingest.importer import ImportOptions
from surveillance_pipeline.ingest.readers import InputFileError
from surveillance_pipeline.ingest.service import import_file
from surveillance_pipeline.storage.models import imports_table, rejected_rows_table
from tests.conftest import FIXTURES, TRADE_HEADER

START, END = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc)
ROWS = (TRADE_HEADER + "t1,2024-03-01T10:00:00Z,BTCUSDT,buy,60000,0.5,a,b\n"
        "t2,2024-03-01T10:00:01Z,BTCUSDT,sell,-1,0.5,a,b\n"
        "t3,2024-03-01T10:00:02.123456Z,BTCUSDT,sell,60001,0.25,b,a\n")


def _table(db, table) -> pl.DataFrame:
    with db.transaction() as conn:
        return pl.DataFrame([dict(r._mapping) for r in conn.execute(table.select())])


def test_valid_rows_are_stored_and_rejects_kept(db, settings, write):
    path = write("trades.csv", ROWS)
    result = import_file(path, ImportOptions(), settings, db)
    assert (result.rows_read, result.rows_accepted, result.rows_rejected, result.status) == (3, 2, 1, "partial")
    trades = db.read_trades(START, END)
    assert trades["trade_id"].to_list() == ["t1", "t3"]
    assert trades["timestamp"][1] == datetime(2024, 3, 1, 10, 0, 2, 123456, tzinfo=timezone.utc)
    rejected = _table(db, rejected_rows_table)
    assert rejected.select("line", "field", "reason").rows() == [(3, "price", "must be a finite number > 0, got -1")]
    record = _table(db, imports_table).row(0, named=True)
    assert (record["rows_read"], record["rows_accepted"], record["rows_rejected"], record["status"]) == (3, 2, 1, "partial")
    assert pl.read_csv(result.rejects_path)["reason"].to_list() == ["must be a finite number > 0, got -1"]


def test_reimport_rejects_rows_already_stored(db, settings, write):
    path = write("trades.csv", ROWS)
    import_file(path, ImportOptions(), settings, db)
    again = import_file(path, ImportOptions(), settings, db)
    assert (again.rows_accepted, again.rows_rejected, again.status) == (0, 3, "rejected")
    assert "trade_id 't1' for symbol BTCUSDT is already stored" in again.rejects["reason"].to_list()
    assert db.counts()["trades"] == 2


def test_strict_import_stores_nothing(db, settings, write):
    result = import_file(write("trades.csv", ROWS), ImportOptions(strict=True), settings, db)
    assert (result.rows_accepted, result.rows_rejected, result.status) == (0, 3, "rejected")
    assert db.counts()["trades"] == 0
    assert _table(db, imports_table)["status"].to_list() == ["rejected"]


def test_unreadable_file_midway_leaves_nothing_behind(db, settings, tmp_path):
    rows = "".join(f"t{i},2024-03-01T10:00:00Z,BTCUSDT,buy,1,1,a,b\n" for i in range(5000))
    data = gzip.compress((TRADE_HEADER + rows).encode())
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(data[: int(len(data) * 0.8)])  # several chunks read, then the stream ends early
    with pytest.raises(InputFileError, match="truncated compressed file"):
        import_file(path, ImportOptions(batch_rows=1000), settings, db)
    assert db.counts()["trades"] == 0 and db.counts()["imports"] == 0
    assert not any((tmp_path / "rejects").glob("*"))  # no rejects file of an import that did not happen


def test_pump_tape_reimport_is_caught_by_generated_ids(db, settings):
    tape = FIXTURES / "pumps" / "ONG_2019-10-29_18.00.csv.gz"
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(
        update={"min_timestamp": datetime(2017, 1, 1, tzinfo=timezone.utc)})})
    first = import_file(tape, ImportOptions(), settings, db)
    assert (first.rows_accepted, first.rows_rejected) == (100, 0)
    second = import_file(tape, ImportOptions(), settings, db)
    assert (second.rows_accepted, second.rows_rejected) == (0, 100)


def test_orders_import(db, settings, write):
    path = write("orders.csv", "order_id,timestamp,user_id,symbol,side,price,quantity,event\n"
                 "o1,2024-03-01T10:00:00Z,u1,BTCUSDT,buy,100,1,new\n"
                 "o1,2024-03-01T10:00:00.5Z,u1,BTCUSDT,buy,,,cancel\n")
    result = import_file(path, ImportOptions(), settings, db)
    assert (result.kind, result.rows_accepted) == ("orders", 2)
    assert db.read_orders(START, END)["event"].to_list() == ["new", "cancel"]
