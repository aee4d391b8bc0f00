"""Applying the tables to rows: a project (a locked ORM row), tasks and claims set-wise.

Every ``UPDATE ... SET state`` of tasks and claims is written here from the tables (queueing
aside: ``daig.dispatch`` fills windows with the table's states): a statement updates only rows
in a source state of its action and leaves the others as they are, so a forbidden move is never
written. Nothing here commits: the caller owns the transaction.

Locks, in the order every service takes them: projects, then claims, then tasks. A statement
that decides from a task's claims (``let_go``) first locks the task rows and then reads the
claims in a statement of its own, so it sees any claim committed while it waited for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, text, update
from sqlalchemy.orm import Session

from daig.db.models import Claim, Project, ProjectState, Task
from daig.states.sql import literal, live_claim_sql, state_in
from daig.states.table import (
    CLAIM_TABLE,
    PROJECT_TABLE,
    TASK_TABLE,
    ClaimAction,
    Guard,
    Lease,
    ProjectAction,
    TaskAction,
)

# A claim (API, on a raw cursor): its row inserted live, its task claimed with the later of its
# lease and the new one. The caller checked ``TASK_TABLE.may(CLAIM, ...)`` under the row lock.
CLAIM_TASK = text(
    "INSERT INTO claims (id, task_id, project_id, provider_id, agent_id, state, claimed_at,"
    " lease_expires_at) VALUES (:claim, :task, :project, :provider, :agent,"
    f" {literal(CLAIM_TABLE.initial)}, :now, :lease);"
    f" UPDATE tasks SET state = {literal(TASK_TABLE.target(TaskAction.CLAIM))},"
    " lease_expires_at = greatest(coalesce(lease_expires_at, :lease), :lease)"
    " WHERE id = :task RETURNING id"
)

_LOCK_TASKS = text(
    "SELECT id FROM tasks WHERE id = ANY(CAST(:tasks AS uuid[])) ORDER BY id FOR UPDATE"
)
# Each task's lease becomes the latest of its live claims'; a task the table lets go without
# one (claimed, no live claim holds it) goes back to pending. Done tasks are never touched.
_LET_GO = text(
    "UPDATE tasks t SET lease_expires_at = h.lease,"
    " state = CASE WHEN h.lease IS NULL"
    f" AND {state_in(TASK_TABLE.sources(TaskAction.LET_GO), 't.state')}"
    f" THEN {literal(TASK_TABLE.target(TaskAction.LET_GO))} ELSE t.state END"
    " FROM (SELECT x.id, max(c.lease_expires_at) AS lease"
    "  FROM unnest(CAST(:tasks AS uuid[])) AS x(id)"
    f"  LEFT JOIN claims c ON c.task_id = x.id AND {live_claim_sql('c', ':now')}"
    "  GROUP BY x.id) AS h"
    f" WHERE t.id = h.id AND {state_in(TASK_TABLE.final, 't.state', negate=True)}"
    " RETURNING t.id, t.state"
)


def enter(project: Project, action: ProjectAction, *, now: datetime) -> None:
    """Move ``project`` (a row the caller holds locked) by ``action``, or raise
    ``IllegalTransition``; stamps ``started_at`` on start and ``finished_at`` on a final state,
    and keeps the pause bookkeeping (``paused_at``, ``paused_seconds``) of elapsed time."""
    project.state = PROJECT_TABLE.move(action, project.state)
    if action is ProjectAction.START:
        project.started_at = now
    if project.paused_at is not None and project.state != ProjectState.PAUSED:
        paused = max(0.0, (now - project.paused_at).total_seconds())
        project.paused_seconds = (project.paused_seconds or 0.0) + paused
        project.paused_at = None
    elif project.state == ProjectState.PAUSED and project.paused_at is None:
        project.paused_at = now
    if project.state in PROJECT_TABLE.final:
        project.finished_at = now


def let_go(
    session: Session, task_ids: Iterable[uuid.UUID], *, now: datetime
) -> dict[uuid.UUID, str]:
    """After claims of these tasks ended without a result: each goes back to pending unless a
    live claim still holds it, and keeps the latest live lease. Their states after, by id."""
    ids = sorted(set(task_ids))
    if not ids:
        return {}
    session.execute(_LOCK_TASKS, {"tasks": ids})
    rows = session.execute(_LET_GO, {"tasks": ids, "now": now})
    return {task_id: state for task_id, state in rows}


def release(session: Session, claim: Claim, *, now: datetime) -> None:
    """The provider gives the task back: ``claim`` (locked) released, its task let go."""
    claim.state = CLAIM_TABLE.move(ClaimAction.RELEASE, claim.state)
    claim.ended_at = now
    session.flush()  # let_go reads the claims in SQL
    let_go(session, [claim.task_id], now=now)


def give_back(
    session: Session, *, claim_id: uuid.UUID, task_id: uuid.UUID, now: datetime
) -> str | None:
    """A failed try: the claim released, its task let go. The task's state after (None: done)."""
    _end_claims(session, ClaimAction.FAIL, now, Claim.id == claim_id)
    return let_go(session, [task_id], now=now).get(task_id)


