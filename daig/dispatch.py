"""Dispatching tasks: opening rounds and publishing tasks within each project's window.

Shared by the three services, which all move tasks: the scheduler opens round 0 and tops up
windows, the aggregator opens round r+1 in the transaction that closes round r, and the API
refills a project's window in the transaction of each claim. Task messages go out through
the outbox, so a task is ``queued`` exactly when its message is committed to be published.

The window: a project has at most ``dispatch_window x share`` tasks published and unclaimed
at once. Every claim of a queued task queues the project's next pending task, so each project
keeps its window's worth of messages in the shared queue, and volunteers taking messages in
order share themselves between projects in proportion to their windows -- a big project
cannot bury a small one's tasks under thousands of its own, and a project with few tasks left
has them near the head of the queue.

A published message lives ``republish_seconds`` in the queue (a per-message TTL); a task still
unclaimed after that is published again, so a purged queue or a consumer that swallows
messages delays a project by seconds instead of stalling it.

A task's ``lease_expires_at`` is the latest lease of its claims: a task with a live lease is
in flight (claimed, or a straggler given out again while its first claim still runs).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from daig.contract.messages import TrainTask
from daig.db import raw
from daig.db.models import Project, Round, TaskState
from daig.outbox import Staged, stage
from daig.planning import round_shards
from daig.settings import Settings
from daig.states.sql import HELD, UNHELD, literal, state_in
from daig.states.table import TAKES_WORK, TASK_TABLE, TaskAction
from daig.topology import TASKS


@dataclass(frozen=True)
class DispatchPolicy:
    window: int
    republish_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchPolicy:
        return cls(settings.dispatch_window, settings.republish_seconds)

    def window_for(self, share: float, sized: int | None = None) -> int:
        """Published, unclaimed tasks a project may have at once: what the scheduler sized
        for it, else the base window times its share."""
        return sized if sized is not None else max(1, math.ceil(self.window * share))

    @property
    def expiration_ms(self) -> int:
        return max(1, round(self.republish_seconds * 1000))


class Pending(Enum):
    """Which pending tasks to queue: any, only re-issued stragglers, or only fresh ones."""

    ANY = ""
    REISSUES = f" AND {HELD}"
    FRESH = f" AND {UNHELD}"


# The task states of the statements below, from the transition table.
_PENDING = state_in(TASK_TABLE.sources(TaskAction.QUEUE))
_QUEUED = literal(TASK_TABLE.target(TaskAction.QUEUE))
_UNFINISHED = state_in(TASK_TABLE.final, negate=True)


def _queue_sql(which: Pending) -> str:
    # Counting the round's queued tasks in the same statement keeps the window from drifting
    # when several transactions refill it at once.
    return (
        f"UPDATE tasks SET state = {_QUEUED}, dispatched_at = now(), dispatches = dispatches + 1"
        " WHERE id IN ("
        "  SELECT id FROM tasks WHERE project_id = :project AND round_index = :round"
        f"  AND {_PENDING}{which.value} ORDER BY slot"
        "  LIMIT GREATEST(0, LEAST(:limit, :window - ("
        "   SELECT count(*) FROM tasks WHERE project_id = :project AND round_index = :round"
        f"   AND state = {_QUEUED})))"
        "  FOR UPDATE SKIP LOCKED)"
        " RETURNING id, shard, dispatches"
    )


_QUEUE = {which: text(_queue_sql(which)) for which in Pending}

# A round's K tasks in one statement (thousands of them for a large K), in slot order.
_INSERT_TASKS = text(
    "INSERT INTO tasks (id, project_id, round_index, slot, shard, state, dispatches, failures)"
    " SELECT gen_random_uuid(), :project, :round, s.slot - 1, s.shard,"
    f" {literal(TASK_TABLE.initial)}, 0, 0"
    " FROM unnest(CAST(:shards AS integer[])) WITH ORDINALITY AS s(shard, slot)"
)

# One more replica of a task: same round and shard, its own slot past the round's K.
_ADD_REPLICA = text(
    "WITH first AS (UPDATE tasks SET replicas = replicas + 1 WHERE id = :first"
    " RETURNING id, project_id, round_index, slot, shard, replicas)"
    " INSERT INTO tasks (id, project_id, round_index, slot, shard, state, dispatches, failures,"
    " replica_of)"
    " SELECT gen_random_uuid(), project_id, round_index, slot + :task_size * replicas, shard,"
    f" {literal(TASK_TABLE.initial)}, 0, 0, id FROM first RETURNING id"
)

# Replicas nobody of another trust group took in time: open to anyone (they verify nothing).
_OPEN_WAITING_REPLICAS = text(
    "UPDATE tasks SET any_claimer = true WHERE replica_of IS NOT NULL AND NOT any_claimer"
    f" AND {state_in([TaskState.PENDING, TaskState.QUEUED])} AND created_at < :cutoff"
    " RETURNING id"
)

_IN_FLIGHT = text(
    f"SELECT count(*) FILTER (WHERE {HELD}),"
    f" count(*) FILTER (WHERE state = {_QUEUED} AND {UNHELD})"
    f" FROM tasks WHERE project_id = :project AND round_index = :round AND {_UNFINISHED}"
)

_REPUBLISH = text(
    "UPDATE tasks SET dispatched_at = now(), dispatches = dispatches + 1"
    " WHERE id IN ("
    "  SELECT t.id FROM tasks t JOIN projects p ON p.id = t.project_id"
    f"  WHERE {state_in(TASK_TABLE.sources(TaskAction.REPUBLISH), 't.state')}"
    f"  AND t.dispatched_at < :cutoff AND {state_in(TAKES_WORK, 'p.state')}"
    "  AND t.round_index = p.current_round"
    "  ORDER BY t.dispatched_at LIMIT :limit FOR UPDATE OF t SKIP LOCKED)"
    " RETURNING id, project_id, round_index, shard, dispatches"
)


def window_sizes(base: int, shares: dict[uuid.UUID, float], idle: int) -> dict[uuid.UUID, int]:
    """Each running project's window: the base window per unit of share, plus the volunteers
    waiting for work, split in proportion to the shares.

    With volunteers waiting, messages do not wait in the queue (each goes to a waiting
    volunteer at once), so larger windows only keep those volunteers busy; when every
    volunteer is busy, messages queue up and the windows -- the base -- keep the projects'
    places in the queue in proportion to their shares.
    """
    total_share = sum(shares.values())
    if total_share <= 0:
        return {}
    total = base * total_share + max(0, idle)
    return {
        project: max(1, math.ceil(total * share / total_share)) for project, share in shares.items()
    }


@dataclass(frozen=True)
class RoundPlan:
    """What dispatching a project's round needs to know (fixed once the project started)."""

    project_id: uuid.UUID
    total_tasks: int
    task_size: int
    max_contributors: int
    share: float

    @classmethod
    def of(cls, project: Project) -> RoundPlan:
        return cls(
            project.id,
            project.total_tasks,
            project.task_size,
            project.max_contributors,
            project.share,
        )

    @property
    def cap_binds(self) -> bool:
        return self.max_contributors < self.task_size


