"""Provider accounts' standing: their verified record and quarantines, read and lifted.

A volunteer reads their own standing through the API (``GET /v1/users/me/standing``); an
operator lists, inspects and lifts quarantines with ``daig quarantine``, straight on the
database like ``daig audit``. An account is quarantined by the aggregator when a result of it
is outvoted, or by the scheduler when its agents take task messages and claim none
(``quarantine``); while it is, it gets no claims and no broker user. Lifting keeps the record
(an invalid result still counts: the account is replicated on every task again until it earns
trust back).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from daig.db.models import Project, ProviderTrust, Result, ResultStatus, User
from daig.trust import TRUSTED_AFTER, Standing


@dataclass(frozen=True)
class StandingReport:
    username: str
    verified_valid: int
    verified_invalid: int
    trusted: bool
    quarantined: bool
    quarantined_at: datetime | None
    reason: str | None
    project_id: uuid.UUID | None
    project_name: str | None
    task_id: uuid.UUID | None
    lifted_at: datetime | None
    lifted_note: str | None
    results_held: int  # waiting for their replicas

    @property
    def summary(self) -> str:
        if self.quarantined:
            where = f" in project {self.project_name!r}" if self.project_name else ""
            return f"quarantined{where}: {self.reason}"
        if self.trusted:
            return f"trusted: {self.verified_valid} results verified, only some tasks are checked"
        return (
            f"new: {self.verified_valid} of {TRUSTED_AFTER} results verified before your "
            "tasks are checked only sometimes"
        )


def standing_of(session: Session, user_id: int) -> StandingReport:
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    record = session.get(ProviderTrust, user_id)
    held = session.scalar(
        select(func.count())
        .select_from(Result)
        .where(Result.provider_id == user_id, Result.status == ResultStatus.HELD)
    )
    if record is None:
        return StandingReport(
            user.username,
            0,
            0,
            False,
            False,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            int(held or 0),
        )
    project = session.get(Project, record.quarantine_project) if record.quarantine_project else None
    standing = Standing(record.verified_valid, record.verified_invalid)
    return StandingReport(
        username=user.username,
        verified_valid=record.verified_valid,
        verified_invalid=record.verified_invalid,
        trusted=standing.trusted,
        quarantined=record.quarantined_at is not None,
        quarantined_at=record.quarantined_at,
        reason=record.quarantine_reason,
        project_id=record.quarantine_project,
        project_name=project.name if project is not None else None,
        task_id=record.quarantine_task,
        lifted_at=record.lifted_at,
        lifted_note=record.lifted_note,
        results_held=int(held or 0),
    )


def quarantined_accounts(session: Session, *, include_lifted: bool = False) -> list[StandingReport]:
    """Every quarantined account (and, if asked, those whose quarantine was lifted)."""
    quarantined = ProviderTrust.quarantined_at.is_not(None)
    lifted = ProviderTrust.lifted_at.is_not(None)
    ids = session.scalars(
        select(ProviderTrust.provider_id)
        .where(quarantined | lifted if include_lifted else quarantined)
        .order_by(ProviderTrust.provider_id)
    )
    return [standing_of(session, user_id) for user_id in ids]


def is_quarantined(session: Session, user_id: int) -> bool:
    found = session.scalar(
        select(ProviderTrust.quarantined_at).where(ProviderTrust.provider_id == user_id)
    )
    return found is not None


def quarantine(session: Session, user_id: int, reason: str, *, now: datetime) -> bool:
    """Quarantine ``user_id`` for ``reason`` (the caller commits); False if it already was.

    Its verified record is kept; a lifted quarantine's note is cleared, as a new one begins.
    """
    statement = insert(ProviderTrust).values(
        provider_id=user_id, quarantined_at=now, quarantine_reason=reason
    )
    fresh = {
        "quarantined_at": now,
        "quarantine_reason": reason,
        "quarantine_project": None,
        "quarantine_task": None,
        "lifted_at": None,
        "lifted_note": None,
    }
    done = session.execute(
        statement.on_conflict_do_update(
            index_elements=[ProviderTrust.provider_id],
            set_=fresh,
            where=ProviderTrust.quarantined_at.is_(None),
        ).returning(ProviderTrust.provider_id)
    )
    return done.first() is not None


def user_id_of(session: Session, username: str) -> int:
    found = session.scalar(select(User.id).where(User.username == username))
    if found is None:
        raise LookupError(f"no account named {username!r}")
    return int(found)


def lift_quarantine(session: Session, username: str, note: str) -> StandingReport:
    """Let the account take work again (the caller commits). Its record keeps the invalid
    result, so every task it takes is replicated until it is trusted again."""
    user_id = user_id_of(session, username)
    record = session.get(ProviderTrust, user_id)
    if record is None or record.quarantined_at is None:
        raise LookupError(f"{username!r} is not quarantined")
    record.quarantined_at = None
    record.lifted_at = datetime.now(UTC)
    record.lifted_note = note
    session.flush()
    return standing_of(session, user_id)
