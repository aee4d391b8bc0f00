"""A project's life: start (final checks, weights version 0, the plan), pause, resume, cancel."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from daig import keys, states, tempdirs
from daig.blobstore import BlobStore
from daig.db.models import Project, ProjectFile
from daig.hyperparams import check_against_data
from daig.npy import NpyHeader
from daig.planning import total_rounds
from daig.states import ProjectAction
from daig.validation import FILE_KINDS, FileRejected, check_together, outdated, refreshed
from daig.weights.h5weights import H5WeightsError, read_weights
from daig.weights.schema import WeightSchema
from daig.weights.stream import encode_weights
from daig_api import crud
from daig_api.errors import ApiError


def start(*, session: Session, blobs: BlobStore, project: Project) -> None:
    """Move a created project to ``queued``, or raise an ``ApiError`` saying what is missing."""
    _refuse_unless_allowed(project, ProjectAction.START)
    files = crud.files_of(session=session, project_id=project.id)
    missing = [kind for kind in FILE_KINDS if kind not in files]
    if missing:
        raise ApiError(
            409,
            f"upload the project's {', '.join(missing)} file(s) before starting "
            f"(PUT /v1/projects/{project.id}/files/<kind>)",
            "missing_files",
        )
    try:
        metas = {kind: _current_meta(blobs, kind, row) for kind, row in files.items()}
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
    states.enter(project, ProjectAction.START, now=crud.now())


def _current_meta(blobs: BlobStore, kind: str, row: ProjectFile) -> dict[str, Any]:
    """The file's metadata, completed from the stored file if it predates a check."""
    if outdated(kind, row.meta):
        with tempdirs.scratch("start") as directory:
            path = directory / kind
            blobs.download(row.blob_key, path)
            row.meta = refreshed(kind, row.meta, path)  # a new dict: the JSON column is saved
    return row.meta


def _initial_weights(blobs: BlobStore, model_key: str) -> tuple[bytes, WeightSchema]:
    with tempdirs.scratch("start") as directory:
        path = directory / "model.h5"
        blobs.download(model_key, path)
        try:
            arrays = read_weights(path)
        except H5WeightsError as exc:
            raise ApiError(
                422, f"the model's weights cannot be read: {exc}", "cannot_start"
            ) from exc
    return encode_weights(arrays), WeightSchema.of(arrays)


# Why the table refuses a requestor's action, in the words and reasons the API answers with.
_REFUSALS = {
    ProjectAction.START: ("the project is already {state}", "already_started"),
    ProjectAction.PAUSE: (
        "only a queued or running project can be paused; it is {state}",
        "not_running",
    ),
    ProjectAction.RESUME: ("only a paused project can be resumed; it is {state}", "not_paused"),
    ProjectAction.CANCEL: ("the project is already {state}", "finished"),
}


def _refuse_unless_allowed(project: Project, action: ProjectAction) -> None:
    if not states.PROJECT_TABLE.may(action, project.state):
        message, reason = _REFUSALS[action]
        raise ApiError(409, message.format(state=project.state), reason)


def _move(project: Project, action: ProjectAction) -> None:
    _refuse_unless_allowed(project, action)
    states.enter(project, action, now=crud.now())


def pause(*, session: Session, project: Project) -> None:
    """Stop handing out tasks; running tasks are stopped and will be given out on resume."""
    _move(project, ProjectAction.PAUSE)
    # Task messages already queued will be refused while paused; publish them anew on resume.
    states.stop_work(session, project.id, now=crud.now())


def resume(*, session: Session, project: Project) -> None:
    """Continue from the same round."""
    _move(project, ProjectAction.RESUME)


def cancel(*, session: Session, project: Project) -> None:
    """Stop for good: claims are released, the current model stays downloadable."""
    _move(project, ProjectAction.CANCEL)
    states.stop_work(session, project.id, now=crud.now())
