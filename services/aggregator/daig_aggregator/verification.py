"""Verifying replicated tasks: compare their results, settle the shard, keep the trust records.

A replicated task's results are recorded ``held`` (paid on arrival, like any result) and wait
until at least two are in. Then ``daig.trust.decide`` takes the majority of the mutually
agreeing ones (``daig.agreement``, within the project's ``verify_tolerance``): its first
result is counted in the round (``accepted``), the rest of it ``agreed``; a result outside
it is ``disagreed``: its provider is quarantined and its payment reversed. With no majority
yet, one more replica is made. Held results of a quarantined provider are dropped
(``rejected``, reversed), each replaced by a new replica.

Runs inside the recording transaction, under the batch's locks: the held deltas it compares
were stored before (uploaded, or written by ``prepare`` when they came inline); only those of
earlier batches are read back from the blob store.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from daig import metrics, states, trust
from daig.agreement import agree
from daig.blobstore import BlobStore
from daig.db.models import (
    Project,
    ProviderTrust,
    RejectReason,
    Result,
    ResultStatus,
    Task,
    User,
)
from daig.dispatch import add_replica
from daig.weights.schema import NDArrays, WeightSchema
from daig.weights.stream import decode_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counted:
    """The result a settled shard counts in its round."""

    result_id: uuid.UUID
    samples: int
    norm: float
    delta: NDArrays


@dataclass
class Settlement:
    counted: Counted | None = None
    reversed_tasks: list[uuid.UUID] = field(default_factory=list)  # payments to take back
    replica_made: bool = False  # a new pending replica (the window needs topping up)
    quarantined: list[int] = field(default_factory=list)  # providers quarantined just now


@dataclass(frozen=True)
class _Held:
    result_id: uuid.UUID
    task_id: uuid.UUID
    provider_id: int
    group: int
    blob_key: str | None
    samples: int
    norm: float


def quarantined_among(session: Session, provider_ids: set[int]) -> set[int]:
    if not provider_ids:
        return set()
    return set(
        session.scalars(
            select(ProviderTrust.provider_id).where(
                ProviderTrust.provider_id.in_(provider_ids),
                ProviderTrust.quarantined_at.is_not(None),
            )
        )
    )


class Verifier:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def settle(
        self,
        session: Session,
        project: Project,
        schema: WeightSchema,
        first_task: uuid.UUID,
        fresh: dict[uuid.UUID, NDArrays],
        quarantined: set[int],
    ) -> Settlement:
        """Decide the shard of ``first_task`` if its held results can (``fresh``: deltas of
        this batch by result id; ``quarantined``: providers known quarantined, kept up to
        date)."""
        settlement = Settlement()
        held = self._held(session, first_task)
        # Quarantined since they sent these (by another batch): dropped, not outvoted again.
        quarantined |= quarantined_among(session, {h.provider_id for h in held} - quarantined)
        dropped = [h for h in held if h.provider_id in quarantined]
        if dropped:
            self._drop(session, project, first_task, dropped, settlement)
            held = [h for h in held if h.provider_id not in quarantined]
        deltas: dict[uuid.UUID, NDArrays] = {}

        def delta(result_id: uuid.UUID) -> NDArrays:
            if result_id not in deltas:
                found = fresh.get(result_id)
                if found is None:
                    blob_key = next(h.blob_key for h in held if h.result_id == result_id)
                    assert blob_key is not None, "a held result's delta is stored"
                    found = decode_weights(self._blobs.get_bytes(blob_key), schema)
                deltas[result_id] = found
            return deltas[result_id]

        def agreeing(a: uuid.UUID, b: uuid.UUID) -> bool:
            return agree(delta(a), delta(b), project.verify_tolerance)

        candidates = [trust.Candidate(h.result_id, h.provider_id, h.group) for h in held]
        decision = trust.decide(candidates, agreeing)
        if decision.outcome is trust.Outcome.WAIT:
            return settlement
        if decision.outcome is trust.Outcome.MORE:
            add_replica(session, first_task, project.task_size)
            metrics.REPLICAS_MADE.labels("disagreement").inc()
            settlement.replica_made = True
            log.info(
                "project %s task %s: results disagree; one more replica", project.id, first_task
            )
            return settlement
        assert decision.accepted is not None
        by_id = {h.result_id: h for h in held}
        self._set_status(session, [decision.accepted], ResultStatus.ACCEPTED)
        self._set_status(session, list(decision.agreed), ResultStatus.AGREED)
        if decision.verified:
            self._set_status(session, list(decision.outvoted), ResultStatus.DISAGREED)
        elif decision.outvoted:
            session.execute(
                update(Result)
                .where(Result.id.in_(list(decision.outvoted)))
                .values(status=ResultStatus.REJECTED, reason=RejectReason.UNVERIFIED)
            )
        if decision.verified:
            winners = [by_id[r].provider_id for r in (decision.accepted, *decision.agreed)]
            _record(session, winners, valid=True)
            for result_id in decision.outvoted:
                loser = by_id[result_id]
                self._quarantine(session, project, loser, quarantined, settlement)
                settlement.reversed_tasks.append(loser.task_id)
        states.settle(session, first_task, now=datetime.now(UTC))
        _count_outcome(decision)
        counted = by_id[decision.accepted]
        settlement.counted = Counted(
            counted.result_id, counted.samples, counted.norm, delta(counted.result_id)
        )
        log.info(
            "project %s task %s: settled (%s, %s agreed, %s outvoted)",
            project.id,
            first_task,
            "verified" if decision.verified else "unverified",
            len(decision.agreed),
            len(decision.outvoted),
        )
        return settlement

    def _held(self, session: Session, first_task: uuid.UUID) -> list[_Held]:
        rows = session.execute(
            select(
                Result.id,
                Result.task_id,
                Result.provider_id,
                func.coalesce(User.trust_group, User.id),
                Result.blob_key,
                Result.samples,
                Result.delta_norm,
            )
            .join(Task, Task.id == Result.task_id)
            .join(User, User.id == Result.provider_id)
            .where(
                (Task.id == first_task) | (Task.replica_of == first_task),
                Result.status == ResultStatus.HELD,
            )
            .order_by(Result.received_at, Result.id)
        )
        return [
            _Held(rid, task, int(provider or 0), int(group), key, int(samples), float(norm or 0.0))
            for rid, task, provider, group, key, samples, norm in rows
        ]

    def _drop(
        self,
        session: Session,
        project: Project,
        first_task: uuid.UUID,
        dropped: list[_Held],
        settlement: Settlement,
    ) -> None:
        """A quarantined provider's unverified results: rejected and reversed, each replaced
        by a new replica (a new task, so its provider is paid: payments are keyed by task)."""
        ids = [h.result_id for h in dropped]
        session.execute(
            update(Result)
            .where(Result.id.in_(ids))
            .values(status=ResultStatus.REJECTED, reason=RejectReason.QUARANTINED)
        )
        settlement.reversed_tasks += [h.task_id for h in dropped]
        for _ in dropped:
            add_replica(session, first_task, project.task_size)
            metrics.REPLICAS_MADE.labels("replacement").inc()
        settlement.replica_made = True

    def _set_status(self, session: Session, ids: list[uuid.UUID], status: ResultStatus) -> None:
        if ids:
            session.execute(update(Result).where(Result.id.in_(ids)).values(status=status))

    def _quarantine(
        self,
        session: Session,
        project: Project,
        loser: _Held,
        quarantined: set[int],
        settlement: Settlement,
    ) -> None:
        _record(session, [loser.provider_id], valid=False)
        session.execute(
            update(ProviderTrust)
            .where(
                ProviderTrust.provider_id == loser.provider_id,
                ProviderTrust.quarantined_at.is_(None),
            )
            .values(
                quarantined_at=datetime.now(UTC),
                quarantine_reason=(
                    "its result was outvoted by other volunteers' results for the same task"
                ),
                quarantine_project=project.id,
                quarantine_task=loser.task_id,
                lifted_at=None,
                lifted_note=None,
            )
        )
        if loser.provider_id not in quarantined:
            quarantined.add(loser.provider_id)
            settlement.quarantined.append(loser.provider_id)
            metrics.QUARANTINES.inc()
            log.warning(
                "provider %s quarantined: result %s of project %s outvoted",
                loser.provider_id,
                loser.result_id,
                project.id,
            )


def _record(session: Session, provider_ids: list[int], *, valid: bool) -> None:
    """One more verified-valid (or -invalid) result for each provider."""
    column = "verified_valid" if valid else "verified_invalid"
    for provider_id in sorted(provider_ids):
        statement = insert(ProviderTrust).values(provider_id=provider_id, **{column: 1})
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[ProviderTrust.provider_id],
                set_={column: getattr(ProviderTrust, column) + 1},
            )
        )


def _count_outcome(decision: trust.Decision) -> None:
    if decision.outcome is trust.Outcome.INCONCLUSIVE:
        outcome = "inconclusive"
    elif not decision.verified:
        outcome = "unverified"
    elif decision.outvoted:
        outcome = "majority"
    else:
        outcome = "agreed"
    metrics.VALIDATIONS.labels(outcome).inc()
