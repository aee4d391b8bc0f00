"""retention: when a project's deltas were deleted

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:00:00

- ``projects.deltas_deleted_at``: set by the scheduler when it deleted the project's deltas,
  velocities and intermediate weights, ``DAIG_DELTA_RETENTION_HOURS`` after it ended.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("deltas_deleted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("projects", "deltas_deleted_at")
