"""Handling result messages: validate, record durably (idempotently), close rounds.

Every result becomes exactly one ``results`` row keyed by its message id, in the same
transaction as its effects, so a redelivered message is recognised and never counted twice;
a second accepted result for a task is impossible (unique index). Blobs are written before
the commit under deterministic keys, so redoing a half-done round close rewrites the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from daig import keys
from daig.blobstore import BlobStore
from daig.broker import Delivery, Outcome
from daig.broker import Session as BrokerSession
from daig.db.models import (
    Claim,
    ClaimState,
    Project,
    ProjectFile,
    ProjectState,
    RejectReason,
    Result,
    ResultStatus,
    Round,
    Task,
    TaskState,
)
from daig.messages import EventKind, ProjectEvent, TrainResult, decode
from daig.messages import ResultStatus as MessageStatus
from daig.planning import shard_rows
from daig.settings import Settings
from daig.topology import EVENTS
from daig.weights.codec import WeightsRejected, decode_weights, encode_weights, load_weights
from daig.weights.h5weights import write_weights
from daig.weights.schema import WeightSchema
from services.aggregator import logic

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

    def on_result(self, delivery: Delivery, broker: BrokerSession) -> Outcome:
        message = decode(TrainResult, delivery.body, delivery.message_type)
        verdict = self.handle(message)
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

    def handle(self, message: TrainResult) -> Verdict | None:
        """Record the result's fate in one transaction; None if it was already recorded."""
        with self._sessions.begin() as session:
            project = session.scalar(
                select(Project).where(Project.id == message.project_id).with_for_update()
            )
            if session.scalar(select(Result.id).where(Result.message_id == message.message_id)):
                log.info("result message %s already handled", message.message_id)
                return None
            try:
                task, claim = self._check(session, project, message)
                if message.status == MessageStatus.FAILED:
                    return self._record_failure(session, project, task, claim, message)
                assert project is not None
                delta_bytes = self._fetch_delta(project, task, claim, message)
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
            return self._accept(session, project, task, claim, message, delta_bytes)

    def _check(
        self, session: Session, project: Project | None, message: TrainResult
    ) -> tuple[Task, Claim]:
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
    ) -> bytes:
        if message.schema_hash != project.schema_hash:
            raise Rejection(
                RejectReason.SCHEMA_MISMATCH, "the delta was computed for another model"
            )
        expected_key = keys.result_key(project.id, task.round_index, task.id, claim.id)
        if message.blob_key != expected_key:
            raise Rejection(RejectReason.BAD_DELTA, f"the delta must be stored at {expected_key}")
        schema = _schema(project)
        size = self._blobs.size(expected_key)
        if size is None:
            raise Rejection(RejectReason.MISSING_BLOB, "no delta was uploaded")
        if size > schema.nbytes + DELTA_OVERHEAD_BYTES + 128 * len(schema):
            raise Rejection(RejectReason.BAD_DELTA, f"the delta is {size} bytes, too large")
        data = self._blobs.get_bytes(expected_key)
        if hashlib.sha256(data).hexdigest() != message.sha256:
            raise Rejection(RejectReason.CHECKSUM_MISMATCH, "the delta's sha256 does not match")
        try:
            decode_weights(data, schema)
        except WeightsRejected as exc:
            raise Rejection(RejectReason.BAD_DELTA, str(exc)) from exc
        return data

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
        self._record(session, message, ResultStatus.FAILED, RejectReason.TRAINING_FAILED, error)
        claim.state, claim.ended_at = ClaimState.RELEASED, now()
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
        return Verdict(ResultStatus.FAILED, RejectReason.TRAINING_FAILED)

    def _accept(
        self,
        session: Session,
        project: Project,
        task: Task,
        claim: Claim,
        message: TrainResult,
        delta_bytes: bytes,
    ) -> Verdict:
        assert project.total_rows is not None
        start, stop = shard_rows(task.shard, project.total_rows, project.total_tasks)
        # Weight by the server's own row count, not what the provider claims.
        self._record(session, message, ResultStatus.ACCEPTED, None, None, samples=stop - start)
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
        if (accepted or 0) < project.task_size:
            return Verdict(ResultStatus.ACCEPTED)
        self._close_round(session, project)
        return Verdict(ResultStatus.ACCEPTED, round_closed=True)

    def _close_round(self, session: Session, project: Project) -> None:
        index = project.current_round
        schema = _schema(project)
        results = (
            session.execute(
                select(Result)
                .join(Task, Task.id == Result.task_id)
                .where(
                    Result.project_id == project.id,
                    Result.round_index == index,
                    Result.status == ResultStatus.ACCEPTED,
                )
                .order_by(Task.slot)  # a fixed order: a redone close writes identical bytes
            )
            .scalars()
            .all()
        )
        mean = logic.WeightedMean()
        for result in results:
            assert result.blob_key is not None
            mean.add(decode_weights(self._blobs.get_bytes(result.blob_key), schema), result.samples)
        base = decode_weights(self._blobs.get_bytes(keys.weights_key(project.id, index)), schema)
        new_weights = logic.apply_delta(base, mean.result())
        new_key = keys.weights_key(project.id, index + 1)
        self._blobs.put_bytes(new_key, encode_weights(new_weights))
        round_row = session.get(Round, (project.id, index))
        assert round_row is not None
        round_row.closed_at = now()
        round_row.weights_key = new_key
        round_row.metrics = logic.round_metrics((r.history or {}, r.samples) for r in results) | {
            "samples": mean.samples,
            "slowest_fit_seconds": max(r.fit_seconds for r in results),
        }
        project.current_round = index + 1
        log.info(
            "project %s round %s: closed, weights version %s written (%s)",
            project.id,
            index,
            index + 1,
            round_row.metrics,
        )
        if project.current_round == project.total_rounds:  # the last round
            self._write_final_model(session, project, new_key)

    def _write_final_model(self, session: Session, project: Project, weights_key: str) -> None:
        model = session.get(ProjectFile, (project.id, "model"))
        assert model is not None
        schema = _schema(project)
        with tempfile.TemporaryDirectory(prefix="daig-final-") as directory:
            source, target, weights = (Path(directory) / n for n in ("in.h5", "out.h5", "w.dwt"))
            self._blobs.download(model.blob_key, source)
            self._blobs.download(weights_key, weights)
            write_weights(source, target, load_weights(weights, schema))
            final_key = keys.final_model_key(project.id)
            self._blobs.put_file(final_key, target)
        project.final_model_key = final_key
        log.info("project %s: final model written to %s", project.id, final_key)
