"""scale: task leases on the task row, a transactional outbox, result partitions, fair shares

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 14:30:00

- ``tasks.lease_expires_at``: the latest live lease of the task, so a claim is decided on the
  task row alone (one conditional UPDATE) without a project-wide lock.
- Partial indexes for the hot paths: the next pending task of a round, published tasks by age
  (re-published when nobody claims them), active claims by lease.
- ``outbox``: messages written in the transaction that decides them, published after it.
- ``aggregator_partitions`` / ``aggregators``: which aggregator owns each partition of the
  results (fencing epoch), and which aggregators are alive (for fair shares of partitions).
- ``projects.share``: the project's weight in sharing volunteers with other projects;
  ``projects.dispatch_window``: its window of published tasks, sized by the scheduler.
- ``results.recorded_by``: the aggregator that recorded a result; ``rounds.accepted``: how many
  results the round accepted so far (counted where they are accepted, not recounted).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_tasks_pending",
        "tasks",
        ["project_id", "round_index", "slot"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_tasks_queued", "tasks", ["dispatched_at"], postgresql_where=sa.text("state = 'queued'")
    )
    op.create_index(
        "ix_tasks_queued_round",
        "tasks",
        ["project_id", "round_index"],
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_index(
        "ix_claims_active_lease",
        "claims",
        ["lease_expires_at"],
        postgresql_where=sa.text("state = 'active'"),
    )
    op.add_column("projects", sa.Column("share", sa.Float(), server_default="1.0", nullable=False))
    op.add_column("projects", sa.Column("dispatch_window", sa.Integer()))
    op.add_column("results", sa.Column("recorded_by", sa.String(length=128)))
    op.add_column("rounds", sa.Column("accepted", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE rounds SET accepted = (SELECT count(*) FROM results r"
        " WHERE r.project_id = rounds.project_id AND r.round_index = rounds.index"
        " AND r.status = 'accepted')"
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("exchange", sa.String(length=255), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("expiration_ms", sa.Integer()),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_table(
        "aggregator_partitions",
        sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(length=128)),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "aggregators",
        sa.Column("id", sa.String(length=128), primary_key=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("aggregators")
    op.drop_table("aggregator_partitions")
    op.drop_table("outbox")
    op.drop_column("rounds", "accepted")
    op.drop_column("results", "recorded_by")
    op.drop_column("projects", "dispatch_window")
    op.drop_column("projects", "share")
    op.drop_index("ix_claims_active_lease", table_name="claims")
    op.drop_index("ix_tasks_queued_round", table_name="tasks")
    op.drop_index("ix_tasks_queued", table_name="tasks")
    op.drop_index("ix_tasks_pending", table_name="tasks")
    op.drop_column("tasks", "lease_expires_at")
