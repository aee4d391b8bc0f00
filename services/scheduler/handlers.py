"""Reconciling each active project's tasks with what should be in flight, and publishing them.

Postgres holds the truth; every tick (and every event) the scheduler compares it with the
plan and acts: create the current round's tasks, expire lapsed claims, re-issue stragglers,
publish pending tasks up to the cap, and mark finished projects done. Running it twice, or
after a crash, does no harm: a duplicate task message is refused at claim time.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from daig import metrics
from daig.broker import Delivery, Outcome
from daig.broker import Session as BrokerSession
from daig.db.models import Claim, ClaimState, Project, ProjectState, Round, Task, TaskState
from daig.logs import log_context
from daig.messages import ProjectEvent, TrainTask, decode
from daig.planning import round_shards
from daig.settings import Settings
from daig.topology import TASKS
from services.scheduler import logic

log = logging.getLogger(__name__)
ACTIVE_STATES = (ProjectState.QUEUED, ProjectState.RUNNING)


def now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    def on_event(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        event = decode(ProjectEvent, delivery.body, delivery.message_type)
        with log_context(project=event.project_id, round=event.round):
            log.info("project %s round %s: event %s", event.project_id, event.round, event.kind)
        self.reconcile(event.project_id, broker)
        return Outcome.ACK

    def tick(self, broker: BrokerSession) -> None:
        with self._sessions() as session:
            ids = list(session.scalars(select(Project.id).where(Project.state.in_(ACTIVE_STATES))))
        for project_id in ids:
            self.reconcile(project_id, broker)

    def reconcile(self, project_id: uuid.UUID, broker: BrokerSession) -> None:
        with log_context(project=project_id):
            self._reconcile(project_id, broker)

    def _reconcile(self, project_id: uuid.UUID, broker: BrokerSession) -> None:
        # Two transactions: task rows must be committed before any message naming them is
        # published, or a fast provider would claim a task that does not exist yet.
        with self._sessions.begin() as session:
            project = self._lock(session, project_id)
            if project is None:
                return
            assert project.total_rounds is not None
            if project.current_round >= project.total_rounds:
                self._finish(project)
                return
            if project.state == ProjectState.QUEUED:
                project.state = ProjectState.RUNNING
                log.info("project %s: running, %s rounds", project.id, project.total_rounds)
            self._open_round(session, project)
            self._expire_leases(session, project)
            self._reissue_stragglers(session, project)
        with self._sessions.begin() as session:
            # Claims lock the project row too, so none can interleave with publishing.
            project = self._lock(session, project_id)
            if project is not None and project.state == ProjectState.RUNNING:
                self._dispatch(session, project, broker)

    def _lock(self, session: Session, project_id: uuid.UUID) -> Project | None:
        """The active project, locked; None if inactive or another scheduler holds it now."""
        return session.scalar(
            select(Project)
            .where(Project.id == project_id, Project.state.in_(ACTIVE_STATES))
            .with_for_update(skip_locked=True)
        )

    def _finish(self, project: Project) -> None:
        if project.final_model_key is None:
            return  # the aggregator is still writing the final model
        project.state = ProjectState.DONE
        project.finished_at = now()
        log.info("project %s: done after %s rounds", project.id, project.total_rounds)

    def _open_round(self, session: Session, project: Project) -> None:
        index = project.current_round
        opened = session.scalar(
            insert(Round)
            .values(project_id=project.id, index=index)
            .on_conflict_do_nothing()
            .returning(Round.index)
        )
        if opened is None:
            # The round exists, so do its tasks (both are inserted in one transaction). Not
            # re-inserting K task rows on every event and tick matters: it held the project
            # row lock (which claims and results wait for) for tens of ms per reconcile.
            return
        shards = round_shards(index, project.total_tasks, project.task_size)
        session.execute(
            insert(Task)
            .values(
                [
                    {
                        "id": uuid.uuid4(),
                        "project_id": project.id,
                        "round_index": index,
                        "slot": slot,
                        "shard": shard,
                        "state": TaskState.PENDING,
                        "dispatches": 0,
                        "failures": 0,
                    }
                    for slot, shard in enumerate(shards)
                ]
            )
            .on_conflict_do_nothing(index_elements=["project_id", "round_index", "slot"])
        )

    def _expire_leases(self, session: Session, project: Project) -> None:
        expired = list(
            session.scalars(
                update(Claim)
                .where(
                    Claim.project_id == project.id,
                    Claim.state == ClaimState.ACTIVE,
                    Claim.lease_expires_at <= now(),
                )
                .values(state=ClaimState.EXPIRED, ended_at=now())
                .returning(Claim.task_id)
            )
        )
        for task_id in set(expired):
            metrics.TASKS_REISSUED.labels("lease_expired").inc()
            log.info("project %s task %s: lease expired, giving it out again", project.id, task_id)
            still_held = (
                select(Claim.id)
                .where(Claim.task_id == task_id, Claim.state == ClaimState.ACTIVE)
                .exists()
            )
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.state == TaskState.CLAIMED, ~still_held)
                .values(state=TaskState.PENDING)
            )

    def _reissue_stragglers(self, session: Session, project: Project) -> None:
        index = project.current_round
        first = session.scalar(
            select(func.min(func.extract("epoch", Claim.ended_at - Claim.claimed_at)))
            .join(Task, Task.id == Claim.task_id)
            .where(
                Task.project_id == project.id,
                Task.round_index == index,
                Claim.state == ClaimState.FINISHED,
            )
        )
        deadline = logic.straggler_deadline(
            None if first is None else float(first), self._settings.straggler_floor_seconds
        )
        if deadline is None:
            return
        running = session.execute(
            select(Task.id, func.max(Claim.claimed_at))
            .join(Claim, Claim.task_id == Task.id)
            .where(
                Task.project_id == project.id,
                Task.round_index == index,
                Task.state == TaskState.CLAIMED,
                Claim.state == ClaimState.ACTIVE,
            )
            .group_by(Task.id)
        ).tuples()
        for task_id, youngest in running:
            if logic.is_straggler((now() - youngest).total_seconds(), deadline):
                metrics.TASKS_REISSUED.labels("straggler").inc()
                log.info(
                    "project %s round %s task %s: straggler (> %.1f s), giving it out again",
                    project.id,
                    index,
                    task_id,
                    deadline,
                )
                session.execute(
                    update(Task).where(Task.id == task_id).values(state=TaskState.PENDING)
                )

    def _in_flight(self, session: Session, project: Project) -> int:
        live = (
            select(Claim.id)
            .where(
                Claim.task_id == Task.id,
                Claim.state == ClaimState.ACTIVE,
                Claim.lease_expires_at > now(),
            )
            .exists()
        )
        return int(
            session.scalar(
                select(func.count())
                .select_from(Task)
                .where(
                    Task.project_id == project.id,
                    Task.round_index == project.current_round,
                    Task.state != TaskState.DONE,
                    or_(Task.state == TaskState.QUEUED, live),
                )
            )
            or 0
        )

    def _dispatch(self, session: Session, project: Project, broker: BrokerSession) -> None:
        budget = logic.dispatch_budget(project.max_contributors, self._in_flight(session, project))
        live = (
            select(Claim.id)
            .where(
                Claim.task_id == Task.id,
                Claim.state == ClaimState.ACTIVE,
                Claim.lease_expires_at > now(),
            )
            .exists()
        )
        pending = session.scalars(
            select(Task)
            .where(
                Task.project_id == project.id,
                Task.round_index == project.current_round,
                Task.state == TaskState.PENDING,
            )
            # a straggler's re-issue is already in flight: it does not use up the budget
            .order_by(live.desc(), Task.slot)
        ).all()
        for task in pending:
            reissue = bool(session.scalar(select(live.where(Claim.task_id == task.id))))
            if not reissue:
                if budget <= 0:
                    break
                budget -= 1
            message = TrainTask(
                project_id=project.id,
                round=task.round_index,
                task_id=task.id,
                shard=task.shard,
                attempt=task.dispatches + 1,
            )
            broker.publish(TASKS, message)
            metrics.TASKS_PUBLISHED.inc()
            task.state = TaskState.QUEUED
            task.dispatches += 1
            task.dispatched_at = now()
            with log_context(round=task.round_index, task=task.id):
                log.info(
                    "project %s round %s task %s: published (shard %s, attempt %s)",
                    project.id,
                    task.round_index,
                    task.id,
                    task.shard,
                    message.attempt,
                )
