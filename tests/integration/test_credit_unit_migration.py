"""Migration 0010 on a real Postgres: accounts granted in the old unit (10^12 work units, a
million credits) are brought down to today's grant by one more ``grant`` transfer each; their
earnings stay, their spending counts against the new grant, and no balance turns negative."""

from __future__ import annotations

from alembic import command
from sqlalchemy.orm import Session

from daig.credits import ledger
from daig.credits.units import to_units
from daig.db.migrate import alembic_config
from daig.db.models import User
from daig.db.session import make_engine, make_sessionmaker
from tests.helpers.services import fresh_database

OLD_GRANT = 10**12


def _user(session: Session, name: str, grant: int) -> int:
    user = User(username=name, password_hash="x")
    session.add(user)
    session.flush()
    ledger.post(
        session,
        kind=ledger.GRANT,
        reference=str(user.id),
        legs=[
            ledger.Leg(ledger.GRANTS, -grant),
            ledger.Leg(ledger.user_account(user.id), grant, user.id),
        ],
        memo="sign-up grant",
    )
    return user.id


def _work(session: Session, payer: int, payee: int, credits: int, reference: str) -> None:
    amount = to_units(credits)
    ledger.post(
        session,
        kind=ledger.WORK,
        reference=reference,
        legs=[
            ledger.Leg(ledger.user_account(payer), -amount, payer),
            ledger.Leg(ledger.user_account(payee), amount, payee),
        ],
    )


def test_old_grants_come_down_to_the_new_grant_keeping_earnings(monkeypatch) -> None:
    monkeypatch.delenv("DAIG_CREDIT_SIGNUP_GRANT", raising=False)  # the default, 500 credits
    with fresh_database() as url:
        config = alembic_config(url)
        command.downgrade(config, "0009")
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            with sessions.begin() as session:
                owner = _user(session, "owner", OLD_GRANT)
                volunteer = _user(session, "volunteer", OLD_GRANT)
                spender = _user(session, "spender", OLD_GRANT)
                small = _user(session, "small", to_units(100))  # under today's grant
                _work(session, owner, volunteer, 200, "t1")
                _work(session, spender, volunteer, 700, "t2")
            command.upgrade(config, "head")
            command.upgrade(config, "head")  # nothing more the second time
            with sessions() as session:
                balances = {
                    user: ledger.balance_of(session, user)
                    for user in (owner, volunteer, spender, small)
                }
        finally:
            engine.dispose()
    credits = to_units(1)
    # The owner spent 200 of a 500 grant; the volunteer keeps all 900 it earned.
    assert balances[owner].balance == 300 * credits and balances[owner].granted == 500 * credits
    assert balances[volunteer].balance == 1400 * credits
    assert balances[volunteer].earned == 900 * credits
    # Spent more than the new grant: down to zero, not below.
    assert balances[spender].balance == 0 and balances[spender].spent == 700 * credits
    assert balances[small].balance == balances[small].granted == 100 * credits
