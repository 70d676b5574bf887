"""Rollup sums as NUMERIC(38, 0) on PostgreSQL, so that no bucket's sum can overflow.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

A BIGINT sum held 9,223 runs of the largest allowed cost (1,000,000 USD, 1e15
nano-dollars) in one bucket, and 10,800 runs of the longest possible duration
(2000-01-01 to now, about 8.5e14 microseconds); past that, every write to the
bucket failed. NUMERIC(38, 0) holds 1e38: at those maxima, 1e23 runs per
bucket. SQLite has no wider integer than 64 bits: its columns stay as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("runs", "insights", "tokens", "cost_nanousd", "duration_us", "completed_runs")
WIDE = sa.Numeric(38, 0)
NARROW = sa.BigInteger()


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in SUMS:
        op.alter_column(
            "layer_run_rollups", name, type_=WIDE, existing_type=NARROW, existing_nullable=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in SUMS:
        # Fails, and changes nothing, if a sum has grown past what BIGINT holds.
        op.alter_column(
            "layer_run_rollups",
            name,
            type_=NARROW,
            existing_type=WIDE,
            existing_nullable=False,
            postgresql_using=f"{name}::bigint",
        )
