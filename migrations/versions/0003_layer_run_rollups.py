"""Hourly, daily and monthly rollups of layer runs, and the shared state table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)

# Bucket starts and integer sums as the service computes them: cost in
# nano-dollars and duration in microseconds, rounded half up.
_BUCKETS = {
    "postgresql": {
        "hour": "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "day": "date_trunc('day', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "month": "date_trunc('month', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    },
    "sqlite": {
        "hour": "strftime('%Y-%m-%d %H:00:00.000000', started_at)",
        "day": "strftime('%Y-%m-%d 00:00:00.000000', started_at)",
        "month": "strftime('%Y-%m-01 00:00:00.000000', started_at)",
    },
}
_ROUND = {
    "postgresql": "CAST(floor({x} + 0.5) AS BIGINT)",
    "sqlite": "CAST({x} + 0.5 AS INTEGER)",
}


def upgrade() -> None:
    op.create_table(
        "layer_run_rollups",
        sa.Column("grain", sa.Text(), nullable=False),
        sa.Column("bucket_start", TIMESTAMP, nullable=False),
        sa.Column("layer_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("insights", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.Column("completed_runs", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "grain IN ('hour', 'day', 'month')", name=op.f("ck_layer_run_rollups_grain")
        ),
        sa.PrimaryKeyConstraint(
            "grain", "bucket_start", "layer_name", "status", name=op.f("pk_layer_run_rollups")
        ),
    )
    op.create_index(
        "ix_layer_run_rollups_grain_layer_name_status_bucket_start",
        "layer_run_rollups",
        ["grain", "layer_name", "status", "bucket_start"],
    )
    op.create_table(
        "runwatch_state",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=True),
        sa.Column("moment", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_runwatch_state")),
    )
    op.execute("INSERT INTO runwatch_state (key, number) VALUES ('data_version', 1)")

    dialect = op.get_bind().dialect.name
    cost = _ROUND[dialect].format(x="estimated_cost_usd * 1e9")
    duration = _ROUND[dialect].format(x="duration_seconds * 1e6")
    for grain, bucket in _BUCKETS[dialect].items():
        op.execute(
            "INSERT INTO layer_run_rollups (grain, bucket_start, layer_name, status, runs,"
            " insights, tokens, cost_nanousd, duration_us, completed_runs)"
            f" SELECT '{grain}', {bucket}, layer_name, status, count(*),"
            " coalesce(sum(insights_created), 0), coalesce(sum(tokens_total), 0),"
            f" coalesce(sum({cost}), 0), coalesce(sum({duration}), 0), count(completed_at)"
            f" FROM layer_runs GROUP BY {bucket}, layer_name, status"
        )


def downgrade() -> None:
    op.drop_table("runwatch_state")
    op.drop_table("layer_run_rollups")
