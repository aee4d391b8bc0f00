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
from typing import Any

import numpy as np
from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.orm import Session

from daig.blobstore import BlobStore
from daig.credits import ledger
from daig.db.models import (
    Claim,
    ClaimState,
    Project,
    ProjectState,
    RejectReason,
    Result,
    ResultStatus,
    Task,
    TaskState,
)
from daig.dispatch import DispatchPolicy, open_round, top_up
from daig.messages import ResultStatus as MessageStatus
from daig.messages import TrainResult
from daig.planning import shard_rows
from daig.settings import Settings
from daig.weights.schema import NDArrays
from services.aggregator import logic, rounds
from services.aggregator.facts import of_project
from services.aggregator.prepare import Prepared, Rejection
from services.aggregator.streaming import RoundFolds, RoundKey

log = logging.getLogger(__name__)

_RECENT_NORMS = text(
    "SELECT r.project_id, r.round_index, r.delta_norm FROM results r"
    " JOIN projects p ON p.id = r.project_id"
    " WHERE r.project_id = ANY(:projects) AND r.status = 'accepted'"
    " AND r.round_index >= p.current_round - 1 AND r.delta_norm IS NOT NULL"
)


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


@dataclass
class BatchOutcome:
    verdicts: list[Verdict | None]  # one per result of the batch; None: handled before
    accepted: list[Accepted] = field(default_factory=list)
    closed: list[RoundKey] = field(default_factory=list)


