"""Alert status: an alert a re-run no longer raises but that an analyst gave feedback on is kept as
'superseded' (its feedback with it) instead of deleted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("status", sa.String(), nullable=False, server_default="active"))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("status")
