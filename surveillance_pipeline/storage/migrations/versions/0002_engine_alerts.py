"""Detection-engine columns on alerts: sources, model score, top features, episode key and its history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = (
    ("sources", sa.String()), ("model_score", sa.Double()), ("top_features", sa.JSON()),
    ("alert_key", sa.String()), ("linked_alert_id", sa.String()), ("first_seen", sa.Date()),
    ("occurrence", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index("ix_alerts_alert_date", "alerts", ["alert_date"])
    op.create_index("ix_alerts_alert_key", "alerts", ["alert_key"])


def downgrade() -> None:
    op.drop_index("ix_alerts_alert_key", "alerts")
    op.drop_index("ix_alerts_alert_date", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