@dataclass
class _State:
    """The batch's rows, locked, and what deciding its results changed so far."""

    handled: set[uuid.UUID]
    projects: dict[uuid.UUID, Project]
    claims: dict[uuid.UUID, Claim]
    tasks: dict[uuid.UUID, Task]
    accepted: dict[RoundKey, int]
    norms: dict[uuid.UUID, list[tuple[int, float]]]
    outcome: BatchOutcome
    fresh: dict[RoundKey, list[Accepted]] = field(default_factory=lambda: defaultdict(list))
    payments: list[tuple[Project, Task, Result]] = field(default_factory=list)
    finished: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # task -> winning claim
    finishers: set[uuid.UUID] = field(default_factory=set)  # projects with a task done
    gave_back: set[uuid.UUID] = field(default_factory=set)  # projects with a task given back


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

    def record(self, session: Session, batch: list[Prepared]) -> BatchOutcome:
        """Decide and write every result of ``batch`` in ``session`` (the caller commits)."""
        state = self._load(session, [p.message for p in batch])
        for prepared in batch:
            state.outcome.verdicts.append(self._decide(session, prepared, state))
        session.flush()
        self._finish(session, state)
        return state.outcome

    # --- loading the batch's rows, locked ---------------------------------------------------
    def _load(self, session: Session, messages: list[TrainResult]) -> _State:
        project_ids = sorted({m.project_id for m in messages})
        # The projects first: whoever else records results of them waits here, and what was
        # already recorded is read after that (a fresh snapshot once the locks are ours).
        projects = _locked(session, Project, project_ids, key_share=True)
        handled = set(
            session.scalars(
                select(Result.message_id).where(
                    Result.message_id.in_([m.message_id for m in messages])
                )
            )
        )
        claims = _locked(session, Claim, sorted({m.claim_id for m in messages}))
        tasks = _locked(session, Task, sorted({m.task_id for m in messages}))
        return _State(
            handled=handled,
            projects=projects,
            claims=claims,
            tasks=tasks,
            accepted=_accepted_counts(session, projects),
            norms=_recent_norms(session, project_ids),
            outcome=BatchOutcome(verdicts=[]),
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
            if message.status == MessageStatus.FAILED:
                return self._record_failure(session, state, project, task, claim, message)
            if prepared.late is not None:
                raise prepared.late
            if prepared.delta is None:
                raise Rejection(RejectReason.BAD_DELTA, "the delta could not be checked; resend")
            self._check_norm(state, project, prepared.delta.norm)
        except Rejection as rejection:
            self._add_result(
                session, message, ResultStatus.REJECTED, rejection.reason, rejection.detail
            )
            log.info(
                "project %s round %s task %s: rejected (%s: %s)",
                message.project_id,
                message.round,
                message.task_id,
                rejection.reason,
                rejection.detail,
            )
            return Verdict(ResultStatus.REJECTED, rejection.reason)
        assert prepared.delta is not None
        return self._accept(session, state, project, task, claim, prepared)

    def _check_norm(self, state: _State, project: Project, norm: float) -> None:
        """Reject a delta far out of line with recent accepted updates."""
        recent = project.current_round - 1
        norms = [n for r, n in state.norms.get(project.id, []) if r >= recent]
        if logic.is_norm_outlier(norm, norms, project.max_norm_ratio):
            raise Rejection(
                RejectReason.NORM_OUTLIER,
                f"update norm {norm:.4g} exceeds {project.max_norm_ratio:g} x the median "
                f"{float(np.median(norms)):.4g} of recent accepted updates",
            )

    def _add_result(
        self,
        session: Session,
        message: TrainResult,
        status: ResultStatus,
        reason: RejectReason | None,
        detail: str | None,
        samples: int = 0,
        norm: float | None = None,
    ) -> Result:
        row = Result(
            id=uuid.uuid4(),
            message_id=message.message_id,
            project_id=message.project_id,
            round_index=message.round,
            task_id=message.task_id,
            claim_id=message.claim_id,
            provider_id=message.provider_id,
            status=status,
            reason=reason,
            detail=detail,
            blob_key=message.blob_key,
            samples=samples,
            fit_seconds=message.fit_seconds,
            history=message.history,
            timings=message.timings or None,
            delta_norm=norm,
            recorded_by=self.recorded_by,
            received_at=_now(),
        )
        session.add(row)
        return row

    def _record_failure(
        self,
        session: Session,
        state: _State,
        project: Project,
        task: Task,
        claim: Claim,
        message: TrainResult,
    ) -> Verdict:
        error = (message.error or "unknown error")[:2000]
        # A volunteer's own limits (memory) are not the model's fault: give the task to
        # someone else without counting it towards failing the project.
        reason = (
            RejectReason.RESOURCE_LIMIT if message.resource_limit else RejectReason.TRAINING_FAILED
        )
        self._add_result(session, message, ResultStatus.FAILED, reason, error)
        claim.state, claim.ended_at = ClaimState.RELEASED, _now()
        if not message.resource_limit:
            task.failures += 1
        _give_back(session, task, claim)
        state.gave_back.add(project.id)
        log.warning(
            "project %s round %s task %s: training failed (%s)",
            project.id,
            task.round_index,
            task.id,
            error,
        )
        if task.failures >= self._settings.max_task_failures:
            project.state = ProjectState.FAILED
            project.finished_at = _now()
            project.error = (
                f"training shard {task.shard} failed {task.failures} times; last error: {error}"
            )
            log.error("project %s: failed: %s", project.id, project.error)
        return Verdict(ResultStatus.FAILED, reason)

    def _accept(
        self,
        session: Session,
        state: _State,
        project: Project,
        task: Task,
        claim: Claim,
        prepared: Prepared,
    ) -> Verdict:
        assert project.total_rows is not None and prepared.delta is not None
        start, stop = shard_rows(task.shard, project.total_rows, project.total_tasks)
        # Weight by the server's own row count, not what the provider claims.
        row = self._add_result(
            session,
            prepared.message,
            ResultStatus.ACCEPTED,
            None,
            None,
            samples=stop - start,
            norm=prepared.delta.norm,
        )
        # Paid in this transaction: a result recorded once is paid once, restart or not.
        state.payments.append((project, task, row))
        task.state, task.done_at = TaskState.DONE, _now()
        claim.state, claim.ended_at = ClaimState.FINISHED, _now()
        state.finished[task.id] = claim.id
        state.finishers.add(project.id)
        key = (project.id, task.round_index)
        state.accepted[key] = state.accepted.get(key, 0) + 1
        state.norms.setdefault(project.id, []).append((task.round_index, prepared.delta.norm))
        accepted = Accepted(key, row.id, prepared.delta.arrays, row.samples)
        state.fresh[key].append(accepted)
        log.info(
            "project %s round %s task %s: accepted (%s/%s)",
            project.id,
            task.round_index,
            task.id,
            state.accepted[key],
            project.task_size,
        )
        if state.accepted[key] < project.task_size:
            return Verdict(ResultStatus.ACCEPTED)
        self._close(session, state, project, key)
        return Verdict(ResultStatus.ACCEPTED, round_closed=True)

    def _close(self, session: Session, state: _State, project: Project, key: RoundKey) -> None:
        """Close the round with its K results, then open the next one (same transaction)."""
        session.flush()  # the round's new results are read back by the close
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
        state.outcome.closed.append(key)
        assert project.total_rounds is not None
        if project.current_round < project.total_rounds:
            facts = of_project(project)
            assert facts is not None
            open_round(session, facts.plan, project.current_round, self._policy)

    # --- after every result was decided -----------------------------------------------------
    def _finish(self, session: Session, state: _State) -> None:
        if state.finished:
            # A straggler's or a lapsed lease's other claims lost: free their slots right away.
            session.execute(
                update(Claim)
                .where(
                    Claim.task_id.in_(list(state.finished)),
                    Claim.id.not_in(list(state.finished.values())),
                    Claim.state == ClaimState.ACTIVE,
                )
                .values(state=ClaimState.SUPERSEDED, ended_at=_now())
            )
        ledger.pay_for_results(session, state.payments)
        for project_id in state.finishers | state.gave_back:
            project = state.projects[project_id]
            facts = of_project(project)
            # A task given back, or a contributor slot freed: publish what may go out now.
            if facts is None or project.state != ProjectState.RUNNING:
                continue
            if project_id in state.gave_back or facts.plan.cap_binds:
                top_up(session, facts.plan, project.current_round, self._policy)
        for accepted in state.fresh.values():
            state.outcome.accepted.extend(accepted)


def _locked(
    session: Session, model: Any, ids: list[uuid.UUID], *, key_share: bool = False
) -> dict[uuid.UUID, Any]:
    rows = session.scalars(
        select(model)
        .where(model.id.in_(ids))
        .order_by(model.id)
        .with_for_update(key_share=key_share)
    )
    return {row.id: row for row in rows}


def _accepted_counts(session: Session, projects: dict[uuid.UUID, Project]) -> dict[RoundKey, int]:
    if not projects:
        return {}
    current = [(project.id, project.current_round) for project in projects.values()]
    rows = session.execute(
        select(Result.project_id, Result.round_index, func.count())
        .where(
            tuple_(Result.project_id, Result.round_index).in_(current),
            Result.status == ResultStatus.ACCEPTED,
        )
        .group_by(Result.project_id, Result.round_index)
    ).tuples()
    return {(project_id, index): int(count) for project_id, index, count in rows}


def _recent_norms(
    session: Session, project_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[int, float]]]:
    norms: dict[uuid.UUID, list[tuple[int, float]]] = defaultdict(list)
    for project_id, index, norm in session.execute(_RECENT_NORMS, {"projects": project_ids}):
        norms[project_id].append((int(index), float(norm)))
    return norms


