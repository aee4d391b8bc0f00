"""credit ledger: append-only, double-entry transfers and their entries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:50:00

Two triggers keep the ledger honest whatever code writes to it: entries and transfers can
never be updated or deleted, and at commit every transfer's entries must sum to zero (a
deferred constraint trigger, so a transfer's entries can be inserted one by one).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE FUNCTION credit_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the credit ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
"""

BALANCED = """
CREATE FUNCTION credit_transfer_balanced() RETURNS trigger AS $$
DECLARE
    total NUMERIC;
    entries INTEGER;
BEGIN
    SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, entries
        FROM credit_entries WHERE transfer_id = NEW.transfer_id;
    IF total <> 0 OR entries < 2 THEN
        RAISE EXCEPTION 'credit transfer % is unbalanced (% entries summing to %)',
            NEW.transfer_id, entries, total;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    op.create_table(
        "credit_transfers",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("result_id", sa.Uuid(), nullable=True),
        sa.Column("memo", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "reference", name="uq_credit_transfers_kind_ref"),
    )
    op.create_index(
        op.f("ix_credit_transfers_project_id"), "credit_transfers", ["project_id"], unique=False
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["transfer_id"], ["credit_transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_entries_account", "credit_entries", ["account", "id"])
    op.create_index(
        op.f("ix_credit_entries_transfer_id"), "credit_entries", ["transfer_id"], unique=False
    )
    op.execute(APPEND_ONLY)
    op.execute(BALANCED)
    for table in ("credit_transfers", "credit_entries"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only()"
        )
    op.execute(
        "CREATE CONSTRAINT TRIGGER credit_entries_balanced AFTER INSERT ON credit_entries "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION credit_transfer_balanced()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER credit_entries_balanced ON credit_entries")
    for table in ("credit_transfers", "credit_entries"):
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.drop_index(op.f("ix_credit_entries_transfer_id"), table_name="credit_entries")
    op.drop_index("ix_credit_entries_account", table_name="credit_entries")
    op.drop_table("credit_entries")
    op.drop_index(op.f("ix_credit_transfers_project_id"), table_name="credit_transfers")
    op.drop_table("credit_transfers")
    op.execute("DROP FUNCTION credit_transfer_balanced()")
    op.execute("DROP FUNCTION credit_ledger_append_only()")
