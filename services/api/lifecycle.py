"""Starting a project: final checks, the initial weights (version 0), and the round plan."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from daig import keys
from daig.blobstore import BlobStore
from daig.db.models import Project, ProjectState
from daig.hyperparams import check_against_data
from daig.npy import NpyHeader
from daig.planning import total_rounds
from daig.validation import FILE_KINDS, FileRejected, check_together
from daig.weights.codec import encode_weights
from daig.weights.h5weights import H5WeightsError, read_weights
from daig.weights.schema import WeightSchema
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
