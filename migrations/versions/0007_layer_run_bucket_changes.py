"""A change counter per hour, day and month of layer runs, for reusing rollup aggregates.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Every write of a layer run adds one to the buckets its runs started in, so an
API process can keep the aggregates of whole buckets it has read and reuse them
while the counters stay the same. The table starts empty: a process holds no
aggregates from before it started. Restart every API process after this
upgrade, so that no writer runs that does not count its changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "layer_run_bucket_changes",
        sa.Column("grain", sa.Text(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "grain IN ('hour', 'day', 'month')", name=op.f("ck_layer_run_bucket_changes_grain")
        ),
        sa.PrimaryKeyConstraint("grain", "bucket_start", name=op.f("pk_layer_run_bucket_changes")),
    )


def downgrade() -> None:
    op.drop_table("layer_run_bucket_changes")
