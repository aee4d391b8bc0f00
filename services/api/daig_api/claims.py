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

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from daig import states, trust
from daig.db import raw
from daig.db.models import Claim, ClaimState, Project, Task, TaskState, User
from daig.dispatch import DispatchPolicy, add_replica, queue_pending, tasks_in_flight, top_up
from daig.settings import Settings
from daig.states import ClaimAction, TaskAction
from daig.trust import Standing
from daig_api import crud
from daig_api.catalog import ProjectCatalog, ProjectFacts
from daig_api.errors import ApiError
from daig_api.grants import ClaimedTask


@dataclass(frozen=True)
class ClaimDecision:
    """A committed-to-be claim: the task, the project's facts, and what else it queued."""

    task: ClaimedTask
    facts: ProjectFacts
    published_at: datetime | None  # when the claimed task's message was published
    queued: int  # tasks queued to refill the project's window (their messages in the outbox)
    replicated: bool = False  # a replica of the task was made for another provider


def claim(
    *,
    cursor: raw.Cursor,
    catalog: ProjectCatalog,
    policy: DispatchPolicy,
    settings: Settings,
    user_id: int,
    task_id: uuid.UUID,
    agent_id: str,
) -> ClaimDecision:
    """Give ``task_id`` to this provider or raise 404/409 saying why not (caller commits)."""
    task = _one(cursor, _LOCK_TASK_READ_PROJECT, {"task": task_id, "provider": user_id})
    if task is None:
        raise ApiError(404, f"no task {task_id}", "unknown_task")
    facts = catalog.get(task.project_id)
    if facts is None:
        raise ApiError(409, "the project has not started", "project_not_running")
    if facts.cap_binds:
        # Lock order everywhere: the project row before its task rows.
        cursor.connection.rollback()
        task = _one(cursor, _LOCK_PROJECT_THEN_TASK, {"task": task_id, "provider": user_id})
        assert task is not None  # tasks are deleted only with their project
    now = crud.now()
    _refuse_unclaimable(task, now)
    _refuse_untrusted(task)
    if facts.cap_binds:
        _refuse_over_cap(cursor, facts, task, now)
    claim_id = uuid.uuid4()
    lease = now + timedelta(seconds=settings.lease_seconds)
    raw.rows(
        cursor,
        states.CLAIM_TASK,
        {
            "claim": claim_id,
            "task": task_id,
            "project": facts.id,
            "provider": user_id,
            "agent": agent_id,
            "now": now,
            "lease": lease,
        },
    )
    window = policy.window_for(facts.share, task.dispatch_window)
    queued = 0
    standing = Standing(task.verified_valid, task.verified_invalid)
    first = settings.replication and task.replica_of is None and task.replicas == 0
    replicated = first and trust.replicate(standing, facts.verify_fraction, random.random)
    if replicated:
        # Made as the task is claimed, so both train at once; the grant says nothing of it.
        add_replica(cursor, task_id, facts.task_size)
        if not facts.cap_binds:
            queued += queue_pending(cursor, facts.id, task.round_index, window, policy)
    if facts.cap_binds:
        queued += top_up(cursor, facts.plan, task.round_index, window, policy)
    elif task.state == TaskState.QUEUED:  # its place in the window is free: fill it
        queued += queue_pending(cursor, facts.id, task.round_index, window, policy)
    claimed = ClaimedTask(claim_id, task_id, task.round_index, task.shard)
    return ClaimDecision(claimed, facts, task.dispatched_at, queued, replicated)


# A claim may be lost if Postgres itself crashes right after it (the provider's result is then
# refused and the task given out again): nothing accepted or paid is. Not waiting for the WAL
# flush halves the time a claim holds its task row. The project is read by a statement that
# starts once the task's lock is ours, so it sees any pause that committed before.
# With it, the claimer's record, and whether its trust group already works on another task
# of the same shard's replicas (then this claim would verify its own result).
_READ = (
    " SELECT t.project_id, t.round_index, t.shard, t.state, t.lease_expires_at,"
    " t.dispatched_at, p.state AS project_state, p.current_round, p.dispatch_window,"
    " t.replica_of, t.replicas, coalesce(pt.verified_valid, 0),"
    " coalesce(pt.verified_invalid, 0), pt.quarantined_at IS NOT NULL,"
    " CASE WHEN (t.replica_of IS NOT NULL OR t.replicas > 0) AND NOT t.any_claimer THEN EXISTS ("
    "  SELECT 1 FROM tasks g JOIN claims c ON c.task_id = g.id JOIN users u ON u.id = c.provider_id"
    "  WHERE (g.id = coalesce(t.replica_of, t.id) OR g.replica_of = coalesce(t.replica_of, t.id))"
    "  AND g.id <> t.id AND c.state IN ('active', 'finished', 'expired')"
    "  AND coalesce(u.trust_group, u.id) = ("
    "   SELECT coalesce(trust_group, id) FROM users WHERE id = :provider)"
    " ) ELSE false END"
    " FROM tasks t JOIN projects p ON p.id = t.project_id"
    " LEFT JOIN provider_trust pt ON pt.provider_id = :provider WHERE t.id = :task"
)
_LOCK_TASK_READ_PROJECT = text(
    "SET LOCAL synchronous_commit TO OFF; SELECT 1 FROM tasks WHERE id = :task FOR UPDATE;" + _READ
)
_LOCK_PROJECT_THEN_TASK = text(
    "SET LOCAL synchronous_commit TO OFF;"
    " SELECT 1 FROM projects WHERE id = (SELECT project_id FROM tasks WHERE id = :task)"
    " FOR NO KEY UPDATE;"
    " SELECT 1 FROM tasks WHERE id = :task FOR UPDATE;" + _READ
)


