"""An index of the running layer runs alone, for counting the stuck ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

The stuck runs are running runs older than their layer's threshold, whenever
they started. With this partial index, counting them per layer is an
index-only scan of the running runs, which does not grow with the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = "status = 'running'"


def upgrade() -> None:
    op.create_index(
        "ix_layer_runs_running_started_at_layer_name",
        "layer_runs",
        ["started_at", "layer_name"],
        postgresql_where=sa.text(RUNNING),
        sqlite_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("ix_layer_runs_running_started_at_layer_name", table_name="layer_runs")
