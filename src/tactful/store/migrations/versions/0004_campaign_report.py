"""campaign runs tell who runs them (interrupted runs are recognised); the decision log keeps the
proposed and the composed message, so the report can be rebuilt from the store alone

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_runs") as batch:
        batch.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rules", sa.JSON(), nullable=True))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("proposed", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("message")
        batch.drop_column("proposed")
    with op.batch_alter_table("campaign_runs") as batch:
        batch.drop_column("rules")
        batch.drop_column("pid")
        batch.drop_column("host")
