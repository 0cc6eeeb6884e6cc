"""Initial schema: trades, orders, imports, rejected_rows, alerts, feedback, model_versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Column names of the data contract are imported from `surveillance_pipeline.contract` (one place for
them); a later rename there needs a new migration, and tests/storage compares this schema to the models.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from surveillance_pipeline.contract import Alert, Order, Trade

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(Trade.TRADE_ID, sa.String(), nullable=False),
        sa.Column(Trade.TIMESTAMP, UTC_DATETIME, nullable=False),
        sa.Column(Trade.SYMBOL, sa.String(), nullable=False),
        sa.Column(Trade.SIDE, sa.String(), nullable=False),
        sa.Column(Trade.PRICE, sa.Double(), nullable=False),
        sa.Column(Trade.QUANTITY, sa.Double(), nullable=False),
        sa.Column(Trade.BUYER_ID, sa.String(), nullable=True),
        sa.Column(Trade.SELLER_ID, sa.String(), nullable=True),
        sa.Column(Trade.BUYER_ORDER_ID, sa.String(), nullable=True),
        sa.Column(Trade.SELLER_ORDER_ID, sa.String(), nullable=True),
        sa.Column(Trade.MARKET_TYPE, sa.String(), nullable=True),
        sa.Column(Trade.QUOTE_QUANTITY, sa.Double(), nullable=True),
        sa.Column(Trade.FEE, sa.Double(), nullable=True),
        sa.Column("trade_date", sa.Date(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
        sa.UniqueConstraint(Trade.SYMBOL, Trade.TRADE_ID, name="uq_trades_symbol_trade_id"),
    )
    op.create_index("ix_trades_symbol_timestamp", "trades", [Trade.SYMBOL, Trade.TIMESTAMP])
    op.create_index("ix_trades_buyer_id_timestamp", "trades", [Trade.BUYER_ID, Trade.TIMESTAMP])
    op.create_index("ix_trades_seller_id_timestamp", "trades", [Trade.SELLER_ID, Trade.TIMESTAMP])
    op.create_index("ix_trades_trade_date", "trades", ["trade_date"])

    op.create_table(
        "orders",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(Order.ORDER_ID, sa.String(), nullable=False),
        sa.Column(Order.TIMESTAMP, UTC_DATETIME, nullable=False),
        sa.Column(Order.USER_ID, sa.String(), nullable=False),
        sa.Column(Order.SYMBOL, sa.String(), nullable=False),
        sa.Column(Order.SIDE, sa.String(), nullable=False),
        sa.Column(Order.PRICE, sa.Double(), nullable=True),
        sa.Column(Order.QUANTITY, sa.Double(), nullable=True),
        sa.Column(Order.EVENT, sa.String(), nullable=False),
        sa.Column(Order.ORDER_TYPE, sa.String(), nullable=True),
        sa.Column(Order.MARKET_TYPE, sa.String(), nullable=True),
        sa.Column("order_date", sa.Date(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint(Order.SYMBOL, Order.ORDER_ID, Order.EVENT, Order.TIMESTAMP,
                            name="uq_orders_symbol_order_id_event_timestamp"),
    )
    op.create_index("ix_orders_symbol_timestamp", "orders", [Order.SYMBOL, Order.TIMESTAMP])
    op.create_index("ix_orders_user_id_timestamp", "orders", [Order.USER_ID, Order.TIMESTAMP])
    op.create_index("ix_orders_order_date", "orders", ["order_date"])
    op.create_index("ix_orders_order_id", "orders", [Order.ORDER_ID])

    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=True),
        sa.Column("rows_accepted", sa.Integer(), nullable=True),
        sa.Column("rows_rejected", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_imports"),
        sa.CheckConstraint("kind IN ('trades', 'orders')", name="ck_imports_kind"),
        sa.CheckConstraint("status IN ('running', 'ok', 'partial', 'rejected', 'empty', 'failed')", name="ck_imports_status"),
    )

    op.create_table(
        "rejected_rows",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("line", sa.BigInteger(), nullable=True),
        sa.Column("field", sa.String(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_rows"),
        sa.ForeignKeyConstraint(["import_id"], ["imports.id"], name="fk_rejected_rows_import_id_imports",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_rejected_rows_import_id", "rejected_rows", ["import_id"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(Alert.ALERT_ID, sa.String(), nullable=False),
        sa.Column(Alert.PATTERN, sa.String(), nullable=False),
        sa.Column(Alert.RISK_LEVEL, sa.String(), nullable=False),
        sa.Column(Alert.SCORE, sa.Double(), nullable=False),
        sa.Column(Alert.SYMBOL, sa.String(), nullable=False),
        sa.Column(Alert.USER_IDS, sa.String(), server_default="", nullable=False),
        sa.Column(Alert.WINDOW_START, UTC_DATETIME, nullable=False),
        sa.Column(Alert.WINDOW_END, UTC_DATETIME, nullable=False),
        sa.Column(Alert.EXPLANATION, sa.Text(), nullable=False),
        sa.Column(Alert.EVIDENCE, sa.JSON(), nullable=True),
        sa.Column(Alert.MODEL_VERSION, sa.String(), nullable=True),
        sa.Column(Alert.THRESHOLDS, sa.JSON(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, server_default=sa.func.now(), nullable=False),
        sa.Column("alert_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint(Alert.ALERT_ID, name="uq_alerts_alert_id"),
    )
    op.create_index("ix_alerts_window_start", "alerts", [Alert.WINDOW_START])
    op.create_index("ix_alerts_risk_level", "alerts", [Alert.RISK_LEVEL])
    op.create_index("ix_alerts_symbol", "alerts", [Alert.SYMBOL])
    op.create_index("ix_alerts_pattern", "alerts", [Alert.PATTERN])
    op.create_index("ix_alerts_user_ids", "alerts", [Alert.USER_IDS])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("analyst", sa.String(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.alert_id"], name="fk_feedback_alert_id_alerts",
                                ondelete="CASCADE"),
        sa.CheckConstraint("verdict IN ('true_positive', 'false_positive', 'needs_review')",
                           name="ck_feedback_verdict"),
    )
    op.create_index("ix_feedback_alert_id", "feedback", ["alert_id"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(), nullable=True),
        sa.Column("alias", sa.String(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_name", "version", name="uq_model_versions_model_name_version"),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
    op.drop_table("feedback")
    op.drop_table("alerts")
    op.drop_table("rejected_rows")
    op.drop_table("imports")
    op.drop_table("orders")
    op.drop_table("trades")
