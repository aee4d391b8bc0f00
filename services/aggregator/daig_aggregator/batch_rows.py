"""The rows a batch of results reads and writes, loaded and written set-wise.

A batch locks its tasks and claims with one statement each and keeps them as plain rows it
updates in memory while deciding; what changed is then written with one statement per kind
of change (tasks done, claims finished, results inserted), not one per row.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from daig import states
from daig.db.models import Claim, Result, ResultStatus, Round, Task
from daig.states import ClaimAction

RESULTS = cast(Table, Result.__table__)
_NORMS = text(
    "SELECT delta_norm FROM results WHERE project_id = :project AND round_index = :round"
    " AND status = 'accepted' AND delta_norm IS NOT NULL"
)


@dataclass
class TaskRow:
    id: uuid.UUID
    project_id: uuid.UUID
    round_index: int
    shard: int
    state: str
    failures: int
    replica_of: uuid.UUID | None = None
    replicas: int = 0

    @property
    def first(self) -> uuid.UUID:
        """The shard's first task: what its replicas point at."""
        return self.replica_of or self.id

    @property
    def replicated(self) -> bool:
        return self.replica_of is not None or self.replicas > 0


@dataclass
class ClaimRow:
    id: uuid.UUID
    task_id: uuid.UUID
    provider_id: int
    state: str


def lock_tasks(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, TaskRow]:
    rows = session.execute(
        select(
            Task.id,
            Task.project_id,
            Task.round_index,
            Task.shard,
            Task.state,
            Task.failures,
            Task.replica_of,
            Task.replicas,
        )
        .where(Task.id.in_(sorted(ids)))
        .order_by(Task.id)
        .with_for_update()
    )
    return {row.id: TaskRow(*row) for row in rows}


def lock_claims(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, ClaimRow]:
    rows = session.execute(
        select(Claim.id, Claim.task_id, Claim.provider_id, Claim.state)
        .where(Claim.id.in_(sorted(ids)))
        .order_by(Claim.id)
        .with_for_update()
    )
    return {row.id: ClaimRow(*row) for row in rows}


def accepted_counts(
    session: Session, rounds: list[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], int]:
    """Accepted results so far of each (project, round), from the rounds' own counters."""
    if not rounds:
        return {}
    rows = session.execute(
        select(Round.project_id, Round.index, Round.accepted).where(
            tuple_(Round.project_id, Round.index).in_(rounds)
        )
    )
    return {(project, index): int(count) for project, index, count in rows}


def accepted_norms(session: Session, project_id: uuid.UUID, round_index: int) -> list[float]:
    rows = session.execute(_NORMS, {"project": project_id, "round": round_index})
    return [float(norm) for (norm,) in rows]


@dataclass
class Writes:
    """What a batch changed, written at once by ``flush``."""

    results: list[dict[str, Any]] = field(default_factory=list)
    done: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # task -> winning claim
    verifying: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # task -> its claim
    accepted: dict[tuple[uuid.UUID, int], int] = field(default_factory=lambda: defaultdict(int))

    def flush(self, session: Session) -> None:
        """Write what was decided so far (before a round close reads it back, and at the end)."""
        now = datetime.now(UTC)
        if self.results:
            session.execute(insert(RESULTS), self.results)  # Core: no ORM bulk path
            self.results = []
        if self.done:
            # A straggler's or a lapsed lease's other claims lost: their slots free right away.
            states.accept(session, self.done, now=now)
            self.done = {}
        if self.verifying:
            states.verify(session, self.verifying, now=now)
            self.verifying = {}
        for (project_id, index), count in self.accepted.items():
            session.execute(
                update(Round)
                .where(Round.project_id == project_id, Round.index == index)
                .values(accepted=Round.accepted + count)
            )
        self.accepted = defaultdict(int)


def held_shards(
    session: Session, provider_id: int, project_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """(project, the shard's first task, round) of each shard where a result of the provider
    waits for verification, in these projects."""
    if not project_ids:
        return []
    rows = session.execute(
        select(Task.project_id, func.coalesce(Task.replica_of, Task.id), Task.round_index)
        .join(Result, Result.task_id == Task.id)
        .where(
            Result.provider_id == provider_id,
            Result.status == ResultStatus.HELD,
            Task.project_id.in_(project_ids),
        )
        .distinct()
    )
    return [(project, first, int(index)) for project, first, index in rows]


def give_back(session: Session, task: TaskRow, claim: ClaimRow, *, failed: bool) -> None:
    """After a failed try: the claim released, the task pending again -- unless another
    provider still holds a live claim on it -- with one more failure if it counts."""
    claim.state = states.CLAIM_TABLE.move(ClaimAction.FAIL, claim.state)
    now = datetime.now(UTC)
    task.state = (
        states.give_back(session, claim_id=claim.id, task_id=task.id, now=now) or task.state
    )
    if failed:
        task.failures += 1
        session.execute(update(Task).where(Task.id == task.id).values(failures=task.failures))
