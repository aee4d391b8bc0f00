"""A project's life: start (final checks, weights version 0, the plan), pause, resume, cancel."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from daig import keys
from daig.blobstore import BlobStore
from daig.db.models import Claim, ClaimState, Project, ProjectState, Task, TaskState
from daig.hyperparams import check_against_data
from daig.npy import NpyHeader
from daig.planning import total_rounds
from daig.validation import FILE_KINDS, FileRejected, check_together
from daig.weights.h5weights import H5WeightsError, read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import encode_weights
from services.api import crud
from services.api.errors import ApiError


def start(*, session: Session, blobs: BlobStore, project: Project) -> None:
    """Move a created project to ``queued``, or raise an ``ApiError`` saying what is missing."""
    if project.state != ProjectState.CREATED:
        raise ApiError(409, f"the project is already {project.state}", "already_started")
    files = crud.files_of(session=session, project_id=project.id)
    missing = [kind for kind in FILE_KINDS if kind not in files]
    if missing:
        raise ApiError(
            409,
            f"upload the project's {', '.join(missing)} file(s) before starting "
            f"(PUT /v1/projects/{project.id}/files/<kind>)",
            "missing_files",
        )
    metas = {kind: row.meta for kind, row in files.items()}
    try:
        check_together(metas)
        rows = NpyHeader.from_json(metas["data"]).rows
        check_against_data(crud.hyperparameters_of(project), rows)
    except (FileRejected, ValueError) as exc:
        raise ApiError(422, str(exc), "cannot_start") from exc
    initial, schema = _initial_weights(blobs, files["model"].blob_key)
    blobs.put_bytes(keys.weights_key(project.id, 0), initial)
    project.total_rows = rows
    project.weight_schema = schema.to_json()
    project.schema_hash = schema.hash
    project.current_round = 0
    project.total_rounds = total_rounds(project.total_tasks, project.task_size, project.passes)
    project.state = ProjectState.QUEUED
    project.started_at = crud.now()


def _initial_weights(blobs: BlobStore, model_key: str) -> tuple[bytes, WeightSchema]:
    with tempfile.TemporaryDirectory(prefix="daig-start-") as directory:
        path = Path(directory) / "model.h5"
        blobs.download(model_key, path)
        try:
            arrays = read_weights(path)
        except H5WeightsError as exc:
            raise ApiError(
                422, f"the model's weights cannot be read: {exc}", "cannot_start"
            ) from exc
    return encode_weights(arrays), WeightSchema.of(arrays)


def pause(*, session: Session, project: Project) -> None:
    """Stop handing out tasks; running tasks are stopped and will be given out on resume."""
    if project.state not in (ProjectState.QUEUED, ProjectState.RUNNING):
        raise ApiError(
            409,
            f"only a queued or running project can be paused; it is {project.state}",
            "not_running",
        )
    project.state = ProjectState.PAUSED
    # Task messages already queued will be refused while paused; publish them anew on resume.
    _stop_tasks(session, project)


def resume(*, session: Session, project: Project) -> None:
    """Continue from the same round."""
    if project.state != ProjectState.PAUSED:
        raise ApiError(
            409, f"only a paused project can be resumed; it is {project.state}", "not_paused"
        )
    project.state = ProjectState.RUNNING


def cancel(*, session: Session, project: Project) -> None:
    """Stop for good: claims are released, the current model stays downloadable."""
    if project.state in (ProjectState.DONE, ProjectState.FAILED, ProjectState.CANCELLED):
        raise ApiError(409, f"the project is already {project.state}", "finished")
    project.state = ProjectState.CANCELLED
    project.finished_at = crud.now()
    _stop_tasks(session, project)


def _stop_tasks(session: Session, project: Project) -> None:
    """Every claim released and unfinished tasks back to pending.

    Claims lock only their task row and read the project's state after it, so updating the
    tasks waits for any claim in progress; releasing claims once more afterwards (a fresh
    snapshot) catches the claim such a transaction committed meanwhile. Claims first, then
    tasks: the order heartbeats and lease expiry take them in.
    """
    _release_claims(session, project)
    session.execute(
        update(Task)
        .where(Task.project_id == project.id, Task.state != TaskState.DONE)
        .values(state=TaskState.PENDING, lease_expires_at=None)
    )
    _release_claims(session, project)


def _release_claims(session: Session, project: Project) -> None:
    session.execute(
        update(Claim)
        .where(Claim.project_id == project.id, Claim.state == ClaimState.ACTIVE)
        .values(state=ClaimState.RELEASED, ended_at=crud.now())
    )
