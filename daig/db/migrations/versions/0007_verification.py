"""verification: replicated tasks, providers' trust records and quarantines, Sybil groups

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:00:00

- ``tasks.replica_of`` / ``tasks.replicas``: a replica of a task and how many were made of it;
  ``tasks.any_claimer``: a replica nobody else took in time, open to anyone (verifies nothing);
  ``tasks.created_at``: when it was made (how long a replica has waited).
- ``provider_trust``: each provider account's verified-valid and verified-invalid results,
  and its quarantine (why, for which project and task; when lifted, and the operator's note).
- ``users.signup_address`` / ``users.trust_group``: accounts created from one address within
  a short window form one group, which never verifies its own results.
- ``projects.verify_fraction`` / ``projects.verify_tolerance``: the requestor's knobs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column("replica_of", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE")),
    )
    op.create_index("ix_tasks_replica_of", "tasks", ["replica_of"])
    op.add_column("tasks", sa.Column("replicas", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "tasks", sa.Column("any_claimer", sa.Boolean(), server_default="false", nullable=False)
    )
    op.add_column(
        "tasks", sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now())
    )
    op.create_table(
        "provider_trust",
        sa.Column("provider_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("verified_valid", sa.Integer(), server_default="0", nullable=False),
        sa.Column("verified_invalid", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True)),
        sa.Column("quarantine_reason", sa.Text()),
        sa.Column("quarantine_project", sa.Uuid()),
        sa.Column("quarantine_task", sa.Uuid()),
        sa.Column("lifted_at", sa.DateTime(timezone=True)),
        sa.Column("lifted_note", sa.Text()),
    )
    op.add_column("users", sa.Column("signup_address", sa.String(length=64)))
    op.add_column("users", sa.Column("trust_group", sa.Integer()))
    op.create_index("ix_users_trust_group", "users", ["trust_group"])
    op.add_column(
        "projects", sa.Column("verify_fraction", sa.Float(), server_default="0.1", nullable=False)
    )
    op.add_column(
        "projects",
        sa.Column("verify_tolerance", sa.Float(), server_default="0.05", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("projects", "verify_tolerance")
    op.drop_column("projects", "verify_fraction")
    op.drop_index("ix_users_trust_group", table_name="users")
    op.drop_column("users", "trust_group")
    op.drop_column("users", "signup_address")
    op.drop_table("provider_trust")
    op.drop_column("tasks", "created_at")
    op.drop_column("tasks", "any_claimer")
    op.drop_column("tasks", "replicas")
    op.drop_index("ix_tasks_replica_of", table_name="tasks")
    op.drop_column("tasks", "replica_of")
