"""The reconciler: starts projects, keeps their windows full, and repairs what went astray.

Postgres holds the truth. Rounds after the first are opened by the aggregator in the
transaction that closes the previous one, and windows are refilled by each claim, so the
scheduler is off the hot path. It acts on the API's events (start, pause, resume, cancel,
release) and every tick: it expires lapsed leases, gives stragglers' tasks out again,
publishes again the tasks whose message nobody claimed in time (a purged queue, a consumer
that swallows messages), tops up windows, marks finished projects done, publishes
whatever is left in the outbox, and deletes the deltas of projects that ended longer ago
than the retention (``retention.py``). Running it twice, or after a crash, does no harm.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from daig import metrics, states
from daig.broker import BrokerSession, Delivery, Outcome
from daig.contract.messages import ProjectEvent, decode
from daig.db.models import Claim, ClaimState, Project, Task
from daig.dispatch import (
    DispatchPolicy,
    RoundPlan,
    open_round,
    open_waiting_replicas,
    republish_unclaimed,
    top_up,
    window_sizes,
)
from daig.logs import log_context
from daig.outbox import OutboxRelay
from daig.settings import Settings
from daig.states import (
    HOLDING,
    PROJECT_TABLE,
    TAKES_WORK,
    TASK_TABLE,
    ProjectAction,
    TaskAction,
)
from daig.states.sql import literal, live_claim_sql, state_in
from daig.topology import TASKS
from daig_scheduler import logic
from daig_scheduler.retention import Retention

log = logging.getLogger(__name__)

# Projects that may need the reconciler now: to run, to finish, or with pending tasks in
# their current round (a release, an expiry, a straggler, a resume).
_NEEDING_ATTENTION = text(
    f"SELECT id FROM projects WHERE {state_in(PROJECT_TABLE.sources(ProjectAction.RUN))}"
    f" OR ({state_in(PROJECT_TABLE.sources(ProjectAction.FINISH))}"
    " AND current_round >= total_rounds)"
    " UNION SELECT DISTINCT t.project_id FROM tasks t"
    " JOIN projects p ON p.id = t.project_id AND t.round_index = p.current_round"
    f" WHERE {state_in(TAKES_WORK, 'p.state')}"
    f" AND {state_in(TASK_TABLE.sources(TaskAction.QUEUE), 't.state')}"
)
_BUSY_PROVIDERS = text(f"SELECT count(*) FROM claims WHERE {live_claim_sql()}")
_RUNNING_SHARES = text(f"SELECT id, share FROM projects WHERE {state_in(TAKES_WORK)}")
_SET_WINDOWS = text(
    "UPDATE projects p SET dispatch_window = w.size"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:windows AS integer[])) AS w(id, size)"
    " WHERE p.id = w.id AND p.dispatch_window IS DISTINCT FROM w.size"
)
# Running projects with a task claimed for longer than the straggler floor.
_LONG_CLAIMED = text(
    "SELECT DISTINCT c.project_id FROM claims c JOIN projects p ON p.id = c.project_id"
    f" WHERE c.state = {literal(HOLDING)} AND {state_in(TAKES_WORK, 'p.state')}"
    " AND c.claimed_at < :since"
)


def now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        retention: Retention | None = None,
    ) -> None:
        self._sessions = sessions
        self._retention = retention
        self._settings = settings
        self._policy = DispatchPolicy.from_settings(settings)
        self._relay = OutboxRelay(sessions)
        self._queue_channel: BlockingChannel | None = None

    def on_event(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        event = decode(ProjectEvent, delivery.body, delivery.message_type)
        with log_context(project=event.project_id, round=event.round):
            log.info("project %s round %s: event %s", event.project_id, event.round + 1, event.kind)
        self.reconcile(event.project_id, broker)
        return Outcome.ACK

    def tick(self, broker: BrokerSession) -> None:
        """The periodic repair pass over every project."""
        self._size_windows(broker)
        self._expire_leases()
        self._reissue_stragglers()
        with self._sessions.begin() as session:
            opened = open_waiting_replicas(session, self._settings.replica_wait_seconds)
            republished = republish_unclaimed(session, policy=self._policy)
        if opened:
            log.info("%s replica(s) no other volunteer took in time: open to anyone", opened)
        if republished:
            metrics.TASKS_REISSUED.labels("unclaimed").inc(republished)
            log.info("%s task(s) nobody claimed in time: published again", republished)
        with self._sessions() as session:
            ids = list(session.scalars(_NEEDING_ATTENTION))
        for project_id in ids:
            with log_context(project=project_id):
                self._reconcile(project_id)
        self.publish_outbox(broker)
        if self._retention is not None:
            self._retention.maybe_sweep(now())

    def reconcile(self, project_id: uuid.UUID, broker: BrokerSession) -> None:
        """Everything the tick does, for one project (on its events)."""
        with log_context(project=project_id):
            self._expire_leases(project_id)
            self._reissue_stragglers(project_id)
            self._reconcile(project_id)
        self.publish_outbox(broker)

    def publish_outbox(self, broker: BrokerSession) -> None:
        self._relay.drain(broker.confirming())

    def _reconcile(self, project_id: uuid.UUID) -> None:
        with self._sessions.begin() as session:
            project = self._lock(session, project_id)
            if project is None:
                return
            assert project.total_rounds is not None
            if project.current_round >= project.total_rounds:
                self._finish(project)
                return
            if states.PROJECT_TABLE.may(ProjectAction.RUN, project.state):
                states.enter(project, ProjectAction.RUN, now=now())
                log.info("project %s: running, %s rounds", project.id, project.total_rounds)
            plan = RoundPlan.of(project)
            window = self._policy.window_for(project.share, project.dispatch_window)
            # The aggregator opens every round after the first; this repairs a missing one.
            if not open_round(session, plan, project.current_round, window, self._policy):
                top_up(session, plan, project.current_round, window, self._policy)

    def _size_windows(self, broker: BrokerSession) -> None:
        """Size every running project's dispatch window from its share and the volunteers
        waiting for work (consumers of the tasks queue not holding a task)."""
        consumers = self._tasks_consumers(broker)
        with self._sessions.begin() as session:
            busy = int(session.scalar(_BUSY_PROVIDERS) or 0)
            shares: dict[uuid.UUID, float] = dict(session.execute(_RUNNING_SHARES).tuples().all())
            sizes = window_sizes(self._policy.window, shares, consumers - busy)
            if sizes:
                session.execute(
                    _SET_WINDOWS,
                    {"ids": list(sizes), "windows": list(sizes.values())},
                )

    def _tasks_consumers(self, broker: BrokerSession) -> int:
        if self._queue_channel is None or not self._queue_channel.is_open:
            self._queue_channel = broker.connection.channel()
        frame = self._queue_channel.queue_declare(TASKS.queue, passive=True)
        return int(frame.method.consumer_count)

    def _lock(self, session: Session, project_id: uuid.UUID) -> Project | None:
        """The active project, locked; None if inactive or someone else holds it now."""
        return session.scalar(
            select(Project)
            .where(Project.id == project_id, Project.state.in_(states.TRAINING))
            .with_for_update(skip_locked=True, key_share=True)
        )

    def _finish(self, project: Project) -> None:
        if project.final_model_key is None:
            return  # the aggregator is still writing the final model
        if not states.PROJECT_TABLE.may(ProjectAction.FINISH, project.state):
            return  # not taken up yet
        states.enter(project, ProjectAction.FINISH, now=now())
        log.info("project %s: done after %s rounds", project.id, project.total_rounds)

    def _expire_leases(self, project_id: uuid.UUID | None = None) -> None:
        """Claims whose lease lapsed end; their tasks go back to pending unless a live claim
        still holds them (of one project, or of all)."""
        with self._sessions.begin() as session:
            expired = states.expire_lapsed(session, now=now(), project_id=project_id)
        for project_id, task_id in expired:
            metrics.TASKS_REISSUED.labels("lease_expired").inc()
            log.info("project %s task %s: lease expired, giving it out again", project_id, task_id)

    def _reissue_stragglers(self, only: uuid.UUID | None = None) -> None:
        """Give out again tasks running past the round's straggler deadline (of one project,
        or of all)."""
        floor = self._settings.straggler_floor_seconds
        since = datetime.fromtimestamp(now().timestamp() - floor, UTC)
        with self._sessions() as session:
            candidates = list(session.scalars(_LONG_CLAIMED, {"since": since}))
        for project_id in candidates:
            if only is not None and project_id != only:
                continue
            with self._sessions.begin() as session:
                project = self._lock(session, project_id)
                if project is not None and project.state in states.TAKES_WORK:
                    self._stragglers_of(session, project)

    def _stragglers_of(self, session: Session, project: Project) -> None:
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
                Task.state.in_(states.TASK_TABLE.sources(TaskAction.REISSUE)),
                Claim.state == states.HOLDING,
            )
            .group_by(Task.id)
        ).tuples()
        for task_id, youngest in running:
            if logic.is_straggler((now() - youngest).total_seconds(), deadline):
                metrics.TASKS_REISSUED.labels("straggler").inc()
                log.info(
                    "project %s round %s task %s: straggler (> %.1f s), giving it out again",
                    project.id,
                    index + 1,
                    task_id,
                    deadline,
                )
                # Pending with its live lease: queued first, and it fits under the cap.
                states.reissue(session, task_id)
