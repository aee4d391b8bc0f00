"""credit unit: sign-up grants made in the old unit are brought down to today's grant

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 00:30:00

The ledger still counts work units (sample x epoch x model parameter); people now read
credits of 10^6 units (``daig.credits.units``) and ``DAIG_CREDIT_SIGNUP_GRANT`` is in credits.
Accounts made before were granted 10^12 units (a million credits), which would keep their
balances meaningless. The ledger is append-only, so each such account gets one more ``grant``
transfer (reference ``rescale:<user id>``) taking back the excess over today's grant, but never
more than its balance: earnings are kept, spending counts against the new grant, and no
balance is made negative. Downgrading leaves those transfers (the ledger never forgets).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daig.credits.units import to_units
from daig.settings import Settings

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

GRANTS = "system:grants"

OVERGRANTED = sa.text(
    """
    SELECT e.user_id, e.amount AS granted,
           (SELECT coalesce(sum(b.amount), 0) FROM credit_entries b WHERE b.account = e.account)
               AS balance
    FROM credit_entries e JOIN credit_transfers t ON t.id = e.transfer_id
    WHERE t.kind = 'grant' AND t.reference = e.user_id::text
      AND e.account = 'user:' || e.user_id AND e.amount > :grant
    ORDER BY e.user_id
    """
)


def upgrade() -> None:
    grant = to_units(Settings().credit_signup_grant)
    connection = op.get_bind()
    for user_id, granted, balance in connection.execute(OVERGRANTED, {"grant": grant}).all():
        cut = min(int(granted) - grant, max(0, int(balance)))
        if cut <= 0:
            continue
        transfer_id = connection.execute(
            sa.text(
                "INSERT INTO credit_transfers (kind, reference, memo) "
                "VALUES ('grant', :reference, :memo) "
                "ON CONFLICT ON CONSTRAINT uq_credit_transfers_kind_ref DO NOTHING RETURNING id"
            ),
            {
                "reference": f"rescale:{user_id}",
                "memo": "sign-up grant brought down to the new credit unit's grant",
            },
        ).scalar()
        if transfer_id is None:
            continue
        connection.execute(
            sa.text(
                "INSERT INTO credit_entries (transfer_id, account, user_id, amount) VALUES "
                "(:transfer, :user_account, :user_id, :taken), "
                "(:transfer, :grants, NULL, :given_back)"
            ),
            {
                "transfer": transfer_id,
                "user_account": f"user:{user_id}",
                "user_id": user_id,
                "taken": -cut,
                "grants": GRANTS,
                "given_back": cut,
            },
        )


def downgrade() -> None:
    pass  # the ledger is append-only: the rescale transfers stay
