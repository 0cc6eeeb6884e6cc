"""Bulk insert / read round-trips, partition replacement, existing keys, bookkeeping; on both backends."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal

from surveillance_pipeline.contract import (
    ORDER_KEY,
    ORDER_SCHEMA,
    REJECT_SCHEMA,
    TRADE_KEY,
    TRADE_SCHEMA,
    Order,
    Reject,
    Trade,
)
from surveillance_pipeline.storage import Database, bulk
from surveillance_pipeline.storage.models import imports_table, rejected_rows_table, trades_table

DAY = dt.date(2024, 3, 1)
NEXT = DAY + dt.timedelta(days=1)
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
T2 = T0 + dt.timedelta(days=2)


def test_trades_round_trip_preserves_dtypes_and_microseconds(db: Database, make_trades) -> None:
    trades = make_trades(6)
    assert db.insert_trades(trades) == 6
    back = db.read_trades(T0, T2)
    assert back.schema == pl.Schema(TRADE_SCHEMA)
    assert_frame_equal(back, trades.sort(Trade.TIMESTAMP))
    assert back.get_column(Trade.TIMESTAMP).dt.microsecond().to_list() \
        == trades.sort(Trade.TIMESTAMP).get_column(Trade.TIMESTAMP).dt.microsecond().to_list()
    # an empty string stays empty, a null stays null
    assert back.get_column(Trade.SELLER_ORDER_ID).to_list().count("") == 3


def test_orders_round_trip(db: Database, make_orders) -> None:
    orders = make_orders(4)
    assert db.insert_orders(orders) == 4
    back = db.read_orders(T0, T2)
    assert back.schema == pl.Schema(ORDER_SCHEMA)
    assert_frame_equal(back, orders)


def test_read_window_symbols_and_time_zones(db: Database, make_trades) -> None:
    db.insert_trades(pl.concat([make_trades(4), make_trades(3, NEXT, symbol="ETHUSDT")]))
    assert db.read_trades(T0, T2, symbols=["ETHUSDT"]).height == 3
    assert db.read_trades(T0, T2, symbols=[]).height == 0
    assert db.read_trades(T0, T0 + dt.timedelta(days=1)).height == 4            # end is exclusive
    first = db.read_trades(T0, T2).get_column(Trade.TIMESTAMP)[0]
    assert db.read_trades(first, T2).height == 7 and db.read_trades(first + dt.timedelta(microseconds=1), T2).height == 6
    naive = dt.datetime(2024, 3, 2)                                              # naive = UTC
    assert db.read_trades(naive, naive + dt.timedelta(days=1)).height == 3
    paris = dt.timezone(dt.timedelta(hours=1))
    assert db.read_trades(dt.datetime(2024, 3, 2, 1, tzinfo=paris), T2).height == 3
    assert db.read_trades(T2, T2 + dt.timedelta(days=1)).schema == pl.Schema(TRADE_SCHEMA)


def test_insert_accepts_missing_optional_columns_and_other_time_zones(db: Database, make_trades) -> None:
    tape = make_trades(2).select(Trade.TRADE_ID, Trade.TIMESTAMP, Trade.SYMBOL, Trade.SIDE, Trade.PRICE, Trade.QUANTITY)
    tape = tape.with_columns(pl.col(Trade.TIMESTAMP).dt.convert_time_zone("Asia/Tokyo"))
    db.insert_trades(tape, import_id=None)
    back = db.read_trades(T0, T2)
    assert back.get_column(Trade.BUYER_ID).null_count() == 2
    assert back.get_column(Trade.TIMESTAMP).to_list() == make_trades(2).get_column(Trade.TIMESTAMP).to_list()
    assert db.insert_trades(make_trades(0)) == 0


def test_partition_and_import_id_columns(db: Database, make_trades) -> None:
    import_id = db.start_import("landing/trades.csv", "trades", DAY)
    db.insert_trades(make_trades(3), import_id=import_id)
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(trades_table.c.trade_date, trades_table.c.import_id)).all()
    assert rows == [(DAY, import_id)] * 3


def test_replace_partition_twice_leaves_one_copy(db: Database, make_trades, make_orders) -> None:
    db.insert_trades(make_trades(2, NEXT, prefix="n"))
    assert db.replace_trades_partition(DAY, make_trades(5)) == 5
    assert db.replace_trades_partition(DAY, make_trades(5)) == 5
    assert db.counts()["trades"] == 7
    assert db.replace_trades_partition(DAY, make_trades(3)) == 3                 # smaller re-run
    assert db.read_trades(T0, T0 + dt.timedelta(days=1)).height == 3
    assert db.read_trades(T0, T2).height == 5                                     # other day untouched
    db.replace_orders_partition(DAY, make_orders(4))
    db.replace_orders_partition(DAY, make_orders(4))
    assert db.counts()["orders"] == 4


def test_replace_partition_rejects_rows_of_other_days(db: Database, make_trades) -> None:
    with pytest.raises(ValueError, match="not on partition"):
        db.replace_trades_partition(DAY, make_trades(2, NEXT))
    assert db.counts()["trades"] == 0


def test_failure_mid_write_keeps_previous_rows(db: Database, make_trades, monkeypatch) -> None:
    before = make_trades(5)
    db.replace_trades_partition(DAY, before)
    real_insert_chunk, calls = bulk._insert_chunk, []

    def failing_insert_chunk(conn, table, chunk):
        calls.append(chunk.height)
        real_insert_chunk(conn, table, chunk)                                     # a chunk really is written
        if len(calls) == 2:
            raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(bulk, "CHUNK_ROWS", 4)
    monkeypatch.setattr(bulk, "_insert_chunk", failing_insert_chunk)
    with pytest.raises(RuntimeError, match="injected"):
        db.replace_trades_partition(DAY, make_trades(20, prefix="x"))
    assert calls == [4, 4]
    assert_frame_equal(db.read_trades(T0, T2), before.sort(Trade.TIMESTAMP))


def test_database_error_mid_write_keeps_previous_rows(db: Database, make_trades) -> None:
    before = make_trades(5)
    db.replace_trades_partition(DAY, before)
    duplicated = pl.concat([make_trades(6, prefix="y"), make_trades(1, prefix="y")])
    with pytest.raises(sa.exc.IntegrityError):
        db.replace_trades_partition(DAY, duplicated)
    assert_frame_equal(db.read_trades(T0, T2), before.sort(Trade.TIMESTAMP))


def test_unique_constraints_raise(db: Database, make_trades, make_orders) -> None:
    db.insert_trades(make_trades(3))
    with pytest.raises(sa.exc.IntegrityError):
        db.insert_trades(make_trades(1))
    db.insert_trades(make_trades(1, symbol="ETHUSDT"))                            # same id, other symbol: fine
    db.insert_orders(make_orders(2))
    with pytest.raises(sa.exc.IntegrityError):
        db.insert_orders(make_orders(1))
    shifted = make_orders(1).with_columns(pl.col(Order.TIMESTAMP) + dt.timedelta(microseconds=1))
    db.insert_orders(shifted)                                                     # same order, other time: fine
    assert db.counts()["trades"] == 4 and db.counts()["orders"] == 3


def test_existing_trade_keys(db: Database, make_trades) -> None:
    db.insert_trades(pl.concat([make_trades(3), make_trades(2, NEXT, prefix="n")]))
    incoming = pl.concat([make_trades(4), make_trades(3, NEXT, prefix="n"), make_trades(2)])   # dupes inside too
    found = db.existing_trade_keys(incoming).sort(Trade.TRADE_ID)
    assert found.schema == pl.Schema({k: TRADE_SCHEMA[k] for k in TRADE_KEY})
    assert found.get_column(Trade.TRADE_ID).to_list() == ["n0", "n1", "t0", "t1", "t2"]
    found = db.existing_trade_keys(incoming, exclude_day=DAY).sort(Trade.TRADE_ID)
    assert found.get_column(Trade.TRADE_ID).to_list() == ["n0", "n1"]
    assert db.existing_trade_keys(incoming.head(0)).height == 0
    assert db.existing_trade_keys(make_trades(2, symbol="ETHUSDT")).height == 0


def test_existing_order_keys_in_batches(db: Database, make_orders, monkeypatch) -> None:
    from surveillance_pipeline.storage import database
    monkeypatch.setattr(database, "_KEY_BATCH_ROWS", 3)
    db.insert_orders(make_orders(4))
    incoming = pl.concat([make_orders(6), make_orders(2, NEXT)])
    with db.transaction() as conn:                                                # twice in one transaction
        found = db.existing_order_keys(incoming, conn=conn)
        again = db.existing_order_keys(incoming, exclude_day=DAY, conn=conn)
    assert found.schema == pl.Schema({k: ORDER_SCHEMA[k] for k in ORDER_KEY})
    assert_frame_equal(found.sort(Order.TIMESTAMP), make_orders(4).select(ORDER_KEY))
    assert again.height == 0


def test_import_bookkeeping_and_rejects(db: Database) -> None:
    rejects = pl.DataFrame({
        Reject.SOURCE: ["in.csv", "in.csv"], Reject.LINE: [3, 9], Reject.FIELD: ["price", None],
        Reject.VALUE: ["-1", None], Reject.REASON: ["price must be > 0", "malformed line"]}, schema=REJECT_SCHEMA)
    with db.transaction() as conn:
        import_id = db.start_import("in.csv", "trades", DAY, conn=conn)
        assert db.insert_rejects(import_id, rejects, conn=conn) == 2
        db.finish_import(import_id, rows_read=10, rows_accepted=8, rows_rejected=2, status="partial", conn=conn)
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(imports_table).where(imports_table.c.id == import_id)).mappings().one()
        stored = conn.execute(sa.select(rejected_rows_table.c.line, rejected_rows_table.c.field,
                                        rejected_rows_table.c.reason, rejected_rows_table.c.created_at)
                              .order_by(rejected_rows_table.c.line)).all()
    assert (row["kind"], row["partition_date"], row["status"]) == ("trades", DAY, "partial")
    assert (row["rows_read"], row["rows_accepted"], row["rows_rejected"]) == (10, 8, 2)
    assert row["finished_at"] is not None and row["started_at"] is not None
    assert [(r.line, r.field, r.reason) for r in stored] == [(3, "price", "price must be > 0"), (9, None, "malformed line")]
    assert all(r.created_at is not None for r in stored)
    with pytest.raises(ValueError):
        db.start_import("x.csv", "quotes")
    with pytest.raises(LookupError):
        db.finish_import(10_000, 0, 0, 0, "failed")
    with pytest.raises(sa.exc.IntegrityError):                                    # foreign key to imports
        db.insert_rejects(10_000, rejects)


def test_transaction_is_atomic(db: Database, make_trades) -> None:
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            import_id = db.start_import("in.csv", "trades", DAY, conn=conn)
            db.replace_trades_partition(DAY, make_trades(3), import_id=import_id, conn=conn)
            raise RuntimeError("validation failed afterwards")
    assert db.counts()["imports"] == 0 and db.counts()["trades"] == 0


def test_missing_required_column_raises(db: Database, make_trades, make_orders) -> None:
    with pytest.raises(ValueError, match="required"):
        db.insert_trades(make_trades(2).drop(Trade.PRICE))
    with pytest.raises(ValueError, match="required"):
        db.existing_order_keys(make_orders(2).drop(Order.EVENT))
    assert db.counts()["trades"] == 0


def test_forget_partition_imports_cascades_to_rejects(db):
    rejects = pl.DataFrame({"source": ["f.csv"], "line": [3], "field": ["price"], "value": ["-1"],
                            "reason": ["must be a finite number > 0, got -1"]})
    with db.transaction() as conn:
        kept = db.start_import("other.csv", "trades", partition_date=DAY + dt.timedelta(days=1), conn=conn)
        db.insert_rejects(kept, rejects, conn=conn)
        first = db.start_import("dagster partition", "trades", partition_date=DAY, conn=conn)
        db.insert_rejects(first, rejects, conn=conn)
    assert db.forget_partition_imports(DAY, "trades") == 1
    assert db.forget_partition_imports(DAY, "orders") == 0
    counts = db.counts()
    assert (counts["imports"], counts["rejected_rows"]) == (1, 1)
