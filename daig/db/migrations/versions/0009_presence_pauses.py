"""presence and pauses: volunteers online now, elapsed time that stops while paused

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 00:00:00

- ``provider_presence``: one row per provider agent (account, agent id) with the last time it
  said it was waiting for tasks (``POST /v1/provider/presence``); with recent claims it
  gives the count of volunteers online now.
- ``projects.paused_at`` / ``projects.paused_seconds``: when the current pause began, and the
  seconds of earlier pauses, so a project's elapsed training time stops while it is paused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_presence",
        sa.Column("provider_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_provider_presence_seen_at", "provider_presence", ["seen_at"])
    op.add_column("projects", sa.Column("paused_at", sa.DateTime(timezone=True)))
    op.add_column(
        "projects",
        sa.Column("paused_seconds", sa.Float(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("projects", "paused_seconds")
    op.drop_column("projects", "paused_at")
    op.drop_index("ix_provider_presence_seen_at", table_name="provider_presence")
    op.drop_table("provider_presence")