def expire_lapsed(
    session: Session, *, now: datetime, project_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Active claims whose lease lapsed expire (of one project, or of all), and their tasks
    are let go; the (project, task) of each expired claim."""
    where: list[ColumnElement[bool]] = []
    if project_id is not None:
        where.append(Claim.project_id == project_id)
    expired = _end_claims(session, ClaimAction.EXPIRE, now, *where, returning=True)
    let_go(session, [task_id for _, task_id in expired], now=now)
    return expired


def stop_work(session: Session, project_id: uuid.UUID, *, now: datetime) -> None:
    """Pause or cancel: every claim released and the unfinished tasks back to pending.

    Claims lock only their task row and read the project's state after it, so updating the
    tasks waits for any claim in progress; releasing claims once more afterwards (a fresh
    snapshot) catches the claim such a transaction committed meanwhile.
    """
    _end_claims(session, ClaimAction.RELEASE, now, Claim.project_id == project_id)
    _move_tasks(session, TaskAction.STOP, Task.project_id == project_id)
    _end_claims(session, ClaimAction.RELEASE, now, Claim.project_id == project_id)


def reissue(session: Session, task_id: uuid.UUID) -> None:
    """A straggler's task given out again: pending with its live lease (still in flight)."""
    _move_tasks(session, TaskAction.REISSUE, Task.id == task_id)


def drop_message(session: Session, task_id: uuid.UUID) -> None:
    """The task's message was dead-lettered: pending again if it was waiting in the queue."""
    _move_tasks(session, TaskAction.DROP_MESSAGE, Task.id == task_id)


def accept(session: Session, done: Mapping[uuid.UUID, uuid.UUID], *, now: datetime) -> None:
    """Results accepted (task -> its winning claim): the tasks done, their claims finished, and
    their other claims -- a straggler's, a lapsed lease's -- superseded, freeing their slots."""
    if not done:
        return
    tasks, claims = list(done), list(done.values())
    _move_tasks(session, TaskAction.ACCEPT, Task.id.in_(tasks), done_at=now)
    _end_claims(session, ClaimAction.FINISH, now, Claim.id.in_(claims))
    _end_claims(
        session, ClaimAction.SUPERSEDE, now, Claim.task_id.in_(tasks), Claim.id.not_in(claims)
    )


def verify(session: Session, held: Mapping[uuid.UUID, uuid.UUID], *, now: datetime) -> None:
    """Replicated tasks' results recorded (task -> its claim), to be verified: the tasks wait
    (``verifying``), their claims finished, their other claims superseded."""
    if not held:
        return
    tasks, claims = list(held), list(held.values())
    _move_tasks(session, TaskAction.VERIFY, Task.id.in_(tasks))
    _end_claims(session, ClaimAction.FINISH, now, Claim.id.in_(claims))
    _end_claims(
        session, ClaimAction.SUPERSEDE, now, Claim.task_id.in_(tasks), Claim.id.not_in(claims)
    )


def settle(session: Session, first_task: uuid.UUID, *, now: datetime) -> None:
    """A replicated shard decided: every task of it done (replicas still out included), their
    remaining claims superseded."""
    shard = (Task.id == first_task) | (Task.replica_of == first_task)
    _move_tasks(session, TaskAction.ACCEPT, shard, done_at=now)
    _end_claims(
        session,
        ClaimAction.SUPERSEDE,
        now,
        Claim.task_id.in_(select(Task.id).where(shard)),
    )


def _move_tasks(
    session: Session, action: TaskAction, *where: ColumnElement[bool], **values: Any
) -> None:
    rules = TASK_TABLE.rules_of(action)
    assert all(rule.guard is not Guard.UNHELD for rule in rules), action  # see let_go
    leases = {rule.lease for rule in rules}
    if leases == {Lease.CLEAR}:
        values["lease_expires_at"] = None
    else:
        assert leases == {Lease.KEEP}, action
    session.execute(
        update(Task)
        .where(Task.state.in_(TASK_TABLE.sources(action)), *where)
        .values(state=TASK_TABLE.target(action), **values)
    )


def _end_claims(
    session: Session,
    action: ClaimAction,
    now: datetime,
    *where: ColumnElement[bool],
    returning: bool = False,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Move the claims ``where`` selects by ``action``; (project, task) of each, if asked."""
    guards = {rule.guard for rule in CLAIM_TABLE.rules_of(action)}
    conditions = [Claim.state.in_(CLAIM_TABLE.sources(action)), *where]
    if guards == {Guard.UNHELD}:  # a claim's own lease lapsed
        conditions.append(Claim.lease_expires_at <= now)
    else:
        assert guards == {Guard.ALWAYS}, action
    statement = (
        update(Claim).where(*conditions).values(state=CLAIM_TABLE.target(action), ended_at=now)
    )
    if not returning:
        session.execute(statement)
        return []
    rows = session.execute(statement.returning(Claim.project_id, Claim.task_id))
    return [(project_id, task_id) for project_id, task_id in rows]
