"""claim refusals: what the black-hole check compares task messages taken against

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 04:10:00

- ``claim_refusals``: per account and 10-second bucket, the claims the API refused for a real
  task (stale round, taken, done, own replica, contributor cap). An honest agent acks such a
  task message after trying; a black hole acks without trying.
- ``ix_claims_provider_claimed`` on ``claims (provider_id, claimed_at)``: an account's claims
  of the last minutes, read by the scheduler every few seconds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claim_refusals",
        sa.Column("provider_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("refused", sa.Integer(), nullable=False),
    )
    op.create_index("ix_claims_provider_claimed", "claims", ["provider_id", "claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_claims_provider_claimed", table_name="claims")
    op.drop_table("claim_refusals")
