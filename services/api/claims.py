"""Task claims: the API's side of handing a task to a provider, with a lease and a cap."""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

from psycopg2.errors import LockNotAvailable
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from daig import keys
from daig.blobstore import BlobStore
from daig.db.models import Claim, ClaimState, Project, ProjectState, Task, TaskState, User
from daig.npy import NpyHeader
from daig.planning import shard_rows
from daig.settings import Settings
from daig.weights.schema import WeightSchema
from services.api import crud
from services.api.errors import ApiError
from services.api.schemas import ClaimGrant, RemoteArray

# Delta streams are the weights plus small headers; anything much bigger is refused.
RESULT_OVERHEAD_BYTES = 64 * 1024
# How long a claim keeps stepping aside for the project row lock before queueing for it.
YIELD_LOCK_SECONDS = 2.0


def _lock_project(session: Session, project_id: uuid.UUID) -> Project | None:
    """Lock the project row, letting the aggregator and the scheduler go first.

    Postgres queues row-lock waiters in order, so with many claims of one project waiting, the
    aggregator waited behind all of them for every result (bench/dispatch_scale.py measured it
    waiting 60-90% of the time, recording 1-3 results/s). A claim instead tries NOWAIT, backs
    off briefly and retries; after ``YIELD_LOCK_SECONDS`` it queues like everyone else.
    """
    query = select(Project).where(Project.id == project_id)
    deadline = time.monotonic() + YIELD_LOCK_SECONDS
    delay = 0.002
    while time.monotonic() < deadline:
        try:
            with session.begin_nested():  # a released savepoint keeps the lock it took
                return session.scalar(query.with_for_update(nowait=True))
        except OperationalError as exc:
            if not isinstance(exc.orig, LockNotAvailable):
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.05)
    return session.scalar(query.with_for_update())


def claim(
    *,
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    user: User,
    task_id: uuid.UUID,
    agent_id: str,
) -> ClaimGrant:
    """Give ``task_id`` to this provider or raise 404/409 saying why not."""
    task = session.get(Task, task_id)
    if task is None:
        raise ApiError(404, f"no task {task_id}", "unknown_task")
    # Lock the project row: claims of one project are serialized, so the cap holds.
    project = _lock_project(session, task.project_id)
    assert project is not None
    session.refresh(task)
    if project.state != ProjectState.RUNNING:
        raise ApiError(409, f"the project is {project.state}", "project_not_running")
    if task.round_index != project.current_round:
        raise ApiError(
            409,
            f"task belongs to round {task.round_index}, the project is at round "
            f"{project.current_round}",
            "stale_round",
        )
    if task.state == TaskState.DONE:
        raise ApiError(409, "the task is already done", "task_done")
    # The cap counts tasks in flight; a straggler's re-issue is the same task, so it fits.
    reissue = crud.has_active_claim(session=session, task_id=task.id)
    # A claimed task whose every lease lapsed is free again, even before the scheduler notices.
    if task.state == TaskState.CLAIMED and reissue:
        raise ApiError(409, "another provider is working on this task", "task_claimed")
    # Only the current round's K tasks can be unfinished (a round closes when all K are done),
    # so with a cap of K or more (the default) counting them, under the lock, is wasted.
    if (
        not reissue
        and project.max_contributors < project.task_size
        and crud.tasks_in_flight(session=session, project_id=project.id) >= project.max_contributors
    ):
        raise ApiError(
            409, "the project has as many tasks in flight as it allows", "contributor_cap"
        )
    now = crud.now()
    row = Claim(
        id=uuid.uuid4(),
        task_id=task.id,
        project_id=project.id,
        provider_id=user.id,
        agent_id=agent_id,
        state=ClaimState.ACTIVE,
        claimed_at=now,
        lease_expires_at=now + timedelta(seconds=settings.lease_seconds),
    )
    session.add(row)
    task.state = TaskState.CLAIMED
    return _grant(
        session=session, blobs=blobs, settings=settings, project=project, task=task, claim=row
    )


