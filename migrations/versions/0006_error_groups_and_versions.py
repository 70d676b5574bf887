"""Error groups (fingerprints, occurrences, rollups) and per-version rollups of layer runs.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28

The version rollups are filled from the existing runs here. The error groups
need each error's fingerprint and the duration bins a logarithm, both computed
in Python, so after this upgrade `runwatch rebuild-rollups` fills them from
the existing runs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
GRAIN_CHECK = "grain IN ('hour', 'day')"

_BUCKETS = {
    "postgresql": {
        "hour": "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "day": "date_trunc('day', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    },
    "sqlite": {
        "hour": "strftime('%Y-%m-%d %H:00:00.000000', started_at)",
        "day": "strftime('%Y-%m-%d 00:00:00.000000', started_at)",
    },
}
_ROUND = {
    "postgresql": "CAST(floor({x} + 0.5) AS BIGINT)",
    "sqlite": "CAST({x} + 0.5 AS INTEGER)",
}


def upgrade() -> None:
    op.create_table(
        "error_fingerprints",
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("sample_message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_error_fingerprints")),
    )
    op.create_table(
        "layer_run_errors",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("layer_name", sa.Text(), nullable=False),
        sa.Column("layer_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=True),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "fingerprint", name=op.f("pk_layer_run_errors")),
    )
    op.create_index(
        "ix_layer_run_errors_fingerprint_started_at_run_id",
        "layer_run_errors",
        ["fingerprint", "started_at", "run_id"],
    )
    op.create_index("ix_layer_run_errors_started_at", "layer_run_errors", ["started_at"])
    op.create_table(
        "layer_run_error_rollups",
        sa.Column("grain", sa.Text(), nullable=False),
        sa.Column("bucket_start", TIMESTAMP, nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("layer_name", sa.Text(), nullable=False),
        sa.Column("layer_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=True),
        sa.Column("last_seen", TIMESTAMP, nullable=True),
        sa.CheckConstraint(GRAIN_CHECK, name=op.f("ck_layer_run_error_rollups_grain")),
        sa.PrimaryKeyConstraint(
            "grain", "bucket_start", "fingerprint", "layer_name", "layer_hash", "status",
            "model_name", name=op.f("pk_layer_run_error_rollups"),
        ),
    )  # fmt: skip
    op.create_index(
        "ix_layer_run_error_rollups_grain_fingerprint_bucket_start",
        "layer_run_error_rollups",
        ["grain", "fingerprint", "bucket_start"],
    )
    op.create_table(
        "layer_run_version_rollups",
        sa.Column("grain", sa.Text(), nullable=False),
        sa.Column("bucket_start", TIMESTAMP, nullable=False),
        sa.Column("layer_name", sa.Text(), nullable=False),
        sa.Column("layer_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("completed_runs", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_sq", sa.Double(), nullable=False),
        sa.Column("insights", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_runs", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("cost_sq", sa.Double(), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=True),
        sa.Column("last_seen", TIMESTAMP, nullable=True),
        sa.CheckConstraint(GRAIN_CHECK, name=op.f("ck_layer_run_version_rollups_grain")),
        sa.PrimaryKeyConstraint(
            "grain", "bucket_start", "layer_name", "layer_hash", "status",
            name=op.f("pk_layer_run_version_rollups"),
        ),
    )  # fmt: skip
    op.create_index(
        "ix_layer_run_version_rollups_grain_layer_name_bucket_start",
        "layer_run_version_rollups",
        ["grain", "layer_name", "bucket_start"],
    )

    op.create_table(
        "layer_run_duration_bins",
        sa.Column("grain", sa.Text(), nullable=False),
        sa.Column("bucket_start", TIMESTAMP, nullable=False),
        sa.Column("layer_name", sa.Text(), nullable=False),
        sa.Column("layer_hash", sa.Text(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(GRAIN_CHECK, name=op.f("ck_layer_run_duration_bins_grain")),
        sa.PrimaryKeyConstraint(
            "grain", "bucket_start", "layer_name", "layer_hash", "bin",
            name=op.f("pk_layer_run_duration_bins"),
        ),
    )  # fmt: skip
    op.create_index(
        "ix_layer_run_duration_bins_grain_layer_name_bucket_start",
        "layer_run_duration_bins",
        ["grain", "layer_name", "bucket_start"],
    )

    dialect = op.get_bind().dialect.name
    cost = _ROUND[dialect].format(x="estimated_cost_usd * 1e9")
    duration = _ROUND[dialect].format(x="duration_seconds * 1e6")
    for grain, bucket in _BUCKETS[dialect].items():
        op.execute(
            "INSERT INTO layer_run_version_rollups (grain, bucket_start, layer_name, layer_hash,"
            " status, runs, completed_runs, duration_us, duration_sq, insights, tokens,"
            " cost_runs, cost_nanousd, cost_sq, first_seen, last_seen)"
            f" SELECT '{grain}', {bucket}, layer_name, layer_hash, status, count(*),"
            f" count(completed_at), coalesce(sum({duration}), 0),"
            " coalesce(sum(duration_seconds * duration_seconds), 0.0),"
            " coalesce(sum(insights_created), 0), coalesce(sum(tokens_total), 0),"
            f" count(estimated_cost_usd), coalesce(sum({cost}), 0),"
            " coalesce(sum(estimated_cost_usd * estimated_cost_usd), 0.0),"
            " min(started_at), max(started_at)"
            f" FROM layer_runs GROUP BY {bucket}, layer_name, layer_hash, status"
        )


def downgrade() -> None:
    op.drop_table("layer_run_duration_bins")
    op.drop_table("layer_run_version_rollups")
    op.drop_table("layer_run_error_rollups")
    op.drop_index("ix_layer_run_errors_started_at", table_name="layer_run_errors")
    op.drop_index(
        "ix_layer_run_errors_fingerprint_started_at_run_id", table_name="layer_run_errors"
    )
    op.drop_table("layer_run_errors")
    op.drop_table("error_fingerprints")
