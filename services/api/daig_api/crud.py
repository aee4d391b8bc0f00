"""Database reads and writes for the API. Functions take ``session`` and never commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daig.contract.http import FileOut, ProjectOut, RoundOut, TaskFailureOut, VerificationOut
from daig.db.models import (
    Claim,
    Project,
    ProjectFile,
    ProjectState,
    ProviderTrust,
    RejectReason,
    Result,
    ResultStatus,
    Round,
    Task,
    TaskState,
    User,
)
from daig.elapsed import training_seconds
from daig.failures import sanitize_reason
from daig.hyperparams import Hyperparameters
from daig.states.sql import live_claim
from daig_api import volunteers
from daig_api.errors import ApiError

TRAINING = (ProjectState.QUEUED, ProjectState.RUNNING)


def now() -> datetime:
    return datetime.now(UTC)


def get_user_by_name(*, session: Session, username: str) -> User | None:
    if "\x00" in username:  # Postgres text can't hold NUL, so no account has one
        return None
    return session.scalar(select(User).where(User.username == username))


def get_owned_project(
    *, session: Session, project_id: uuid.UUID, user: User, for_update: bool = False
) -> Project:
    """The user's project, or 404 (also for other users' projects: no existence leak)."""
    query = select(Project).where(Project.id == project_id, Project.owner_id == user.id)
    if for_update:
        query = query.with_for_update()
    project = session.scalar(query)
    if project is None:
        raise ApiError(404, f"no project {project_id} in your account", "not_found")
    return project


def hyperparameters_of(project: Project) -> Hyperparameters:
    return Hyperparameters.from_row(project)


def files_of(*, session: Session, project_id: uuid.UUID) -> dict[str, ProjectFile]:
    rows = session.scalars(select(ProjectFile).where(ProjectFile.project_id == project_id))
    return {row.kind: row for row in rows}


def active_claims(*, session: Session, project_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Claim)
            .where(Claim.project_id == project_id, live_claim(now()))
        )
        or 0
    )


def queued_tasks(*, session: Session, project_id: uuid.UUID, round_index: int) -> int:
    """Tasks of the round whose message is published and not yet claimed."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Task)
            .where(
                Task.project_id == project_id,
                Task.round_index == round_index,
                Task.state == TaskState.QUEUED,
            )
        )
        or 0
    )


def accepted_results(*, session: Session, project_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Result)
            .where(Result.project_id == project_id, Result.status == ResultStatus.ACCEPTED)
        )
        or 0
    )


def contributors(*, session: Session, project_id: uuid.UUID) -> int:
    """Distinct volunteers (accounts) with a result counted or verified in the project."""
    return int(
        session.scalar(
            select(func.count(func.distinct(Result.provider_id))).where(
                Result.project_id == project_id,
                Result.status.in_([ResultStatus.ACCEPTED, ResultStatus.AGREED]),
            )
        )
        or 0
    )


def project_out(*, session: Session, project: Project) -> ProjectOut:
    accepted = accepted_results(session=session, project_id=project.id)
    needed = project.total_rounds * project.task_size if project.total_rounds else None
    latest = session.scalar(
        select(Round.metrics)
        .where(Round.project_id == project.id, Round.closed_at.is_not(None))
        .order_by(Round.index.desc())
        .limit(1)
    )
    evaluated = session.scalar(
        select(Round.evaluation)
        .where(Round.project_id == project.id, Round.evaluation.is_not(None))
        .order_by(Round.index.desc())
        .limit(1)
    )
    files = files_of(session=session, project_id=project.id)
    in_flight = active_claims(session=session, project_id=project.id)
    return ProjectOut(
        id=project.id,
        name=project.name,
        state=project.state,
        hyperparameters=hyperparameters_of(project),
        round=project.current_round,
        total_rounds=project.total_rounds,
        accepted_tasks=accepted,
        total_task_results=needed,
        progress=min(1.0, accepted / needed) if needed else 0.0,
        active_contributors=in_flight,
        contributors=contributors(session=session, project_id=project.id),
        tasks_in_flight=in_flight,
        volunteers_online=(
            volunteers.online(session=session, now=now()).volunteers
            if project.state in TRAINING
            else None
        ),
        elapsed_seconds=training_seconds(
            started_at=project.started_at,
            finished_at=project.finished_at,
            paused_at=project.paused_at,
            paused_seconds=project.paused_seconds or 0.0,
            now=now(),
        ),
        files=[
            FileOut(kind=f.kind, filename=f.filename, size=f.size, sha256=f.sha256, meta=f.meta)
            for f in files.values()
        ],
        latest_metrics=latest,
        latest_evaluation=evaluated,
        verification=verification_of(session=session, project_id=project.id),
        # Sanitized when recorded; again here for rows recorded before that (issue 15).
        error=sanitize_reason(project.error, limit=2000) if project.error else None,
        last_failure=last_failure_of(session=session, project=project),
        created_at=project.created_at,
        started_at=project.started_at,
        finished_at=project.finished_at,
    )


