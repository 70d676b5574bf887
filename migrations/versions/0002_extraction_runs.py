"""Create extraction_runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen types: this revision must not change when the live tables do.
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "extraction_runs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("config_id", sa.Text(), nullable=False),
        sa.Column("document_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("expected", JSON, nullable=True),
        sa.Column("metrics", JSON, nullable=True),
        sa.Column("metric_precision", sa.Double(), nullable=True),
        sa.Column("metric_recall", sa.Double(), nullable=True),
        sa.Column("metric_f1", sa.Double(), nullable=True),
        sa.Column("metric_latency_ms", sa.Double(), nullable=True),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("tokens_input", sa.Integer(), nullable=True),
        sa.Column("tokens_output", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')",
            name=op.f("ck_extraction_runs_status"),
        ),
        sa.CheckConstraint(
            "(tokens_input IS NULL OR tokens_input >= 0)"
            " AND (tokens_output IS NULL OR tokens_output >= 0)",
            name=op.f("ck_extraction_runs_tokens_non_negative"),
        ),
        sa.CheckConstraint(
            "cost_usd IS NULL OR cost_usd >= 0", name=op.f("ck_extraction_runs_cost_non_negative")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_extraction_runs_attempts_non_negative")),
        sa.CheckConstraint(
            "(status = 'pending' AND started_at IS NULL AND completed_at IS NULL)"
            " OR (status = 'running' AND started_at IS NOT NULL AND completed_at IS NULL)"
            " OR (status IN ('completed', 'failed') AND completed_at IS NOT NULL)",
            name=op.f("ck_extraction_runs_lifecycle"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extraction_runs")),
    )
    op.create_index("ix_extraction_runs_created_at_id", "extraction_runs", ["created_at", "id"])
    for column in ("prompt_id", "config_id", "document_name", "status"):
        op.create_index(
            f"ix_extraction_runs_{column}_created_at_id",
            "extraction_runs",
            [column, "created_at", "id"],
        )
    op.create_index(
        "ix_extraction_runs_status_lease_expires_at",
        "extraction_runs",
        ["status", "lease_expires_at"],
    )


def downgrade() -> None:
    op.drop_table("extraction_runs")
