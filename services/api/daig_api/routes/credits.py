"""Credits: your balance and history, a project's cost, contributors' leaderboards."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from daig.contract.http import (
    BalanceOut,
    ContributorOut,
    EstimateOut,
    HistoryLineOut,
    ProjectCostOut,
)
from daig.credits import ledger
from daig.credits.units import maybe_credits, to_credits, to_units
from daig.db.models import CreditEntry, CreditTransfer, Project
from daig_api import credit_reports as reports
from daig_api import crud, volunteers
from daig_api.deps import CurrentUser, SessionDep, SettingsDep
from daig_api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["credits"])


@router.get("/credits")
def balance(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> BalanceOut:
    """Your balance, what it is made of, and how much your unfinished projects will still cost."""
    if ledger.ensure_grant(session, user.id, to_units(settings.credit_signup_grant)):
        session.commit()  # an account made before the ledger existed gets its grant now
    totals = ledger.balance_of(session, user.id)
    promised = reports.committed(session, user.id, replication=settings.replication)
    return BalanceOut(
        balance=to_credits(totals.balance),
        granted=to_credits(totals.granted),
        earned=to_credits(totals.earned),
        spent=to_credits(totals.spent),
        committed=to_credits(promised),
        available=to_credits(totals.balance - promised),
    )


@router.get("/credits/history")
def history(
    user: CurrentUser,
    session: SessionDep,
    limit: int = Query(100, ge=1, le=1000, description="Most recent entries to return."),
) -> list[HistoryLineOut]:
    """Your account's entries, newest first, each with the balance after it."""
    return [
        HistoryLineOut(
            **vars(line)
            | {"amount": to_credits(line.amount), "balance_after": to_credits(line.balance_after)}
        )
        for line in reports.history(session, user.id, limit=limit)
    ]


@router.get("/projects/{project_id}/cost")
def project_cost(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ProjectCostOut:
    """What your project has cost so far, and its estimate in all (replicas included)."""
    project = crud.get_owned_project(session=session, project_id=project_id, user=user)
    return _cost(session, project, replication=settings.replication)


@router.get("/projects/{project_id}/estimate")
def project_estimate(
    project_id: uuid.UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> EstimateOut:
    """Its cost and how long it would train with the volunteers online now (before Start)."""
    project = crud.get_owned_project(session=session, project_id=project_id, user=user)
    cost = _cost(session, project, replication=settings.replication)
    base = reports.base_estimate(session, project)  # in work units, as the rate is
    replicas = (
        reports.replica_estimate(project, base) if base is not None and settings.replication else 0
    )
    time = volunteers.time_estimate(
        session=session, project=project, base=base, replicas=replicas, now=crud.now()
    )
    return EstimateOut(cost=cost, time=time)


def _cost(session: Session, project: Project, *, replication: bool) -> ProjectCostOut:
    base = reports.base_estimate(session, project)
    estimate = reports.estimate_of(session, project, replication=replication)
    spent, tasks = reports.project_spent(session, project.id)
    return ProjectCostOut(
        project_id=project.id,
        state=project.state,
        estimate=maybe_credits(estimate),
        replicas=to_credits(
            reports.replica_estimate(project, base) if base is not None and replication else 0
        ),
        spent=to_credits(spent),
        paid_tasks=tasks,
        remaining=None if estimate is None else to_credits(max(0, estimate - spent)),
    )


@router.get("/leaderboard")
def leaderboard(
    user: CurrentUser,
    session: SessionDep,
    limit: int = Query(20, ge=1, le=500, description="How many contributors to list."),
) -> list[ContributorOut]:
    """Contributors by credits earned over all projects."""
    return _ranked(reports.leaderboard(session, limit=limit))


@router.get("/projects/{project_id}/leaderboard")
def project_leaderboard(
    project_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    limit: int = Query(20, ge=1, le=500, description="How many contributors to list."),
) -> list[ContributorOut]:
    """Contributors to one project by credits earned; for its owner and its contributors."""
    project = session.get(Project, project_id)
    if project is None or not (
        project.owner_id == user.id or _contributed(session, project, user.id)
    ):
        raise ApiError(404, f"no project {project_id} that you own or contributed to", "not_found")
    return _ranked(reports.leaderboard(session, project_id=project.id, limit=limit))


def _contributed(session: SessionDep, project: Project, user_id: int) -> bool:
    paid = (
        select(CreditEntry.id)
        .join(CreditTransfer, CreditTransfer.id == CreditEntry.transfer_id)
        .where(CreditTransfer.project_id == project.id, CreditEntry.user_id == user_id)
        .limit(1)
    )
    return session.scalar(paid) is not None


def _ranked(contributors: list[reports.Contributor]) -> list[ContributorOut]:
    return [
        ContributorOut(rank=i + 1, **vars(c) | {"credits": to_credits(c.credits)})
        for i, c in enumerate(contributors)
    ]
