"""The credit check at project start: refuse a project its owner cannot pay for."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from daig.credits import ledger
from daig.credits.units import units_text
from daig.db.models import Project, User
from daig_api import credit_reports as reports
from daig_api.errors import ApiError


def require_credit(*, session: Session, project: Project, grant: int, replication: bool) -> int:
    """The project's estimate (work units), or an ``ApiError`` (402) if the owner's balance
    can't cover it. ``grant`` is the sign-up grant in work units.

    Credit already promised to the owner's other unfinished projects (their estimate less
    what they have cost so far) is not available. The owner's row is locked, so two projects
    started at once cannot both count on the same credit.
    """
    session.execute(select(User.id).where(User.id == project.owner_id).with_for_update())
    ledger.ensure_grant(session, project.owner_id, grant)
    estimate = reports.estimate_of(session, project, replication=replication)
    if estimate is None:
        return 0
    balance = ledger.balance_of(session, project.owner_id).balance
    promised = reports.committed(
        session, project.owner_id, replication=replication, besides=project.id
    )
    available = balance - promised
    if estimate > available:
        promised_text = (
            f" of which {units_text(promised)} are promised to your other unfinished projects"
            if promised
            else ""
        )
        raise ApiError(
            402,
            "not enough credit to start this project: it is estimated to cost "
            f"{units_text(estimate)} credits (samples x epochs x "
            f"{reports.parameters_text(project)} model parameters / 10^6, replicated tasks "
            f"included) and your balance is {units_text(balance)} credits{promised_text}. "
            "Earn credit by "
            "volunteering (`daig provider`), or lower epochs, passes or the data size.",
            "insufficient_credit",
        )
    return estimate
