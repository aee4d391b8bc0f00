"""Task claims: handing a task to a provider with a lease, in one short transaction on its row.

A claim locks its task row and nothing else, so claims of different tasks -- of one project or
of many -- run at once, and 32 claims of one task queue on that row: the first wins, the others
find it claimed. The project's state and round are read *after* the task row is locked, in a
statement of their own: a pause or a cancel updates the project row before its tasks, so it
either committed before that read (and the claim is refused) or waits for the task row (and
then ends the claim it finds). Rounds cannot close under a claim: a round closes only when all
its tasks are done, and a done task is never claimed.

Only when the contributor cap can bind (``max_contributors`` < K) do a project's claims take
its row lock, so that counting its tasks in flight is exact; with the default cap K they never
do. Everything that needs no lock (presigning, the grant) happens after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from daig.db.models import Claim, ClaimState, Project, ProjectState, Task, TaskState, User
from daig.dispatch import DispatchPolicy, queue_pending, tasks_in_flight, top_up
from daig.settings import Settings
from services.api import crud
from services.api.catalog import ProjectCatalog, ProjectFacts
from services.api.errors import ApiError
from services.api.grants import ClaimedTask


@dataclass(frozen=True)
class ClaimDecision:
    """A committed-to-be claim: the task, the project's facts, and what else it queued."""

    task: ClaimedTask
    facts: ProjectFacts
    published_at: datetime | None  # when the claimed task's message was published
    queued: int  # tasks queued to refill the project's window (their messages in the outbox)


def claim(
    *,
    session: Session,
    catalog: ProjectCatalog,
    policy: DispatchPolicy,
    settings: Settings,
    user_id: int,
    task_id: uuid.UUID,
    agent_id: str,
) -> ClaimDecision:
    """Give ``task_id`` to this provider or raise 404/409 saying why not (caller commits)."""
    _commit_without_waiting_for_disk(session)
    task = _lock_task(session, task_id)
    if task is None:
        raise ApiError(404, f"no task {task_id}", "unknown_task")
    facts = catalog.get(session, task.project_id)
    if facts is None:
        raise ApiError(409, "the project has not started", "project_not_running")
    if facts.cap_binds:
        # Lock order everywhere: the project row before its task rows.
        session.rollback()
        _commit_without_waiting_for_disk(session)
        project = _project(session, facts.id, lock=True)
        task = _lock_task(session, task_id)
        assert task is not None  # tasks are deleted only with their project
    else:
        project = _project(session, facts.id, lock=False)
    now = crud.now()
    _refuse_unclaimable(task, project, now)
    if facts.cap_binds:
        _refuse_over_cap(session, facts, task, now)
    claim_id = uuid.uuid4()
    lease = now + timedelta(seconds=settings.lease_seconds)
    session.execute(
        insert(Claim).values(
            id=claim_id,
            task_id=task_id,
            project_id=facts.id,
            provider_id=user_id,
            agent_id=agent_id,
            state=ClaimState.ACTIVE,
            claimed_at=now,
            lease_expires_at=lease,
        )
    )
    session.execute(
        update(Task)
        .where(Task.id == task_id)
        .values(
            state=TaskState.CLAIMED,
            lease_expires_at=func.greatest(func.coalesce(Task.lease_expires_at, lease), lease),
        )
    )
    queued = 0
    window = policy.window_for(facts.share, project.dispatch_window)
    if facts.cap_binds:
        queued = top_up(session, facts.plan, task.round_index, window, policy)
    elif task.state == TaskState.QUEUED:  # its place in the window is free: fill it
        queued = queue_pending(session, facts.id, task.round_index, window, policy)
    claimed = ClaimedTask(claim_id, task_id, task.round_index, task.shard)
    return ClaimDecision(claimed, facts, task.dispatched_at, queued)


def _commit_without_waiting_for_disk(session: Session) -> None:
    """A claim may be lost if Postgres itself crashes right after it (the provider's result
    is then refused and the task given out again): nothing accepted or paid is. Not waiting
    for the WAL flush halves the time a claim holds its task row."""
    session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _lock_task(session: Session, task_id: uuid.UUID) -> Any:
    return session.execute(
        select(
            Task.project_id,
            Task.round_index,
            Task.shard,
            Task.state,
            Task.lease_expires_at,
            Task.dispatched_at,
        )
        .where(Task.id == task_id)
        .with_for_update()
    ).first()


