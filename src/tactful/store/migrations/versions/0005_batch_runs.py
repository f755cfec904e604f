"""batch runs written back to the store: the run (status, policy, source and its hash, counts, owner)
and its decisions (the columns of the Parquet output)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_runs",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("policy_name", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("features", sa.String(length=20), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("allow_count", sa.BigInteger(), nullable=True),
        sa.Column("soften_count", sa.BigInteger(), nullable=True),
        sa.Column("ask_count", sa.BigInteger(), nullable=True),
        sa.Column("block_count", sa.BigInteger(), nullable=True),
        sa.Column("error_count", sa.BigInteger(), nullable=True),
        sa.Column("by_rule", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tool_version", sa.String(length=40), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_runs")),
    )
    op.create_table(
        "batch_decisions",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("row", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("touch_id", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("max_depth", sa.String(length=20), nullable=False),
        sa.Column("named", sa.Boolean(), nullable=False),
        sa.Column("fired_rules", sa.Text(), nullable=False),
        sa.Column("failed_rules", sa.Text(), nullable=False),
        sa.Column("policy_name", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["batch_runs.id"],
                                name=op.f("fk_batch_decisions_run_id_batch_runs")),
        sa.PrimaryKeyConstraint("run_id", "row", name=op.f("pk_batch_decisions")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_batch_decisions_customer_id_run_id", "batch_decisions", ["customer_id", "run_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_batch_decisions_customer_id_run_id", table_name="batch_decisions")
    op.drop_table("batch_decisions")
    op.drop_table("batch_runs")
