"""Streaming a project file upload to disk, validating it, and storing it in the blob store."""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from daig import keys
from daig.blobstore import BlobStore
from daig.contract.http import FileOut
from daig.db.models import ProjectFile, ProjectState, User
from daig.modelfile.convert import convert_to_h5
from daig.modelfile.inspect import ModelRejected
from daig.validation import CheckedFile, FileRejected, check_file, check_together
from daig_api import crud
from daig_api.errors import ApiError


@dataclass
class Received:
    path: Path
    size: int
    sha256: str


def _converted(received: Received) -> tuple[Received, CheckedFile]:
    """A checked ``.keras`` archive, converted to ``.h5`` by a sandboxed process."""
    target = received.path.with_suffix(".h5")
    try:
        convert_to_h5(received.path, target)
    except ModelRejected as exc:
        target.unlink(missing_ok=True)
        raise FileRejected(f"model rejected: {exc}") from exc
    received.path.unlink(missing_ok=True)
    digest = hashlib.sha256()
    with open(target, "rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    converted = Received(target, target.stat().st_size, digest.hexdigest())
    checked = check_file("model", target)
    return converted, CheckedFile("model", checked.meta | {"converted_from": "keras"})


async def receive(request: Request, limit: int, directory: Path) -> Received:
    """Write the request body to a temporary file, hashing it and enforcing ``limit`` bytes."""
    digest = hashlib.sha256()
    size = 0
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        413,
                        f"the upload exceeds the limit of {limit:,} bytes for this file",
                        "too_large",
                    )
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ApiError(
            400, "the upload is empty; send the file's bytes as the request body", "empty"
        )
    return Received(path, size, digest.hexdigest())


def store(
    *,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    user: User,
    project_id: uuid.UUID,
    kind: str,
    filename: str,
    received: Received,
) -> FileOut:
    """Validate the received file against the project's other files, then keep it."""
    try:
        checked = check_file(kind, received.path)
        if kind == "model" and checked.meta.get("format") == "keras":
            received, checked = _converted(received)
    except FileRejected as exc:
        raise ApiError(422, str(exc), "invalid_file") from exc
    with sessions.begin() as session:
        project = crud.get_owned_project(
            session=session, project_id=project_id, user=user, for_update=True
        )
        if project.state != ProjectState.CREATED:
            raise ApiError(
                409,
                f"the project is {project.state}; files cannot change after it started "
                "(create a new project instead)",
                "project_started",
            )
        metas = {
            k: f.meta for k, f in crud.files_of(session=session, project_id=project_id).items()
        }
        metas[kind] = checked.meta
        try:
            check_together(metas)
        except FileRejected as exc:
            raise ApiError(422, str(exc), "files_mismatch") from exc
        key = keys.file_key(project_id, kind)
        blobs.put_file(key, received.path)
        row = session.get(ProjectFile, (project_id, kind)) or ProjectFile(
            project_id=project_id, kind=kind
        )
        row.blob_key, row.size, row.sha256 = key, received.size, received.sha256
        row.filename, row.meta = filename[:255], checked.meta
        row.uploaded_at = crud.now()
        session.add(row)
    return FileOut(
        kind=kind, filename=row.filename, size=row.size, sha256=row.sha256, meta=row.meta
    )
