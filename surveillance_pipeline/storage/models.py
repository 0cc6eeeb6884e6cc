"""SQLAlchemy 2 models of the application store (trades, orders, imports, rejects, alerts, feedback, models).

Column names come from `surveillance_pipeline.contract`. Types are portable (SQLite and PostgreSQL):
timestamps are `DateTime(timezone=True)` holding UTC, the partition day is a `Date` column, JSON is `JSON`.
The Alembic migration `migrations/versions/0001_initial.py` creates exactly this schema (a test compares them).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from surveillance_pipeline.contract import Alert, Order, Trade

# Deterministic constraint names on every backend (needed by Alembic to compare and alter them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Vocabularies of the bookkeeping tables.
IMPORT_KINDS = ("trades", "orders")
# ok: every row stored; partial: some rows rejected; rejected: none stored (or --strict); empty: no rows
IMPORT_STATUSES = ("running", "ok", "partial", "rejected", "empty", "failed")
VERDICTS = ("true_positive", "false_positive", "needs_review")

# Big tables get 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UtcDateTime = sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: sa.JSON, dt.datetime: UtcDateTime}


class TradeRow(Base):
    __tablename__ = "trades"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trade_id: Mapped[str] = mapped_column(Trade.TRADE_ID, sa.String, nullable=False)
    timestamp: Mapped[dt.datetime] = mapped_column(Trade.TIMESTAMP, UtcDateTime, nullable=False)
    symbol: Mapped[str] = mapped_column(Trade.SYMBOL, sa.String, nullable=False)
    side: Mapped[str] = mapped_column(Trade.SIDE, sa.String, nullable=False)
    price: Mapped[float] = mapped_column(Trade.PRICE, sa.Double, nullable=False)
    quantity: Mapped[float] = mapped_column(Trade.QUANTITY, sa.Double, nullable=False)
    buyer_id: Mapped[str | None] = mapped_column(Trade.BUYER_ID, sa.String)
    seller_id: Mapped[str | None] = mapped_column(Trade.SELLER_ID, sa.String)
    buyer_order_id: Mapped[str | None] = mapped_column(Trade.BUYER_ORDER_ID, sa.String)
    seller_order_id: Mapped[str | None] = mapped_column(Trade.SELLER_ORDER_ID, sa.String)
    market_type: Mapped[str | None] = mapped_column(Trade.MARKET_TYPE, sa.String)
    quote_quantity: Mapped[float | None] = mapped_column(Trade.QUOTE_QUANTITY, sa.Double)
    fee: Mapped[float | None] = mapped_column(Trade.FEE, sa.Double)
    # The UTC day of `timestamp`: the Dagster partition. No foreign key on import_id: a per-row FK check
    # would slow COPY of millions of rows; the import id is bookkeeping, not an integrity rule.
    trade_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False)
    import_id: Mapped[int | None] = mapped_column(sa.Integer)

    __table_args__ = (
        sa.UniqueConstraint(Trade.SYMBOL, Trade.TRADE_ID, name="uq_trades_symbol_trade_id"),
        sa.Index("ix_trades_symbol_timestamp", Trade.SYMBOL, Trade.TIMESTAMP),
        sa.Index("ix_trades_buyer_id_timestamp", Trade.BUYER_ID, Trade.TIMESTAMP),
        sa.Index("ix_trades_seller_id_timestamp", Trade.SELLER_ID, Trade.TIMESTAMP),
        sa.Index("ix_trades_trade_date", "trade_date"),
    )


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(Order.ORDER_ID, sa.String, nullable=False)
    timestamp: Mapped[dt.datetime] = mapped_column(Order.TIMESTAMP, UtcDateTime, nullable=False)
    user_id: Mapped[str] = mapped_column(Order.USER_ID, sa.String, nullable=False)
    symbol: Mapped[str] = mapped_column(Order.SYMBOL, sa.String, nullable=False)
    side: Mapped[str] = mapped_column(Order.SIDE, sa.String, nullable=False)
    # Null for a cancel and for a market order's price (contract.ORDER_EVENTS_WITHOUT_PRICE).
    price: Mapped[float | None] = mapped_column(Order.PRICE, sa.Double)
    quantity: Mapped[float | None] = mapped_column(Order.QUANTITY, sa.Double)
    event: Mapped[str] = mapped_column(Order.EVENT, sa.String, nullable=False)
    order_type: Mapped[str | None] = mapped_column(Order.ORDER_TYPE, sa.String)
    market_type: Mapped[str | None] = mapped_column(Order.MARKET_TYPE, sa.String)
    order_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False)
    import_id: Mapped[int | None] = mapped_column(sa.Integer)

    __table_args__ = (
        sa.UniqueConstraint(Order.SYMBOL, Order.ORDER_ID, Order.EVENT, Order.TIMESTAMP,
                            name="uq_orders_symbol_order_id_event_timestamp"),
        sa.Index("ix_orders_symbol_timestamp", Order.SYMBOL, Order.TIMESTAMP),
        sa.Index("ix_orders_user_id_timestamp", Order.USER_ID, Order.TIMESTAMP),
        sa.Index("ix_orders_order_date", "order_date"),
        sa.Index("ix_orders_order_id", Order.ORDER_ID),
    )


class ImportRow(Base):
    """One load of one file (or one partition of it): what was read, accepted and rejected."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String, nullable=False)
    kind: Mapped[str] = mapped_column(sa.String, nullable=False)
    partition_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    rows_read: Mapped[int | None] = mapped_column(sa.Integer)
    rows_accepted: Mapped[int | None] = mapped_column(sa.Integer)
    rows_rejected: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String, nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        sa.CheckConstraint(_in("kind", IMPORT_KINDS), name="kind"),
        sa.CheckConstraint(_in("status", IMPORT_STATUSES), name="status"),
    )


