"""Recording a batch of results in one short transaction: decide each, write all, close rounds.

Every result becomes exactly one ``results`` row keyed by its message id, in the same
transaction as its effects (task done, claim finished, the provider paid), so a redelivered
message is recognised and never counted twice; a second accepted result for a task is
impossible (unique index). Results are decided in the order they arrived, each seeing the
effects of those before it, exactly as if each had its own transaction. A round whose K-th
result is accepted closes in the same transaction, which also opens the next round and stages
its first task messages in the outbox: the next round starts when this commits.

Locks, in the order every service takes them: the batch's projects, then its claims, then its
tasks. Nothing slow happens under them: deltas were fetched and checked before.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daig import states
from daig.blobstore import BlobStore
from daig.contract.messages import TrainingStatus, TrainResult
from daig.credits import ledger
from daig.db.models import Project, RejectReason, Result, ResultStatus, TaskState
from daig.dispatch import DispatchPolicy, open_round, top_up
from daig.failures import sanitize_reason
from daig.logs import log_context
from daig.planning import shard_rows
from daig.settings import Settings
from daig.states import (
    CLAIM_TABLE,
    TAKES_WORK,
    TASK_TABLE,
    ClaimAction,
    ProjectAction,
    TaskAction,
)
from daig.weights.schema import NDArrays
from daig_aggregator import batch_rows, logic, rounds
from daig_aggregator.batch_rows import ClaimRow, TaskRow, Writes
from daig_aggregator.facts import of_project
from daig_aggregator.norms import NormCache, SortedNorms
from daig_aggregator.prepare import Prepared, Rejection
from daig_aggregator.streaming import RoundFolds, RoundKey
from daig_aggregator.verification import Verifier, quarantined_among

log = logging.getLogger(__name__)


@dataclass
class Verdict:
    status: ResultStatus
    reason: RejectReason | None = None
    round_closed: bool = False


@dataclass(frozen=True)
class Accepted:
    """An accepted delta, to fold into its round's running mean once the batch committed."""

    key: RoundKey
    result_id: uuid.UUID
    delta: NDArrays
    samples: int
    norm: float


@dataclass
class BatchOutcome:
    verdicts: list[Verdict | None]  # one per result of the batch; None: handled before
    accepted: list[Accepted] = field(default_factory=list)  # of rounds still open
    norms: list[tuple[RoundKey, float]] = field(default_factory=list)  # every accepted norm
    closed: list[RoundKey] = field(default_factory=list)


@dataclass
class _State:
    """The batch's rows, locked, and what deciding its results changed so far."""

    handled: set[uuid.UUID]
    projects: dict[uuid.UUID, Project]
    claims: dict[uuid.UUID, ClaimRow]
    tasks: dict[uuid.UUID, TaskRow]
    accepted: dict[RoundKey, int]  # accepted results per round, this batch's included
    norms: dict[RoundKey, list[float]]  # accepted norms of the current and previous rounds
    outcome: BatchOutcome
    # per project: the norms the gate compares with (its current and previous round), sorted
    gate: dict[uuid.UUID, SortedNorms] = field(default_factory=dict)
    writes: Writes = field(default_factory=Writes)
    fresh: dict[RoundKey, list[Accepted]] = field(default_factory=lambda: defaultdict(list))
    payments: list[ledger.Payment] = field(default_factory=list)
    finishers: set[uuid.UUID] = field(default_factory=set)  # projects with a task done
    gave_back: set[uuid.UUID] = field(default_factory=set)  # projects with a task given back
    quarantined: set[int] = field(default_factory=set)  # the batch's quarantined providers
    held: dict[uuid.UUID, NDArrays] = field(default_factory=dict)  # this batch's held deltas
    reversals: list[uuid.UUID] = field(default_factory=list)  # tasks whose payment goes back


