"""bookkeeping: import state, owner and heartbeat; store_state marks an incomplete store

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 18:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=20), server_default="running", nullable=False))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
    # rows written before this revision: finished when they say so; otherwise nobody can tell any more
    op.execute("UPDATE imports SET state = CASE WHEN finished_at IS NULL THEN 'interrupted' "
               "ELSE 'finished' END")
    op.create_table(
        "store_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_state")),
    )


def downgrade() -> None:
    op.drop_table("store_state")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("host")
        batch_op.drop_column("pid")
        batch_op.drop_column("state")