class RejectedRow(Base):
    __tablename__ = "rejected_rows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("imports.id", ondelete="CASCADE"),
                                           nullable=False)
    source: Mapped[str | None] = mapped_column(sa.String)
    line: Mapped[int | None] = mapped_column(sa.BigInteger)
    field: Mapped[str | None] = mapped_column(sa.String)
    value: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False, server_default=sa.func.now())

    __table_args__ = (sa.Index("ix_rejected_rows_import_id", "import_id"),)


class AlertRow(Base):
    """One de-duplicated alert (the output contract, contract.ALERT_COLUMNS)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(Alert.ALERT_ID, sa.String, nullable=False)
    pattern: Mapped[str] = mapped_column(Alert.PATTERN, sa.String, nullable=False)
    risk_level: Mapped[str] = mapped_column(Alert.RISK_LEVEL, sa.String, nullable=False)
    score: Mapped[float] = mapped_column(Alert.SCORE, sa.Double, nullable=False)
    symbol: Mapped[str] = mapped_column(Alert.SYMBOL, sa.String, nullable=False)
    # ';'-joined account ids, empty for a market-level alert.
    user_ids: Mapped[str] = mapped_column(Alert.USER_IDS, sa.String, nullable=False, server_default="")
    window_start: Mapped[dt.datetime] = mapped_column(Alert.WINDOW_START, UtcDateTime, nullable=False)
    window_end: Mapped[dt.datetime] = mapped_column(Alert.WINDOW_END, UtcDateTime, nullable=False)
    explanation: Mapped[str] = mapped_column(Alert.EXPLANATION, sa.Text, nullable=False)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(Alert.EVIDENCE, sa.JSON)
    model_version: Mapped[str | None] = mapped_column(Alert.MODEL_VERSION, sa.String)
    thresholds: Mapped[dict[str, Any] | None] = mapped_column(Alert.THRESHOLDS, sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False, server_default=sa.func.now())
    # The UTC day of window_start: the partition that raised it.
    alert_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False)
    # Detection engine (migration 0002): where the evidence came from, the episode key and its history.
    sources: Mapped[str | None] = mapped_column(sa.String)
    model_score: Mapped[float | None] = mapped_column(sa.Double)
    top_features: Mapped[Any | None] = mapped_column(sa.JSON)
    alert_key: Mapped[str | None] = mapped_column(sa.String)
    linked_alert_id: Mapped[str | None] = mapped_column(sa.String)
    first_seen: Mapped[dt.date | None] = mapped_column(sa.Date)
    occurrence: Mapped[int | None] = mapped_column(sa.Integer)
    # active, or superseded: a re-run no longer raises it but an analyst's feedback on it is kept (0004)
    status: Mapped[str] = mapped_column(sa.String, nullable=False, server_default="active")

    __table_args__ = (
        sa.UniqueConstraint(Alert.ALERT_ID, name="uq_alerts_alert_id"),
        sa.Index("ix_alerts_window_start", Alert.WINDOW_START),
        sa.Index("ix_alerts_risk_level", Alert.RISK_LEVEL),
        sa.Index("ix_alerts_symbol", Alert.SYMBOL),
        sa.Index("ix_alerts_pattern", Alert.PATTERN),
        sa.Index("ix_alerts_user_ids", Alert.USER_IDS),
        sa.Index("ix_alerts_alert_date", "alert_date"),
        sa.Index("ix_alerts_alert_key", "alert_key"),
    )


class FeedbackRow(Base):
    """An analyst's verdict on an alert."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(sa.String, sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"),
                                          nullable=False)
    analyst: Mapped[str] = mapped_column(sa.String, nullable=False)
    verdict: Mapped[str] = mapped_column(sa.String, nullable=False)
    comment: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False, server_default=sa.func.now())

    __table_args__ = (
        sa.CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
        sa.Index("ix_feedback_alert_id", "alert_id"),
    )