def _check(state: _State, message: TrainResult) -> tuple[Project, Task, Claim]:
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
    if project.state != ProjectState.RUNNING:
        raise Rejection(RejectReason.PROJECT_NOT_RUNNING, f"the project is {project.state}")
    if message.round != project.current_round or task.round_index != project.current_round:
        raise Rejection(
            RejectReason.STALE_ROUND,
            f"result for round {message.round}, project is at {project.current_round}",
        )
    if task.state == TaskState.DONE:
        raise Rejection(RejectReason.DUPLICATE, "the task already has an accepted result")
    if claim.state == ClaimState.RELEASED:
        raise Rejection(RejectReason.CLAIM_RELEASED, "the provider gave this task back")
    return project, task, claim


def _give_back(session: Session, task: Task, claim: Claim) -> None:
    """The task back to pending, unless another provider still holds a live claim on it."""
    latest = session.scalar(
        select(func.max(Claim.lease_expires_at)).where(
            Claim.task_id == task.id,
            Claim.state == ClaimState.ACTIVE,
            Claim.id != claim.id,
            Claim.lease_expires_at > _now(),
        )
    )
    task.lease_expires_at = latest
    if latest is None and task.state == TaskState.CLAIMED:
        task.state = TaskState.PENDING


def _now() -> datetime:
    return datetime.now(UTC)