def last_failure_of(*, session: Session, project: Project) -> TaskFailureOut | None:
    """The newest training failure of the current round (one index range, not the history)."""
    row = session.execute(
        select(Result.round_index, Task.shard, Task.failures, Result.detail, Result.received_at)
        .join(Task, Task.id == Result.task_id)
        .where(
            Result.project_id == project.id,
            Result.round_index == project.current_round,
            Result.status == ResultStatus.FAILED,
            Result.reason == RejectReason.TRAINING_FAILED,
        )
        .order_by(Result.received_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return TaskFailureOut(
        round=row.round_index,
        shard=row.shard,
        failures=row.failures,
        reason=sanitize_reason(row.detail or "unknown error"),
        at=row.received_at,
    )


def verification_of(*, session: Session, project_id: uuid.UUID) -> VerificationOut:
    rows = session.execute(
        select(Result.status, func.count())
        .where(
            Result.project_id == project_id,
            Result.status.in_([ResultStatus.AGREED, ResultStatus.DISAGREED, ResultStatus.HELD]),
        )
        .group_by(Result.status)
    )
    counts = {str(status): int(count) for status, count in rows}
    settled = session.scalar(
        select(func.count(func.distinct(func.coalesce(Task.replica_of, Task.id))))
        .select_from(Result)
        .join(Task, Task.id == Result.task_id)
        .where(Result.project_id == project_id, Result.status == ResultStatus.AGREED)
    )
    quarantined = session.scalars(
        select(User.username)
        .join(ProviderTrust, ProviderTrust.provider_id == User.id)
        .where(ProviderTrust.quarantine_project == project_id)
        .order_by(User.username)
    )
    return VerificationOut(
        settled=int(settled or 0),
        agreed=counts.get(ResultStatus.AGREED, 0),
        disagreed=counts.get(ResultStatus.DISAGREED, 0),
        waiting=counts.get(ResultStatus.HELD, 0),
        quarantined=list(quarantined),
    )


def rounds_out(*, session: Session, project_id: uuid.UUID) -> list[RoundOut]:
    counts: dict[tuple[int, str], int] = {
        (index, status): count
        for index, status, count in session.execute(
            select(Result.round_index, Result.status, func.count())
            .where(Result.project_id == project_id)
            .group_by(Result.round_index, Result.status)
        ).tuples()
    }
    rounds = session.scalars(
        select(Round).where(Round.project_id == project_id).order_by(Round.index)
    )
    return [
        RoundOut(
            index=r.index,
            opened_at=r.opened_at,
            closed_at=r.closed_at,
            accepted=counts.get((r.index, ResultStatus.ACCEPTED), 0),
            rejected=counts.get((r.index, ResultStatus.REJECTED), 0)
            + counts.get((r.index, ResultStatus.FAILED), 0),
            metrics=r.metrics,
            evaluation=r.evaluation,
        )
        for r in rounds
    ]


def trust_group_for(*, session: Session, user: User, window_seconds: float) -> int:
    """The trust group of a new account: that of the first account created from the same
    address within the window before it, else its own id (see ``User.trust_group``)."""
    if window_seconds > 0 and user.signup_address:
        since = now() - timedelta(seconds=window_seconds)
        earlier = session.scalar(
            select(func.coalesce(User.trust_group, User.id))
            .where(
                User.signup_address == user.signup_address,
                User.created_at >= since,
                User.id != user.id,
            )
            .order_by(User.id)
            .limit(1)
        )
        if earlier is not None:
            return int(earlier)
    return user.id