def open_round(
    session: Session, plan: RoundPlan, round_index: int, window: int, policy: DispatchPolicy
) -> bool:
    """Create round ``round_index`` with its K pending tasks and queue its first window.

    Idempotent: False (and nothing done) if the round exists already.
    """
    opened = session.scalar(
        insert(Round)
        .values(project_id=plan.project_id, index=round_index)
        .on_conflict_do_nothing()
        .returning(Round.index)
    )
    if opened is None:
        return False
    session.execute(
        _INSERT_TASKS,
        {
            "project": plan.project_id,
            "round": round_index,
            "shards": round_shards(round_index, plan.total_tasks, plan.task_size),
        },
    )
    top_up(session, plan, round_index, window, policy)
    return True


def top_up(
    session: raw.Target, plan: RoundPlan, round_index: int, window: int, policy: DispatchPolicy
) -> int:
    """Queue the round's pending tasks up to the project's window -- and when the contributor
    cap binds, up to the cap (re-issued stragglers are in flight already: they fit)."""
    if not plan.cap_binds:
        return queue_pending(session, plan.project_id, round_index, window, policy)
    queued = queue_pending(
        session, plan.project_id, round_index, window, policy, which=Pending.REISSUES
    )
    [(in_flight, fresh_queued)] = raw.rows(
        session, _IN_FLIGHT, {"project": plan.project_id, "round": round_index}
    )
    budget = plan.max_contributors - int(in_flight) - int(fresh_queued)
    return queued + queue_pending(
        session, plan.project_id, round_index, window, policy, limit=budget, which=Pending.FRESH
    )


