"""Migrations: idempotent, and the migrated schema is exactly the models' schema."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from surveillance_pipeline.storage import Base, Database, normalize_url
from surveillance_pipeline.storage.models import NAMING_CONVENTION

TABLES = {"trades", "orders", "imports", "rejected_rows", "alerts", "feedback", "model_versions",
          "futures_funding_rates", "futures_liquidations", "futures_basis_history", "futures_premium_index",
          "market_snapshots"}


def _revision(db: Database) -> str:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrate_twice_is_idempotent(empty_db: Database) -> None:
    assert _revision(empty_db) is None
    empty_db.migrate()
    assert _revision(empty_db) == "0004"
    assert set(empty_db.counts()) == TABLES
    empty_db.migrate()
    assert _revision(empty_db) == "0004"
    assert empty_db.counts() == {name: 0 for name in TABLES}


def test_migrated_schema_matches_models(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_indexes_and_unique_constraints_exist(db: Database) -> None:
    inspector = sa.inspect(db.engine)
    indexes = {i["name"] for t in TABLES for i in inspector.get_indexes(t)}
    assert {"ix_trades_symbol_timestamp", "ix_trades_buyer_id_timestamp", "ix_trades_seller_id_timestamp",
            "ix_trades_trade_date", "ix_orders_symbol_timestamp", "ix_orders_user_id_timestamp",
            "ix_orders_order_date", "ix_orders_order_id", "ix_rejected_rows_import_id", "ix_alerts_window_start",
            "ix_alerts_risk_level", "ix_alerts_symbol", "ix_alerts_pattern", "ix_alerts_user_ids"} <= indexes
    uniques = {u["name"]: u["column_names"] for t in TABLES for u in inspector.get_unique_constraints(t)}
    assert uniques["uq_trades_symbol_trade_id"] == ["symbol", "trade_id"]
    assert uniques["uq_orders_symbol_order_id_event_timestamp"] == ["symbol", "order_id", "event", "timestamp"]
    assert uniques["uq_model_versions_model_name_version"] == ["model_name", "version"]
    assert "uq_alerts_alert_id" in uniques
    assert NAMING_CONVENTION["pk"] == "pk_%(table_name)s"


def test_backend_settings(db: Database) -> None:
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    else:
        assert db.engine.url.drivername == "postgresql+psycopg2"
        assert db.engine.pool.__class__.__name__ == "QueuePool"
        assert db.engine.pool._pre_ping


def test_url_normalisation(tmp_path) -> None:
    assert normalize_url("postgresql://u:p@h:5/d") == "postgresql+psycopg2://u:p@h:5/d"
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    path = tmp_path / "a" / "b" / "store.db"
    database = Database(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        database.migrate()
        assert path.is_file()
    finally:
        database.dispose()


def test_concurrent_migrations_wait_for_each_other(empty_db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def migrate_from_another_process_like_engine(_: int) -> str:
        other = Database(empty_db.url, pool_size=1)
        try:
            other.migrate()
            return _revision(other)
        finally:
            other.dispose()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(migrate_from_another_process_like_engine, range(4))) == ["0004"] * 4
    assert set(empty_db.counts()) == TABLES


def test_in_memory_sqlite() -> None:
    database = Database("sqlite://")
    try:
        database.migrate()
        assert database.counts()["trades"] == 0
    finally:
        database.dispose()