class Recorder:
    def __init__(
        self,
        blobs: BlobStore,
        settings: Settings,
        folds: RoundFolds,
        policy: DispatchPolicy,
        recorded_by: str,
    ) -> None:
        self._blobs = blobs
        self._settings = settings
        self._folds = folds
        self._policy = policy
        self.recorded_by = recorded_by
        self.norms = NormCache()
        self._verifier = Verifier(blobs)

    def record(self, session: Session, batch: list[Prepared]) -> BatchOutcome:
        """Decide and write every result of ``batch`` in ``session`` (the caller commits)."""
        state = self._load(session, [p.message for p in batch])
        for prepared in batch:
            message = prepared.message
            with log_context(project=message.project_id, round=message.round, task=message.task_id):
                state.outcome.verdicts.append(self._decide(session, prepared, state))
        self._finish(session, state)
        return state.outcome

    # --- loading the batch's rows, locked ---------------------------------------------------
    def _load(self, session: Session, messages: list[TrainResult]) -> _State:
        project_ids = sorted({m.project_id for m in messages})
        # The projects first: whoever else records results of them waits here, and what was
        # already recorded is read after that (a fresh snapshot once the locks are ours).
        projects = {
            p.id: p
            for p in session.scalars(
                select(Project)
                .where(Project.id.in_(project_ids))
                .order_by(Project.id)
                .with_for_update(key_share=True)
            )
        }
        ids = [m.message_id for m in messages]
        handled = set(session.scalars(select(Result.message_id).where(Result.message_id.in_(ids))))
        recent = [
            (p.id, index)
            for p in projects.values()
            for index in (p.current_round - 1, p.current_round)
            if index >= 0
        ]
        accepted = batch_rows.accepted_counts(session, recent)
        return _State(
            handled=handled,
            projects=projects,
            claims=batch_rows.lock_claims(session, list({m.claim_id for m in messages})),
            tasks=batch_rows.lock_tasks(session, list({m.task_id for m in messages})),
            accepted=accepted,
            norms={key: self.norms.get(session, key, accepted.get(key, 0)) for key in recent},
            outcome=BatchOutcome(verdicts=[]),
            quarantined=quarantined_among(session, {m.provider_id for m in messages}),
        )

    # --- deciding one result ----------------------------------------------------------------
    def _decide(self, session: Session, prepared: Prepared, state: _State) -> Verdict | None:
        message = prepared.message
        if message.message_id in state.handled:
            log.info("result message %s already handled", message.message_id)
            return None
        state.handled.add(message.message_id)
        try:
            if prepared.early is not None:
                raise prepared.early
            project, task, claim = _check(state, message)
            if message.status == TrainingStatus.FAILED:
                return self._record_failure(session, state, project, task, claim, message)
            if prepared.late is not None:
                raise prepared.late
            if prepared.delta is None:
                raise Rejection(RejectReason.BAD_DELTA, "the delta could not be checked; resend")
            _check_norm(_gate(state, project), project, prepared.delta.norm)
        except Rejection as rejection:
            self._add_result(
                state, message, ResultStatus.REJECTED, rejection.reason, rejection.detail
            )
            log.info(
                "project %s round %s task %s: rejected (%s: %s)",
                message.project_id,
                message.round + 1,
                message.task_id,
                rejection.reason,
                rejection.detail,
            )
            return Verdict(ResultStatus.REJECTED, rejection.reason)
        if task.replicated:
            return self._hold(session, state, project, task, claim, prepared)
        return self._accept(session, state, project, task, claim, prepared)

    def _add_result(
        self,
        state: _State,
        message: TrainResult,
        status: ResultStatus,
        reason: RejectReason | None,
        detail: str | None = None,
        samples: int = 0,
        norm: float | None = None,
    ) -> uuid.UUID:
        result_id = uuid.uuid4()
        state.writes.results.append(
            {
                "id": result_id,
                "message_id": message.message_id,
                "project_id": message.project_id,
                "round_index": message.round,
                "task_id": message.task_id,
                "claim_id": message.claim_id,
                "provider_id": message.provider_id,
                "status": status,
                "reason": reason,
                "detail": detail,
                "blob_key": message.blob_key,
                "samples": samples,
                "fit_seconds": message.fit_seconds,
                "history": message.history,
                "timings": message.timings or None,
                "delta_norm": norm,
                "recorded_by": self.recorded_by,
                "received_at": datetime.now(UTC),
            }
        )
        return result_id

    def _record_failure(
        self,
        session: Session,
        state: _State,
        project: Project,
        task: TaskRow,
        claim: ClaimRow,
        message: TrainResult,
    ) -> Verdict:
        # Whatever the provider sent: a modified agent could send paths or a whole traceback.
        error = sanitize_reason(message.error or "unknown error")
        # A volunteer's own limits (memory) are not the model's fault: give the task to
        # someone else without counting it towards failing the project.
        reason = (
            RejectReason.RESOURCE_LIMIT if message.resource_limit else RejectReason.TRAINING_FAILED
        )
        self._add_result(state, message, ResultStatus.FAILED, reason, error)
        batch_rows.give_back(session, task, claim, failed=not message.resource_limit)
        state.gave_back.add(project.id)
        log.warning(
            "project %s round %s task %s: training failed (%s)",
            project.id,
            task.round_index + 1,
            task.id,
            error,
        )
        if task.failures >= self._settings.max_task_failures:
            states.enter(project, ProjectAction.FAIL, now=datetime.now(UTC))
            project.error = (
                f"training shard {task.shard} failed {task.failures} times; last error: {error}"
            )
            log.error("project %s: failed: %s", project.id, project.error)
        return Verdict(ResultStatus.FAILED, reason)

    def _paid_result(
        self,
        state: _State,
        project: Project,
        task: TaskRow,
        claim: ClaimRow,
        prepared: Prepared,
        status: ResultStatus,
    ) -> tuple[uuid.UUID, int, float]:
        """The result's row and its payment; (result id, samples, norm)."""
        assert project.total_rows is not None and prepared.delta is not None
        start, stop = shard_rows(task.shard, project.total_rows, project.total_tasks)
        norm = prepared.delta.norm
        # Weight by the server's own row count, not what the provider claims.
        samples = stop - start
        result_id = self._add_result(
            state, prepared.message, status, None, samples=samples, norm=norm
        )
        # Paid in this transaction: a result recorded once is paid once, restart or not.
        state.payments.append(
            ledger.Payment(
                project,
                task.id,
                task.round_index,
                task.shard,
                result_id,
                claim.provider_id,
                samples,
            )
        )
        claim.state = CLAIM_TABLE.move(ClaimAction.FINISH, claim.state)
        state.finishers.add(project.id)
        return result_id, samples, norm

    def _accept(
        self,
        session: Session,
        state: _State,
        project: Project,
        task: TaskRow,
        claim: ClaimRow,
        prepared: Prepared,
    ) -> Verdict:
        assert prepared.delta is not None
        result_id, samples, norm = self._paid_result(
            state, project, task, claim, prepared, ResultStatus.ACCEPTED
        )
        task.state = TASK_TABLE.move(TaskAction.ACCEPT, task.state)
        state.writes.done[task.id] = claim.id
        return self._count(
            session,
            state,
            project,
            task.id,
            Accepted(
                (project.id, task.round_index), result_id, prepared.delta.arrays, samples, norm
            ),
        )

    def _hold(
        self,
        session: Session,
        state: _State,
        project: Project,
        task: TaskRow,
        claim: ClaimRow,
        prepared: Prepared,
    ) -> Verdict:
        """A replicated task's result: held (and paid), then its shard settled if it can be."""
        assert prepared.delta is not None
        result_id, _, _ = self._paid_result(
            state, project, task, claim, prepared, ResultStatus.HELD
        )
        task.state = TASK_TABLE.move(TaskAction.VERIFY, task.state)
        state.writes.verifying[task.id] = claim.id
        state.held[result_id] = prepared.delta.arrays
        state.writes.flush(session)  # the settlement reads the shard's held results back
        closed = self._settle(session, state, project, task.first, task.round_index)
        if closed is None:
            log.info(
                "project %s round %s task %s: held for verification",
                project.id,
                task.round_index + 1,
                task.id,
            )
        return Verdict(ResultStatus.HELD, round_closed=bool(closed))

    def _settle(
        self, session: Session, state: _State, project: Project, first: uuid.UUID, index: int
    ) -> bool | None:
        """Settle the shard of task ``first`` if its held results can; whether that closed
        the round (None: not settled yet)."""
        facts = of_project(project)
        assert facts is not None
        settlement = self._verifier.settle(
            session, project, facts.schema, first, state.held, state.quarantined
        )
        state.reversals += settlement.reversed_tasks
        if settlement.replica_made:
            state.gave_back.add(project.id)
        closed: bool | None = None
        if settlement.counted is not None:
            for other in state.tasks.values():  # later results of this shard are duplicates
                if other.first == first and other.state not in TASK_TABLE.final:
                    other.state = TASK_TABLE.move(TaskAction.ACCEPT, other.state)
            counted = settlement.counted
            accepted = Accepted(
                (project.id, index), counted.result_id, counted.delta, counted.samples, counted.norm
            )
            closed = self._count(session, state, project, first, accepted).round_closed
        for provider_id in settlement.quarantined:
            self._drop_unverified(session, state, provider_id)
        return closed

    def _drop_unverified(self, session: Session, state: _State, provider_id: int) -> None:
        """A provider just quarantined: its results still waiting in this batch's projects'
        current rounds are dropped now (each shard settled again without them); those of
        other projects when their shards are next settled."""
        for project_id, first, index in batch_rows.held_shards(
            session, provider_id, list(state.projects)
        ):
            project = state.projects[project_id]
            if index == project.current_round and project.state in TAKES_WORK:
                self._settle(session, state, project, first, index)

    def _count(
        self,
        session: Session,
        state: _State,
        project: Project,
        task_id: uuid.UUID,
        accepted: Accepted,
    ) -> Verdict:
        """Count an accepted result in its round; close the round at its K-th."""
        key = accepted.key
        state.accepted[key] = state.accepted.get(key, 0) + 1
        state.writes.accepted[key] += 1
        state.norms.setdefault(key, []).append(accepted.norm)
        _gate(state, project).add(accepted.norm)
        state.outcome.norms.append((key, accepted.norm))
        state.fresh[key].append(accepted)
        log.info(
            "project %s round %s task %s: accepted (%s/%s)",
            project.id,
            key[1] + 1,
            task_id,
            state.accepted[key],
            project.task_size,
        )
        if state.accepted[key] < project.task_size:
            return Verdict(ResultStatus.ACCEPTED)
        self._close(session, state, project, key)
        return Verdict(ResultStatus.ACCEPTED, round_closed=True)

    def _close(self, session: Session, state: _State, project: Project, key: RoundKey) -> None:
        """Close the round with its K results, then open the next one (same transaction)."""
        state.writes.flush(session)  # the round's new results are read back by the close
        mean = None
        fresh = state.fresh.pop(key)
        if project.aggregation == "mean":
            ids = {a.result_id for a in fresh}
            others = (
                set(
                    session.scalars(
                        select(Result.id).where(
                            Result.project_id == project.id,
                            Result.round_index == key[1],
                            Result.status == ResultStatus.ACCEPTED,
                        )
                    )
                )
                - ids
            )
            mean = self._folds.mean_with_many(key, others, [(a.delta, a.samples) for a in fresh])
        rounds.close_round(session, self._blobs, project, mean=mean)
        state.gate.pop(project.id, None)  # compares with other rounds from now on
        state.outcome.closed.append(key)
        assert project.total_rounds is not None
        if project.current_round < project.total_rounds:
            facts = of_project(project)
            assert facts is not None
            window = self._policy.window_for(project.share, project.dispatch_window)
            open_round(session, facts.plan, project.current_round, window, self._policy)

    # --- after every result was decided -----------------------------------------------------
    def _finish(self, session: Session, state: _State) -> None:
        state.writes.flush(session)
        ledger.pay_for_results(session, state.payments)
        ledger.reverse_payments(session, state.reversals, "outvoted by its replicas")
        for project_id in state.finishers | state.gave_back:
            project = state.projects[project_id]
            facts = of_project(project)
            # A task given back, or a contributor slot freed: publish what may go out now.
            if facts is None or project.state not in TAKES_WORK:
                continue
            if project_id in state.gave_back or facts.plan.cap_binds:
                window = self._policy.window_for(project.share, project.dispatch_window)
                with log_context(project=project_id, round=project.current_round):
                    top_up(session, facts.plan, project.current_round, window, self._policy)
        for accepted in state.fresh.values():
            state.outcome.accepted.extend(accepted)


