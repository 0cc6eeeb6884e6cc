"""Futures market data from the exchange's MCP server: funding rates, liquidations, basis, premium index,
market snapshots.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UTC = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "futures_funding_rates", _id(),
        sa.Column("market", sa.String(), nullable=False), sa.Column("funding_time", UTC, nullable=False),
        sa.Column("theoretical_funding_rate", sa.Double()), sa.Column("actual_funding_rate", sa.Double()),
        sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_futures_funding_rates"),
        sa.UniqueConstraint("market", "funding_time", name="uq_futures_funding_rates_market_time"))
    op.create_index("ix_futures_funding_rates_funding_time", "futures_funding_rates", ["funding_time"])
    op.create_table(
        "futures_liquidations", _id(),
        sa.Column("market", sa.String(), nullable=False), sa.Column("created_at", UTC, nullable=False),
        sa.Column("side", sa.String()), sa.Column("price", sa.Double()), sa.Column("amount", sa.Double()),
        sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_futures_liquidations"))
    op.create_index("ix_futures_liquidations_market_created_at", "futures_liquidations", ["market", "created_at"])
    op.create_table(
        "futures_basis_history", _id(),
        sa.Column("market", sa.String(), nullable=False), sa.Column("created_at", UTC, nullable=False),
        sa.Column("basis_rate", sa.Double()), sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_futures_basis_history"),
        sa.UniqueConstraint("market", "created_at", name="uq_futures_basis_history_market_time"))
    op.create_table(
        "futures_premium_index", _id(),
        sa.Column("market", sa.String(), nullable=False), sa.Column("created_at", UTC, nullable=False),
        sa.Column("premium_index", sa.Double()), sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_futures_premium_index"),
        sa.UniqueConstraint("market", "created_at", name="uq_futures_premium_index_market_time"))
    op.create_table(
        "market_snapshots", _id(),
        sa.Column("market", sa.String(), nullable=False), sa.Column("market_type", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False), sa.Column("taken_at", UTC, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False), sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_market_snapshots"))
    op.create_index("ix_market_snapshots_market_kind_taken_at", "market_snapshots", ["market", "kind", "taken_at"])


def downgrade() -> None:
    for table in ("market_snapshots", "futures_premium_index", "futures_basis_history", "futures_liquidations",
                  "futures_funding_rates"):
        op.drop_table(table)
