"""Streamed uploads of a project's model, data and labels."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from daig.contract.http import FileOut, printable
from daig.validation import ALL_KINDS
from daig_api import crud, uploads
from daig_api.deps import BlobsDep, CurrentUser, SessionDep, SettingsDep
from daig_api.errors import ApiError

router = APIRouter(prefix="/v1/projects/{project_id}/files", tags=["files"])


@router.put(
    "/{kind}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_file(
    project_id: uuid.UUID,
    kind: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    filename: Annotated[str, Query(max_length=255)] = "",
) -> FileOut:
    """Upload model (.h5/.keras), data, labels or validation_* (.npy) as the raw body."""
    if kind not in ALL_KINDS:
        raise ApiError(
            404, f"unknown file kind {kind!r}; use one of {', '.join(ALL_KINDS)}", "bad_kind"
        )
    crud.get_owned_project(session=session, project_id=project_id, user=user)
    session.close()  # don't hold a connection while the bytes stream in
    limit = settings.max_model_bytes if kind == "model" else settings.max_upload_bytes
    received = await uploads.receive(request, limit, Path(request.app.state.upload_dir))
    try:
        return await run_in_threadpool(
            uploads.store,
            sessions=request.app.state.sessionmaker,
            blobs=blobs,
            user=user,
            project_id=project_id,
            kind=kind,
            filename=printable(filename) or kind,  # NUL can't be stored; it's only shown
            received=received,
        )
    finally:
        received.path.unlink(missing_ok=True)
        received.path.with_suffix(".h5").unlink(missing_ok=True)  # a converted .keras


@router.get("")
def list_files(project_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> list[FileOut]:
    """The project's uploaded files and what DAIG read from them."""
    crud.get_owned_project(session=session, project_id=project_id, user=user)
    return [
        FileOut(kind=f.kind, filename=f.filename, size=f.size, sha256=f.sha256, meta=f.meta)
        for f in crud.files_of(session=session, project_id=project_id).values()
    ]
