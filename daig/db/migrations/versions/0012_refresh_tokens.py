"""refresh tokens: a saved login that lasts while it is used

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 04:00:00

- ``refresh_tokens``: one row per long-lived login (the DAIG window, ``daig login``), asked
  for with the ``offline_access`` scope. The client holds ``<id>.<secret>``; the row keeps
  the secret's sha256 only, when it was made and last used, when it expires (sliding:
  ``DAIG_REFRESH_TOKEN_DAYS`` after its last use) and when it was revoked (logout). Deleted
  with its account.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_user_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
