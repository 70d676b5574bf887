"""Create layer_runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen types: this revision must not change when the live tables do.
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "layer_runs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("layer_name", sa.Text(), nullable=False),
        sa.Column("layer_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.Column("targets_matched", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("targets_processed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("targets_skipped", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("insights_created", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("model_profile", sa.Text(), nullable=True),
        sa.Column("model_provider", sa.Text(), nullable=True),
        sa.Column("model_name", sa.Text(), nullable=True),
        sa.Column("tokens_input", sa.Integer(), nullable=True),
        sa.Column("tokens_output", sa.Integer(), nullable=True),
        sa.Column("tokens_total", sa.Integer(), nullable=True),
        sa.Column("estimated_cost_usd", sa.Double(), nullable=True),
        sa.Column("errors", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'partial', 'failed', 'dry')",
            name=op.f("ck_layer_runs_status"),
        ),
        sa.CheckConstraint(
            "targets_matched >= 0 AND targets_processed >= 0 AND targets_skipped >= 0"
            " AND insights_created >= 0",
            name=op.f("ck_layer_runs_counts_non_negative"),
        ),
        sa.CheckConstraint(
            "(tokens_input IS NULL OR tokens_input >= 0)"
            " AND (tokens_output IS NULL OR tokens_output >= 0)"
            " AND (tokens_total IS NULL OR tokens_total >= 0)",
            name=op.f("ck_layer_runs_tokens_non_negative"),
        ),
        sa.CheckConstraint(
            "estimated_cost_usd IS NULL OR estimated_cost_usd >= 0",
            name=op.f("ck_layer_runs_cost_non_negative"),
        ),
        sa.CheckConstraint(
            "(status = 'running' AND completed_at IS NULL)"
            " OR (status <> 'running' AND completed_at IS NOT NULL"
            " AND completed_at >= started_at)",
            name=op.f("ck_layer_runs_completion"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_runs")),
    )
    for name, columns in (
        ("ix_layer_runs_started_at_id", ["started_at", "id"]),
        ("ix_layer_runs_layer_name_started_at_id", ["layer_name", "started_at", "id"]),
        ("ix_layer_runs_status_started_at_id", ["status", "started_at", "id"]),
        (
            "ix_layer_runs_layer_name_status_started_at_id",
            ["layer_name", "status", "started_at", "id"],
        ),
    ):
        op.create_index(name, "layer_runs", columns)
    if op.get_bind().dialect.name == "postgresql":
        for column in ("estimated_cost_usd", "tokens_total", "duration_seconds"):
            op.create_index(
                f"ix_layer_runs_{column}_id",
                "layer_runs",
                [sa.text(f"{column} DESC NULLS LAST"), sa.text("id DESC")],
            )


def downgrade() -> None:
    op.drop_table("layer_runs")