@dataclass(frozen=True)
class _Task:
    project_id: uuid.UUID
    round_index: int
    shard: int
    state: str
    lease_expires_at: datetime | None
    dispatched_at: datetime | None
    project_state: str
    current_round: int
    dispatch_window: int | None
    replica_of: uuid.UUID | None
    replicas: int
    verified_valid: int
    verified_invalid: int
    quarantined: bool
    own_group_replica: bool  # another task of this shard's replicas is this group's


def _one(cursor: raw.Cursor, statement: Any, params: dict[str, Any]) -> _Task | None:
    found = raw.rows(cursor, statement, params)
    return _Task(*found[0]) if found else None


def _refuse_unclaimable(task: Any, now: datetime) -> None:
    if task.project_state not in states.TAKES_WORK:
        raise ApiError(409, f"the project is {task.project_state}", "project_not_running")
    if task.round_index != task.current_round:
        raise ApiError(
            409,
            f"task belongs to round {task.round_index}, the project is at round "
            f"{task.current_round}",
            "stale_round",
        )
    # A claimed task whose every lease lapsed is free again, even before the scheduler notices.
    live = states.is_live(task.lease_expires_at, now)
    if states.TASK_TABLE.may(TaskAction.CLAIM, task.state, live=live):
        return
    if task.state in states.TASK_TABLE.final:
        raise ApiError(409, "the task is already done", "task_done")
    raise ApiError(409, "another provider is working on this task", "task_claimed")


def _refuse_untrusted(task: _Task) -> None:
    if task.quarantined:
        raise ApiError(
            403,
            "your account is quarantined, so DAIG gives it no more work; `daig standing` says "
            "why (a result outvoted by other volunteers', or task messages taken and never "
            "claimed). If you think it wrong, ask the operator to review and lift it",
            "quarantined",
        )
    if task.own_group_replica:
        raise ApiError(
            409,
            "this task checks a result from your own account (or one created from your "
            "address); take another task",
            "own_replica",
        )


def _refuse_over_cap(cursor: raw.Cursor, facts: ProjectFacts, task: Any, now: datetime) -> None:
    """Under the project's row lock, refuse a claim over the contributor cap. The cap counts
    tasks in flight, so a straggler's re-issue (a task with a live lease) fits."""
    reissue = states.is_live(task.lease_expires_at, now)
    in_flight = tasks_in_flight(cursor, facts.id, task.round_index)
    if not reissue and in_flight >= facts.max_contributors:
        raise ApiError(
            409, "the project has as many tasks in flight as it allows", "contributor_cap"
        )


def _owned_claim(
    *, session: Session, claim_id: uuid.UUID, user_id: int, action: ClaimAction
) -> Claim:
    """The provider's claim, locked, if ``action`` may move it; 404/409 otherwise."""
    row = session.scalar(select(Claim).where(Claim.id == claim_id).with_for_update())
    if row is None or row.provider_id != user_id:
        raise ApiError(404, f"no claim {claim_id} of yours", "unknown_claim")
    if row.state == ClaimState.SUPERSEDED:
        raise ApiError(409, "another provider finished this task first", "task_done")
    live = states.is_live(row.lease_expires_at, crud.now())
    if states.CLAIM_TABLE.may(action, row.state, live=live):
        return row
    if row.state == states.HOLDING and not live:
        # Expired already in all but name: claims take the task from the next provider on.
        raise ApiError(
            409,
            "the lease ran out and the task is given out again; stop working on it",
            "claim_ended",
        )
    raise ApiError(409, f"the claim is {row.state}; stop working on this task", "claim_ended")


def heartbeat(*, session: Session, settings: Settings, user_id: int, claim_id: uuid.UUID) -> float:
    """Extend the lease; 409 tells the provider to abandon the task."""
    row = _owned_claim(
        session=session, claim_id=claim_id, user_id=user_id, action=ClaimAction.HEARTBEAT
    )
    task = session.get(Task, row.task_id)
    project = session.get(Project, row.project_id)
    assert task is not None and project is not None
    if task.state in states.TASK_TABLE.final:
        raise ApiError(409, "another provider finished this task first", "task_done")
    if project.state not in states.TAKES_WORK:
        raise ApiError(409, f"the project is {project.state}", "project_not_running")
    lease = crud.now() + timedelta(seconds=settings.lease_seconds)
    row.lease_expires_at = lease
    task.lease_expires_at = max(task.lease_expires_at or lease, lease)
    return settings.lease_seconds


def release(*, session: Session, user: User, claim_id: uuid.UUID) -> Claim:
    """Give the task back: it is published again for another provider."""
    row = _owned_claim(
        session=session, claim_id=claim_id, user_id=user.id, action=ClaimAction.RELEASE
    )
    states.release(session, row, now=crud.now())
    return row
