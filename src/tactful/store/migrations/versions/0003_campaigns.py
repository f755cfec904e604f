"""campaigns: runs, the tamper-evident decision log, the outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 18:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("campaign_hash", sa.String(length=64), nullable=True),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("policy_name", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("tool_version", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_runs")),
    )
    op.create_table(
        "decisions",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("touch_id", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=30), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("max_depth", sa.String(length=20), nullable=False),
        sa.Column("named", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("policy_name", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("proposed_depth", sa.String(length=20), nullable=True),
        sa.Column("withheld", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_decisions_run_id_campaign_runs")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_decisions")),
        sa.UniqueConstraint("run_id", "customer_id", "touch_id", name=op.f("uq_decisions_run_id_customer_id_touch_id")),
    )
    op.create_index("ix_decisions_customer_id", "decisions", ["customer_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("touch_id", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("decision_seq", sa.BigInteger(), nullable=True),
        sa.Column("touch_kind", sa.String(length=30), nullable=False),
        sa.Column("message_kind", sa.String(length=30), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=30), nullable=False),
        sa.Column("contact_point_id", sa.String(length=200), nullable=True),
        sa.Column("depth", sa.String(length=20), nullable=False),
        sa.Column("named", sa.Boolean(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("adapter", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_point_id"], ["contact_points.id"], name=op.f("fk_outbox_contact_point_id_contact_points")
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_outbox_customer_id_customers")),
        sa.ForeignKeyConstraint(["decision_seq"], ["decisions.seq"], name=op.f("fk_outbox_decision_seq_decisions")),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_outbox_run_id_campaign_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index("ix_outbox_status_run_id", "outbox", ["status", "run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_status_run_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_decisions_customer_id", table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("campaign_runs")
