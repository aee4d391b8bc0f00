"""Reading the ledger for people: history, a project's cost and estimate, leaderboards.

Everything here is derived from ``credit_entries`` and ``credit_transfers`` by query; nothing
is cached or stored beside them.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daig.credits.ledger import WORK, user_account
from daig.credits.pricing import project_estimate
from daig.db.models import CreditEntry, CreditTransfer, Project, ProjectFile, ProjectState, User
from daig.weights.schema import WeightSchema

ACTIVE = (ProjectState.QUEUED, ProjectState.RUNNING, ProjectState.PAUSED)


@dataclass(frozen=True)
class HistoryLine:
    entry_id: int
    at: datetime
    kind: str
    amount: int
    balance_after: int
    project_id: uuid.UUID | None
    project_name: str | None
    task_id: uuid.UUID | None
    memo: str


def history(session: Session, user_id: int, *, limit: int = 100) -> list[HistoryLine]:
    """The account's entries, newest first, each with the balance just after it."""
    running = func.sum(CreditEntry.amount).over(order_by=CreditEntry.id).label("balance_after")
    inner = (
        select(
            CreditEntry.id,
            CreditEntry.amount,
            running,
            CreditTransfer.created_at,
            CreditTransfer.kind,
            CreditTransfer.project_id,
            CreditTransfer.task_id,
            CreditTransfer.memo,
        )
        .join(CreditTransfer, CreditTransfer.id == CreditEntry.transfer_id)
        .where(CreditEntry.account == user_account(user_id))
        .subquery()
    )
    rows = session.execute(
        select(inner, Project.name.label("project_name"))
        .outerjoin(Project, Project.id == inner.c.project_id)
        .order_by(inner.c.id.desc())
        .limit(limit)
    )
    return [
        HistoryLine(
            entry_id=int(r.id),
            at=r.created_at,
            kind=r.kind,
            amount=int(r.amount),
            balance_after=int(r.balance_after),
            project_id=r.project_id,
            project_name=r.project_name,
            task_id=r.task_id,
            memo=r.memo,
        )
        for r in rows
    ]


def project_spent(session: Session, project_id: uuid.UUID) -> tuple[int, int]:
    """Credits the project's owner has paid so far for it, and the number of paid tasks."""
    row = session.execute(
        select(func.coalesce(func.sum(CreditEntry.amount), 0), func.count())
        .join(CreditTransfer, CreditTransfer.id == CreditEntry.transfer_id)
        .where(
            CreditTransfer.project_id == project_id,
            CreditTransfer.kind == WORK,
            CreditEntry.amount > 0,
        )
    ).one()
    return int(row[0]), int(row[1])


def estimate_of(session: Session, project: Project, *, replication: bool) -> int | None:
    """The project's whole cost if every planned task is paid once, plus (with
    ``replication``) its replicas at the project's ``verify_fraction``; None until known.

    Known once the model and data are uploaded (their checked summaries give the parameter
    and row counts), and fixed from the start on (the schema and rows are then stored).
    Replicas are estimated as trusted volunteers get them: while volunteers are new, more
    tasks are replicated (up to every one), and each replica is paid like its task.
    """
    base = base_estimate(session, project)
    if base is None or not replication:
        return base
    return base + replica_estimate(project, base)


def replica_estimate(project: Project, base: int) -> int:
    """What replicas are expected to add to ``base``: its ``verify_fraction``."""
    return math.ceil(round(base * project.verify_fraction, 6))  # 120 x 0.1 is 12, not 13


def base_estimate(session: Session, project: Project) -> int | None:
    """Every planned task paid once."""
    parameters: int | None = None
    rows = project.total_rows
    if project.weight_schema is not None:
        parameters = WeightSchema.from_json(project.weight_schema).parameters
    else:
        files = {
            f.kind: f.meta
            for f in session.scalars(
                select(ProjectFile).where(
                    ProjectFile.project_id == project.id, ProjectFile.kind.in_(("model", "data"))
                )
            )
        }
        model, data = files.get("model") or {}, files.get("data") or {}
        if isinstance(model.get("parameters"), int):
            parameters = int(model["parameters"])
        shape = data.get("shape")
        if rows is None and isinstance(shape, list) and shape:
            rows = int(shape[0])
    if parameters is None or rows is None or rows < project.total_tasks:
        return None
    return project_estimate(
        total_rows=rows,
        total_tasks=project.total_tasks,
        task_size=project.task_size,
        passes=project.passes,
        epochs=project.epochs,
        parameters=parameters,
    )


def parameters_text(project: Project) -> str:
    """The project's parameter count for messages, once its weight schema is known."""
    if project.weight_schema is None:
        return "the"
    return f"{WeightSchema.from_json(project.weight_schema).parameters:,}"


def committed(
    session: Session, owner_id: int, *, replication: bool, besides: uuid.UUID | None = None
) -> int:
    """Credits the owner's unfinished projects (other than ``besides``) are still to cost."""
    total = 0
    projects = session.scalars(
        select(Project).where(Project.owner_id == owner_id, Project.state.in_(ACTIVE))
    )
    for project in projects:
        if project.id == besides:
            continue
        estimate = estimate_of(session, project, replication=replication) or 0
        total += max(0, estimate - project_spent(session, project.id)[0])
    return total


@dataclass(frozen=True)
class Contributor:
    user_id: int
    username: str
    credits: int
    tasks: int


def leaderboard(
    session: Session, *, project_id: uuid.UUID | None = None, limit: int = 20
) -> list[Contributor]:
    """Providers by credits earned for accepted work (in one project, or overall)."""
    earned = func.sum(CreditEntry.amount).label("credits")
    query = (
        select(CreditEntry.user_id, User.username, earned, func.count().label("tasks"))
        .join(CreditTransfer, CreditTransfer.id == CreditEntry.transfer_id)
        .join(User, User.id == CreditEntry.user_id)
        .where(CreditTransfer.kind == WORK, CreditEntry.amount > 0)
        .group_by(CreditEntry.user_id, User.username)
        .order_by(earned.desc(), User.username)
        .limit(limit)
    )
    if project_id is not None:
        query = query.where(CreditTransfer.project_id == project_id)
    return [
        Contributor(int(r.user_id), r.username, int(r.credits), int(r.tasks))
        for r in session.execute(query)
    ]