def _check(state: _State, message: TrainResult) -> tuple[Project, TaskRow, ClaimRow]:
    project = state.projects.get(message.project_id)
    if project is None:
        raise Rejection(RejectReason.UNKNOWN_PROJECT, "no such project")
    task = state.tasks.get(message.task_id)
    if task is None or task.project_id != project.id:
        raise Rejection(RejectReason.UNKNOWN_TASK, "no such task in this project")
    claim = state.claims.get(message.claim_id)
    if claim is None or claim.task_id != task.id:
        raise Rejection(RejectReason.UNKNOWN_CLAIM, "no such claim for this task")
    if claim.provider_id != message.provider_id:
        raise Rejection(RejectReason.WRONG_PROVIDER, "the claim belongs to another provider")
    if claim.provider_id in state.quarantined:
        raise Rejection(
            RejectReason.QUARANTINED,
            "the provider's account is quarantined: a result of it was outvoted by its replicas",
        )
    if project.state not in TAKES_WORK:
        raise Rejection(RejectReason.PROJECT_NOT_RUNNING, f"the project is {project.state}")
    if message.round != project.current_round or task.round_index != project.current_round:
        raise Rejection(
            RejectReason.STALE_ROUND,
            f"result for round {message.round}, project is at {project.current_round}",
        )
    if task.state in TASK_TABLE.final:
        raise Rejection(RejectReason.DUPLICATE, "the task already has an accepted result")
    if task.state == TaskState.VERIFYING:
        # Checked before the claim: earlier in this batch the held result's other claims (a
        # straggler's second copy) were superseded in the database, not in the rows loaded.
        raise Rejection(RejectReason.DUPLICATE, "another copy of this task already sent its result")
    if not CLAIM_TABLE.may(ClaimAction.FINISH, claim.state):
        raise Rejection(RejectReason.CLAIM_RELEASED, "the provider gave this task back")
    return project, task, claim


def _gate(state: _State, project: Project) -> SortedNorms:
    """The norms a new delta of ``project`` is compared with: its current and last round's."""
    gate = state.gate.get(project.id)
    if gate is None:
        rounds = (project.current_round - 1, project.current_round)
        gate = SortedNorms(n for index in rounds for n in state.norms.get((project.id, index), []))
        state.gate[project.id] = gate
    return gate


def _check_norm(gate: SortedNorms, project: Project, norm: float) -> None:
    """Reject a delta far out of line with recent accepted updates (this round, the last)."""
    median = gate.median()
    if logic.exceeds_median(norm, median, len(gate), project.max_norm_ratio):
        raise Rejection(
            RejectReason.NORM_OUTLIER,
            f"update norm {norm:.4g} exceeds {project.max_norm_ratio:g} x the median "
            f"{median:.4g} of recent accepted updates",
        )