def _grant(
    *,
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    project: Project,
    task: Task,
    claim: Claim,
) -> ClaimGrant:
    files = crud.files_of(session=session, project_id=project.id)
    ttl = settings.presign_ttl_seconds
    assert project.total_rows is not None and project.weight_schema is not None
    start, stop = shard_rows(task.shard, project.total_rows, project.total_tasks)
    schema = WeightSchema.from_json(project.weight_schema)

    def remote(kind: str) -> RemoteArray:
        header = NpyHeader.from_json(files[kind].meta)
        first, last = header.byte_range(start, stop)
        return RemoteArray(
            url=blobs.presign_get(files[kind].blob_key, ttl),
            byte_start=first,
            byte_end=last,
            dtype=header.dtype,
            row_shape=list(header.row_shape),
            rows=stop - start,
        )

    result_key = keys.result_key(project.id, task.round_index, task.id, claim.id)
    max_bytes = schema.nbytes + RESULT_OVERHEAD_BYTES + 128 * len(schema)
    return ClaimGrant(
        claim_id=claim.id,
        task_id=task.id,
        project_id=project.id,
        round=task.round_index,
        shard=task.shard,
        lease_seconds=settings.lease_seconds,
        model_url=blobs.presign_get(files["model"].blob_key, ttl),
        model_sha256=files["model"].sha256,
        weights_url=blobs.presign_get(keys.weights_key(project.id, task.round_index), ttl),
        weight_schema=project.weight_schema,
        schema_hash=str(project.schema_hash),
        data=remote("data"),
        labels=remote("labels"),
        epochs=project.epochs,
        batch_size=project.batch_size,
        validation_split=project.validation_split,
        result_key=result_key,
        result_url=blobs.presign_put(result_key, ttl, max_bytes),
        result_max_bytes=max_bytes,
        delta_codec=project.delta_codec,
        inline_max_bytes=settings.inline_delta_max_bytes,
    )


def _owned_active_claim(*, session: Session, claim_id: uuid.UUID, user: User) -> Claim:
    row = session.scalar(select(Claim).where(Claim.id == claim_id).with_for_update())
    if row is None or row.provider_id != user.id:
        raise ApiError(404, f"no claim {claim_id} of yours", "unknown_claim")
    if row.state == ClaimState.SUPERSEDED:
        raise ApiError(409, "another provider finished this task first", "task_done")
    if row.state != ClaimState.ACTIVE:
        raise ApiError(409, f"the claim is {row.state}; stop working on this task", "claim_ended")
    return row


def heartbeat(*, session: Session, settings: Settings, user: User, claim_id: uuid.UUID) -> float:
    """Extend the lease; 409 tells the provider to abandon the task."""
    row = _owned_active_claim(session=session, claim_id=claim_id, user=user)
    task = session.get(Task, row.task_id)
    project = session.get(Project, row.project_id)
    assert task is not None and project is not None
    if task.state == TaskState.DONE:
        raise ApiError(409, "another provider finished this task first", "task_done")
    if project.state != ProjectState.RUNNING:
        raise ApiError(409, f"the project is {project.state}", "project_not_running")
    row.lease_expires_at = crud.now() + timedelta(seconds=settings.lease_seconds)
    return settings.lease_seconds


def release(*, session: Session, user: User, claim_id: uuid.UUID) -> Claim:
    """Give the task back: it is published again for another provider."""
    row = _owned_active_claim(session=session, claim_id=claim_id, user=user)
    row.state = ClaimState.RELEASED
    row.ended_at = crud.now()
    still_claimed = session.scalar(
        select(Claim.id)
        .where(Claim.task_id == row.task_id, Claim.state == ClaimState.ACTIVE, Claim.id != row.id)
        .limit(1)
    )
    if still_claimed is None:
        session.execute(
            update(Task)
            .where(Task.id == row.task_id, Task.state == TaskState.CLAIMED)
            .values(state=TaskState.PENDING)
        )
    return row
