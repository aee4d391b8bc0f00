"""Handling result messages: validate, record durably (idempotently), close rounds.

Every result becomes exactly one ``results`` row keyed by its message id, in the same
transaction as its effects, so a redelivered message is recognised and never counted twice;
a second accepted result for a task is impossible (unique index). Blobs are written before
the commit under deterministic keys, so redoing a half-done round close rewrites the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from daig import keys, metrics
from daig.blobstore import BlobStore
from daig.broker import Delivery, Outcome
from daig.broker import Session as BrokerSession
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
from daig.logs import log_context
from daig.messages import EventKind, ProjectEvent, TrainResult, decode
from daig.messages import ResultStatus as MessageStatus
from daig.planning import shard_rows
from daig.settings import Settings
from daig.topology import EVENTS, provider_broker_user
from daig.weights.codec import WeightsRejected, decode_weights
from daig.weights.schema import NDArrays, WeightSchema
from services.aggregator import logic, rounds
from services.aggregator.streaming import RoundFolds

log = logging.getLogger(__name__)
DELTA_OVERHEAD_BYTES = 64 * 1024


class Rejection(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Verdict:
    status: ResultStatus
    reason: RejectReason | None = None
    round_closed: bool = False


def _count(verdict: Verdict) -> None:
    """Metrics of a recorded result (after its commit, so a rolled-back one never counts)."""
    if verdict.status == ResultStatus.ACCEPTED:
        metrics.RESULTS_ACCEPTED.inc()
    else:
        metrics.RESULTS_REJECTED.labels(str(verdict.reason or verdict.status)).inc()
    if verdict.round_closed:
        metrics.ROUNDS_CLOSED.inc()


class Sender(Enum):
    """Who published a result, when it did not come off the broker."""

    DIRECT = "direct"  # handed to ``handle`` directly (tests, tools): no broker user to check


def now() -> datetime:
    return datetime.now(UTC)


def _schema(project: Project) -> WeightSchema:
    assert project.weight_schema is not None, "a running project has a weight schema"
    return WeightSchema.from_json(project.weight_schema)


class Aggregator:
    def __init__(
        self, sessions: sessionmaker[Session], blobs: BlobStore, settings: Settings
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._settings = settings
        self._folds = RoundFolds()

    def on_result(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        message = decode(TrainResult, delivery.body, delivery.message_type)
        verdict = self.handle(message, sender=delivery.user_id)
        if verdict is not None:
            try:
                broker.publish(
                    EVENTS,
                    ProjectEvent(
                        project_id=message.project_id,
                        round=message.round,
                        kind=EventKind.ROUND_CLOSED
                        if verdict.round_closed
                        else EventKind.TASK_FINISHED,
                    ),
                )
            except Exception:
                log.warning(
                    "project %s: event not published; the scheduler will poll", message.project_id
                )
        return Outcome.ACK

    def handle(
        self, message: TrainResult, *, sender: str | Sender | None = Sender.DIRECT
    ) -> Verdict | None:
        """Record the result's fate in one transaction; None if it was already recorded.

        ``sender`` is the broker-validated ``user_id`` of the result's message (None if it
        had none); a result is rejected as ``wrong_provider`` unless it is the broker user of
        the message's ``provider_id``.
        """
        pending: list[tuple[Any, ...]] = []  # folded into the running mean after the commit
        with log_context(project=message.project_id, round=message.round, task=message.task_id):
            with self._sessions.begin() as session:
                verdict = self._decide(session, message, sender, pending)
            for key, result_id, delta, samples in pending:
                self._folds.add(key, result_id, delta, samples)
            if verdict is not None and verdict.round_closed:
                self._folds.forget((message.project_id, message.round))
        if verdict is not None:
            _count(verdict)
        return verdict

    def _decide(
        self,
        session: Session,
        message: TrainResult,
        sender: str | Sender | None,
        pending: list[tuple[Any, ...]],
    ) -> Verdict | None:
        """The result's fate, recorded in ``session``; accepted deltas to fold go in ``pending``."""
        project = session.scalar(
            select(Project).where(Project.id == message.project_id).with_for_update()
        )
        if session.scalar(select(Result.id).where(Result.message_id == message.message_id)):
            log.info("result message %s already handled", message.message_id)
            return None
        try:
            task, claim = self._check(session, project, message, sender)
            if message.status == MessageStatus.FAILED:
                return self._record_failure(session, project, task, claim, message)
            assert project is not None
            delta = self._fetch_delta(project, task, claim, message)
            norm = self._check_norm(session, project, delta)
        except Rejection as rejection:
            self._record(
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
        return self._accept(session, project, task, claim, message, delta, norm, pending)

    def _check(
        self,
        session: Session,
        project: Project | None,
        message: TrainResult,
        sender: str | Sender | None,
    ) -> tuple[Task, Claim]:
        if sender is not Sender.DIRECT:
            expected = provider_broker_user(message.provider_id, self._settings.amqp_vhost)
            if sender != expected:
                raise Rejection(
                    RejectReason.WRONG_PROVIDER,
                    f"published by broker user {sender or '(none)'}, not {expected}",
                )
        if project is None:
            raise Rejection(RejectReason.UNKNOWN_PROJECT, "no such project")
        task = session.get(Task, message.task_id)
        if task is None or task.project_id != project.id:
            raise Rejection(RejectReason.UNKNOWN_TASK, "no such task in this project")
        claim = session.get(Claim, message.claim_id)
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
        return task, claim

    def _fetch_delta(
        self, project: Project, task: Task, claim: Claim, message: TrainResult
    ) -> NDArrays:
        if message.schema_hash != project.schema_hash:
            raise Rejection(
                RejectReason.SCHEMA_MISMATCH, "the delta was computed for another model"
            )
        expected_key = keys.result_key(project.id, task.round_index, task.id, claim.id)
        if message.blob_key != expected_key:
            raise Rejection(RejectReason.BAD_DELTA, f"the delta must be stored at {expected_key}")
        schema = _schema(project)
        limit = schema.nbytes + DELTA_OVERHEAD_BYTES + 128 * len(schema)
        data = self._inline_delta(message) if message.inline_delta else None
        if data is None:
            size = self._blobs.size(expected_key)
            if size is None:
                raise Rejection(RejectReason.MISSING_BLOB, "no delta was uploaded")
            if size > limit:
                raise Rejection(RejectReason.BAD_DELTA, f"the delta is {size} bytes, too large")
            data = self._blobs.get_bytes(expected_key)
            metrics.DELTA_BYTES.labels("blob").inc(len(data))
        elif len(data) > limit:
            raise Rejection(RejectReason.BAD_DELTA, f"the delta is {len(data)} bytes, too large")
        else:
            metrics.DELTA_BYTES.labels("inline").inc(len(data))
        if hashlib.sha256(data).hexdigest() != message.sha256:
            raise Rejection(RejectReason.CHECKSUM_MISMATCH, "the delta's sha256 does not match")
        try:
            delta = decode_weights(data, schema)
        except WeightsRejected as exc:
            raise Rejection(RejectReason.BAD_DELTA, str(exc)) from exc
        if message.inline_delta:
            # Kept like an uploaded one (before the commit): round closes and audits read it.
            self._blobs.put_bytes(expected_key, data)
        return delta

    @staticmethod
    def _inline_delta(message: TrainResult) -> bytes:
        try:
            return base64.b64decode(message.inline_delta or "", validate=True)
        except ValueError as exc:
            raise Rejection(RejectReason.BAD_DELTA, "the inline delta is not base64") from exc

    def _check_norm(self, session: Session, project: Project, delta: NDArrays) -> float:
        """The delta's norm; rejects one far out of line with recent accepted updates."""
        norm = logic.delta_norm(delta)
        reference = session.scalars(
            select(Result.delta_norm).where(
                Result.project_id == project.id,
                Result.status == ResultStatus.ACCEPTED,
                Result.round_index >= project.current_round - 1,
                Result.delta_norm.is_not(None),
            )
        ).all()
        norms = [float(n) for n in reference if n is not None]
        if logic.is_norm_outlier(norm, norms, project.max_norm_ratio):
            raise Rejection(
                RejectReason.NORM_OUTLIER,
                f"update norm {norm:.4g} exceeds {project.max_norm_ratio:g} x the median "
                f"{float(np.median(norms)):.4g} of recent accepted updates",
            )
        return norm

    def _record(
        self,
        session: Session,
        message: TrainResult,
        status: ResultStatus,
        reason: RejectReason | None,
        detail: str | None,
        samples: int = 0,
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
            received_at=now(),
        )
        session.add(row)
        session.flush()
        return row

    def _record_failure(
        self,
        session: Session,
        project: Project | None,
        task: Task,
        claim: Claim,
        message: TrainResult,
    ) -> Verdict:
        assert project is not None
        error = (message.error or "unknown error")[:2000]
        # A volunteer's own limits (memory) are not the model's fault: give the task to
        # someone else without counting it towards failing the project.
        reason = (
            RejectReason.RESOURCE_LIMIT if message.resource_limit else RejectReason.TRAINING_FAILED
        )
        self._record(session, message, ResultStatus.FAILED, reason, error)
        claim.state, claim.ended_at = ClaimState.RELEASED, now()
        if not message.resource_limit:
            task.failures += 1
        still_held = (
            select(Claim.id)
            .where(Claim.task_id == task.id, Claim.state == ClaimState.ACTIVE)
            .exists()
        )
        session.execute(
            update(Task)
            .where(Task.id == task.id, Task.state == TaskState.CLAIMED, ~still_held)
            .values(state=TaskState.PENDING)
        )
        log.warning(
            "project %s round %s task %s: training failed (%s)",
            project.id,
            task.round_index,
            task.id,
            error,
        )
        if task.failures >= self._settings.max_task_failures:
            project.state = ProjectState.FAILED
            project.finished_at = now()
            project.error = (
                f"training shard {task.shard} failed {task.failures} times; last error: {error}"
            )
            log.error("project %s: failed: %s", project.id, project.error)
        return Verdict(ResultStatus.FAILED, reason)

    def _accept(
        self,
        session: Session,
        project: Project,
        task: Task,
        claim: Claim,
        message: TrainResult,
        delta: NDArrays,
        norm: float,
        pending: list[tuple[Any, ...]],
    ) -> Verdict:
        assert project.total_rows is not None
        start, stop = shard_rows(task.shard, project.total_rows, project.total_tasks)
        # Weight by the server's own row count, not what the provider claims.
        row = self._record(
            session, message, ResultStatus.ACCEPTED, None, None, samples=stop - start
        )
        row.delta_norm = norm
        # Paid in this transaction: a result recorded once is paid once, restart or not.
        ledger.pay_for_result(session, project=project, task=task, result=row)
        task.state, task.done_at = TaskState.DONE, now()
        claim.state, claim.ended_at = ClaimState.FINISHED, now()
        # A straggler's or a lapsed lease's other claims lost: free their slots right away.
        session.execute(
            update(Claim)
            .where(Claim.task_id == task.id, Claim.id != claim.id, Claim.state == ClaimState.ACTIVE)
            .values(state=ClaimState.SUPERSEDED, ended_at=now())
        )
        accepted = session.scalar(
            select(func.count())
            .select_from(Result)
            .where(
                Result.project_id == project.id,
                Result.round_index == task.round_index,
                Result.status == ResultStatus.ACCEPTED,
            )
        )
        log.info(
            "project %s round %s task %s: accepted (%s/%s)",
            project.id,
            task.round_index,
            task.id,
            accepted,
            project.task_size,
        )
        key = (project.id, task.round_index)
        if (accepted or 0) < project.task_size:
            pending.append((key, row.id, delta, row.samples))
            return Verdict(ResultStatus.ACCEPTED)
        mean = None
        if project.aggregation == "mean":
            others = set(
                session.scalars(
                    select(Result.id).where(
                        Result.project_id == project.id,
                        Result.round_index == task.round_index,
                        Result.status == ResultStatus.ACCEPTED,
                        Result.id != row.id,
                    )
                )
            )
            mean = self._folds.mean_with(key, others, delta, row.samples)
        rounds.close_round(session, self._blobs, project, mean=mean)
        return Verdict(ResultStatus.ACCEPTED, round_closed=True)