class ModelVersionRow(Base):
    """A trained model registered in MLflow: name, version, run, alias and metrics."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String, nullable=False)
    version: Mapped[str] = mapped_column(sa.String, nullable=False)
    mlflow_run_id: Mapped[str | None] = mapped_column(sa.String)
    alias: Mapped[str | None] = mapped_column(sa.String)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False, server_default=sa.func.now())

    __table_args__ = (sa.UniqueConstraint("model_name", "version", name="uq_model_versions_model_name_version"),)


class FundingRateRow(Base):
    """A settled funding rate of a perpetual, as the exchange's MCP server reported it (migration 0003)."""

    __tablename__ = "futures_funding_rates"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    market: Mapped[str] = mapped_column(sa.String, nullable=False)
    funding_time: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    theoretical_funding_rate: Mapped[float | None] = mapped_column(sa.Double)
    actual_funding_rate: Mapped[float | None] = mapped_column(sa.Double)
    source: Mapped[str] = mapped_column(sa.String, nullable=False)

    __table_args__ = (sa.UniqueConstraint("market", "funding_time", name="uq_futures_funding_rates_market_time"),
                      sa.Index("ix_futures_funding_rates_funding_time", "funding_time"))


class LiquidationRow(Base):
    """A liquidation, when the source provides them (CoinEx's server does not: nothing is stored then)."""

    __tablename__ = "futures_liquidations"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    market: Mapped[str] = mapped_column(sa.String, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    side: Mapped[str | None] = mapped_column(sa.String)
    price: Mapped[float | None] = mapped_column(sa.Double)
    amount: Mapped[float | None] = mapped_column(sa.Double)
    source: Mapped[str] = mapped_column(sa.String, nullable=False)

    __table_args__ = (sa.Index("ix_futures_liquidations_market_created_at", "market", "created_at"),)


class BasisRow(Base):
    __tablename__ = "futures_basis_history"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    market: Mapped[str] = mapped_column(sa.String, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    basis_rate: Mapped[float | None] = mapped_column(sa.Double)
    source: Mapped[str] = mapped_column(sa.String, nullable=False)

    __table_args__ = (sa.UniqueConstraint("market", "created_at", name="uq_futures_basis_history_market_time"),)


class PremiumIndexRow(Base):
    __tablename__ = "futures_premium_index"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    market: Mapped[str] = mapped_column(sa.String, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    premium_index: Mapped[float | None] = mapped_column(sa.Double)
    source: Mapped[str] = mapped_column(sa.String, nullable=False)

    __table_args__ = (sa.UniqueConstraint("market", "created_at", name="uq_futures_premium_index_market_time"),)


class MarketSnapshotRow(Base):
    """A ticker, order-book or k-line snapshot of a market as taken from the MCP server (JSON payload)."""

    __tablename__ = "market_snapshots"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    market: Mapped[str] = mapped_column(sa.String, nullable=False)
    market_type: Mapped[str] = mapped_column(sa.String, nullable=False)
    kind: Mapped[str] = mapped_column(sa.String, nullable=False)
    taken_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    data: Mapped[Any] = mapped_column(sa.JSON, nullable=False)
    source: Mapped[str] = mapped_column(sa.String, nullable=False)

    __table_args__ = (sa.Index("ix_market_snapshots_market_kind_taken_at", "market", "kind", "taken_at"),)


trades_table: sa.Table = TradeRow.__table__  # type: ignore[assignment]
orders_table: sa.Table = OrderRow.__table__  # type: ignore[assignment]
imports_table: sa.Table = ImportRow.__table__  # type: ignore[assignment]
rejected_rows_table: sa.Table = RejectedRow.__table__  # type: ignore[assignment]
alerts_table: sa.Table = AlertRow.__table__  # type: ignore[assignment]
feedback_table: sa.Table = FeedbackRow.__table__  # type: ignore[assignment]
model_versions_table: sa.Table = ModelVersionRow.__table__  # type: ignore[assignment]
funding_rates_table: sa.Table = FundingRateRow.__table__  # type: ignore[assignment]
liquidations_table: sa.Table = LiquidationRow.__table__  # type: ignore[assignment]
basis_table: sa.Table = BasisRow.__table__  # type: ignore[assignment]
premium_table: sa.Table = PremiumIndexRow.__table__  # type: ignore[assignment]
snapshots_table: sa.Table = MarketSnapshotRow.__table__  # type: ignore[assignment]