def tasks_in_flight(session: raw.Target, project_id: uuid.UUID, round_index: int) -> int:
    """Unfinished tasks of the round with a live lease."""
    [(in_flight, _)] = raw.rows(session, _IN_FLIGHT, {"project": project_id, "round": round_index})
    return int(in_flight)


def queue_pending(
    session: raw.Target,
    project_id: uuid.UUID,
    round_index: int,
    window: int,
    policy: DispatchPolicy,
    *,
    limit: int | None = None,
    which: Pending = Pending.ANY,
) -> int:
    """Queue pending tasks of the round (slot order) until ``window`` of its tasks are queued,
    at most ``limit`` now; their messages go to the outbox. Tasks other transactions hold are
    skipped, never waited for."""
    limit = window if limit is None else min(limit, window)
    if limit <= 0:
        return 0
    rows = raw.rows(
        session,
        _QUEUE[which],
        {"project": project_id, "round": round_index, "limit": limit, "window": window},
    )
    staged = [(task, project_id, round_index, shard, n) for task, shard, n in rows]
    _stage_tasks(session, staged, policy)
    return len(rows)


def add_replica(session: raw.Target, first_task: uuid.UUID, task_size: int) -> uuid.UUID:
    """A new pending replica of ``first_task`` (queue it with ``queue_pending``)."""
    [(replica,)] = raw.rows(session, _ADD_REPLICA, {"first": first_task, "task_size": task_size})
    return uuid.UUID(str(replica))


def open_waiting_replicas(session: Session, wait_seconds: float) -> int:
    """Let anyone take replicas that waited ``wait_seconds`` for another trust group: a grid
    with one volunteer (or one group) keeps going, unverified."""
    cutoff = datetime.now(UTC) - timedelta(seconds=wait_seconds)
    return len(raw.rows(session, _OPEN_WAITING_REPLICAS, {"cutoff": cutoff}))


def republish_unclaimed(session: Session, *, policy: DispatchPolicy, limit: int = 2000) -> int:
    """Publish again the running projects' tasks whose message nobody claimed in time."""
    cutoff = datetime.now(UTC) - timedelta(seconds=policy.republish_seconds)
    rows = session.execute(_REPUBLISH, {"cutoff": cutoff, "limit": limit}).all()
    _stage_tasks(session, [tuple(row) for row in rows], policy)
    return len(rows)


def _stage_tasks(
    session: raw.Target,
    tasks: list[tuple[uuid.UUID, uuid.UUID, int, int, int]],
    policy: DispatchPolicy,
) -> None:
    stage(
        session,
        [
            Staged(
                TASKS,
                TrainTask(
                    project_id=project_id,
                    round=round_index,
                    task_id=task_id,
                    shard=shard,
                    attempt=attempt,
                ),
                expiration_ms=policy.expiration_ms,
            )
            for task_id, project_id, round_index, shard, attempt in tasks
        ],
    )