def _project(session: Session, project_id: uuid.UUID, *, lock: bool) -> Any:
    query = select(Project.state, Project.current_round, Project.dispatch_window).where(
        Project.id == project_id
    )
    if lock:
        query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE
    return session.execute(query).first()


def _refuse_unclaimable(task: Any, project: Any, now: datetime) -> None:
    if project is None or project.state != ProjectState.RUNNING:
        state = project.state if project is not None else "gone"
        raise ApiError(409, f"the project is {state}", "project_not_running")
    if task.round_index != project.current_round:
        raise ApiError(
            409,
            f"task belongs to round {task.round_index}, the project is at round "
            f"{project.current_round}",
            "stale_round",
        )
    if task.state == TaskState.DONE:
        raise ApiError(409, "the task is already done", "task_done")
    # A claimed task whose every lease lapsed is free again, even before the scheduler notices.
    if task.state == TaskState.CLAIMED and (task.lease_expires_at or now) > now:
        raise ApiError(409, "another provider is working on this task", "task_claimed")


def _refuse_over_cap(session: Session, facts: ProjectFacts, task: Any, now: datetime) -> None:
    """Under the project's row lock, refuse a claim over the contributor cap. The cap counts
    tasks in flight, so a straggler's re-issue (a task with a live lease) fits."""
    reissue = task.lease_expires_at is not None and task.lease_expires_at > now
    in_flight = tasks_in_flight(session, facts.id, task.round_index)
    if not reissue and in_flight >= facts.max_contributors:
        raise ApiError(
            409, "the project has as many tasks in flight as it allows", "contributor_cap"
        )


def _owned_active_claim(*, session: Session, claim_id: uuid.UUID, user_id: int) -> Claim:
    row = session.scalar(select(Claim).where(Claim.id == claim_id).with_for_update())
    if row is None or row.provider_id != user_id:
        raise ApiError(404, f"no claim {claim_id} of yours", "unknown_claim")
    if row.state == ClaimState.SUPERSEDED:
        raise ApiError(409, "another provider finished this task first", "task_done")
    if row.state != ClaimState.ACTIVE:
        raise ApiError(409, f"the claim is {row.state}; stop working on this task", "claim_ended")
    return row


def heartbeat(*, session: Session, settings: Settings, user_id: int, claim_id: uuid.UUID) -> float:
    """Extend the lease; 409 tells the provider to abandon the task."""
    row = _owned_active_claim(session=session, claim_id=claim_id, user_id=user_id)
    task = session.get(Task, row.task_id)
    project = session.get(Project, row.project_id)
    assert task is not None and project is not None
    if task.state == TaskState.DONE:
        raise ApiError(409, "another provider finished this task first", "task_done")
    if project.state != ProjectState.RUNNING:
        raise ApiError(409, f"the project is {project.state}", "project_not_running")
    lease = crud.now() + timedelta(seconds=settings.lease_seconds)
    row.lease_expires_at = lease
    task.lease_expires_at = max(task.lease_expires_at or lease, lease)
    return settings.lease_seconds


def release(*, session: Session, user: User, claim_id: uuid.UUID) -> Claim:
    """Give the task back: it is published again for another provider."""
    row = _owned_active_claim(session=session, claim_id=claim_id, user_id=user.id)
    row.state = ClaimState.RELEASED
    row.ended_at = crud.now()
    others = select(Claim.lease_expires_at).where(
        Claim.task_id == row.task_id, Claim.state == ClaimState.ACTIVE, Claim.id != row.id
    )
    latest = session.scalar(select(func.max(others.subquery().c.lease_expires_at)))
    if latest is None:
        session.execute(
            update(Task)
            .where(Task.id == row.task_id, Task.state == TaskState.CLAIMED)
            .values(state=TaskState.PENDING, lease_expires_at=None)
        )
    else:
        session.execute(update(Task).where(Task.id == row.task_id).values(lease_expires_at=latest))
    return row
